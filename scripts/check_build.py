"""After `sam build`: the layer's compiled code must match the target (arm64, CPython 3.13)."""

from __future__ import annotations

import sys
from pathlib import Path

LAYER = Path(".aws-sam/build/SharedLayer/python")
EM_AARCH64 = 183


def elf_machine(path: Path) -> int:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        raise SystemExit(f"{path} is not an ELF shared object")
    return int.from_bytes(header[18:20], "little")


def main() -> int:
    objects = list(LAYER.rglob("*.so"))
    if not (LAYER / "tokengate" / "exchange.py").is_file() or not objects:
        print(f"{LAYER} is incomplete: run `make build`", file=sys.stderr)
        return 1
    wrong = [p for p in objects if elf_machine(p) != EM_AARCH64]
    wrong += [p for p in objects if "cpython-" in p.name and "cpython-313-aarch64" not in p.name]
    for path in wrong:
        print(f"not built for python3.13 arm64: {path}", file=sys.stderr)
    if wrong:
        return 1
    bytecode = len(list(LAYER.rglob("*.cpython-313.pyc")))
    print(f"layer: {len(objects)} shared objects, all aarch64 / CPython 3.13 compatible;")
    print(f"       {bytecode} modules precompiled for CPython 3.13")
    return 0


if __name__ == "__main__":
    sys.exit(main())
