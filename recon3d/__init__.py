"""recon3d: one photo of a person -> a textured 3D mesh, offline, on a CPU.

>>> from recon3d import reconstruct
>>> rec = reconstruct("photo.jpg", target="head")
>>> rec.export("head.obj")
"""

from recon3d._version import __version__
from recon3d.batch import reconstruct_many
from recon3d.errors import (
    CorruptedWeightsError,
    ExportError,
    ImageTooLargeError,
    InvalidImageError,
    MissingWeightsError,
    NoFaceFound,
    NoPersonFound,
    Recon3dError,
)
from recon3d.pipeline import HeadReconstructionPipeline, reconstruct
from recon3d.reconstruction import Reconstruction

__all__ = [
    "__version__",
    "reconstruct",
    "reconstruct_many",
    "Reconstruction",
    "HeadReconstructionPipeline",
    "Recon3dError",
    "InvalidImageError",
    "ImageTooLargeError",
    "NoFaceFound",
    "NoPersonFound",
    "MissingWeightsError",
    "CorruptedWeightsError",
    "ExportError",
]
