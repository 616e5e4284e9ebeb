"""Hardening (issue 7): hostile images, hostile output paths, tampered weights, no network and no
pickle at run time, threads, batch API and CLI, determinism of the written files, dependencies.

Most of it runs the head pipeline; the body pipeline (``target="body"``) has its own hostile
inputs, ``person_index`` range, no-network run, determinism and thread tests.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import png_header_only
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import ExifTags, Image, PngImagePlugin

import recon3d
from recon3d import reconstruct, reconstruct_many
from recon3d.errors import (
    CorruptedWeightsError,
    ExportError,
    ImageTooLargeError,
    InvalidImageError,
    MissingWeightsError,
    NoPersonFound,
    Recon3dError,
    WeightsError,
)
from recon3d.exchange import export_mesh
from recon3d.io import load_image, load_image_with_metadata
from recon3d.weights import (
    load_arrays,
    read_manifest,
    read_safetensors,
    register_file,
    verified_path,
    weights_dir,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
ASSET = "head_model.safetensors"


def _encode(img: Image.Image, fmt: str, **params) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return buf.getvalue()


def _noise(size: int = 64, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def _with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """``jpeg`` with an extra APP1 (EXIF) segment holding ``payload`` right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


# --------------------------------------------------------------------------------------------
# Hostile images


def _bomb(fmt: str) -> bytes:
    """A small file of format ``fmt`` whose header declares a huge image."""
    base = _noise()
    if fmt == "PNG":
        return png_header_only(60_000, 60_000)
    if fmt == "JPEG":
        data = bytearray(_encode(base, "JPEG"))
        sof = data.find(b"\xff\xc0")
        struct.pack_into(">HH", data, sof + 5, 65_000, 65_000)  # height, width
        return bytes(data)
    if fmt == "GIF":
        data = bytearray(_encode(base, "GIF"))
        struct.pack_into("<HH", data, 6, 65_535, 65_535)
        return bytes(data)
    if fmt == "BMP":
        data = bytearray(_encode(base, "BMP"))
        struct.pack_into("<ii", data, 18, 2**31 - 1, -(2**31))
        return bytes(data)
    if fmt == "PPM":
        return b"P6\n100000 100000\n255\n" + bytes(64)
    if fmt == "TIFF":
        data = bytearray(_encode(base, "TIFF"))
        # Patch ImageWidth/ImageLength (SHORT or LONG) in the first IFD.
        (ifd,) = struct.unpack_from("<I", data, 4)
        (count,) = struct.unpack_from("<H", data, ifd)
        for i in range(count):
            entry = ifd + 2 + 12 * i
            tag, kind = struct.unpack_from("<HH", data, entry)
            if tag in (256, 257):
                if kind == 3:
                    struct.pack_into("<H", data, entry + 8, 65_535)
                else:
                    struct.pack_into("<I", data, entry + 8, 1_000_000)
        return bytes(data)
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "PPM", "TIFF"])
def test_decompression_bomb_headers_in_every_format(fmt: str) -> None:
    bomb = _bomb(fmt)
    assert len(bomb) < 20_000
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(bomb)


def test_compressed_text_chunk_bomb_is_refused() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "A" * (20 * 1024 * 1024), zip=True)  # 20 MB inflated, ~20 kB stored
    data = _encode(_noise(), "PNG", pnginfo=info)
    assert len(data) < 100_000
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(data)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_images_in_every_format(fmt: str, keep: float) -> None:
    params = {"lossless": True} if fmt == "WEBP" else {}
    data = _encode(_noise(96), fmt, **params)
    with pytest.raises(InvalidImageError):
        load_image(data[: int(len(data) * keep)])


@pytest.mark.parametrize(
    ("name", "tail"),
    [
        ("jpeg+zip", b"PK\x03\x04" + bytes(200)),
        ("jpeg+html", b"<html><script>alert(1)</script></html>"),
        ("jpeg+php", b"<?php system($_GET['c']); ?>"),
    ],
)
def test_polyglot_tails_are_ignored(name: str, tail: str) -> None:
    """A valid image with another file appended decodes exactly like the clean image."""
    clean = (DATA / "grace_hopper.jpg").read_bytes()
    np.testing.assert_array_equal(load_image(clean + tail), load_image(clean))
    png = _encode(_noise(), "PNG")
    np.testing.assert_array_equal(load_image(png + tail), load_image(png))
    gif = _encode(_noise(), "GIF")
    np.testing.assert_array_equal(load_image(gif + tail), load_image(gif))


@pytest.mark.parametrize(
    "prefix",
    [
        b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n",  # EPS: Pillow runs Ghostscript
        b"%PDF-1.4\n",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">',
        b"\x00\x00\x01\x00",  # ICO
    ],
)
def test_polyglot_prefixes_are_refused_without_running_anything(prefix: bytes, monkeypatch) -> None:
    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", no_subprocess)
    data = prefix + _encode(_noise(), "JPEG")
    with pytest.raises(InvalidImageError, match="could not be identified"):
        load_image(data)
    # ...and ICO, an allowed-by-Pillow but not-by-us format, on its own.
    with pytest.raises(InvalidImageError):
        load_image(_encode(_noise(), "ICO"))


def _absurd_exif_variants(jpeg: bytes) -> dict[str, bytes]:
    img = Image.open(io.BytesIO(jpeg))
    out = {}
    for label, value in (("orientation 65535", 65_535), ("orientation 0", 0)):
        exif = Image.Exif()
        exif[ExifTags.Base.Orientation] = value
        out[label] = _encode(img, "JPEG", exif=exif, quality=95)
    exif = Image.Exif()
    exif[ExifTags.Base.ImageDescription] = "x" * 60_000
    out["60 kB description"] = _encode(img, "JPEG", exif=exif, quality=95)
    # Hand-made TIFF structures inside APP1: an IFD entry count of 65535 with no entries, an
    # Exif sub-IFD pointing back at IFD0 (a loop), a tag whose data lies 256 MB past the end.
    out["ifd count 65535"] = _with_app1(jpeg, b"Exif\0\0MM\0*\0\0\0\x08\xff\xff" + b"\x01" * 500)
    loop = struct.pack("<HHII", 0x8769, 4, 1, 8)
    out["ifd loop"] = _with_app1(jpeg, b"Exif\0\0II*\0\x08\0\0\0\x01\0" + loop)
    far = struct.pack("<HHII", 0x0112, 3, 0x0FFFFFFF, 8)
    out["tag past the end"] = _with_app1(jpeg, b"Exif\0\0II*\0\x08\0\0\0\x01\0" + far)
    return out


def test_images_with_absurd_exif_decode_like_the_clean_image() -> None:
    clean_bytes = _encode(_noise(128), "JPEG", quality=95)
    clean = load_image(clean_bytes)
    for label, data in _absurd_exif_variants(clean_bytes).items():
        loaded = load_image_with_metadata(data)
        assert loaded.pixels.shape == clean.shape, label
        # Re-encoding with EXIF via Pillow may requantise; hand-spliced variants are identical.
        if label in ("ifd count 65535", "ifd loop", "tag past the end"):
            np.testing.assert_array_equal(loaded.pixels, clean, err_msg=label)
        assert loaded.focal_length_35mm is None, label


def test_absurd_exif_focal_length_goes_through_the_pipeline(grace) -> None:
    """EXIF claims a 65535 mm lens and orientation 65535: the pipeline ignores both."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 65_535
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.FocalLengthIn35mmFilm] = 65_535
    with Image.open(DATA / "grace_hopper.jpg") as img:
        data = _encode(img, "JPEG", exif=exif, quality=95)
    assert load_image_with_metadata(data).focal_length_35mm == 65_535.0
    rec = reconstruct(data, target="head")
    assert np.isfinite(rec.vertices).all()
    assert rec.camera.focal == pytest.approx(grace.camera.focal)  # the default lens, not 65535


# --------------------------------------------------------------------------------------------
# Public API: only typed errors escape


_MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"P6\n"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=512),
        st.builds(lambda m, r: m + r, st.sampled_from(_MAGIC), st.binary(max_size=512)),
    )
)
def test_reconstruct_on_arbitrary_bytes_raises_only_typed_errors(data: bytes) -> None:
    try:
        reconstruct(data, target="head")
    except Recon3dError:
        return


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.sampled_from([(0, 0, 3), (1, 1), (40, 5, 3), (48, 48), (64, 64, 4), (64, 64, 2)]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int64, np.bool_]),
    fill=st.sampled_from([0.0, 0.5, 1.0, 2.0, -1.0, float("nan"), float("inf")]),
)
def test_reconstruct_on_arbitrary_arrays_raises_only_typed_errors(shape, dtype, fill) -> None:
    with np.errstate(invalid="ignore"):
        array = np.full(shape, fill).astype(dtype)
    try:
        reconstruct(array, target="head")
    except Recon3dError:
        return


# --------------------------------------------------------------------------------------------
# Hostile output paths


def _small_mesh() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosahedron()
    uv = (mesh.vertices[:, :2] + 1) / 2
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv, image=_noise(16))
    return mesh


_MESH = _small_mesh()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.one_of(
        st.binary(min_size=0, max_size=300),
        st.text(min_size=0, max_size=300).map(lambda s: s.encode("utf-8", "surrogatepass")),
    ),
    ext=st.sampled_from([b".obj", b".glb", b".ply", b".OBJ", b"", b".stl"]),
    as_bytes=st.booleans(),
)
def test_export_to_arbitrary_file_names(name: bytes, ext: bytes, as_bytes: bool) -> None:
    """Any file name: the files appear complete, or ExportError and the folder stays empty."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.fsencode(tmp)
        path = folder + b"/" + name + ext
        try:
            written = export_mesh(_MESH, path if as_bytes else os.fsdecode(path))
        except ExportError:
            assert os.listdir(folder) == []
            return
        on_disk = set(os.listdir(folder))
        assert {os.fsencode(p.name) for p in written} == on_disk
        if ext.lower() == b".obj":
            with open(os.fsencode(written[0]), "rb") as fh:
                mtllib = next(line for line in fh if line.startswith(b"mtllib"))
            assert mtllib[len(b"mtllib ") :].rstrip(b"\n") in on_disk


def test_public_export_with_hostile_paths(grace, tmp_path: Path) -> None:
    """Reconstruction.export with non-UTF-8, long, missing-folder and NUL paths."""
    raw = os.fsencode(tmp_path) + b"/t\xeate\xff"
    for ext in (".obj", ".glb", ".ply"):
        written = grace.export(raw + ext.encode())
        assert all(p.exists() for p in written)
        assert os.fsencode(written[0].name) == b"t\xeate\xff" + ext.encode()
    # The OBJ's mtllib and the MTL's map_Kd name the companions by their exact bytes.
    with open(raw + b".obj", "rb") as fh:
        assert b"mtllib t\xeate\xff.mtl\n" in fh.read()
    with open(raw + b".mtl", "rb") as fh:
        assert b"map_Kd t\xeate\xff.png" in fh.read()
    loaded = trimesh.load(os.fsdecode(raw + b".obj"), process=False)
    assert loaded.visual.material.image is not None

    out = tmp_path / "cases"
    out.mkdir()
    cases = {
        "name over NAME_MAX": out / ("x" * 300 + ".obj"),
        "path over PATH_MAX": out / "/".join(["d" * 250] * 20) / "head.glb",
        "missing folder": out / "missing" / "head.ply",
        "NUL byte": str(out / "he\0ad.obj"),
        "folder as file": out,
    }
    for label, path in cases.items():
        with pytest.raises(ExportError):
            grace.export(path)
        assert list(out.iterdir()) == [], label


@pytest.mark.parametrize("code", [errno.EACCES, errno.EROFS, errno.ENOSPC])
def test_public_export_into_unwritable_folder(grace, tmp_path: Path, monkeypatch, code) -> None:
    """A read-only folder (root ignores chmod, so the OS error is injected where it arises)."""

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    for ext in (".obj", ".glb", ".ply"):
        with pytest.raises(ExportError, match="Cannot write"):
            grace.export(tmp_path / f"head{ext}")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Tampered weights


@pytest.fixture
def weights_copy(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    for name in ("manifest.json", ASSET):
        (folder / name).write_bytes((_SHIPPED / name).read_bytes())
    monkeypatch.setenv("RECON3D_WEIGHTS", str(folder))
    return folder


_SHIPPED = weights_dir()  # resolved at import, before any test points RECON3D_WEIGHTS elsewhere


def _required() -> tuple[str, ...]:
    """The tensor names of the shipped asset (what the head model needs)."""
    from safetensors import safe_open

    with safe_open(str(_SHIPPED / ASSET), framework="numpy") as fh:
        return tuple(fh.keys())


def test_wrong_hash_names_the_file_and_how_to_restore_it(weights_copy: Path) -> None:
    path = weights_copy / ASSET
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptedWeightsError) as info:
        load_arrays(ASSET, _required())
    message = str(info.value)
    assert str(path) in message and "sha256" in message
    assert "git checkout -- weights/" in message and "RECON3D_WEIGHTS" in message


def test_truncated_weights_names_the_file_and_how_to_restore_it(weights_copy: Path) -> None:
    path = weights_copy / ASSET
    path.write_bytes(path.read_bytes()[: 1 << 20])
    with pytest.raises(CorruptedWeightsError, match="truncated") as info:
        load_arrays(ASSET, _required())
    assert str(path) in str(info.value) and "git checkout -- weights/" in str(info.value)


def _rewrite_asset(folder: Path, change) -> None:
    """Rewrite the asset with ``change(arrays)`` applied and re-register it in the manifest, as a
    tampered-but-consistent supply chain would."""
    from safetensors.numpy import save_file

    arrays, metadata = read_safetensors(folder / ASSET)
    change(arrays)
    save_file(arrays, str(folder / ASSET), metadata=metadata)
    register_file(folder / ASSET, command="test", seed=None, data="test", metrics={}, licence="")


def test_safetensors_with_a_missing_tensor(weights_copy: Path) -> None:
    _rewrite_asset(weights_copy, lambda a: a.pop("identity_basis"))
    verified_path(ASSET)  # the hash matches the (re-registered) manifest...
    with pytest.raises(CorruptedWeightsError, match=r"lacks tensors \['identity_basis'\]"):
        load_arrays(ASSET, _required())  # ...but the content is not what the code needs


def test_safetensors_with_an_extra_tensor(weights_copy: Path) -> None:
    _rewrite_asset(weights_copy, lambda a: a.update(payload=np.zeros(10, np.float32)))
    with pytest.raises(CorruptedWeightsError, match=r"unexpected tensors \['payload'\]"):
        load_arrays(ASSET, _required())
    arrays, _ = load_arrays(ASSET, _required(), optional=("payload",))
    assert "payload" in arrays


_ZEROS = "0" * 64


@pytest.mark.parametrize(
    ("text", "error", "match"),
    [
        ("[" * 100_000, CorruptedWeightsError, "not valid JSON"),
        (
            '{"files": {"a": {"sha256": "0", "size": ' + "9" * 5000 + "}}}",
            CorruptedWeightsError,
            "JSON",
        ),
        ("\ufeff{}", CorruptedWeightsError, "JSON"),
        ('{"files": []}', CorruptedWeightsError, "must hold"),
        (
            '{"files": {"../../etc/passwd": {"sha256": "' + "0" * 64 + '"}}}',
            CorruptedWeightsError,
            "plain",
        ),
        ('{"files": {"a": {"sha256": "zz"}}}', CorruptedWeightsError, "64 hex"),
        (
            '{"files": {"a": {"sha256": "' + "0" * 64 + '", "size": -1}}}',
            CorruptedWeightsError,
            "size",
        ),
    ],
)
def test_hostile_manifests(weights_copy: Path, text: str, error, match: str) -> None:
    (weights_copy / "manifest.json").write_text(text, encoding="utf-8")
    with pytest.raises(error, match=match):
        load_arrays(ASSET, _required())


def test_unreadable_manifest_and_weights(weights_copy: Path, monkeypatch) -> None:
    import builtins

    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file).startswith(str(weights_copy)):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(MissingWeightsError, match="cannot be read"):
        verified_path(ASSET)


def test_oversized_manifest(weights_copy: Path, monkeypatch) -> None:
    import recon3d.weights as weights_mod

    monkeypatch.setattr(weights_mod, "MAX_MANIFEST_BYTES", 100)
    with pytest.raises(CorruptedWeightsError, match="larger than 100 bytes"):
        read_manifest(weights_copy)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600) | st.text(max_size=300).map(str.encode))
def test_arbitrary_manifest_bytes_raise_only_weights_errors(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "manifest.json").write_bytes(data)
        try:
            verified_path(ASSET, Path(tmp))
        except WeightsError:
            return
    raise AssertionError("an arbitrary manifest verified a file that is not there")


_ST_HEADER = json.dumps(
    {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": {"k": "v"}}
).encode()
_ST_VALID = struct.pack("<Q", len(_ST_HEADER)) + _ST_HEADER + bytes(16)


@settings(max_examples=200, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(_ST_VALID) - 1), st.integers(0, 255)), max_size=6),
    cut=st.integers(0, len(_ST_VALID)),
)
def test_corrupted_safetensors_raise_only_corrupted_weights_error(edits, cut) -> None:
    data = bytearray(_ST_VALID)
    for where, value in edits:
        data[where] = value
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.safetensors"
        path.write_bytes(bytes(data[:cut]))
        try:
            arrays, _ = read_safetensors(path, ("a",))
        except CorruptedWeightsError:
            return
        assert set(arrays) == {"a"}


def test_no_pickle_in_the_library_source() -> None:
    """Static half of "no pickle is ever loaded" (the run-time half is the subprocess test).

    The one documented exception is training-only code (``recon3d/train/``, never imported by the
    library): ``torch.load(..., weights_only=True)`` of the hash-checked MobileNetV2 ``.pth``."""
    pattern = re.compile(r"\bpickle\b|torch\.load\b|allow_pickle\s*=\s*True|joblib|dill\b")
    hits = []
    for path in (REPO / "recon3d").rglob("*.py"):
        training = path.relative_to(REPO).parts[:2] == ("recon3d", "train")
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not pattern.search(line) or line.lstrip().startswith("#"):
                continue
            if training and re.search(r"torch\.load\(.*weights_only=True", line):
                continue
            code = r"torch\.load\b|allow_pickle|joblib|dill\b|import pickle|pickle\.\w"
            if training and not re.search(code, line):
                continue  # prose ("no pickle code runs"), not a call
            hits.append(f"{path.relative_to(REPO)}:{i}")
    assert hits == []


# --------------------------------------------------------------------------------------------
# Mocap files (DeepMimic JSON, recon3d.io.mocap.load_deepmimic): only PoseFileError


def _mocap():
    try:
        from recon3d.io import mocap
    except ImportError:  # before the move out of recon3d.train
        from recon3d.train import mocap
    return mocap


def _mocap_frame(quaternion=(1.0, 0.0, 0.0, 0.0)) -> list[float]:
    frame = [1 / 30, 0.0, 0.9, 0.0, *quaternion]
    for joint in _mocap().JOINT_NAMES:
        frame += [0.3] if joint in _mocap().REVOLUTE else list(quaternion)
    return frame


def _load_mocap_bytes(folder: Path, data: bytes):
    path = folder / "clip.txt"
    path.write_bytes(data)
    return _mocap().load_deepmimic(path)


def _assert_clip_is_sane(clip) -> None:
    rotations = np.concatenate([clip.root_rotation[:, None], clip.joint_rotations], axis=1)
    assert np.all(np.isfinite(rotations)) and np.all(np.isfinite(clip.root_position))
    eye = np.broadcast_to(np.eye(3), rotations.shape)
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), eye, atol=1e-9)
    assert np.isfinite(clip.fps) and clip.fps > 0


_LENGTH = 44  # recon3d.io.mocap.FRAME_LENGTH; checked in the test below


def test_hostile_mocap_files_raise_pose_file_error(tmp_path: Path) -> None:
    """Found by this test and fixed in recon3d/io/mocap.py: deep nesting (RecursionError), an
    integer past the float range (OverflowError), a 5000-digit integer (ValueError) and
    /dev/zero or a FIFO (endless read / blocking open) escaped or hung."""
    from recon3d.errors import PoseFileError

    mocap = _mocap()
    assert mocap.FRAME_LENGTH == _LENGTH == len(_mocap_frame())
    frame_text = ", ".join(["0"] * (_LENGTH - 1))
    cases = {
        "nested brackets": b"[" * 100_000,
        "nested frames": b'{"Frames": ' + b"[" * 100_000,
        "int past float range": b'{"Frames": [[1'
        + b"0" * 400
        + b", "
        + frame_text.encode()
        + b"]]}",
        "5000-digit int": b'{"Frames": [[' + b"1" * 5000 + b"]]}",
        "NaN literal": b'{"Frames": [[NaN, ' + frame_text.encode() + b"]]}",
        "Infinity literal": b'{"Frames": [[Infinity, ' + frame_text.encode() + b"]]}",
        "BOM": "\ufeff".encode() + json.dumps({"Frames": [_mocap_frame()]}).encode(),
        "UTF-16": json.dumps({"Frames": [_mocap_frame()]}).encode("utf-16"),
        "not UTF-8": b'{"Loop": "\xff\xfe", "Frames": []}',
        "empty": b"",
        "zero quaternion": json.dumps({"Frames": [_mocap_frame((0.0, 0.0, 0.0, 0.0))]}).encode(),
        "tiny quaternion": json.dumps({"Frames": [_mocap_frame((1e-9, 0.0, 0.0, 0.0))]}).encode(),
        "huge quaternion": json.dumps({"Frames": [_mocap_frame((1e300, 1e300, 0, 0))]}).encode(),
        "frame too short": json.dumps({"Frames": [_mocap_frame()[:-1]]}).encode(),
        "ragged frames": json.dumps({"Frames": [_mocap_frame(), _mocap_frame()[:20]]}).encode(),
        "booleans": json.dumps({"Frames": [[True] * _LENGTH]}).encode(),
        "frames is a dict": json.dumps({"Frames": {"0": _mocap_frame()}}).encode(),
    }
    for label, data in cases.items():
        with pytest.raises(PoseFileError):
            _load_mocap_bytes(tmp_path, data)
            pytest.fail(label)

    # Over the size limit: a sparse file, refused from its size without reading it.
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(mocap.MAX_FILE_BYTES + 1)
    with pytest.raises(PoseFileError, match="limit"):
        mocap.load_deepmimic(big)
    # Not regular files: a folder, /dev/zero (endless) and a FIFO (open() would block).
    fifo = tmp_path / "clip.fifo"
    os.mkfifo(fifo)

    def load(p: Path, outcome: list) -> None:
        try:
            mocap.load_deepmimic(p)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    for path in (tmp_path, Path("/dev/zero"), fifo):
        outcome: list[BaseException | None] = []
        worker = threading.Thread(target=load, args=(path, outcome), daemon=True)
        worker.start()
        worker.join(20)
        assert outcome and isinstance(outcome[0], PoseFileError), (path, outcome)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_mocap_bytes_raise_only_pose_file_error(data: bytes) -> None:
    from recon3d.errors import PoseFileError

    with tempfile.TemporaryDirectory() as folder:
        try:
            clip = _load_mocap_bytes(Path(folder), data)
        except PoseFileError:
            return
    _assert_clip_is_sane(clip)


_quaternion = st.tuples(*[st.floats(-1e6, 1e6, allow_nan=False)] * 4)


@settings(max_examples=100, deadline=None)
@given(
    quaternions=st.lists(_quaternion, min_size=1, max_size=3),
    nonfinite=st.sampled_from([None, float("nan"), float("inf"), -float("inf")]),
    where=st.integers(0, _LENGTH - 1),
    extra=st.integers(-2, 2),
)
def test_mocap_quaternions_and_frame_lengths(quaternions, nonfinite, where, extra) -> None:
    """Non-unit quaternions (any scale, up to the 1e6 value limit) load as exact rotations; a
    NaN or infinity anywhere, or a frame one or two values off, is a PoseFileError."""
    from recon3d.errors import PoseFileError

    frames = [_mocap_frame(q) for q in quaternions]
    if nonfinite is not None:
        frames[0][where] = nonfinite
    if extra > 0:
        frames[-1] += [0.0] * extra
    elif extra < 0:
        frames[-1] = frames[-1][:extra]
    text = json.dumps({"Loop": "wrap", "Frames": frames}).encode()  # NaN -> "NaN" literal
    tiny = any(np.linalg.norm(q) < 1e-6 for q in quaternions)
    with tempfile.TemporaryDirectory() as folder:
        if nonfinite is not None or extra != 0 or tiny:
            with pytest.raises(PoseFileError):
                _load_mocap_bytes(Path(folder), text)
            return
        clip = _load_mocap_bytes(Path(folder), text)
    assert clip.num_frames == len(quaternions)
    _assert_clip_is_sane(clip)


# --------------------------------------------------------------------------------------------
# Videos (recon3d.io.video.read_video and the driving loader): typed errors, nothing written


def _y4m(width: int, height: int, frames: int = 1, frame_bytes: int | None = None) -> bytes:
    """An uncompressed YUV4MPEG2 stream: the frame size is plain text in its header."""
    header = f"YUV4MPEG2 W{width} H{height} F30:1 Ip A1:1 C420jpeg\n".encode()
    if frames == 0:
        return header
    size = width * height * 3 // 2 if frame_bytes is None else frame_bytes
    return header + (b"FRAME\n" + bytes(size)) * frames


def _hostile_videos() -> dict[str, tuple[bytes, type[Recon3dError]]]:
    carphone = (DATA / "carphone.mp4").read_bytes()
    gif_bomb = (
        b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00"
        b"\x2c" + struct.pack("<HHHH", 0, 0, 65535, 65535) + b"\x00\x02\x02\x44\x01\x00\x3b"
    )
    return {
        "zero bytes.mp4": (b"", InvalidImageError),
        "text.mp4": (b"just some text, not a video\n" * 50, InvalidImageError),
        "cut at 1%.mp4": (carphone[: len(carphone) // 100], InvalidImageError),
        "cut at 50%.mp4": (carphone[: len(carphone) // 2], InvalidImageError),
        "ftyp only.mp4": (b"\x00\x00\x00\x20ftypisom" + bytes(2000), InvalidImageError),
        # Declared frame sizes: refused from the header, before any frame is decoded.
        "5000x5000 y4m.mp4": (_y4m(5000, 5000, 0) + b"FRAME\n", ImageTooLargeError),
        "60000x60000 y4m.mp4": (_y4m(60000, 60000, 0) + b"FRAME\n", InvalidImageError),
        "65535x65535 gif.gif": (gif_bomb, InvalidImageError),
        "60000x60000 png.mp4": (png_header_only(60_000, 60_000), InvalidImageError),
        "frame cut short y4m.mp4": (_y4m(640, 480, 2, frame_bytes=1000), InvalidImageError),
    }


def test_hostile_videos_raise_typed_errors_and_write_nothing(tmp_path: Path) -> None:
    from recon3d.io.video import read_video, video_info
    from recon3d.reenact.poses import load_driving

    cwd_before = sorted(os.listdir("."))
    for name, (data, error) in _hostile_videos().items():
        path = tmp_path / name
        path.write_bytes(data)
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(error):
            frames, _ = read_video(path)
            for _ in frames:
                pass
            pytest.fail(f"{name} decoded")
        if error is ImageTooLargeError:
            with pytest.raises(ImageTooLargeError):
                video_info(path)
        with pytest.raises(error):
            load_driving(path, progress=False)
            pytest.fail(f"{name} gave driving poses")
        assert sorted(os.listdir(tmp_path)) == before, name
    assert sorted(os.listdir(".")) == cwd_before

    # Not regular files: a folder, /dev/zero (endless) and a FIFO (opening it would block).
    fifo = tmp_path / "clip.mp4.fifo"
    os.mkfifo(fifo)

    def load(p: Path, outcome: list) -> None:
        try:
            frames, _ = read_video(p)
            list(frames)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - checked below
            outcome.append(exc)

    for path in (tmp_path, Path("/dev/zero"), fifo):
        outcome: list[BaseException | None] = []
        worker = threading.Thread(target=load, args=(path, outcome), daemon=True)
        worker.start()
        worker.join(20)
        assert outcome and isinstance(outcome[0], InvalidImageError), (path, outcome)


def test_video_with_a_polyglot_tail_decodes_like_the_clean_file(tmp_path: Path) -> None:
    from recon3d.io.video import read_video

    clean = (DATA / "carphone.mp4").read_bytes()
    path = tmp_path / "tail.mp4"
    path.write_bytes(clean + b"PK\x03\x04" + bytes(200) + b"<?php echo 1; ?>")
    frames, fps = read_video(path, max_frames=5)
    reference, fps_ref = read_video(DATA / "carphone.mp4", max_frames=5)
    for a, b in zip(frames, reference, strict=True):
        assert np.array_equal(a, b)
    assert fps == fps_ref


# --------------------------------------------------------------------------------------------
# Body pipeline: hostile inputs and person_index

BODY_PHOTO = "obama3.jpg"


def _body_hostile_inputs(folder: Path) -> dict[str, tuple[object, type[Recon3dError]]]:
    """Label -> (input, the one error class it must raise), files written into ``folder``."""
    photo = (DATA / BODY_PHOTO).read_bytes()
    cases: dict[str, tuple[object, type[Recon3dError]]] = {
        "blank array": (np.full((480, 360, 3), 128, np.uint8), NoPersonFound),
        "black array": (np.zeros((480, 360, 3), np.uint8), NoPersonFound),
        "noise array": (np.asarray(_noise(256, seed=3)), NoPersonFound),
        "1x1 array": (np.zeros((1, 1, 3), np.uint8), InvalidImageError),
        "8x8 array": (np.full((8, 8, 3), 200, np.uint8), InvalidImageError),
        "31x400 array": (np.full((400, 31, 3), 200, np.uint8), InvalidImageError),
        "bomb bytes": (png_header_only(60_000, 60_000), ImageTooLargeError),
    }
    files = {
        "blank.png": (_encode(Image.new("RGB", (360, 480), (128, 128, 128)), "PNG"), NoPersonFound),
        "tiny.png": (_encode(Image.new("RGB", (4, 4)), "PNG"), InvalidImageError),
        "bomb.png": (png_header_only(60_000, 60_000), ImageTooLargeError),
        "bomb.jpg": (_bomb("JPEG"), ImageTooLargeError),
        "empty.jpg": (b"", InvalidImageError),
    }
    for keep in (0.1, 0.5, 0.9):
        files[f"cut{int(keep * 100)}.jpg"] = (photo[: int(len(photo) * keep)], InvalidImageError)
    for name, (data, error) in files.items():
        (folder / name).write_bytes(data)
        cases[name] = (folder / name, error)
    return cases


def test_body_target_on_hostile_inputs_raises_typed_errors_and_writes_nothing(
    tmp_path: Path, monkeypatch
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    cases = _body_hostile_inputs(inputs)
    before = sorted(p.name for p in inputs.iterdir())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for label, (image, error) in cases.items():
        with pytest.raises(Recon3dError) as info:
            reconstruct(image, target="body")
        assert type(info.value) is error, (label, info.value)
    assert sorted(p.name for p in inputs.iterdir()) == before
    assert list(cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("photo", "index"),
    [(BODY_PHOTO, -1), (BODY_PHOTO, 1), (BODY_PHOTO, 5), ("group_sample1.jpg", -1)]
    + [("group_sample1.jpg", 3), ("group_sample1.jpg", 1_000_000)],
)
def test_body_person_index_out_of_range_is_no_person_found(photo: str, index: int) -> None:
    with pytest.raises(NoPersonFound, match=rf"person_index={index}\b"):
        reconstruct(DATA / photo, target="body", person_index=index)


@pytest.fixture(scope="module")
def body_rec():
    return reconstruct(DATA / BODY_PHOTO, target="body")


@pytest.mark.slow  # two body reconstructions, ~12 s on the 2-core machine
def test_body_reconstruction_is_bit_identical(body_rec, tmp_path: Path) -> None:
    again = reconstruct(DATA / BODY_PHOTO, target="body")
    assert body_rec.target == again.target == "body"
    _assert_same(body_rec, again, BODY_PHOTO)
    assert np.array_equal(body_rec.skeleton.joints, again.skeleton.joints)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = body_rec.export(tmp_path / "a" / "body.glb")
    second = again.export(tmp_path / "b" / "body.glb")  # the GLB names its texture by the stem
    assert first[0].read_bytes() == second[0].read_bytes()


@pytest.mark.slow  # three body reconstructions (~9 s for the two threads)
def test_body_reconstruction_from_two_threads_matches_serial(body_rec) -> None:
    serial = {BODY_PHOTO: body_rec, "biden.jpg": reconstruct(DATA / "biden.jpg", target="body")}
    photos = [BODY_PHOTO, "biden.jpg"]
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            results[i] = reconstruct(DATA / photos[i], target="body")
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r for r in results.values() if isinstance(r, BaseException)] == []
    for i, name in enumerate(photos):
        assert results[i].target == "body", name
        _assert_same(results[i], serial[name], name)


# --------------------------------------------------------------------------------------------
# No network, no pickle: a fresh process with sockets and unpicklers disabled

_OFFLINE_SCRIPT = r"""
import pickle, socket, sys, io
def blocked(*args, **kwargs):
    raise RuntimeError(f"network access attempted: {args[:2]}")
class BlockedSocket(socket.socket):  # a class, so that ssl.SSLSocket can still subclass it
    def __init__(self, *args, **kwargs):
        blocked(*args)
socket.socket = BlockedSocket
socket.create_connection = blocked
socket.getaddrinfo = blocked
socket.socketpair = blocked
def no_pickle(*args, **kwargs):
    raise RuntimeError("pickle used")
pickle.load = pickle.loads = no_pickle
class NoUnpickler:
    def __init__(self, *a, **k):
        raise RuntimeError("pickle.Unpickler used")
pickle.Unpickler = NoUnpickler
import numpy as np
real_np_load = np.load
def np_load(*args, allow_pickle=False, **kwargs):
    if allow_pickle:
        raise RuntimeError("np.load(allow_pickle=True) used")
    return real_np_load(*args, allow_pickle=False, **kwargs)
np.load = np_load
import torch
torch.load = no_pickle
from pathlib import Path
from recon3d import reconstruct
out = Path(sys.argv[2])
target = sys.argv[3]
rec = reconstruct(sys.argv[1], target=target)
assert rec.target == target
for ext in (".obj", ".glb", ".ply") if target == "head" else (".glb",):
    rec.export(out / f"{target}{ext}")
assert rec.render(yaw=90, size=64).shape == (64, 64, 3)
print("OFFLINE OK", sorted(p.name for p in out.iterdir()))
"""


def _run_offline(photo: str, target: str, out: Path) -> set[str]:
    env = {**os.environ, "PYOPENGL_PLATFORM": os.environ.get("PYOPENGL_PLATFORM", "egl")}
    proc = subprocess.run(
        [sys.executable, "-c", _OFFLINE_SCRIPT, str(DATA / photo), str(out), target],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OFFLINE OK" in proc.stdout
    return {p.name for p in out.iterdir()}


def test_full_pipeline_without_network_or_pickle(tmp_path: Path) -> None:
    names = _run_offline("obama.jpg", "head", tmp_path)
    assert names == {"head.obj", "head.mtl", "head.png", "head.glb", "head.ply"}


@pytest.mark.slow  # ~14 s: a fresh interpreter, MediaPipe's pose graph and a body fit
def test_body_pipeline_without_network_or_pickle(tmp_path: Path) -> None:
    assert _run_offline(BODY_PHOTO, "body", tmp_path) == {"body.glb"}
    body = trimesh.load(tmp_path / "body.glb", force="mesh", process=False)
    assert len(body.vertices) > 5000 and np.isfinite(body.vertices).all()
    assert body.visual.material.baseColorTexture.size == (2048, 2048)


# --------------------------------------------------------------------------------------------
# Threads and the batch API

THREAD_PHOTOS = ("grace_hopper.jpg", "obama.jpg", "astronaut.png")


def _assert_same(a, b, label: str) -> None:
    assert np.array_equal(a.vertices, b.vertices), label
    assert np.array_equal(a.texture, b.texture), label
    assert np.array_equal(a.texture_confidence, b.texture_confidence), label


@pytest.mark.slow  # ~13 s on the 2-core machine: four full reconstructions contend
def test_reconstruct_from_four_threads_matches_serial(head_reconstructions, grace) -> None:
    # Render once here first, as any program that used recon3d before starting threads would
    # (the renderer must release its context after every render for the threads to render).
    grace.render(size=16)
    photos = [*THREAD_PHOTOS, "grace_hopper.jpg"]
    blas = recon3d._threads.loaded_openblas()
    blas_before = [get() for get, _ in blas]
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            results[i] = reconstruct(DATA / photos[i], target="head")
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results.values() if isinstance(r, BaseException)]
    assert errors == []
    for i, name in enumerate(photos):
        _assert_same(results[i], head_reconstructions[name], name)
    # The fits ran with OpenBLAS on one thread; the process-wide setting is back afterwards.
    assert [get() for get, _ in blas] == blas_before


def _synthetic_landmarks(model, seed: int, K: np.ndarray):
    """MediaPipe-like (478, 3) landmarks of a random head 0.8 m in front of the camera."""
    import torch

    from recon3d.keypoints.base import FaceLandmarks
    from recon3d.models.head import interpolate_surface

    rng = np.random.default_rng(seed)
    identity = torch.from_numpy(rng.normal(0, 1, model.num_identity).astype(np.float32))
    expression = torch.zeros(model.num_expression)
    expression[model.expression_labels.index("jawOpen")] = float(rng.uniform(0, 0.4))
    with torch.no_grad():
        verts = model.vertices(identity[None], expression[None])[0].numpy()
    cam = verts + np.array([rng.uniform(-0.05, 0.05), 0.1, 0.8])
    pts = interpolate_surface(cam, model.faces, model.landmarks["mediapipe478"])
    uv = pts[:, :2] / pts[:, 2:] * (K[0, 0], K[1, 1]) + (K[0, 2], K[1, 2])
    z_px = (pts[:, 2] - pts[:, 2].mean()) * K[0, 0] / pts[:, 2].mean()
    box = np.r_[uv.min(0), uv.max(0)].astype(np.float32)
    return FaceLandmarks(points=np.c_[uv, z_px].astype(np.float32), box=box, score=1.0)


def test_head_fit_from_four_threads_is_bit_identical_with_blas_on_one_thread(monkeypatch) -> None:
    """Plain fits from 4 user threads (what ``reconstruct()`` from your own threads does): each
    runs with OpenBLAS on one thread (no contention for its pool), gives bit-for-bit the serial
    result whatever the process-wide OpenBLAS setting, and the setting comes back afterwards."""
    import recon3d.fitting.head_fit as head_fit
    from recon3d._threads import loaded_openblas
    from recon3d.camera import Camera
    from recon3d.models.head import HeadModel

    model = HeadModel.from_pretrained()
    K = Camera.from_image_size(640, 640).K
    faces = [_synthetic_landmarks(model, seed, K) for seed in range(4)]
    blas = loaded_openblas()
    before = [get() for get, _ in blas]
    seen: list[list[int]] = []
    inner = head_fit._fit_head

    def spy(*args, **kwargs):
        seen.append([get() for get, _ in blas])
        return inner(*args, **kwargs)

    monkeypatch.setattr(head_fit, "_fit_head", spy)

    def same(a, b) -> bool:
        return all(
            np.array_equal(getattr(a, k), getattr(b, k))
            for k in ("identity", "expression", "rotation", "translation")
        )

    serial = [head_fit.fit_head(model, f, K) for f in faces]
    for fit in serial:  # BVLS results are clipped: the bounds hold exactly
        assert fit.expression.min() >= 0 and fit.expression.max() <= 1
    # The result does not depend on the thread count OpenBLAS had before the call (it did: QR
    # on 1 and on 2 threads differs in the last bits, and one fit left its bounds by 5e-20).
    for _, set_ in blas:
        set_(2)
    try:
        assert same(head_fit.fit_head(model, faces[0], K), serial[0])
    finally:
        for (_, set_), count in zip(blas, before, strict=True):
            set_(count)

    barrier = threading.Barrier(4, timeout=60)
    results: dict[int, object] = {}

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = head_fit.fit_head(model, faces[i], K)
        except BaseException as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [type(results[i]).__name__ for i in range(4)] == ["HeadFit"] * 4
    assert all(same(results[i], serial[i]) for i in range(4))
    assert seen == [[1] * len(blas)] * len(seen) and len(seen) == 9
    assert [get() for get, _ in blas] == before
    if sys.platform == "linux":
        assert blas, "NumPy's OpenBLAS was not found in /proc/self/maps"


def test_reconstruct_many_with_four_workers_matches_serial(head_reconstructions, tmp_path) -> None:
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a photo")
    inputs = [DATA / n for n in THREAD_PHOTOS] + [junk, DATA / "grace_hopper.jpg"]
    seen = []
    result = reconstruct_many(inputs, workers=4, target="head", on_result=seen.append)
    assert isinstance(result, recon3d.batch.BatchResult) and len(result) == 5 and len(seen) == 5
    assert [s.index for s in result.successes] == [0, 1, 2, 4]
    for success in result.successes:
        name = Path(success.source).name
        _assert_same(success.reconstruction, head_reconstructions[name], name)
    (failure,) = result.failures
    assert failure.source == str(junk) and failure.error_type == "InvalidImageError"
    assert failure.expected and not result.ok
    assert "FAILED" in result.summary() and str(junk) in result.summary()


def test_reconstruct_many_workers_overlap_with_single_threaded_blas(monkeypatch) -> None:
    """workers=2 runs two calls at once (no batch-wide lock), with OpenBLAS on one thread
    meanwhile and its previous thread counts back afterwards."""
    import recon3d.pipeline

    blas = recon3d._threads.loaded_openblas()
    before = [get() for get, _ in blas]
    barrier = threading.Barrier(2, timeout=20)  # breaks if the two calls cannot overlap
    seen: list[list[int]] = []

    def fake_reconstruct(image, **kwargs):
        barrier.wait()
        seen.append([get() for get, _ in blas])
        return image

    monkeypatch.setattr(recon3d.pipeline, "reconstruct", fake_reconstruct)
    result = reconstruct_many(["a", "b", "c", "d"], workers=2)
    assert result.ok, result.summary()
    assert [s.reconstruction for s in result.successes] == ["a", "b", "c", "d"]
    assert seen == [[1] * len(blas)] * 4
    assert [get() for get, _ in blas] == before
    if sys.platform == "linux":
        assert blas, "NumPy's OpenBLAS was not found in /proc/self/maps"


def test_reconstruct_many_arguments(tmp_path) -> None:
    with pytest.raises(ValueError, match="workers"):
        reconstruct_many([], workers=0)
    with pytest.raises(ExportError, match="format"):
        reconstruct_many([], format=".stl")
    with pytest.raises(ExportError, match="does not exist"):
        reconstruct_many([], output_dir=tmp_path / "missing")
    empty = reconstruct_many([])
    assert empty.ok and len(empty) == 0
    names = recon3d.batch.output_names(["a/x.jpg", "b/x.png", "c/X.jpg", "y.png", b"..", "z"])
    assert len(set(n.lower() for n in names)) == len(names)
    assert names[3] == "y" and names[4] == "item0004" and names[5] == "z"


def test_cli_batch_keeps_going_and_reports_bad_files(data_dir, tmp_path, capsys) -> None:
    from recon3d.cli import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "anna.jpg").write_bytes((data_dir / "obama.jpg").read_bytes())
    (src / "broken.jpg").write_bytes((data_dir / "obama.jpg").read_bytes()[:5000])
    (src / "notes.txt").write_text("not an image")
    (src / "bomb.png").write_bytes(png_header_only(60_000, 60_000))
    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(src / "blank.png")
    (src / ".hidden.jpg").write_bytes(b"ignored")
    (src / "sub").mkdir()
    out = tmp_path / "out"
    code = main(["batch", str(src), "-o", str(out), "--format", "glb"])
    captured = capsys.readouterr()
    assert code == 3  # some inputs unusable, nothing else wrong
    assert sorted(p.name for p in out.iterdir()) == ["anna.glb"]
    report = captured.err
    assert "1 of 5 reconstructed, 4 failed" in report
    for name, error in [
        ("broken.jpg", "InvalidImageError"),
        ("notes.txt", "InvalidImageError"),
        ("bomb.png", "ImageTooLargeError"),
        ("blank.png", "NoFaceFound"),
    ]:
        assert re.search(rf"FAILED .*{re.escape(name)}: {error}", report), name
    # Usage errors: no such input folder, no files, output parent missing.
    assert main(["batch", str(tmp_path / "nope"), "-o", str(out)]) == 2
    assert main(["batch", str(src / "sub"), "-o", str(out)]) == 2
    assert main(["batch", str(src), "-o", str(tmp_path / "a" / "b")]) == 4


# --------------------------------------------------------------------------------------------
# Determinism of the written files


def test_exported_files_are_bit_identical(grace, data_dir, tmp_path) -> None:
    again = reconstruct(data_dir / "grace_hopper.jpg", target="head")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for ext in (".obj", ".glb", ".ply"):
        first = grace.export(tmp_path / "a" / f"head{ext}")
        second = again.export(tmp_path / "b" / f"head{ext}")
        for p, q in zip(first, second, strict=True):
            assert p.name == q.name and p.read_bytes() == q.read_bytes(), p.name


# --------------------------------------------------------------------------------------------
# Dependencies


def _runtime_requirements() -> list[str]:
    import tomllib

    with open(REPO / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["dependencies"]


def test_installed_versions_satisfy_the_pinned_bounds() -> None:
    from importlib.metadata import version

    from packaging.requirements import Requirement

    for line in _runtime_requirements():
        req = Requirement(line)
        assert req.specifier, f"{req.name} has no version bounds"
        bounds = {s.operator for s in req.specifier}
        assert "==" in bounds or ({">=", "<"} <= bounds), (
            f"{req.name}: need a lower and upper bound"
        )
        installed = version(req.name)
        assert req.specifier.contains(installed, prereleases=True), (req.name, installed)


def _dependency_closure() -> set[str]:
    from importlib.metadata import PackageNotFoundError, requires

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    todo = [Requirement(r).name for r in _runtime_requirements()]
    seen: set[str] = set()
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for r in reqs:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_licence_table_lists_every_runtime_dependency_and_asset() -> None:
    from packaging.utils import canonicalize_name

    text = (REPO / "docs" / "licences.md").read_text(encoding="utf-8")
    listed = {canonicalize_name(m) for m in re.findall(r"^\| `([^`]+)` \|", text, re.M)}
    missing = sorted(_dependency_closure() - listed)
    assert missing == [], f"docs/licences.md lacks {missing}"
    for name in read_manifest()["files"]:
        assert f"weights/{name}" in text
    readme = (DATA / "README.md").read_text(encoding="utf-8")
    photos = re.findall(r"^\| `([^`]+\.(?:jpg|png))` \|", readme, re.M)
    assert len(photos) >= 5
    for photo in photos:
        assert f"tests/data/{photo}" in text, photo


def test_pip_check_reports_only_the_documented_pyrender_pin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120
    )
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    unexpected = [
        line
        for line in lines
        if not re.fullmatch(
            r"pyrender 0\.1\.45 has requirement PyOpenGL==3\.1\.0, but you have "
            r"pyopengl 3\.1\.(\d+)\.",
            line,
        )
    ]
    assert unexpected == [], proc.stdout
