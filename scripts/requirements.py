"""Print the pinned requirements of the distribution's core plus the named extras, one per line.

Images install their dependencies from this (a cached layer) before the code is copied in, so the pins
live in pyproject.toml only:  python scripts/requirements.py pipeline > requirements.txt
"""

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def requirements(extras: list[str]) -> list[str]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    pinned = list(project["dependencies"])
    for extra in extras:
        pinned += project["optional-dependencies"][extra]
    return pinned


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1:])))
