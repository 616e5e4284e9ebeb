"""Atomic file writes for the exporters.

A reader (a web server, a file watcher, the user double-clicking the file) must never see a
half-written mesh, and a failed export must not leave a truncated file behind that looks like a
result. Every file is therefore written to a temporary file *in the target's own folder* (so the
final ``os.replace`` is a same-filesystem rename, which POSIX and Windows both perform atomically),
flushed and fsynced, and only then renamed over the target.

Multi-file results (OBJ + MTL + PNG) are written as a group: every temporary file is written
first, then all are renamed. If anything fails, every temporary file is removed and the targets
that were already renamed in this call are removed again, so no output path holds a file from the
failed export. Limitation: if the failure happens in the rename phase and a target existed before
the call, the old file it replaced is not restored (renames within one folder practically only
fail for reasons that also stop the first rename, so this is rare).

Parent folders are never created: a missing folder is almost always a typo in the output path,
and silently creating ``/home/usr/outptu/`` hides it.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from recon3d.errors import ExportError

__all__ = ["PathInput", "check_target", "fspath_str", "write_atomic", "write_group_atomic"]

PathInput = str | bytes | os.PathLike
"""An output path: ``str``, ``bytes`` (any bytes the OS allows, e.g. non-UTF-8 names from a
Linux file system) or an ``os.PathLike`` returning either."""

logger = logging.getLogger(__name__)

# Short and independent of the target name, so a target whose name is just below the
# filesystem's NAME_MAX still gets a temporary name that fits.
_TMP_PREFIX = ".recon3d-"
_TMP_SUFFIX = ".tmp"


def fspath_str(path: PathInput) -> str:
    """``path`` as ``str``; bytes are decoded the way the OS does (``os.fsdecode``: undecodable
    bytes become surrogates, which round-trip to the same bytes on disk).

    Raises:
        ExportError: ``path`` is not a str, bytes or os.PathLike, or contains a NUL byte (no
            file system accepts one; Python would raise ``ValueError`` deep inside ``open``).
    """
    try:
        text = os.fsdecode(os.fspath(path))
    except TypeError as exc:
        raise ExportError(
            f"Expected an output path (str, bytes or os.PathLike), got {type(path).__name__}."
        ) from exc
    if "\0" in text:
        raise ExportError(f"Cannot write {text!r}: the path contains a NUL byte.")
    return text


def check_target(path: PathInput) -> Path:
    """Validate an output path before any (possibly slow) encoding work is done.

    Args:
        path: the file that will be written (str, bytes or os.PathLike; non-UTF-8 names work).

    Returns:
        The path as an absolute :class:`pathlib.Path` (not resolved through symlinks, so a
        symlinked folder keeps working).

    Raises:
        ExportError: the parent folder does not exist or is not a folder, the path is an
            existing folder, the file name is longer than the filesystem allows, or the path is
            not a path at all (wrong type, NUL byte).
    """
    text = fspath_str(path)
    target = Path(os.path.abspath(text))
    parent = target.parent
    if not target.name:
        raise ExportError(f"Output path {text!r} has no file name.")
    # Checked before anything stats the target: stat() itself fails with ENAMETOOLONG.
    name_max = _name_max(parent)
    name_len = len(os.fsencode(target.name))
    if name_max is not None and 0 < name_max < name_len:
        raise ExportError(
            f"Cannot write {target.name[:40]!r}...: the file name is {name_len} bytes long, "
            f"the filesystem allows {name_max}."
        )
    try:
        parent_is_dir = parent.is_dir()
        parent_exists = parent_is_dir or parent.exists()
        target_is_dir = parent_is_dir and target.is_dir()
    except OSError as exc:  # e.g. ENAMETOOLONG for the whole path, ELOOP
        raise ExportError(_describe(exc, target)) from exc
    if not parent_exists:
        raise ExportError(
            f"Cannot write {target.name!r}: the folder {str(parent)!r} does not exist "
            "(recon3d does not create output folders; create it first)."
        )
    if not parent_is_dir:
        raise ExportError(f"Cannot write {target.name!r}: {str(parent)!r} is not a folder.")
    if target_is_dir:
        raise ExportError(f"Cannot write {str(target)!r}: a folder with that name exists.")
    return target


def write_atomic(path: PathInput, data: bytes) -> Path:
    """Write one file atomically (temp file in the same folder, fsync, ``os.replace``).

    Args:
        path: the target file.
        data: the complete file content.

    Returns:
        The absolute path written.

    Raises:
        ExportError: the file could not be written; nothing was left at ``path`` and no
            temporary file was left in its folder.
    """
    return write_group_atomic({path: data})[0]


def write_group_atomic(files: Mapping[PathInput, bytes]) -> list[Path]:
    """Write several files so that either all of them appear or none does.

    Args:
        files: target path -> complete file content, for N files. Insertion order is the order
            of the returned list.

    Returns:
        The N absolute paths written, in the order of ``files``.

    Raises:
        ExportError: any file could not be written. Every temporary file is deleted and every
            target already renamed by this call is deleted again before the error is raised.
    """
    targets = [check_target(p) for p in files]
    if len(set(targets)) != len(targets):
        raise ExportError(f"The same output path appears twice in {[str(t) for t in targets]}.")
    payloads = list(files.values())

    temps: list[Path] = []
    renamed: list[Path] = []
    done = False
    current = targets[0] if targets else None
    try:
        for target, data in zip(targets, payloads, strict=True):
            current = target
            temps.append(_write_temp(target, data))
        for target, temp in zip(targets, temps, strict=True):
            current = target
            os.replace(temp, target)
            renamed.append(target)
        done = True
    except OSError as exc:
        raise ExportError(_describe(exc, current)) from exc
    finally:
        if not done:
            _cleanup(temps, renamed)

    for folder in {t.parent for t in targets}:
        _fsync_dir(folder)
    for target in targets:
        logger.debug("wrote %s", target)
    return targets


def _write_temp(target: Path, data: bytes) -> Path:
    """Write ``data`` to a new temp file next to ``target``, durably; return its path."""
    fd, name = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX, dir=target.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            # Without fsync a crash right after os.replace can leave a zero-length file at the
            # target on ext4/xfs: the rename is journaled before the data blocks.
            os.fsync(fh.fileno())
        # mkstemp creates 0600 files; a result that only its creator can read breaks the
        # usual "export, then serve the folder" workflow, so use what open() would have used.
        _chmod(temp, _target_mode(target))
    except BaseException:
        _unlink_quietly(temp)
        raise
    return temp


def _target_mode(target: Path) -> int:
    """Permission bits the target would get from a plain ``open(target, 'wb')``."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_current_umask()


def _current_umask() -> int:
    """Read the process umask without changing it where the OS allows."""
    # os.umask can only be read by setting it, which races with other threads creating
    # files; Linux exposes it read-only in /proc, so prefer that.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _chmod(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except NotImplementedError:
        pass


def _cleanup(temps: list[Path], renamed: list[Path]) -> None:
    for path in (*temps, *renamed):
        _unlink_quietly(path)


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError:
        logger.warning("could not remove %s after a failed export", path, exc_info=True)


def _fsync_dir(folder: Path) -> None:
    """Persist the renames themselves; best effort (Windows cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        logger.debug("fsync of folder %s failed", folder, exc_info=True)
    finally:
        os.close(fd)


def _name_max(folder: Path) -> int | None:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return None


def _describe(exc: OSError, target: Path | None) -> str:
    """Turn an OSError into a message that says what to fix."""
    where = f"{str(target)!r}" if target is not None else "the output"
    folder = f"{str(target.parent)!r}" if target is not None else "the output folder"
    code = exc.errno
    if code in (errno.EACCES, errno.EPERM):
        return f"Cannot write {where}: permission denied in folder {folder}."
    if code == errno.EROFS:
        return f"Cannot write {where}: {folder} is on a read-only filesystem."
    if code == errno.ENOSPC or code == getattr(errno, "EDQUOT", None):
        return f"Cannot write {where}: no space left on the device (or quota exceeded)."
    if code == errno.ENAMETOOLONG:
        return f"Cannot write {where}: the file name or path is too long."
    if code == errno.ENOENT:
        return f"Cannot write {where}: the folder {folder} does not exist (or was removed)."
    if code == errno.EISDIR:
        return f"Cannot write {where}: a folder with that name exists."
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"Cannot write {where}: {reason}."
