"""Video input and output through PyAV (FFmpeg bindings; ``pip install av``).

Reading (:func:`read_video`) decodes frames lazily as ``(H, W, 3)`` uint8 RGB arrays. It checks
the frame size against a pixel limit from the container header, before anything is decoded, caps
the number of frames, and reports every way a file can be unusable as
:class:`~recon3d.errors.InvalidImageError`: not a video, no video stream, a stream that cannot be
decoded, or a file cut short (fewer frames decoded than the container declares).

Writing (:func:`write_video`) encodes H.264 ``.mp4`` (``yuv420p``, playable everywhere; odd
frame sides are padded by one replicated row or column, since 4:2:0 needs even sides) or an
animated ``.gif`` (Pillow, adaptive palette per frame). The file is written to a temporary file
in the target's folder and renamed over the target only when it is complete, so a failure leaves
nothing at the output path.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import tempfile
from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np

from recon3d.errors import ExportError, ImageTooLargeError, InvalidImageError
from recon3d.exchange.atomic import _current_umask, check_target, write_atomic

__all__ = [
    "DEFAULT_MAX_FRAMES",
    "DEFAULT_MAX_PIXELS",
    "MAX_VIDEO_BYTES",
    "VIDEO_SUFFIXES",
    "read_video",
    "video_info",
    "write_video",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 4096 * 2304
"""Default upper bound on ``width * height`` of a frame (4K UHD with margin)."""
DEFAULT_MAX_FRAMES = 100_000
"""Default upper bound on the number of frames read (about 55 minutes at 30 fps)."""
MAX_VIDEO_BYTES = 4 << 30
"""Largest video file accepted (checked before the container is opened)."""
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".gif")
"""File name endings :func:`recon3d.reenact.poses.load_driving` treats as videos."""


def _import_av():
    try:
        import av
    except ImportError as exc:  # pragma: no cover - a hard dependency
        from recon3d.errors import MissingDependencyError

        raise MissingDependencyError("video input/output needs PyAV (`pip install av`)") from exc
    return av


def _open(path: str | os.PathLike, max_pixels: int):
    """(container, video stream, fps, declared frame count or 0) of a readable video file."""
    av = _import_av()
    if max_pixels <= 0:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    try:
        name = os.fsdecode(os.fspath(path))
    except TypeError as exc:
        raise InvalidImageError(f"expected a video path, got {type(path).__name__}") from exc
    try:
        size = os.stat(name).st_size
    except (OSError, ValueError) as exc:
        raise InvalidImageError(f"{name}: cannot read the video: {exc}") from exc
    if not pathlib.Path(name).is_file():
        raise InvalidImageError(f"{name}: not a file")
    if size > MAX_VIDEO_BYTES:
        raise InvalidImageError(f"{name}: {size} bytes is over the {MAX_VIDEO_BYTES}-byte limit")
    if size == 0:
        raise InvalidImageError(f"{name}: empty file")
    try:
        container = av.open(name, mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeError) as exc:
        raise InvalidImageError(f"{name}: not a readable video: {exc}") from exc
    try:
        if not container.streams.video:
            raise InvalidImageError(f"{name}: the file holds no video stream")
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        if width <= 0 or height <= 0:
            raise InvalidImageError(f"{name}: the video stream declares no frame size")
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{name}: {width}x{height} frames are over the {max_pixels}-pixel limit"
            )
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not math.isfinite(fps) or fps <= 0 or fps > 1000:
            fps = 30.0
        declared = int(stream.frames or 0)
    except BaseException:
        container.close()
        raise
    return container, stream, fps, declared


def video_info(path: str | os.PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict:
    """Header facts of a video file without decoding it: ``{"width", "height", "fps",
    "frames"}`` (``frames`` is the count the container declares, 0 when it declares none).

    Raises:
        InvalidImageError: not a readable video; ImageTooLargeError: over ``max_pixels``.
    """
    container, stream, fps, declared = _open(path, max_pixels)
    try:
        return {
            "width": int(stream.codec_context.width),
            "height": int(stream.codec_context.height),
            "fps": fps,
            "frames": declared,
        }
    finally:
        container.close()


def read_video(
    path: str | os.PathLike,
    *,
    max_frames: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[Iterator[np.ndarray], float]:
    """Open a video file and return a lazy iterator over its frames and its frame rate.

    Args:
        path: a video file (anything FFmpeg reads: .mp4, .avi, .mov, .mkv, .webm, .gif, ...).
        max_frames: read at most this many frames (default :data:`DEFAULT_MAX_FRAMES`); a longer
            video is cut, not refused.
        max_pixels: refuse frames larger than this many pixels (checked from the header).
    Returns:
        ``(frames, fps)``: an iterator of (H, W, 3) uint8 RGB frames, upright (a display
        rotation stored in the file, as phones write, is applied), and frames per second (30
        when the container states no usable rate).
    Raises:
        InvalidImageError: missing or unreadable file, not a video, no video stream (raised
            here); a stream that fails to decode or a file cut short (raised while iterating,
            after the frames before the damage).
        ImageTooLargeError: frames over ``max_pixels`` (raised here, nothing decoded).
    """
    limit = DEFAULT_MAX_FRAMES if max_frames is None else int(max_frames)
    if limit < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    container, stream, fps, declared = _open(path, max_pixels)
    name = os.fsdecode(os.fspath(path))
    return _frames(container, stream, declared, limit, name), fps


def _frames(container, stream, declared: int, limit: int, name: str) -> Iterator[np.ndarray]:
    av = _import_av()
    count = 0
    try:
        if limit == 0:
            return
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        try:
            for frame in container.decode(stream):
                if frame.width != width or frame.height != height:
                    raise InvalidImageError(
                        f"{name}: frame {count} is {frame.width}x{frame.height}, the stream "
                        f"declares {width}x{height}"
                    )
                yield _upright(frame.to_ndarray(format="rgb24"), frame)
                count += 1
                if count >= limit:
                    return
        except av.FFmpegError as exc:
            raise InvalidImageError(f"{name}: decoding failed after {count} frames: {exc}") from exc
        if count == 0:
            raise InvalidImageError(f"{name}: no frame could be decoded")
        # Containers that declare a frame count (mp4, avi) let us detect a cut-off file; a
        # decoder may drop a frame or two at a damaged tail, hence the tolerance.
        if declared > 0 and count < declared - max(2, declared // 100):
            raise InvalidImageError(
                f"{name}: truncated or damaged: decoded {count} of the {declared} frames the "
                "container declares"
            )
    finally:
        container.close()


def _upright(pixels: np.ndarray, frame) -> np.ndarray:
    """Apply the display rotation a container may carry (phones record portrait videos as
    landscape frames plus a rotation), as players do; other angles than multiples of 90 degrees
    are ignored."""
    try:
        angle = float(frame.rotation or 0.0)
    except (AttributeError, TypeError, ValueError):
        return pixels
    quarter = round(angle / 90.0)
    if abs(angle - 90.0 * quarter) > 1.0 or quarter % 4 == 0:
        return pixels
    # The angle is counterclockwise (FFmpeg's av_display_rotation_get); so is np.rot90.
    return np.ascontiguousarray(np.rot90(pixels, quarter % 4))


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float) -> pathlib.Path:
    """Encode frames to ``path`` atomically.

    Args:
        path: the output file; ``.mp4`` (H.264, yuv420p, CRF 18) or ``.gif``.
        frames: (H, W, 3) uint8 RGB frames, all of the first frame's size (at least one).
        fps: frames per second (> 0).
    Returns:
        The absolute path written.
    Raises:
        ExportError: the file could not be written (unsupported suffix, bad folder, encoder
            failure, no frames, frames of differing size or dtype); nothing is left at ``path``
            and no temporary file in its folder.
    """
    target = check_target(path)
    suffix = target.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ExportError(f"Cannot write {str(target)!r}: expected a .mp4 or .gif file name.")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and 0 < fps <= 1000):
        raise ExportError(f"Cannot write {str(target)!r}: fps must be in (0, 1000], got {fps!r}.")
    if suffix == ".gif":
        return _write_gif(target, frames, float(fps))
    return _write_mp4(target, frames, float(fps))


def _checked(frames: Iterable[np.ndarray], target: pathlib.Path) -> Iterator[np.ndarray]:
    shape = None
    for i, frame in enumerate(frames):
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ExportError(
                f"Cannot write {str(target)!r}: frame {i} is {frame.dtype} {frame.shape}, "
                "expected (H, W, 3) uint8 RGB."
            )
        if shape is None:
            shape = frame.shape
            if min(shape[:2]) < 2:
                raise ExportError(f"Cannot write {str(target)!r}: frames of {shape} are too small.")
        elif frame.shape != shape:
            raise ExportError(
                f"Cannot write {str(target)!r}: frame {i} is {frame.shape[:2]}, the first frame "
                f"is {shape[:2]}."
            )
        yield np.ascontiguousarray(frame)
    if shape is None:
        raise ExportError(f"Cannot write {str(target)!r}: no frames.")


def _write_gif(target: pathlib.Path, frames: Iterable[np.ndarray], fps: float) -> pathlib.Path:
    import io

    from PIL import Image

    images = [Image.fromarray(f) for f in _checked(frames, target)]
    buffer = io.BytesIO()
    images[0].save(
        buffer,
        format="GIF",
        save_all=True,
        append_images=images[1:],
        duration=max(20, round(1000.0 / fps)),
        loop=0,
        optimize=False,
    )
    return write_atomic(target, buffer.getvalue())


def _write_mp4(target: pathlib.Path, frames: Iterable[np.ndarray], fps: float) -> pathlib.Path:
    av = _import_av()
    fd, name = tempfile.mkstemp(prefix=".recon3d-", suffix=".mp4", dir=target.parent)
    os.close(fd)
    temp = pathlib.Path(name)
    done = False
    try:
        container = av.open(str(temp), mode="w", format="mp4")
        try:
            stream = None
            for frame in _checked(frames, target):
                if stream is None:
                    h, w = frame.shape[:2]
                    stream = container.add_stream(
                        "libx264", rate=Fraction(fps).limit_denominator(1001)
                    )
                    stream.width, stream.height = w + w % 2, h + h % 2
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"crf": "18", "preset": "medium"}
                if frame.shape[0] % 2 or frame.shape[1] % 2:
                    frame = np.pad(
                        frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)), "edge"
                    )
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                container.mux(stream.encode(video_frame))
            container.mux(stream.encode())
        finally:
            container.close()
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(temp, 0o666 & ~_current_umask())
        os.replace(temp, target)
        done = True
    except av.FFmpegError as exc:
        raise ExportError(f"Cannot write {str(target)!r}: the encoder failed: {exc}") from exc
    except OSError as exc:
        raise ExportError(f"Cannot write {str(target)!r}: {exc.strerror or exc}.") from exc
    finally:
        if not done:
            try:
                temp.unlink()
            except FileNotFoundError:
                pass
    logger.debug("wrote %s", target)
    return target
