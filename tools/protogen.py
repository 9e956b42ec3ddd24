"""Generates the Python API stubs next to their .proto sources.

    python tools/protogen.py          # (re)write protos/drape/v1/*_pb2*.py(i)
    python tools/protogen.py --check  # exit 1 if the committed stubs are stale

The output depends only on the .proto files and the pinned grpcio-tools, so the
check is exact: it regenerates into a temporary folder and compares bytes.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from importlib import resources
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent.parent / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    """All .proto sources under ``root``, sorted so runs are reproducible."""
    return sorted(root.rglob("*.proto"))


def generate(out_dir: Path, root: Path = PROTO_ROOT) -> list[Path]:
    """Runs protoc (from grpcio-tools) over every proto; returns the files written."""
    from grpc_tools import protoc

    well_known = resources.files("grpc_tools") / "_proto"
    sources = [str(p.relative_to(root)) for p in proto_files(root)]
    args = [
        "protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {sources}")
    return sorted(p for p in out_dir.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def generated_files(root: Path = PROTO_ROOT) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.name.endswith(GENERATED_SUFFIXES))


def stale_files(root: Path = PROTO_ROOT) -> list[str]:
    """Relative paths whose committed stub differs from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = {p.relative_to(tmp).as_posix() for p in generate(Path(tmp), root)}
        committed = {p.relative_to(root).as_posix() for p in generated_files(root)}
        stale = sorted(fresh ^ committed)
        for rel in sorted(fresh & committed):
            if not filecmp.cmp(Path(tmp) / rel, root / rel, shallow=False):
                stale.append(rel)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stubs are stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("stale API stubs (run `python tools/protogen.py`):", *stale, sep="\n  ")
            return 1
        print(f"API stubs up to date ({len(generated_files())} files)")
        return 0
    for old in generated_files():
        old.unlink()
    written = generate(PROTO_ROOT)
    for pkg in {p.parent for p in written}:
        (pkg / "__init__.py").touch()
    print(f"wrote {len(written)} stub files under {PROTO_ROOT.name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
