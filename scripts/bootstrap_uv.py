"""Installs uv (requirements/uv.txt) into the running virtual environment, made without pip.

Creating a virtual environment with pip costs seconds of CPU (ensurepip installs and byte-compiles
pip); uv then installs everything else, so pip is only needed once, for uv itself. It runs from the
pip wheel that ships with Python (ensurepip's, or the distribution's copy), straight from the zip.
Without such a wheel, ensurepip installs pip first (the slow path, same result).
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys


def bundled_pip_wheel() -> str | None:
    places = ["/usr/share/python-wheels"]
    try:
        import ensurepip

        places.insert(0, os.path.join(os.path.dirname(ensurepip.__file__), "_bundled"))
    except ImportError:
        pass
    for place in places:
        wheels = sorted(glob.glob(os.path.join(place, "pip-*.whl")))
        if wheels:
            return wheels[-1]
    return None


def main(requirements: str) -> int:
    wheel = bundled_pip_wheel()
    if wheel is not None:
        pip = [sys.executable, os.path.join(wheel, "pip")]
    else:
        subprocess.run([sys.executable, "-m", "ensurepip", "--default-pip"], check=True)
        pip = [sys.executable, "-m", "pip"]
    options = ["--quiet", "--disable-pip-version-check", "--no-warn-script-location"]
    command = [*pip, "install", *options, "-r", requirements]
    return subprocess.run(command, check=False).returncode  # noqa: S603 - pip, our arguments


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
