"""`drape tls dev-ca`: a development CA and a certificate for every service (and a `client`
one for tools such as grpcurl), to run the stack with TLS and mTLS locally. Point each
service's `server.tls` at its files (see docs/architecture.md, Security); in a cluster,
cert-manager issues them instead (k8s/components/tls)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    tls = sub.add_parser("tls", help="TLS certificates for development")
    actions = tls.add_subparsers(dest="action", required=True)
    dev = actions.add_parser("dev-ca", help="make a development CA and the services' certificates")
    dev.add_argument("--out", type=Path, required=True, help="folder for the PEM files")
    dev.add_argument(
        "--names", help="comma-separated certificate names (default: every service and `client`)"
    )
    dev.add_argument("--days", type=int, default=30, help="validity (default 30 days)")
    dev.set_defaults(func=_dev_ca)


def _dev_ca(args: argparse.Namespace) -> int:
    from drape.services.runtime.devca import make_dev_ca
    from drape.services.table import SERVICE_NAMES

    names = (
        [n.strip() for n in args.names.split(",") if n.strip()]
        if args.names
        else [*SERVICE_NAMES, "triton", "client"]
    )
    make_dev_ca(args.out, names, args.days)
    print(f"wrote {args.out}/ca.pem and a certificate and key for: {', '.join(names)}")
    return 0
