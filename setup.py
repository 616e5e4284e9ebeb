"""Minimal setuptools shim: all metadata lives in pyproject.toml.

Only the version is supplied here, read from recon3d/_version.py without
importing the package (importing would pull torch, mediapipe, ...).
"""

import re
from pathlib import Path

from setuptools import setup

_VERSION_FILE = Path(__file__).resolve().parent / "recon3d" / "_version.py"
_match = re.search(
    r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", _VERSION_FILE.read_text(encoding="utf-8"), re.M
)
if _match is None:
    raise RuntimeError(f"cannot find __version__ in {_VERSION_FILE}")

# The shipped weights live in weights/ at the top of the source tree; a regular (non-editable)
# install puts them in <prefix>/share/recon3d/weights, where recon3d.weights looks for them.
_WEIGHTS = sorted(
    str(p.relative_to(_VERSION_FILE.parents[1]))
    for p in (_VERSION_FILE.parents[1] / "weights").glob("*")
    if p.suffix in (".safetensors", ".json")
)

setup(version=_match.group(1), data_files=[("share/recon3d/weights", _WEIGHTS)])
