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
import re
import sys
import threading
from typing import Any

import numpy as np

from recon3d.errors import CorruptedWeightsError, MissingWeightsError

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""Largest manifest accepted (the shipped one is under 1 kB); guards against a huge file."""
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
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

    Every entry is a dict with a 64-hex-digit ``sha256`` (and an int ``size`` when present), and
    every name is a plain file name (no folders, no ``..``), so a tampered manifest cannot point
    the loader outside the weights folder.

    Raises:
        MissingWeightsError: the manifest is absent or cannot be read.
        CorruptedWeightsError: it is too large, not UTF-8 JSON, or not of the shape above.
    """
    folder = folder or weights_dir()
    path = folder / MANIFEST
    if not path.is_file():
        raise MissingWeightsError(f"weights manifest not found at {path}; {_RESTORE_HINT}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise MissingWeightsError(
            f"weights manifest {path} cannot be read: {exc}; {_RESTORE_HINT}"
        ) from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise CorruptedWeightsError(
            f"weights manifest {path} is larger than {MAX_MANIFEST_BYTES} bytes; {_RESTORE_HINT}"
        )
    try:
        manifest = json.loads(raw.decode("utf-8"))
    # ValueError covers JSONDecodeError, UnicodeDecodeError and Python's limit on the digits of
    # an int; RecursionError is what deeply nested brackets give.
    except (ValueError, RecursionError) as exc:
        raise CorruptedWeightsError(
            f"weights manifest {path} is not valid JSON: {exc}; {_RESTORE_HINT}"
        ) from exc
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in files.values()
    ):
        raise CorruptedWeightsError(
            f"weights manifest {path} must hold {{'files': {{name: {{'sha256': ...}}}}}}; "
            + _RESTORE_HINT
        )
    for name, entry in files.items():
        problem = _entry_problem(name, entry)
        if problem:
            raise CorruptedWeightsError(
                f"weights manifest {path}: entry {name!r} {problem}; {_RESTORE_HINT}"
            )
    return manifest


def _entry_problem(name: str, entry: dict[str, Any]) -> str | None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\0" in name:
        return "is not a plain file name"
    if not _HEX64.fullmatch(entry["sha256"]):
        return "has a sha256 that is not 64 hex digits"
    size = entry.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        return "has a size that is not a non-negative integer"
    return None


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verified_path(name: str, folder: pathlib.Path | None = None) -> pathlib.Path:
    """Path of weights file ``name`` after checking its size and sha256 against the manifest.

    Raises:
        MissingWeightsError: the manifest or the file is absent or unreadable, or ``name`` is
            not listed.
        CorruptedWeightsError: size or sha256 differ from the manifest (truncated, replaced).
        Every message names the file and says how to restore it.
    """
    folder = folder or weights_dir()
    entry = read_manifest(folder)["files"].get(name)
    if entry is None:
        raise MissingWeightsError(f"{name!r} is not listed in {folder / MANIFEST}; {_RESTORE_HINT}")
    path = folder / name
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} is missing; {_RESTORE_HINT}")
    try:
        size = path.stat().st_size
        if "size" in entry and size != entry["size"]:
            raise CorruptedWeightsError(
                f"weights file {path} has {size} bytes, the manifest says {entry['size']} "
                f"(truncated or replaced); {_RESTORE_HINT}"
            )
        digest = _sha256(path)
    except OSError as exc:
        raise MissingWeightsError(
            f"weights file {path} cannot be read: {exc}; {_RESTORE_HINT}"
        ) from exc
    if digest != entry["sha256"].lower():
        raise CorruptedWeightsError(
            f"weights file {path} does not match its sha256 in the manifest "
            f"(expected {entry['sha256']}, found {digest}); {_RESTORE_HINT}"
        )
    return path


def load_arrays(
    name: str,
    required: tuple[str, ...] = (),
    folder: pathlib.Path | None = None,
    *,
    optional: tuple[str, ...] = (),
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Verified numpy arrays and metadata of a safetensors file.

    The file's sha256 is checked first (:func:`verified_path`), then its tensor names: with a
    non-empty ``required``, the file must hold every required tensor and nothing beyond
    ``required + optional`` (an unexpected tensor means the file is not the one the code was
    written for; it is refused before any tensor data is read). safetensors holds raw arrays
    and a JSON header only; nothing is ever unpickled.

    Args:
        name: file name inside the weights folder, as listed in the manifest.
        required: tensor names that must be present; empty loads whatever the file holds.
        folder: the weights folder (default :func:`weights_dir`).
        optional: tensor names that may be present besides ``required``.

    Returns:
        ``(arrays, metadata)``: name -> array of the shape and dtype stored, and the
        safetensors string metadata.

    Raises:
        MissingWeightsError, CorruptedWeightsError: see :func:`verified_path`; also
            CorruptedWeightsError for an unparsable file or missing / unexpected tensors.
    """
    path = verified_path(name, folder)
    return read_safetensors(path, required, optional=optional)


def read_safetensors(
    path: pathlib.Path, required: tuple[str, ...] = (), *, optional: tuple[str, ...] = ()
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Parse a safetensors file without the manifest check (see :func:`load_arrays`).

    Raises:
        CorruptedWeightsError: the file cannot be parsed, or lacks a ``required`` tensor, or
            (with ``required`` given) holds tensors outside ``required + optional``.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            keys = list(fh.keys())
            missing = [key for key in required if key not in keys]
            if missing:
                raise CorruptedWeightsError(
                    f"weights file {path} lacks tensors {missing}; {_RESTORE_HINT}"
                )
            if required:
                allowed = set(required) | set(optional)
                extra = sorted(key for key in keys if key not in allowed)
                if extra:
                    raise CorruptedWeightsError(
                        f"weights file {path} holds unexpected tensors {extra[:10]}"
                        f"{' ...' if len(extra) > 10 else ''} (not the file this version of "
                        f"recon3d expects); {_RESTORE_HINT}"
                    )
            arrays = {key: fh.get_tensor(key) for key in keys}
            metadata = dict(fh.metadata() or {})
    except (CorruptedWeightsError, MemoryError):
        raise
    # safetensors raises SafetensorError for a bad header, OSError for I/O, and TypeError /
    # ValueError from numpy for dtypes or shapes numpy cannot represent (bfloat16); all of them
    # mean "this file is unusable".
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise CorruptedWeightsError(
            f"weights file {path} cannot be read as safetensors: {exc}; {_RESTORE_HINT}"
        ) from exc
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
