"""Typed errors raised by recon3d.

Every failure the public API reports is a subclass of :class:`Recon3dError`, so callers that put
recon3d behind an upload form can catch one type. Each subclass also derives from the builtin
exception a Python user would expect (``ValueError`` for bad input, ``FileNotFoundError`` for a
missing weights file, ``OSError`` for a failed write) so generic handlers keep working.
"""

from __future__ import annotations

__all__ = [
    "Recon3dError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoFaceFound",
    "NoPersonFound",
    "PoseFileError",
    "WeightsError",
    "MissingWeightsError",
    "CorruptedWeightsError",
    "ExportError",
    "RendererUnavailableError",
    "MissingDependencyError",
    "UnsupportedTargetError",
]


class Recon3dError(Exception):
    """Base class of every error recon3d raises on purpose."""


class InvalidImageError(Recon3dError, ValueError):
    """The input is not a decodable image, or has an unusable shape, dtype or size."""


class ImageTooLargeError(InvalidImageError):
    """The image declares more pixels than the configured limit (decompression-bomb guard)."""


class NoFaceFound(Recon3dError, ValueError):
    """The face detector found no face in the image (or not the requested ``face_index``)."""


class NoPersonFound(Recon3dError, ValueError):
    """The pose detector found no person in the image (or not the requested ``person_index``)."""


class PoseFileError(Recon3dError, ValueError):
    """A driving-pose file (OpenPose JSON, mocap clip) is malformed."""


class WeightsError(Recon3dError):
    """Base class for problems with the shipped weights and assets."""


class MissingWeightsError(WeightsError, FileNotFoundError):
    """A weights or asset file listed in the manifest is not on disk."""


class CorruptedWeightsError(WeightsError, ValueError):
    """A weights or asset file does not match its manifest (hash, size, tensors)."""


class ExportError(Recon3dError, OSError):
    """A result could not be written; nothing was left at the output path."""


class RendererUnavailableError(Recon3dError, RuntimeError):
    """No headless OpenGL backend (EGL or OSMesa) could be initialised."""


class MissingDependencyError(Recon3dError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


class UnsupportedTargetError(Recon3dError, ValueError):
    """The operation needs another kind of reconstruction (re-posing needs a body, not a
    head)."""
