"""Image input front door: turn whatever the caller has into an ``(H, W, 3)`` uint8 RGB array.

Everything downstream (face detection, fitting, texturing) assumes one pixel layout, so all
decoding, orientation, colour-mode and dtype handling lives here, and every way an input can be
unusable is reported as :class:`~recon3d.errors.InvalidImageError` (or its subclass
:class:`~recon3d.errors.ImageTooLargeError`).

Decisions worth knowing:

* Transparent pixels (RGBA, LA, palette or ``tRNS`` transparency) are composited over **white**,
  which is what image viewers and browsers show for a transparent background.
* EXIF orientation is applied, so the array is upright the way a viewer displays the photo.
* ICC colour profiles are not applied; pixel values are used as stored.
* 16-bit data is scaled to 8 bit with rounding (``round(v / 257)``), never clipped.
* Only mainstream photo formats are decoded (see :data:`ACCEPTED_FORMATS`); Pillow's long tail
  of legacy plugins (EPS, which shells out to Ghostscript, among others) is not exposed to
  untrusted uploads.
* Pixel dimensions are checked from the header, before any pixel data is decoded.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image, ImageOps

from recon3d.errors import ImageTooLargeError, InvalidImageError, Recon3dError

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_PIXELS",
    "MAX_ENCODED_BYTES",
    "MIN_SIDE",
    "ImageInput",
    "LoadedImage",
    "load_image",
    "load_image_with_metadata",
    "read_focal_length_35mm",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 40_000_000
"""Default upper bound on ``width * height``; a 40 MP photo is larger than any phone camera."""

MAX_ENCODED_BYTES = 200 * 1024 * 1024
"""Largest encoded file (path or bytes) accepted, checked before anything is parsed."""

MIN_SIDE = 32
"""Smallest accepted shorter side in pixels; anything smaller cannot usefully contain a face."""

ACCEPTED_FORMATS: tuple[str, ...] = (
    "JPEG",
    "MPO",
    "PNG",
    "WEBP",
    "AVIF",
    "HEIF",
    "BMP",
    "GIF",
    "TIFF",
    "PPM",
)
"""Pillow format names decoded from paths and bytes (those not registered in Pillow are skipped)."""

ImageInput = str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray
"""Everything :func:`load_image` accepts."""

_ACCEPTED_TYPES = (
    "a path (str or os.PathLike), encoded image bytes (bytes, bytearray or memoryview), "
    "a PIL.Image.Image or a numpy.ndarray"
)
_ARRAY_SHAPES = "an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array"
_ARRAY_DTYPES = "uint8, uint16, bool or floating point (values in [0, 1])"

# Float images computed by the caller (resizing, normalising) routinely overshoot [0, 1] by a
# rounding error; such values are clipped instead of rejected.
_FLOAT_TOLERANCE = 1e-4

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """A decoded image plus the metadata later stages care about.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 RGB, C-contiguous, upright (EXIF orientation applied). It
            owns its memory: it never aliases the caller's array or PIL image.
        focal_length_35mm: EXIF ``FocalLengthIn35mmFilm`` in millimetres when the input is an
            encoded file or PIL image carrying a positive value, else ``None``.
        source: The path for path inputs, otherwise the input's type name in angle brackets
            (``"<bytes>"``, ``"<ndarray>"``, ``"<JpegImageFile>"``).
    """

    # eq=False: dataclass equality would compare arrays with ``==`` and fail on truth testing.
    pixels: np.ndarray
    focal_length_35mm: float | None
    source: str


def load_image(image: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load ``image`` as an upright ``(H, W, 3)`` uint8 RGB C-contiguous array.

    Args:
        image: One of

            * a path (``str`` or ``os.PathLike``) to an encoded image file;
            * ``bytes`` / ``bytearray`` / ``memoryview`` holding an encoded image file;
            * a ``PIL.Image.Image`` in any mode (EXIF orientation is applied);
            * a ``numpy.ndarray`` of shape ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` (RGB) or
              ``(H, W, 4)`` (RGBA) with dtype uint8, uint16 (scaled by ``1/257``), bool
              (``True`` is 255) or floating point with values in ``[0, 1]``.

            Encoded inputs must be one of :data:`ACCEPTED_FORMATS` and at most
            :data:`MAX_ENCODED_BYTES` long.
        max_pixels: Largest accepted ``width * height``, checked from the file header before
            pixels are decoded. Pillow's own ``PIL.Image.MAX_IMAGE_PIXELS`` guard still applies
            to encoded inputs, so the effective limit for them is the smaller of the two.

    Returns:
        ``(H, W, 3)`` uint8 array that owns its memory. Transparency is composited over white.

    Raises:
        ImageTooLargeError: More than ``max_pixels`` pixels, or an encoded input larger than
            :data:`MAX_ENCODED_BYTES`.
        InvalidImageError: Anything else that makes the input unusable: a missing or unreadable
            path, undecodable or truncated data, an unsupported type, shape or dtype, an empty
            array, non-finite or out-of-range floats, or a shorter side below :data:`MIN_SIDE`.
    """
    return load_image_with_metadata(image, max_pixels=max_pixels).pixels


def load_image_with_metadata(
    image: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Like :func:`load_image`, but also return EXIF metadata and a description of the source.

    Args:
        image: See :func:`load_image`.
        max_pixels: See :func:`load_image`.

    Returns:
        :class:`LoadedImage` whose ``pixels`` are ``(H, W, 3)`` uint8.

    Raises:
        ImageTooLargeError, InvalidImageError: See :func:`load_image`.
    """
    _check_max_pixels_argument(max_pixels)

    if isinstance(image, (str, os.PathLike)):
        path = _fspath(image)
        with _open_path(path) as fh:
            return _decode_encoded(fh, source=path, max_pixels=max_pixels)

    if isinstance(image, (bytes, bytearray, memoryview)):
        return _decode_encoded(
            _bytes_stream(image), source=f"<{type(image).__name__}>", max_pixels=max_pixels
        )

    if isinstance(image, Image.Image):
        source = f"<{type(image).__name__}>"
        with _pil_errors_as_ours(source):
            return _convert_pil(image, source=source, max_pixels=max_pixels)

    if isinstance(image, np.ndarray):
        pixels = _array_to_rgb(image, max_pixels=max_pixels, what="array")
        return LoadedImage(pixels=pixels, focal_length_35mm=None, source="<ndarray>")

    raise InvalidImageError(f"expected {_ACCEPTED_TYPES}, got {type(image).__name__}")


def read_focal_length_35mm(source: ImageInput) -> float | None:
    """Return the EXIF ``FocalLengthIn35mmFilm`` tag (millimetres) of ``source``, if present.

    Only the header is parsed; no pixels are decoded. The plain ``FocalLength`` tag is not
    converted, because that needs the sensor size, which EXIF does not record reliably.

    Args:
        source: A path, encoded bytes, a PIL image, or a numpy array (arrays carry no EXIF).

    Returns:
        The focal length as a positive float, or ``None`` when the input is an array, carries
        no EXIF, lacks the tag, stores 0 ("unknown"), or the EXIF block is malformed.

    Raises:
        InvalidImageError: The input itself is unusable (missing path, not an image,
            unsupported type), exactly as :func:`load_image` would report it.
    """
    if isinstance(source, np.ndarray):
        return None
    if isinstance(source, Image.Image):
        return _focal_length_35mm(source)
    if isinstance(source, (str, os.PathLike)):
        path = _fspath(source)
        with _open_path(path) as fh, _pil_errors_as_ours(path), _open_header(fh, path) as img:
            return _focal_length_35mm(img)
    if isinstance(source, (bytes, bytearray, memoryview)):
        name = f"<{type(source).__name__}>"
        with _pil_errors_as_ours(name), _open_header(_bytes_stream(source), name) as img:
            return _focal_length_35mm(img)
    raise InvalidImageError(f"expected {_ACCEPTED_TYPES}, got {type(source).__name__}")


# --------------------------------------------------------------------------------------------
# Encoded inputs


def _check_max_pixels_argument(max_pixels: int) -> None:
    # A bad limit is a programming error, not a bad image, so it gets the builtin exceptions.
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)):
        raise TypeError(f"expected max_pixels to be an int, got {type(max_pixels).__name__}")
    if max_pixels <= 0:
        raise ValueError(f"expected max_pixels > 0, got {max_pixels}")


def _fspath(image: str | os.PathLike) -> str:
    try:
        return os.fsdecode(os.fspath(image))
    except (TypeError, ValueError, UnicodeError) as exc:
        raise InvalidImageError(f"expected a valid file path, got {image!r}: {exc}") from exc


def _open_path(path: str) -> BinaryIO:
    """Open ``path`` for reading after checking it is a regular file of acceptable size."""
    try:
        st = os.stat(path)
    except FileNotFoundError as exc:
        raise InvalidImageError(
            f"expected an existing image file, but {path!r} does not exist"
        ) from exc
    except (OSError, ValueError) as exc:  # ValueError: embedded NUL byte in the path
        raise InvalidImageError(
            f"expected a readable image file, cannot access {path!r}: {exc}"
        ) from exc
    if stat.S_ISDIR(st.st_mode):
        raise InvalidImageError(f"expected an image file, but {path!r} is a directory")
    # FIFOs and devices could block or stream forever.
    if not stat.S_ISREG(st.st_mode):
        raise InvalidImageError(
            f"expected a regular image file, but {path!r} is not a regular file"
        )
    if st.st_size == 0:
        raise InvalidImageError(f"expected an encoded image, but {path!r} is empty (0 bytes)")
    _check_encoded_size(st.st_size, path)
    try:
        # Returned open: the caller closes it with a ``with`` block.
        return open(path, "rb")
    except OSError as exc:
        raise InvalidImageError(
            f"expected a readable image file, cannot open {path!r}: {exc}"
        ) from exc


def _check_encoded_size(nbytes: int, source: str) -> None:
    # Read MAX_ENCODED_BYTES at call time so it can be tuned (and tested) by patching the module.
    limit = MAX_ENCODED_BYTES
    if nbytes > limit:
        raise ImageTooLargeError(
            f"expected an encoded image of at most {limit} bytes, but {source} is {nbytes} bytes"
        )


def _bytes_stream(data: bytes | bytearray | memoryview) -> io.BytesIO:
    name = f"<{type(data).__name__}>"
    try:
        nbytes = data.nbytes if isinstance(data, memoryview) else len(data)
    except ValueError as exc:  # a released memoryview
        raise InvalidImageError(
            f"expected readable encoded image bytes, got {name}: {exc}"
        ) from exc
    if nbytes == 0:
        raise InvalidImageError(f"expected an encoded image, got empty {name} (0 bytes)")
    _check_encoded_size(nbytes, name)
    # tobytes() also flattens non-contiguous or multi-dimensional memoryviews.
    return io.BytesIO(data.tobytes() if isinstance(data, memoryview) else data)


def _registered_formats() -> tuple[str, ...]:
    Image.init()  # idempotent; registers WEBP/AVIF/TIFF plugins that preinit() skips
    # Image.open raises KeyError for a requested format that no plugin registered.
    return tuple(fmt for fmt in ACCEPTED_FORMATS if fmt in Image.OPEN)


@contextlib.contextmanager
def _pil_errors_as_ours(source: str) -> Iterator[None]:
    """Turn every failure Pillow can produce inside the block into our typed errors.

    Pillow's plugins raise an open-ended set of exceptions on malformed data (OSError,
    SyntaxError, ValueError, struct.error, EOFError, IndexError, zlib.error, ...), so at this
    untrusted-input boundary everything except our own errors and MemoryError is wrapped.
    Other warnings raised inside the block are logged rather than shown.
    ``DecompressionBombWarning`` is escalated to an error only inside the block, leaving the
    global warning filters and ``PIL.Image.MAX_IMAGE_PIXELS`` as they were. (Before Python 3.14
    ``warnings.catch_warnings`` is not thread-safe; the worst a race can do is let Pillow's
    warning through as a warning, and our own pixel-count check still holds.)
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Recon3dError, MemoryError):
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(
                "expected an image within Pillow's decompression-bomb limit "
                f"(PIL.Image.MAX_IMAGE_PIXELS={Image.MAX_IMAGE_PIXELS}), but {source}: {exc}"
            ) from exc
        except Image.UnidentifiedImageError as exc:
            formats = ", ".join(_registered_formats())
            raise InvalidImageError(
                f"expected an encoded image in one of the formats {formats}, "
                f"but {source} could not be identified as one"
            ) from exc
        except Exception as exc:
            raise InvalidImageError(
                f"expected a decodable image, but decoding {source} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            # Pillow warns about recoverable damage in untrusted files ("Truncated File Read",
            # bad TIFF tags); route that to the log instead of the caller's stderr.
            for record in caught:
                logger.warning("%s: %s: %s", source, record.category.__name__, record.message)


def _open_header(fp: BinaryIO, source: str) -> Image.Image:
    """Parse only the header of ``fp``; must run inside :class:`_pil_errors_as_ours`."""
    img = Image.open(fp, formats=_registered_formats())
    logger.debug("opened %s: format %s, mode %s, size %s", source, img.format, img.mode, img.size)
    return img


def _decode_encoded(fp: BinaryIO, *, source: str, max_pixels: int) -> LoadedImage:
    with _pil_errors_as_ours(source), _open_header(fp, source) as img:
        return _convert_pil(img, source=source, max_pixels=max_pixels)


# --------------------------------------------------------------------------------------------
# PIL images


def _convert_pil(img: Image.Image, *, source: str, max_pixels: int) -> LoadedImage:
    """Decode ``img`` (possibly still lazy) to RGB; must run inside :class:`_pil_errors_as_ours`."""
    # Image.open is lazy, so for encoded inputs this rejects bombs before any pixel is decoded.
    _check_dimensions(img.width, img.height, max_pixels=max_pixels, what=source)
    focal = _focal_length_35mm(img)

    # Decode everything now: with ImageFile.LOAD_TRUNCATED_IMAGES at its default (False) a
    # truncated JPEG/PNG raises here instead of silently yielding grey rows later.
    img.load()
    # A few plugins only know their final size after decoding.
    _check_dimensions(img.width, img.height, max_pixels=max_pixels, what=source)

    img = _exif_upright(img, source)
    pixels = _pil_to_rgb(img, source=source, max_pixels=max_pixels)
    logger.debug("loaded %s as %dx%d RGB", source, pixels.shape[1], pixels.shape[0])
    return LoadedImage(pixels=pixels, focal_length_35mm=focal, source=source)


def _exif_upright(img: Image.Image, source: str) -> Image.Image:
    try:
        # In place: without an orientation to undo this is a no-op, where the copying form
        # duplicated every photo's pixels (a few ms per megapixel).
        ImageOps.exif_transpose(img, in_place=True)
        return img
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - the pixels are already decoded and fine
        # A malformed EXIF block should not make an otherwise good photo unusable.
        logger.warning("ignoring unreadable EXIF orientation of %s: %s", source, exc)
        return img


def _focal_length_35mm(img: Image.Image) -> float | None:
    tag = ExifTags.Base.FocalLengthIn35mmFilm
    try:
        exif = img.getexif()
        value = exif.get_ifd(ExifTags.IFD.Exif).get(tag)
        if value is None:  # some writers put it in IFD0
            value = exif.get(tag)
        if value is None:
            return None
        focal = float(value)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - metadata is optional, never fatal
        logger.debug("ignoring unreadable EXIF FocalLengthIn35mmFilm: %s", exc)
        return None
    # 0 means "unknown" per the EXIF spec; rationals with a zero denominator come back as NaN.
    if not math.isfinite(focal) or focal <= 0:
        return None
    return focal


def _pil_to_rgb(img: Image.Image, *, source: str, max_pixels: int) -> np.ndarray:
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        # Pillow's own convert("RGB") clips 16-bit values at 255 instead of scaling them.
        # Mode "I" (int32) is what older Pillow and some TIFFs give for 16-bit data.
        values = np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
        return _array_to_rgb(values, max_pixels=max_pixels, what=source)
    if mode == "F":
        return _array_to_rgb(np.asarray(img), max_pixels=max_pixels, what=source)

    if mode in _ALPHA_MODES or "transparency" in img.info:
        # convert("RGBA") un-premultiplies RGBa/La and applies palette / tRNS transparency.
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint8)
        return _array_to_rgb(rgba, max_pixels=max_pixels, what=source)

    rgb = img if mode == "RGB" else img.convert("RGB")
    pixels = np.array(rgb, dtype=np.uint8)  # np.array copies: the result owns its memory
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise InvalidImageError(
            f"expected Pillow to produce (H, W, 3) RGB from mode {mode!r}, "
            f"got shape {pixels.shape} for {source}"
        )
    return np.ascontiguousarray(pixels)


# --------------------------------------------------------------------------------------------
# Arrays


def _check_dimensions(width: int, height: int, *, max_pixels: int, what: str) -> None:
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"expected a non-empty image, got size {width}x{height} for {what}")
    n_pixels = int(width) * int(height)  # Python ints: no overflow for hostile header values
    if n_pixels > max_pixels:
        raise ImageTooLargeError(
            f"expected at most {max_pixels} pixels, but {what} is {width}x{height} = "
            f"{n_pixels} pixels (pass a larger max_pixels if this is intended)"
        )
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"expected at least {MIN_SIDE} pixels on the shorter side, "
            f"but {what} is {width}x{height} (width x height)"
        )


def _array_to_rgb(array: np.ndarray, *, max_pixels: int, what: str) -> np.ndarray:
    """Validate and convert an ``(H, W[, C])`` array to ``(H, W, 3)`` uint8 owning its memory."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok:
        raise InvalidImageError(
            f"expected {_ARRAY_SHAPES}, got shape {array.shape} dtype {array.dtype} for {what}"
        )
    if array.size == 0:
        raise InvalidImageError(
            f"expected a non-empty array, got shape {array.shape} dtype {array.dtype} for {what}"
        )
    height, width = array.shape[:2]
    _check_dimensions(width, height, max_pixels=max_pixels, what=f"{what} of shape {array.shape}")

    pixels = _to_uint8(array, what)
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] == 4:
        pixels = _composite_over_white(pixels)

    pixels = np.ascontiguousarray(pixels)
    if np.may_share_memory(pixels, array):
        pixels = pixels.copy()
    return pixels


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    dtype = array.dtype
    if dtype == np.uint8:
        return array
    if dtype == np.bool_:
        return array.astype(np.uint8) * np.uint8(255)
    if dtype.kind == "u" and dtype.itemsize == 2:
        # round(v / 257) maps 8-bit data replicated into 16 bits (v * 257) back to v exactly.
        wide = array.astype(np.uint32)
        return ((wide * 255 + 32767) // 65535).astype(np.uint8)
    if dtype.kind == "f":
        return _float_to_uint8(array, what)
    raise InvalidImageError(
        f"expected dtype {_ARRAY_DTYPES}, got shape {array.shape} dtype {dtype} for {what}"
    )


def _float_to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if not np.isfinite(array).all():
        raise InvalidImageError(
            f"expected finite float values in [0, 1], got NaN or inf in shape {array.shape} "
            f"dtype {array.dtype} for {what}"
        )
    lo, hi = float(array.min()), float(array.max())
    if lo < -_FLOAT_TOLERANCE or hi > 1.0 + _FLOAT_TOLERANCE:
        hint = " (divide 0-255 data by 255, or pass it as uint8)" if hi <= 255.0 and lo >= 0 else ""
        raise InvalidImageError(
            f"expected float values in [0, 1], got range [{lo:g}, {hi:g}] in shape "
            f"{array.shape} dtype {array.dtype} for {what}{hint}"
        )
    scaled = np.clip(array.astype(np.float32) * np.float32(255.0), 0.0, 255.0)
    return np.rint(scaled).astype(np.uint8)


def _composite_over_white(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 straight alpha -> ``(H, W, 3)`` uint8 over a white background."""
    alpha = rgba[:, :, 3:4]
    if (alpha == 255).all():
        return rgba[:, :, :3]
    rgb = rgba[:, :, :3].astype(np.uint32)
    a = alpha.astype(np.uint32)
    # Integer (c * a + 255 * (255 - a)) / 255 with rounding; uint32 because it exceeds 65535.
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)
