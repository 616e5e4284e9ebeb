"""Video input/output (recon3d.io.video): limits, typed errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from recon3d.errors import ExportError, ImageTooLargeError, InvalidImageError
from recon3d.io.video import read_video, video_info, write_video

CARPHONE = Path(__file__).resolve().parent / "data" / "carphone.mp4"


def _frames(n: int = 12, h: int = 64, w: int = 80) -> list[np.ndarray]:
    """A bright square moving right over a gradient."""
    out = []
    for i in range(n):
        f = np.zeros((h, w, 3), np.uint8)
        f[..., 0] = np.linspace(0, 200, w, dtype=np.uint8)[None]
        f[20:40, 4 * i : 4 * i + 20] = (40, 220, 90)
        out.append(f)
    return out


def test_read_carphone() -> None:
    frames, fps = read_video(CARPHONE)
    frames = list(frames)
    assert len(frames) == 120
    assert abs(fps - 29.97) < 0.01
    assert frames[0].shape == (144, 176, 3) and frames[0].dtype == np.uint8
    assert video_info(CARPHONE) == {"width": 176, "height": 144, "fps": fps, "frames": 120}


VTEST = Path(os.environ.get("RECON3D_VIDEO", "/work/shared/data/video")) / "vtest.avi"


@pytest.mark.skipif(not VTEST.is_file(), reason=f"no {VTEST}")
def test_read_avi_from_the_shared_data() -> None:
    frames, fps = read_video(VTEST, max_frames=5)
    frames = list(frames)
    assert len(frames) == 5 and fps == 10.0 and frames[0].shape == (576, 768, 3)
    assert video_info(VTEST)["frames"] == 795


def test_max_frames_and_max_pixels() -> None:
    frames, _ = read_video(CARPHONE, max_frames=7)
    assert len(list(frames)) == 7
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        read_video(CARPHONE, max_pixels=176 * 144 - 1)
    frames, _ = read_video(CARPHONE, max_pixels=176 * 144)
    assert next(iter(frames)).shape == (144, 176, 3)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9])
def test_truncated_mp4_is_invalid(tmp_path: Path, fraction: float) -> None:
    data = CARPHONE.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InvalidImageError):
        frames, _ = read_video(path)
        list(frames)


def test_truncated_avi_raises_while_iterating(tmp_path: Path) -> None:
    """An AVI cut in the middle decodes its first frames, then reports the truncation."""
    import av

    path = tmp_path / "clip.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=10)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "yuvj420p"
        for f in _frames(30):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    assert len(list(read_video(path)[0])) == 30
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    frames, _ = read_video(cut)
    got = []
    with pytest.raises(InvalidImageError, match="truncated"):
        for f in frames:
            got.append(f)
    assert 5 < len(got) < 30


@pytest.mark.parametrize(
    "content", [b"", b"not a video at all" * 100, b"\x00\x00\x00\x20ftypisom" + bytes(2000)]
)
def test_not_a_video(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.mp4"
    path.write_bytes(content)
    with pytest.raises(InvalidImageError):
        frames, _ = read_video(path)
        list(frames)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(InvalidImageError):
        read_video(tmp_path)


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    import av

    path = tmp_path / "sound.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(
            np.zeros((1, 800), np.int16), format="s16", layout="mono"
        )
        frame.rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode())
    with pytest.raises(InvalidImageError, match="no video stream"):
        read_video(path)


def test_write_mp4_round_trip(tmp_path: Path) -> None:
    frames = _frames(12, 63, 81)  # odd sides: padded to even for yuv420p
    out = write_video(tmp_path / "clip.mp4", frames, fps=12.5)
    assert out == tmp_path / "clip.mp4"
    back, fps = read_video(out)
    back = list(back)
    assert len(back) == 12 and abs(fps - 12.5) < 1e-6
    assert back[0].shape == (64, 82, 3)
    err = np.abs(back[5][:63, :81].astype(int) - frames[5].astype(int)).mean()
    assert err < 6, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_display_rotation_is_applied(tmp_path: Path) -> None:
    """A portrait phone video: landscape frames plus a 90-degree display rotation."""
    import av

    path = tmp_path / "portrait.mp4"
    frame = np.zeros((32, 64, 3), np.uint8)
    frame[:, :16] = 255  # a white band on the left
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_rotation(90)
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    first = next(read_video(path)[0])
    assert first.shape == (64, 32, 3)
    # Rotated 90 degrees counterclockwise, the left band is at the bottom.
    assert first[-12:].mean() > 200 and first[:40].mean() < 40


def test_write_gif(tmp_path: Path) -> None:
    out = write_video(tmp_path / "clip.gif", _frames(6), fps=10)
    back, fps = read_video(out)
    assert len(list(back)) == 6 and abs(fps - 10) < 0.5


def _bad_frames():
    yield from _frames(3)
    yield np.zeros((10, 10, 3), np.uint8)  # a different size: fails after encoding began


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_failed_write_leaves_nothing(tmp_path: Path, suffix: str) -> None:
    target = tmp_path / f"clip{suffix}"
    with pytest.raises(ExportError, match="frame 3"):
        write_video(target, _bad_frames(), fps=10)
    assert os.listdir(tmp_path) == []
    target.write_bytes(b"old")
    with pytest.raises(ExportError):
        write_video(target, [], fps=10)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == [target.name]


def test_write_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=".mp4 or .gif"):
        write_video(tmp_path / "clip.avi", _frames(2), fps=10)
    with pytest.raises(ExportError, match="fps"):
        write_video(tmp_path / "clip.mp4", _frames(2), fps=0)
    with pytest.raises(ExportError, match="does not exist"):
        write_video(tmp_path / "no" / "clip.mp4", _frames(2), fps=10)
    with pytest.raises(ExportError, match="uint8"):
        write_video(tmp_path / "clip.mp4", [np.zeros((8, 8, 3), np.float32)], fps=10)
    assert os.listdir(tmp_path) == []
