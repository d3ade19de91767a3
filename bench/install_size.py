"""Installed size of the app's packages (requirements.txt and everything they pull in,
what `make setup` and the Docker image install) and of what the tests add on top
(requirements-test.txt: pytest, transformers, Playwright and their own dependencies
that the app does not share), measured in this environment: the sizes of the files
each installed distribution records (RECORD), on disk (allocated blocks). Last lines
are the headlines, in MB (10^6 bytes).
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from testing.requirements import ROOT, closure, top_level


def disk_bytes(name: str) -> int:
    total = 0
    for file in metadata.distribution(name).files or []:
        path = Path(file.locate())
        if path.is_file():
            total += path.stat().st_blocks * 512
    return total


def main() -> None:
    app = closure(top_level(ROOT / "requirements.txt"))
    tests_only = closure(top_level(ROOT / "requirements-test.txt")) - app
    sizes = {name: disk_bytes(name) for name in app | tests_only}
    for label, names in (("app", app), ("tests only", tests_only)):
        print(f"{label}: {len(names)} distributions")
        for name in sorted(names, key=sizes.get, reverse=True)[:12]:
            print(f"  {name:32s} {sizes[name] / 1e6:9.1f} MB")
    site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    everything = sum(f.stat().st_blocks * 512 for f in site.rglob("*") if f.is_file()
                     and not f.is_symlink())
    print(f"site-packages in all: {everything / 1e6:.1f} MB ({sys.prefix})")
    cuda = [n for n in app if n.startswith(("nvidia-", "cuda-")) or n == "triton"]
    print(f"of the app's, PyTorch's CUDA libraries (nvidia-*, cuda-*, triton): "
          f"{sum(sizes[n] for n in cuda) / 1e6:.1f} MB; torch itself {sizes['torch'] / 1e6:.1f} MB")
    print(f"app_install_mb: {sum(sizes[n] for n in app) / 1e6:.1f}")
    print(f"tests_only_install_mb: {sum(sizes[n] for n in tests_only) / 1e6:.1f}")


if __name__ == "__main__":
    main()
