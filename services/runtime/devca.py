"""A development certificate authority: a CA and a certificate per service (and per client),
for running the stack with TLS and mTLS on one machine or in a test cluster. Production
certificates come from the platform's issuer (cert-manager: k8s/components/tls).

Each certificate names the service as a client and as a server would be reached: its name,
``<name>.drape.svc`` and ``<name>.drape.svc.cluster.local``, ``localhost`` and 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from drape.services.runtime.config import DrapeConfig, TlsConfig

NAMESPACE = "drape"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))  # fmt: skip
    path.chmod(0o600)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Drape development"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])  # fmt: skip


def make_dev_ca(out: Path, names: Iterable[str], days: int = 30) -> Path:
    """Writes ``ca.pem`` (and its key) and ``<name>.pem``/``<name>-key.pem`` for each name
    into ``out``; returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    authority = _name("Drape development CA")
    ca = (x509.CertificateBuilder().subject_name(authority).issuer_name(authority)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))  # fmt: skip
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _write_key(ca_key, out / "ca-key.pem")
    for name in names:
        _issue(out, ca, ca_key, name, days)
    return out


def tls_for(folder: Path, name: str, mutual: bool = True) -> TlsConfig:
    """The TlsConfig of ``name`` with certificates from :func:`make_dev_ca`: serving its own
    certificate, calling others verified against the CA, and with ``mutual`` requiring
    client certificates from the same CA."""
    ca = str(folder / "ca.pem")
    return TlsConfig(certificate=str(folder / f"{name}.pem"), private_key=str(folder / f"{name}-key.pem"),
                     client_ca=ca if mutual else "", ca=ca)  # fmt: skip


def with_tls(config: DrapeConfig, folder: Path, gateway_clients: bool = False) -> DrapeConfig:
    """A copy of ``config`` with every service and Triton on TLS from :func:`make_dev_ca`'s
    folder (a certificate per service, ``triton``, and ``client`` for the tools): mutual
    between them, and at the gateway only with ``gateway_clients`` (storefronts
    authenticate with API keys)."""
    from drape.services.table import SERVICE_NAMES

    config = config.model_copy(deep=True)
    for name in SERVICE_NAMES:
        config.server(name).tls = tls_for(folder, name, mutual=name != "gateway" or gateway_clients)
    config.triton.tls = tls_for(folder, "triton")
    config.client_tls = tls_for(folder, "client", mutual=False)
    return config


def _issue(
    out: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, days: int
) -> None:
    now = dt.datetime.now(dt.UTC)
    key = _key()
    dns = [name, f"{name}.{NAMESPACE}.svc", f"{name}.{NAMESPACE}.svc.cluster.local", "localhost"]
    alt = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))  # fmt: skip
    # Written aside, then renamed into place, key first: a reader sees whole files.
    _write_key(key, out / f"{name}-key.pem.tmp")
    (out / f"{name}.pem.tmp").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / f"{name}-key.pem.tmp").replace(out / f"{name}-key.pem")
    (out / f"{name}.pem.tmp").replace(out / f"{name}.pem")


def reissue(folder: Path, name: str, days: int = 30) -> None:
    """A new certificate and key for ``name`` from the folder's CA (a renewal)."""
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    _issue(folder, ca, ca_key, name, days)
