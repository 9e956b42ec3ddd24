"""`drape keys`: storefront API keys for the gateway. `new` makes a key, prints it once and
adds only its hash (with its scopes and limit) to the keys file; `revoke` removes one;
`list` shows what a file holds. The gateway re-reads the file when it changes."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    keys = sub.add_parser("keys", help="make, list and revoke storefront API keys")
    actions = keys.add_subparsers(dest="action", required=True)
    new = actions.add_parser("new", help="make a key: printed once, only its hash is stored")
    new.add_argument("key_id", help="the key's name in metrics and logs (a-z, 0-9, '-')")
    new.add_argument("--file", type=Path, required=True, help="keys file (created if absent)")
    new.add_argument(
        "--scopes", default="recommend,tryon,track", help="comma-separated (default: all)"
    )
    new.add_argument(
        "--rate", type=float, default=20.0, help="sustained calls per second (default 20)"
    )
    new.add_argument("--burst", type=int, default=40, help="calls at once (default 40)")
    new.set_defaults(func=_new)
    revoke = actions.add_parser("revoke", help="remove a key from the file")
    revoke.add_argument("key_id")
    revoke.add_argument("--file", type=Path, required=True)
    revoke.set_defaults(func=_revoke)
    listing = actions.add_parser("list", help="the keys a file holds (ids, scopes, limits)")
    listing.add_argument("--file", type=Path, required=True)
    listing.set_defaults(func=_list)


def _new(args: argparse.Namespace) -> int:
    from drape.services.gateway.auth import add_key, new_key

    try:
        key, entry = new_key(args.key_id, [s.strip() for s in args.scopes.split(",") if s.strip()],
                             args.rate, args.burst)  # fmt: skip
        add_key(args.file, entry)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    print(f"key {entry.key_id} added to {args.file} (scopes {', '.join(sorted(entry.scopes))}; "
          f"{entry.rate_per_s:g}/s, burst {entry.burst}). Give it to the storefront now; "
          "it is not stored:")  # fmt: skip
    print(key)
    return 0


def _load(path: Path) -> dict | None:
    """The file's keys, or None after printing why they cannot be read."""
    from drape.services.gateway.auth import load_keys

    try:
        return load_keys(path)
    except ValueError as exc:
        print(f"error: {exc}")
        return None


def _revoke(args: argparse.Namespace) -> int:
    from drape.services.gateway.auth import write_keys

    keys = _load(args.file)
    if keys is None:
        return 2
    if keys.pop(args.key_id, None) is None:
        print(f"error: {args.file} holds no key {args.key_id!r}")
        return 2
    write_keys(args.file, list(keys.values()))
    print(f"key {args.key_id} revoked: the gateway refuses it once it has re-read {args.file}")
    return 0


def _list(args: argparse.Namespace) -> int:
    keys = _load(args.file)
    if keys is None:
        return 2
    for entry in keys.values():
        print(
            f"{entry.key_id}: {', '.join(sorted(entry.scopes))}; {entry.rate_per_s:g}/s, burst {entry.burst}"
        )
    return 0
