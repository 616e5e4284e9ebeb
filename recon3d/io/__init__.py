"""Input loading: every image the library accepts enters through :func:`load_image`."""

from recon3d.io.image import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    load_image,
    load_image_with_metadata,
    read_focal_length_35mm,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "LoadedImage",
    "load_image",
    "load_image_with_metadata",
    "read_focal_length_35mm",
]
