# The one image every Drape service (and the CPU model server) runs: `drape serve NAME`.
#   docker build -t ghcr.io/drape-platform/drape:0.1.0 .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 OPENBLAS_NUM_THREADS=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/drape
COPY pyproject.toml constraints.txt README.md ./
COPY protos ./protos
COPY services ./services
COPY models ./models
COPY recsys ./recsys
COPY catalog ./catalog
COPY synthetic ./synthetic
COPY cli ./cli
COPY tools/protogen.py ./tools/protogen.py
# CPU torch first (a GPU image swaps in the CUDA build and the `gpu` extra).
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --no-cache-dir -c constraints.txt ".[cpu]" \
    && python tools/protogen.py --check
RUN useradd --uid 10001 --create-home drape && mkdir -p /var/lib/drape && chown drape /var/lib/drape
USER 10001
ENTRYPOINT []
CMD ["drape", "doctor"]
