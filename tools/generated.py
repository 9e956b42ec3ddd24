"""The command line of a tool that writes one generated file: write it, or with --check fail
if the committed one is stale (what the tests and scripts/test.sh run)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(out: Path, render: Callable[[], str], tool: str, description: str,
                   argv: list[str] | None = None) -> int:  # fmt: skip
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--check", action="store_true", help=f"fail if {out.name} is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not out.exists() or out.read_text() != text:
            print(f"{out.name} is stale: run python {tool}", file=sys.stderr)
            return 1
        print(f"{out.name} up to date")
        return 0
    out.write_text(text)
    print(f"wrote {out}")
    return 0
