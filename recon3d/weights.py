"""Shipped weights and assets: locate, verify against ``manifest.json``, load from safetensors.

Every file under the weights folder is listed in its ``manifest.json`` with its sha256, size, the
command and seed that produced it, the data it saw and its measured metrics. Loading checks the
hash before parsing and never unpickles. The folder is, in order: ``$RECON3D_WEIGHTS``, the
``weights/`` folder of a source checkout, or the copy installed under ``<prefix>/share/recon3d``.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import os
import pathlib
import sys
import threading
from typing import Any

import numpy as np

from recon3d.errors import CorruptedWeightsError, MissingWeightsError

MANIFEST = "manifest.json"
_RESTORE_HINT = (
    "restore it with `git checkout -- weights/` in a source checkout, reinstall recon3d, "
    "or point RECON3D_WEIGHTS at a folder holding the shipped files"
)
_lock = threading.Lock()


def weights_dir() -> pathlib.Path:
    """The folder weights are read from (see module docstring for the search order)."""
    env = os.environ.get("RECON3D_WEIGHTS")
    if env:
        return pathlib.Path(env).expanduser()
    candidates = [
        pathlib.Path(__file__).resolve().parent.parent / "weights",
        pathlib.Path(sys.prefix) / "share" / "recon3d" / "weights",
    ]
    for candidate in candidates:
        if (candidate / MANIFEST).is_file():
            return candidate
    return candidates[0]


def read_manifest(folder: pathlib.Path | None = None) -> dict[str, Any]:
    """The parsed manifest ``{"files": {name: entry}}``.

    Raises MissingWeightsError when it is absent, CorruptedWeightsError when it is malformed."""
    folder = folder or weights_dir()
    path = folder / MANIFEST
    if not path.is_file():
        raise MissingWeightsError(f"weights manifest not found at {path}; {_RESTORE_HINT}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptedWeightsError(f"weights manifest {path} is not valid JSON: {exc}") from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in files.values()
    ):
        raise CorruptedWeightsError(
            f"weights manifest {path} must hold {{'files': {{name: {{'sha256': ...}}}}}}"
        )
    return manifest


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(name: str, folder: pathlib.Path | None = None) -> pathlib.Path:
    """Path of weights file ``name`` after checking its size and sha256 against the manifest."""
    folder = folder or weights_dir()
    entry = read_manifest(folder)["files"].get(name)
    if entry is None:
        raise MissingWeightsError(f"{name!r} is not listed in {folder / MANIFEST}; {_RESTORE_HINT}")
    path = folder / name
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} is missing; {_RESTORE_HINT}")
    size = path.stat().st_size
    if "size" in entry and size != entry["size"]:
        raise CorruptedWeightsError(
            f"weights file {path} has {size} bytes, the manifest says {entry['size']} "
            f"(truncated or replaced); {_RESTORE_HINT}"
        )
    if _sha256(path) != entry["sha256"]:
        raise CorruptedWeightsError(
            f"weights file {path} does not match its sha256 in the manifest; {_RESTORE_HINT}"
        )
    return path


def load_arrays(
    name: str, required: tuple[str, ...] = (), folder: pathlib.Path | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Verified numpy arrays and metadata of a safetensors file; checks ``required`` keys exist."""
    from safetensors import SafetensorError, safe_open

    path = verified_path(name, folder)
    try:
        with safe_open(str(path), framework="numpy") as fh:
            arrays = {key: fh.get_tensor(key) for key in fh.keys()}
            metadata = dict(fh.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptedWeightsError(f"weights file {path} cannot be read: {exc}") from exc
    missing = [key for key in required if key not in arrays]
    if missing:
        raise CorruptedWeightsError(f"weights file {path} lacks tensors {missing}; {_RESTORE_HINT}")
    return arrays, metadata


@functools.lru_cache(maxsize=8)
def cached_arrays(
    name: str, required: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """:func:`load_arrays` memoised per process (the assets are read-only)."""
    return load_arrays(name, required)


def register_file(
    path: pathlib.Path,
    *,
    command: str,
    seed: int | None,
    data: str,
    metrics: dict[str, Any],
    licence: str,
) -> None:
    """Add or update ``path``'s entry in the manifest beside it (used by build/training scripts)."""
    path = pathlib.Path(path)
    manifest_path = path.parent / MANIFEST
    with _lock:
        manifest = (
            json.loads(manifest_path.read_text(encoding="utf-8"))
            if manifest_path.is_file()
            else {"files": {}}
        )
        manifest["files"][path.name] = {
            "sha256": _sha256(path),
            "size": path.stat().st_size,
            "command": command,
            "seed": seed,
            "data": data,
            "metrics": metrics,
            "licence": licence,
            "created": _dt.date.today().isoformat(),
        }
        tmp = manifest_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, manifest_path)
