"""Tests for recon3d.io.image: every accepted input form, colour modes, and every rejection."""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from helpers import png_header_only
from PIL import ExifTags, Image, ImageFile

import recon3d.io.image as image_mod
from recon3d.errors import ImageTooLargeError, InvalidImageError, Recon3dError
from recon3d.io import (
    DEFAULT_MAX_PIXELS,
    LoadedImage,
    load_image,
    load_image_with_metadata,
    read_focal_length_35mm,
)

DATA = Path(__file__).parent / "data"
PHOTOS = ["grace_hopper.jpg", "astronaut.png", "32bit.png", "camera.png", "obama.jpg"]


def _pil_rgb(path: Path) -> np.ndarray:
    """Reference decode: plain Pillow, no orientation handling (none of the photos is rotated)."""
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def _assert_rgb(pixels: np.ndarray) -> None:
    assert isinstance(pixels, np.ndarray)
    assert pixels.dtype == np.uint8
    assert pixels.ndim == 3 and pixels.shape[2] == 3
    assert pixels.flags.c_contiguous
    assert pixels.flags.writeable


def _png_bytes(img: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **params)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Accepted inputs


@pytest.mark.parametrize("name", PHOTOS)
def test_path_forms_bytes_and_pil_agree(name: str) -> None:
    path = DATA / name
    expected = _pil_rgb(path)
    data = path.read_bytes()

    results = {
        "str": load_image(str(path)),
        "Path": load_image(path),
        "bytes": load_image(data),
        "bytearray": load_image(bytearray(data)),
        "memoryview": load_image(memoryview(data)),
    }
    with Image.open(path) as lazy:
        results["PIL lazy"] = load_image(lazy)
    with Image.open(path) as img:
        results["PIL loaded"] = load_image(img.convert("RGB"))

    for form, pixels in results.items():
        _assert_rgb(pixels)
        np.testing.assert_array_equal(pixels, expected, err_msg=f"input form {form}")


def test_grey_png_becomes_three_equal_channels() -> None:
    pixels = load_image(DATA / "camera.png")
    grey = np.asarray(Image.open(DATA / "camera.png"))
    assert grey.ndim == 2
    for c in range(3):
        np.testing.assert_array_equal(pixels[:, :, c], grey)


def test_rgba_png_with_opaque_alpha_matches_rgb() -> None:
    rgba = np.asarray(Image.open(DATA / "32bit.png"))
    assert rgba.shape[2] == 4
    np.testing.assert_array_equal(load_image(DATA / "32bit.png"), rgba[:, :, :3])
    np.testing.assert_array_equal(load_image(rgba), rgba[:, :, :3])


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return _pil_rgb(DATA / "astronaut.png")


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: a, id="uint8 HxWx3"),
        pytest.param(lambda a: a.astype(np.uint16) * 257, id="uint16 HxWx3"),
        pytest.param(lambda a: (a.astype(np.uint16) * 257).astype(">u2"), id="uint16 big-endian"),
        pytest.param(lambda a: a.astype(np.float32) / 255, id="float32 HxWx3"),
        pytest.param(lambda a: a.astype(np.float64) / 255, id="float64 HxWx3"),
        pytest.param(lambda a: (a.astype(np.float32) / 255).astype(np.float16), id="float16"),
        pytest.param(
            lambda a: np.dstack([a, np.full(a.shape[:2], 255, np.uint8)]), id="uint8 HxWx4 opaque"
        ),
        pytest.param(lambda a: np.asfortranarray(a), id="Fortran order"),
        pytest.param(lambda a: a[::-1, ::-1][::-1, ::-1], id="negative-stride view"),
    ],
)
def test_array_forms_match_uint8(astronaut: np.ndarray, make) -> None:
    array = make(astronaut)
    pixels = load_image(array)
    _assert_rgb(pixels)
    np.testing.assert_array_equal(pixels, astronaut)
    assert not np.shares_memory(pixels, array)


def test_uint8_output_never_aliases_input(astronaut: np.ndarray) -> None:
    array = astronaut.copy()
    pixels = load_image(array)
    pixels[:] = 0
    np.testing.assert_array_equal(array, astronaut)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda g: g, id="uint8 HxW"),
        pytest.param(lambda g: g[:, :, None], id="uint8 HxWx1"),
        pytest.param(lambda g: g.astype(np.uint16) * 257, id="uint16 HxW"),
        pytest.param(lambda g: g.astype(np.float32) / 255, id="float32 HxW"),
        pytest.param(lambda g: (g.astype(np.float64) / 255)[:, :, None], id="float64 HxWx1"),
    ],
)
def test_grey_array_forms(make) -> None:
    grey = np.asarray(Image.open(DATA / "camera.png"))
    pixels = load_image(make(grey))
    _assert_rgb(pixels)
    np.testing.assert_array_equal(pixels, np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(pixels, load_image(DATA / "camera.png"))


def test_bool_array_maps_to_black_and_white() -> None:
    mask = np.zeros((40, 50), dtype=bool)
    mask[10:20, 5:15] = True
    pixels = load_image(mask)
    _assert_rgb(pixels)
    assert set(np.unique(pixels)) == {0, 255}
    np.testing.assert_array_equal(pixels[:, :, 1] == 255, mask)


def test_uint16_array_is_scaled_with_rounding() -> None:
    values = np.array([0, 128, 129, 256, 32767, 32896, 65279, 65535], dtype=np.uint16)
    array = np.tile(values, (40, 5))  # 40 x 40
    pixels = load_image(array)
    expected = np.round(values / 257).astype(np.uint8)
    np.testing.assert_array_equal(pixels[0, : len(values), 0], expected)


def test_float_within_rounding_error_of_range_is_clipped() -> None:
    array = np.full((32, 32, 3), 1.0 + 1e-6)
    array[0, 0] = -1e-7
    pixels = load_image(array)
    assert pixels[1, 1, 0] == 255 and pixels[0, 0, 0] == 0


def test_rgba_array_is_composited_over_white() -> None:
    rgba = np.zeros((32, 32, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red
    rgba[:, :16, 3] = 0  # left half transparent
    rgba[:, 16:, 3] = 128  # right half half-transparent
    pixels = load_image(rgba)
    np.testing.assert_array_equal(pixels[0, 0], [255, 255, 255])
    # red at alpha 128/255 over white: R stays 255, G and B = round(255 * 127 / 255) = 127
    np.testing.assert_array_equal(pixels[0, 31], [255, 127, 127])


def test_pil_modes_other_than_rgb(astronaut: np.ndarray) -> None:
    img = Image.fromarray(astronaut)
    np.testing.assert_array_equal(
        load_image(img.convert("L")), load_image(np.asarray(img.convert("L")))
    )
    one_bit = load_image(img.convert("1"))
    assert set(np.unique(one_bit)) <= {0, 255}
    float_img = Image.fromarray(np.asarray(img.convert("L")).astype(np.float32) / 255)
    assert float_img.mode == "F"
    np.testing.assert_array_equal(load_image(float_img), load_image(img.convert("L")))
    # Premultiplied RGBa with full alpha is just RGB.
    np.testing.assert_array_equal(load_image(img.convert("RGBa")), astronaut)


# --------------------------------------------------------------------------------------------
# Encoded colour modes


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # "rotate 90 degrees clockwise to display"
    with Image.open(DATA / "grace_hopper.jpg") as img:
        img.save(path, quality=95, exif=exif)
    with Image.open(path) as stored:
        assert stored.getexif()[ExifTags.Base.Orientation] == 6
        stored_pixels = np.asarray(stored.convert("RGB"))  # as stored, not upright
    assert stored_pixels.shape == (600, 512, 3)

    expected = np.rot90(stored_pixels, k=-1)  # clockwise
    for source in (path, path.read_bytes(), Image.open(path)):
        pixels = load_image(source)
        _assert_rgb(pixels)
        assert pixels.shape == (512, 600, 3)
        np.testing.assert_array_equal(pixels, expected)


def test_sixteen_bit_grey_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = tmp_path / "grey16.png"
    Image.fromarray(ramp).save(path)
    with Image.open(path) as img:
        assert img.mode in ("I;16", "I")  # really a 16-bit file

    pixels = load_image(path)
    _assert_rgb(pixels)
    expected = np.round(ramp / 257).astype(np.uint8)
    np.testing.assert_array_equal(pixels[:, :, 0], expected)
    assert pixels[32, 0, 0] == 128  # mid-grey stays mid-grey (clipping would give 255)
    assert pixels[0, 0, 0] == 0 and pixels[-1, -1, 0] == 255


def test_palette_png_with_transparent_index_is_composited(tmp_path: Path) -> None:
    img = Image.new("P", (40, 40), 0)
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * (254 * 3))  # 0 = red, 1 = blue
    img.paste(1, (20, 0, 40, 40))
    data = _png_bytes(img, transparency=0)
    pixels = load_image(data)
    np.testing.assert_array_equal(pixels[5, 5], [255, 255, 255])  # transparent red -> white
    np.testing.assert_array_equal(pixels[5, 30], [0, 0, 255])


def test_palette_png_with_partial_alpha(tmp_path: Path) -> None:
    img = Image.new("P", (40, 40), 0)
    img.putpalette([255, 0, 0] + [0] * (255 * 3))
    pixels = load_image(_png_bytes(img, transparency=bytes([128])))
    np.testing.assert_array_equal(pixels[0, 0], [255, 127, 127])


def test_rgba_and_la_png_are_composited_over_white() -> None:
    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    np.testing.assert_array_equal(load_image(_png_bytes(rgba))[0, 0], [255, 255, 255])
    la = Image.new("LA", (40, 40), (0, 255))
    np.testing.assert_array_equal(load_image(_png_bytes(la))[0, 0], [0, 0, 0])
    la_clear = Image.new("LA", (40, 40), (0, 0))
    np.testing.assert_array_equal(load_image(_png_bytes(la_clear))[0, 0], [255, 255, 255])


def test_cmyk_jpeg_is_converted() -> None:
    buf = io.BytesIO()
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(buf, format="JPEG", quality=95)
    pixels = load_image(buf.getvalue())
    _assert_rgb(pixels)
    assert np.abs(pixels[20, 20].astype(int) - [255, 0, 0]).max() <= 3  # C=0 M=Y=100% is red


@pytest.mark.parametrize("fmt", ["WEBP", "BMP", "GIF", "TIFF", "PPM"])
def test_other_accepted_formats(astronaut: np.ndarray, fmt: str) -> None:
    if fmt not in image_mod._registered_formats():
        pytest.skip(f"Pillow built without {fmt}")
    buf = io.BytesIO()
    Image.fromarray(astronaut).save(
        buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {})
    )
    pixels = load_image(buf.getvalue())
    _assert_rgb(pixels)
    assert pixels.shape == astronaut.shape
    if fmt != "GIF":  # GIF quantises to 256 colours
        np.testing.assert_array_equal(pixels, astronaut)


# --------------------------------------------------------------------------------------------
# Metadata


def test_metadata_focal_length_35mm(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 50
    path = tmp_path / "focal.jpg"
    with Image.open(DATA / "grace_hopper.jpg") as img:
        img.save(path, exif=exif)

    loaded = load_image_with_metadata(path)
    assert isinstance(loaded, LoadedImage)
    assert loaded.focal_length_35mm == 50.0
    assert loaded.source == str(path)
    _assert_rgb(loaded.pixels)
    assert read_focal_length_35mm(path) == 50.0
    assert read_focal_length_35mm(path.read_bytes()) == 50.0
    with Image.open(path) as lazy:
        assert read_focal_length_35mm(lazy) == 50.0


def test_metadata_without_focal_length() -> None:
    # obama.jpg has EXIF FocalLength but no FocalLengthIn35mmFilm; we do not guess a sensor size.
    assert read_focal_length_35mm(DATA / "obama.jpg") is None
    assert load_image_with_metadata(DATA / "astronaut.png").focal_length_35mm is None
    array = np.zeros((40, 40, 3), np.uint8)
    assert read_focal_length_35mm(array) is None
    loaded = load_image_with_metadata(array)
    assert loaded.focal_length_35mm is None and loaded.source == "<ndarray>"
    assert load_image_with_metadata((DATA / "camera.png").read_bytes()).source == "<bytes>"
    with pytest.raises(InvalidImageError, match="does not exist"):
        read_focal_length_35mm(DATA / "missing.jpg")
    with pytest.raises(InvalidImageError):
        read_focal_length_35mm(3.5)


def test_zero_focal_length_means_unknown(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 0
    buf = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buf, format="JPEG", exif=exif)
    assert read_focal_length_35mm(buf.getvalue()) is None


def test_loaded_image_is_frozen() -> None:
    loaded = load_image_with_metadata(DATA / "camera.png")
    with pytest.raises(AttributeError):
        loaded.source = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Rejections


def _truncated(name: str) -> bytes:
    data = (DATA / name).read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param(
            np.random.default_rng(0).bytes(4096), "could not be identified", id="random bytes"
        ),
        pytest.param(b"", "empty", id="empty bytes"),
        pytest.param(bytearray(), "empty", id="empty bytearray"),
        pytest.param(_truncated("grace_hopper.jpg"), "truncated", id="truncated JPEG"),
        pytest.param(_truncated("astronaut.png"), "truncated", id="truncated PNG"),
        pytest.param(b"\x89PNG\r\n\x1a\n", "expected", id="PNG signature only"),
        pytest.param(b"hello", "could not be identified", id="text bytes"),
        pytest.param(np.zeros((0, 0, 3), np.uint8), "non-empty", id="empty array"),
        pytest.param(np.zeros((0,), np.uint8), r"got shape \(0,\)", id="empty 1-D array"),
        pytest.param(np.zeros((1, 1, 3), np.uint8), "at least 32", id="1x1 array"),
        pytest.param(np.zeros((5,)), r"got shape \(5,\) dtype float64", id="1-D array"),
        pytest.param(np.zeros((2, 40, 40, 3), np.uint8), "got shape", id="4-D array"),
        pytest.param(np.zeros((40, 40, 2), np.uint8), "got shape", id="two channels"),
        pytest.param(np.zeros((40, 40, 3), np.int64), "dtype int64", id="int64 array"),
        pytest.param(np.zeros((40, 40, 3), np.int8), "dtype int8", id="int8 array"),
        pytest.param(np.zeros((40, 40, 3), np.complex64), "dtype complex64", id="complex array"),
        pytest.param(np.zeros((40, 40, 3), object), "dtype object", id="object array"),
        pytest.param(np.full((40, 40, 3), np.nan), "NaN", id="NaN float array"),
        pytest.param(np.full((40, 40), np.inf, np.float32), "NaN or inf", id="inf float array"),
        pytest.param(np.full((40, 40, 3), 200.0), r"\[0, 1\].*divide", id="0-255 float array"),
        pytest.param(np.full((40, 40, 3), -0.5), r"\[0, 1\]", id="negative float array"),
        pytest.param(42, "got int", id="int"),
        pytest.param(None, "got NoneType", id="None"),
        pytest.param([[0, 1], [2, 3]], "got list", id="nested list"),
    ],
)
def test_bad_inputs_raise_invalid_image_error(value, match: str) -> None:
    with pytest.raises(InvalidImageError, match=match) as info:
        load_image(value)
    assert not isinstance(info.value, ImageTooLargeError)
    assert "expected" in str(info.value)


def test_unsupported_type_message_names_accepted_types() -> None:
    with pytest.raises(InvalidImageError) as info:
        load_image(42)
    message = str(info.value)
    for accepted in ("path", "bytes", "PIL.Image.Image", "numpy.ndarray"):
        assert accepted in message


def test_one_pixel_encoded_image_is_rejected_with_its_size() -> None:
    data = _png_bytes(Image.new("RGB", (1, 1)))
    with pytest.raises(InvalidImageError, match="1x1"):
        load_image(data)
    with pytest.raises(InvalidImageError, match=r"31x100"):
        load_image(Image.new("RGB", (31, 100)))
    assert load_image(Image.new("RGB", (32, 100))).shape == (100, 32, 3)


def test_zero_size_pil_image_is_rejected() -> None:
    with pytest.raises(InvalidImageError, match="non-empty"):
        load_image(Image.new("RGB", (0, 0)))


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    for form in (missing, str(missing)):
        with pytest.raises(InvalidImageError, match="does not exist"):
            load_image(form)


def test_directory_path(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="is a directory"):
        load_image(tmp_path)


def test_empty_and_non_image_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImageError, match="empty"):
        load_image(empty)
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    with pytest.raises(InvalidImageError, match="could not be identified"):
        load_image(text)


def test_path_with_nul_byte() -> None:
    with pytest.raises(InvalidImageError):
        load_image("bad\0path.jpg")


def test_truncated_file_on_disk(tmp_path: Path) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    path = tmp_path / "half.jpg"
    path.write_bytes(_truncated("grace_hopper.jpg"))
    with pytest.raises(InvalidImageError, match="truncated"):
        load_image(path)


def test_format_outside_the_allow_list_is_rejected() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buf, format="ICO")
    with Image.open(io.BytesIO(buf.getvalue())) as img:
        assert img.format == "ICO"  # Pillow itself would decode it
    with pytest.raises(InvalidImageError, match="one of the formats"):
        load_image(buf.getvalue())


def test_decompression_bomb_header_is_rejected_before_decoding(monkeypatch) -> None:
    bomb = png_header_only(100_000, 100_000)
    assert len(bomb) < 200

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("pixels must not be decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError):
        load_image(bomb)
    assert time.perf_counter() - start < 0.5


def test_header_above_our_limit_but_below_pillows(monkeypatch) -> None:
    # 7000 x 7000 = 49 MP: over DEFAULT_MAX_PIXELS, under Pillow's own warning threshold.
    assert 7000 * 7000 < Image.MAX_IMAGE_PIXELS
    bomb = png_header_only(7000, 7000)
    monkeypatch.setattr(
        ImageFile.ImageFile, "load", lambda self: (_ for _ in ()).throw(AssertionError())
    )
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=str(DEFAULT_MAX_PIXELS)):
        load_image(bomb)
    assert time.perf_counter() - start < 0.5


def test_max_pixels_argument() -> None:
    path = DATA / "astronaut.png"  # 512 x 512
    with pytest.raises(ImageTooLargeError, match="512x512"):
        load_image(path, max_pixels=512 * 512 - 1)
    assert load_image(path, max_pixels=512 * 512).shape == (512, 512, 3)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((512, 512, 3), np.uint8), max_pixels=1000)
    with Image.open(path) as lazy, pytest.raises(ImageTooLargeError):
        load_image(lazy, max_pixels=1000)
    with pytest.raises(ValueError):
        load_image(path, max_pixels=0)
    with pytest.raises(TypeError):
        load_image(path, max_pixels=1.5e6)  # type: ignore[arg-type]


def test_pillow_bomb_warning_becomes_our_error_without_touching_globals(monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100_000)  # astronaut is 262144 pixels
    filters_before = list(warnings.filters)
    with pytest.raises(ImageTooLargeError, match="MAX_IMAGE_PIXELS"):
        load_image(DATA / "astronaut.png", max_pixels=10**9)
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == 100_000


def test_encoded_size_limit(monkeypatch) -> None:
    data = (DATA / "grace_hopper.jpg").read_bytes()
    monkeypatch.setattr(image_mod, "MAX_ENCODED_BYTES", len(data) - 1)
    for form in (data, bytearray(data), memoryview(data), DATA / "grace_hopper.jpg"):
        with pytest.raises(ImageTooLargeError, match="bytes"):
            load_image(form)


def test_errors_are_catchable_as_value_error() -> None:
    with pytest.raises(ValueError):
        load_image(b"junk")
    assert issubclass(ImageTooLargeError, InvalidImageError)
    assert issubclass(InvalidImageError, Recon3dError)


# --------------------------------------------------------------------------------------------
# Property tests: arbitrary bytes only ever raise InvalidImageError

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis is a dev extra; the rest of the module must still run
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

_SEEDS = [(DATA / n).read_bytes() for n in ("grace_hopper.jpg", "camera.png")]
_SMALL_SEEDS = [
    _png_bytes(Image.new("RGBA", (40, 40), (10, 20, 30, 128))),
    _png_bytes(Image.new("P", (40, 40)), transparency=0),
]


def _check_only_our_error(data: bytes) -> None:
    try:
        pixels = load_image(data)
    except InvalidImageError:
        return
    _assert_rgb(pixels)


if HAVE_HYPOTHESIS:
    # Bare random bytes rarely get past format identification, so half the examples start
    # with a real signature to reach the header parsers and decoders.
    _MAGIC = [
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0",
        b"GIF89a",
        b"BM",
        b"II*\x00",
        b"MM\x00*",
        b"RIFF\x00\x01\x00\x00WEBPVP8 ",
        b"P6\n",
    ]
    _ARBITRARY = st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda magic, rest: magic + rest, st.sampled_from(_MAGIC), st.binary(max_size=2048)
        ),
    )

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_ARBITRARY)
    def test_arbitrary_bytes_only_raise_invalid_image_error(data: bytes) -> None:
        _check_only_our_error(data)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        seed=st.sampled_from(_SEEDS + _SMALL_SEEDS),
        edits=st.lists(
            st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8
        ),
        cut=st.floats(0.0, 1.0),
    )
    def test_corrupted_real_files_only_raise_invalid_image_error(seed: bytes, edits, cut) -> None:
        data = bytearray(seed)
        for where, value in edits:
            data[int(where * len(data))] = value
        _check_only_our_error(bytes(data[: max(1, int(cut * len(data)))]))

else:

    @pytest.mark.skip(reason="hypothesis is not installed")
    def test_arbitrary_bytes_only_raise_invalid_image_error() -> None:
        pass
