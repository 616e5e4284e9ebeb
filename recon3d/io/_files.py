"""Bounded reads of small input files (pose files): regular files only, never read endlessly."""

from __future__ import annotations

import os
import pathlib
import stat

from recon3d.errors import PoseFileError


def read_regular_file(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes. Checked before opening (a FIFO
    would block ``open``) and on the open file, and the read is bounded (``/dev/zero`` reports
    0 bytes and never ends).

    Raises:
        PoseFileError: missing, unreadable, not a regular file or over ``limit``.
    """
    path = pathlib.Path(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise PoseFileError(f"{path}: not a regular file")
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise PoseFileError(f"{path}: not a regular file")
            if info.st_size > limit:
                raise PoseFileError(f"{path}: {info.st_size} bytes is over the {limit}-byte limit")
            data = fh.read(limit + 1)
    except OSError as exc:
        raise PoseFileError(f"{path}: cannot read: {exc}") from exc
    if len(data) > limit:
        raise PoseFileError(f"{path}: over the {limit}-byte limit")
    return data
