"""The try-on GAN: keypoint-driven TPS warping refined by a learned flow, and a U-Net
generator that renders the person and a composition mask (CP-VTON / VITON-HD family; see
``networks``)."""
