"""Tests for recon3d.exchange: round trips through trimesh, atomicity, error reporting."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from helpers import glb_json
from PIL import Image
from scipy.spatial.transform import Rotation

from recon3d.errors import ExportError
from recon3d.exchange import SUPPORTED_EXTENSIONS, export_mesh
from recon3d.exchange import atomic as atomic_mod
from recon3d.exchange import glb as glb_mod
from recon3d.exchange.glb import OPENCV_TO_GLTF, export_glb
from recon3d.skeleton import Skeleton

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
NPM_PREFIX = REPO_ROOT / ".cache" / "npm"
TEX_SIZE = 64
FLIP = np.diag(OPENCV_TO_GLTF)  # (3,) per-axis sign of the glTF frame change


def _gradient_image() -> Image.Image:
    """(64, 64) RGB image, asymmetric in x and y so any flip of the texture shows up."""
    ys, xs = np.mgrid[0:TEX_SIZE, 0:TEX_SIZE]
    rgb = np.stack([xs * 4, ys * 4, 255 - (xs + ys) * 2], axis=-1).astype(np.uint8)
    return Image.fromarray(rgb, mode="RGB")


def _spherical_uv(vertices: np.ndarray) -> np.ndarray:
    """(V, 3) points on the unit sphere -> (V, 2) longitude/latitude UVs in [0, 1]."""
    u = 0.5 + np.arctan2(vertices[:, 1], vertices[:, 0]) / (2 * np.pi)
    v = 0.5 + np.arcsin(np.clip(vertices[:, 2], -1.0, 1.0)) / np.pi
    return np.column_stack([u, v])


@pytest.fixture
def mesh() -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=2)
    sphere.visual = trimesh.visual.TextureVisuals(
        uv=_spherical_uv(sphere.vertices), image=_gradient_image()
    )
    return sphere


def _texture_pixels(loaded: trimesh.Trimesh) -> np.ndarray:
    material = loaded.visual.material
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    assert image is not None, "the loaded mesh has no texture image"
    return np.asarray(image.convert("RGB"))


def _assert_no_leftovers(folder: Path, expected: set[str] = frozenset()) -> None:
    """The folder holds exactly ``expected``: no result file and no temporary file."""
    assert set(os.listdir(folder)) == set(expected)


# --------------------------------------------------------------------------- round trips


def test_supported_extensions() -> None:
    assert SUPPORTED_EXTENSIONS == (".obj", ".glb", ".ply")


def test_obj_round_trip(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    written = export_mesh(mesh, tmp_path / "head.obj")

    assert [p.name for p in written] == ["head.obj", "head.mtl", "head.png"]
    assert all(p.is_absolute() and p.parent == tmp_path for p in written)
    _assert_no_leftovers(tmp_path, {"head.obj", "head.mtl", "head.png"})

    obj_text = (tmp_path / "head.obj").read_text()
    mtl_text = (tmp_path / "head.mtl").read_text()
    assert "mtllib head.mtl" in obj_text.splitlines()
    assert "map_Kd head.png" in mtl_text.splitlines()
    # the material the OBJ uses is the one the MTL defines
    usemtl = next(line.split()[1] for line in obj_text.splitlines() if line.startswith("usemtl"))
    assert f"newmtl {usemtl}" in mtl_text.splitlines()
    assert any(line.startswith("vt ") for line in obj_text.splitlines())
    assert any(line.startswith("vn ") for line in obj_text.splitlines())
    # MTL multiplies the texture by Kd: it must be white, not trimesh's 0.4 default
    assert "Kd 1.00000000 1.00000000 1.00000000" in mtl_text.splitlines()

    loaded = trimesh.load(tmp_path / "head.obj", force="mesh")
    assert len(loaded.vertices) == len(mesh.vertices)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    assert loaded.visual.uv is not None
    np.testing.assert_allclose(loaded.visual.uv, mesh.visual.uv, atol=1e-6)
    pixels = _texture_pixels(loaded)
    assert pixels.shape == (TEX_SIZE, TEX_SIZE, 3)
    np.testing.assert_array_equal(pixels, np.asarray(mesh.visual.material.image))

    with Image.open(tmp_path / "head.png") as png:
        assert png.format == "PNG"
        np.testing.assert_array_equal(np.asarray(png), np.asarray(mesh.visual.material.image))


def _png_at(pixels: np.ndarray, level: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=level)
    return buffer.getvalue()


@pytest.mark.parametrize("ext", [".obj", ".glb"])
def test_texture_is_encoded_at_the_fast_png_level(
    mesh: trimesh.Trimesh, tmp_path: Path, ext: str
) -> None:
    """The written PNG is exactly Pillow's encoding at PNG_COMPRESS_LEVEL (not its default),
    and the caller's image keeps no encoder settings."""
    from recon3d.exchange._png import PNG_COMPRESS_LEVEL

    export_mesh(mesh, tmp_path / f"head{ext}")
    if ext == ".obj":
        written = (tmp_path / "head.png").read_bytes()
    else:
        gltf = _load(tmp_path / "head.glb")
        view = gltf.bufferViews[gltf.images[0].bufferView]
        blob = gltf.binary_blob()
        # trimesh pads the view to 4 bytes; a PNG ends with IEND's fixed, non-zero CRC.
        written = blob[view.byteOffset : view.byteOffset + view.byteLength].rstrip(b"\0")
    pixels = np.asarray(mesh.visual.material.image)
    assert written == _png_at(pixels, PNG_COMPRESS_LEVEL)
    assert written != _png_at(pixels, 6)
    assert not getattr(mesh.visual.material.image, "encoderinfo", {})


def test_obj_companions_follow_stem_with_spaces_and_upper_case(
    mesh: trimesh.Trimesh, tmp_path: Path
) -> None:
    written = export_mesh(mesh, str(tmp_path / "My Head.v2.OBJ"))

    assert [p.name for p in written] == ["My Head.v2.OBJ", "My Head.v2.mtl", "My Head.v2.png"]
    mtl_lines = (tmp_path / "My Head.v2.mtl").read_text().splitlines()
    assert "map_Kd My Head.v2.png" in mtl_lines
    # material names are single tokens in OBJ/MTL, file names are not
    newmtl = next(line for line in mtl_lines if line.startswith("newmtl"))
    assert len(newmtl.split()) == 2
    loaded = trimesh.load(tmp_path / "My Head.v2.OBJ", force="mesh")
    np.testing.assert_array_equal(_texture_pixels(loaded), np.asarray(mesh.visual.material.image))


def test_obj_texture_from_jpeg_is_written_as_png(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    # trimesh names the texture after image.format, so a JPEG-decoded texture would otherwise
    # come out as "<name>.jpeg"
    buffer = io.BytesIO()
    _gradient_image().save(buffer, format="JPEG")
    jpeg = Image.open(io.BytesIO(buffer.getvalue()))
    assert jpeg.format == "JPEG"
    mesh.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, image=jpeg)

    written = export_mesh(mesh, tmp_path / "head.obj")

    assert [p.name for p in written] == ["head.obj", "head.mtl", "head.png"]
    assert (tmp_path / "head.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(tmp_path / "head.png") as png:
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), np.asarray(jpeg))


def test_glb_round_trip(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    written = export_mesh(mesh, tmp_path / "head.glb")

    assert written == [tmp_path / "head.glb"]
    _assert_no_leftovers(tmp_path, {"head.glb"})
    loaded = trimesh.load(tmp_path / "head.glb", force="mesh")
    assert len(loaded.vertices) == len(mesh.vertices)
    # y and z flip from the OpenCV camera frame to glTF's y-up frame
    np.testing.assert_allclose(loaded.vertices, mesh.vertices * FLIP, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    np.testing.assert_allclose(loaded.visual.uv, mesh.visual.uv, atol=1e-6)
    pixels = _texture_pixels(loaded)
    assert pixels.shape == (TEX_SIZE, TEX_SIZE, 3)
    np.testing.assert_array_equal(pixels, np.asarray(mesh.visual.material.image))

    # a proper rotation keeps the winding: face and stored vertex normals still point out
    centers = loaded.triangles_center
    assert (np.einsum("ij,ij->i", loaded.face_normals, centers) > 0).all()
    gltf = glb_json(tmp_path / "head.glb")
    (primitive,) = gltf["meshes"][0]["primitives"]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(primitive["attributes"])
    np.testing.assert_allclose(loaded.vertex_normals, mesh.vertex_normals * FLIP, atol=1e-5)

    # texture must not be darkened (factor 0.4) nor rendered as metal (glTF default 1.0)
    pbr = gltf["materials"][0]["pbrMetallicRoughness"]
    assert pbr["baseColorFactor"] == [1.0, 1.0, 1.0, 1.0]
    assert pbr["metallicFactor"] == 0.0
    assert len(gltf["images"]) == 1 and "uri" not in gltf["images"][0]


def test_glb_without_frame_change_keeps_coordinates(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    export_glb(mesh, tmp_path / "camera.glb", to_gltf_frame=False)

    loaded = trimesh.load(tmp_path / "camera.glb", force="mesh")
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)


def test_ply_round_trip_has_texture_colours(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    written = export_mesh(mesh, tmp_path / "head.ply")

    assert written == [tmp_path / "head.ply"]
    _assert_no_leftovers(tmp_path, {"head.ply"})
    header = (tmp_path / "head.ply").read_bytes().split(b"end_header")[0].decode("ascii")
    assert "format binary_little_endian 1.0" in header
    for prop in ("red", "green", "blue", "nx"):
        assert f" {prop}" in header

    loaded = trimesh.load(tmp_path / "head.ply", force="mesh")
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(loaded.faces, mesh.faces)
    assert loaded.visual.kind == "vertex"
    # independent nearest-texel lookup (UV origin bottom-left); the exporter interpolates
    # bilinearly, which on this 4-levels-per-texel gradient differs by at most half a step
    uv = mesh.visual.uv
    cols = np.rint(uv[:, 0] * (TEX_SIZE - 1)).astype(int)
    rows = np.rint((1.0 - uv[:, 1]) * (TEX_SIZE - 1)).astype(int)
    expected = np.asarray(mesh.visual.material.image)[rows, cols]
    got = loaded.visual.vertex_colors[:, :3].astype(int)
    np.testing.assert_allclose(got, expected, atol=2)
    assert (loaded.visual.vertex_colors[:, 3] == 255).all()


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_export_leaves_the_mesh_untouched(mesh: trimesh.Trimesh, tmp_path: Path, ext: str) -> None:
    visual, material, image = mesh.visual, mesh.visual.material, mesh.visual.material.image
    vertices, uv = mesh.vertices.copy(), mesh.visual.uv.copy()
    material_name, diffuse = material.name, material.diffuse.copy()

    export_mesh(mesh, tmp_path / f"head{ext}")

    assert mesh.visual is visual and visual.mesh is mesh
    assert visual.material is material and material.image is image
    assert material.name == material_name
    np.testing.assert_array_equal(material.diffuse, diffuse)
    np.testing.assert_array_equal(mesh.vertices, vertices)
    np.testing.assert_array_equal(mesh.visual.uv, uv)
    assert len(mesh.vertex_attributes) == 0


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_untextured_mesh_exports(tmp_path: Path, ext: str) -> None:
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 10, 10, 255], (len(box.vertices), 1))

    written = export_mesh(box, tmp_path / f"box{ext}")

    assert written[0] == tmp_path / f"box{ext}"
    assert not (tmp_path / "box.png").exists()
    loaded = trimesh.load(written[0], force="mesh")
    assert len(loaded.faces) == len(box.faces)


def test_written_files_get_normal_permissions(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    # mkstemp makes 0600 files; the result must get the mode a plain open() would give
    umask = os.umask(0o022)
    os.umask(umask)
    for path in export_mesh(mesh, tmp_path / "head.obj"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_overwrites_existing_files(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    (tmp_path / "head.glb").write_bytes(b"old")
    export_mesh(mesh, tmp_path / "head.glb")
    assert (tmp_path / "head.glb").read_bytes()[:4] == b"glTF"
    _assert_no_leftovers(tmp_path, {"head.glb"})


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("name", ["head.stl", "head", "head.objx", "head.gltf"])
def test_unknown_extension(mesh: trimesh.Trimesh, tmp_path: Path, name: str) -> None:
    with pytest.raises(ExportError) as info:
        export_mesh(mesh, tmp_path / name)

    for ext in SUPPORTED_EXTENSIONS:
        assert ext in str(info.value)
    _assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_missing_folder(mesh: trimesh.Trimesh, tmp_path: Path, ext: str) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_mesh(mesh, tmp_path / "missing" / f"head{ext}")

    # the folder must not be created behind the caller's back
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_read_only_folder(mesh: trimesh.Trimesh, tmp_path: Path, ext: str) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("chmod does not stop this user from writing (running as root?)")
        with pytest.raises(ExportError, match="permission denied") as info:
            export_mesh(mesh, folder / f"head{ext}")
        assert isinstance(info.value.__cause__, OSError)
        _assert_no_leftovers(folder)
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (errno.EACCES, "permission denied"),
        (errno.EROFS, "read-only filesystem"),
        (errno.ENOSPC, "no space left"),
    ],
)
def test_os_errors_become_clear_export_errors(
    mesh: trimesh.Trimesh,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    message: str,
) -> None:
    # Works as root too, where a chmod-ed folder does not stop writes.
    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(atomic_mod.tempfile, "mkstemp", refuse)
    with pytest.raises(ExportError, match=message) as info:
        export_mesh(mesh, tmp_path / "head.obj")
    assert info.value.__cause__.errno == code
    _assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("ext", SUPPORTED_EXTENSIONS)
def test_overlong_file_name(mesh: trimesh.Trimesh, tmp_path: Path, ext: str) -> None:
    with pytest.raises(ExportError, match="too long|allows"):
        export_mesh(mesh, tmp_path / ("x" * 300 + ext))
    _assert_no_leftovers(tmp_path)


def test_output_path_is_a_folder(mesh: trimesh.Trimesh, tmp_path: Path) -> None:
    (tmp_path / "head.glb").mkdir()
    with pytest.raises(ExportError, match="folder"):
        export_mesh(mesh, tmp_path / "head.glb")
    _assert_no_leftovers(tmp_path, {"head.glb"})


def test_empty_mesh(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no faces"):
        export_mesh(trimesh.Trimesh(), tmp_path / "empty.obj")
    _assert_no_leftovers(tmp_path)


def test_not_a_mesh(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        export_mesh(trimesh.PointCloud(np.zeros((3, 3))), tmp_path / "cloud.ply")


def _fail_on_call(monkeypatch: pytest.MonkeyPatch, module: object, name: str, n: int) -> None:
    """Make ``module.name`` raise OSError on its n-th call (1-based), pass through otherwise."""
    original = getattr(module, name)
    calls = {"count": 0}

    def flaky(*args: object, **kwargs: object) -> object:
        calls["count"] += 1
        if calls["count"] == n:
            raise OSError(5, "injected I/O error")
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)


_TARGETS = {
    ".obj": {"head.obj", "head.mtl", "head.png"},
    ".glb": {"head.glb"},
    ".ply": {"head.ply"},
}


# (extension, os function, failing call): fsync #k fails while writing the k-th temp file,
# replace #k fails renaming the k-th file, i.e. after k-1 results are already in place.
_INJECTED = [
    (ext, name, n)
    for ext, count in ((".obj", 3), (".glb", 1), (".ply", 1))
    for name in ("fsync", "replace")
    for n in range(1, count + 1)
]


@pytest.mark.parametrize(("ext", "name", "n"), _INJECTED, ids=lambda v: str(v).strip("."))
def test_failure_midway_leaves_nothing(
    mesh: trimesh.Trimesh,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    ext: str,
    name: str,
    n: int,
) -> None:
    _fail_on_call(monkeypatch, os, name, n)

    with pytest.raises(ExportError, match="injected I/O error") as info:
        export_mesh(mesh, tmp_path / f"head{ext}")

    assert isinstance(info.value.__cause__, OSError)
    _assert_no_leftovers(tmp_path)


@pytest.mark.parametrize("ext", [".obj", ".glb"])
def test_texture_encoder_failure(
    mesh: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ext: str
) -> None:
    def broken_save(self: Image.Image, *args: object, **kwargs: object) -> None:
        raise OSError("injected PNG encoder failure")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ExportError, match="injected PNG encoder failure"):
        export_mesh(mesh, tmp_path / f"head{ext}")
    _assert_no_leftovers(tmp_path)


def test_failure_in_write_phase_keeps_previous_result(
    mesh: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _TARGETS[".obj"]:
        (tmp_path / name).write_bytes(b"previous " + name.encode())
    _fail_on_call(monkeypatch, os, "fsync", 3)

    with pytest.raises(ExportError):
        export_mesh(mesh, tmp_path / "head.obj")

    _assert_no_leftovers(tmp_path, _TARGETS[".obj"])
    for name in _TARGETS[".obj"]:
        assert (tmp_path / name).read_bytes() == b"previous " + name.encode()


def test_group_write_rejects_duplicate_targets(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="twice"):
        atomic_mod.write_group_atomic({tmp_path / "a": b"1", str(tmp_path / "a"): b"2"})
    _assert_no_leftovers(tmp_path)


# --------------------------------------------------------------------------- glTF validator

_VALIDATE_JS = """
const fs = require("fs");
const validator = require(process.argv[2]);
const bytes = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(bytes, { uri: "head.glb", maxIssues: 200 }).then(
  (report) => { process.stdout.write(JSON.stringify(report)); },
  (error) => { process.stderr.write(String(error)); process.exit(2); }
);
"""


@pytest.fixture(scope="session")
def gltf_validator() -> Path:
    """Path of the installed ``gltf-validator`` npm package; skip when node/npm are unusable."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm not on PATH; cannot run the Khronos glTF validator")
    package = NPM_PREFIX / "node_modules" / "gltf-validator"
    if not (package / "package.json").exists():
        try:
            subprocess.run(
                [
                    npm,
                    "install",
                    "--prefix",
                    str(NPM_PREFIX),
                    "--no-audit",
                    "--no-fund",
                    "gltf-validator",
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"could not install gltf-validator with npm: {exc}")
        if not (package / "package.json").exists():
            pytest.skip("npm install gltf-validator did not produce the package")
    return package


def _validate(glb: Path, validator: Path) -> dict:
    """The Khronos validator's ``issues`` report for ``glb``; logs every message."""
    script = glb.parent / "validate.js"
    script.write_text(_VALIDATE_JS)
    result = subprocess.run(
        ["node", str(script), str(validator), str(glb)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    script.unlink()
    assert result.returncode == 0, result.stderr
    issues = json.loads(result.stdout)["issues"]
    for message in issues["messages"]:
        # severity 0 = error, 1 = warning, 2 = info, 3 = hint
        logger.info("gltf-validator %s: %s", message["code"], message["message"])
        print(f"gltf-validator [{message['severity']}] {message['code']}: {message['message']}")
    return issues


def test_glb_passes_khronos_validator(
    mesh: trimesh.Trimesh, tmp_path: Path, gltf_validator: Path
) -> None:
    (glb,) = export_mesh(mesh, tmp_path / "head.glb")

    issues = _validate(glb, gltf_validator)
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, errors


def test_rigged_glb_passes_khronos_validator(
    rigged: trimesh.Trimesh, tmp_path: Path, gltf_validator: Path
) -> None:
    (glb,) = export_mesh(rigged, tmp_path / "limb.glb")

    issues = _validate(glb, gltf_validator)
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, errors
    assert issues["numWarnings"] == 0, issues["messages"]
    # the validator did look at the skin: it is reported as used, not as unused data
    codes = {m["code"] for m in issues["messages"]}
    assert "UNUSED_OBJECT" not in codes, issues["messages"]


# --------------------------------------------------------------------------- skeleton (glTF skin)

# A "Y" rig in the OpenCV camera frame (y down, z forward): root -> spine -> neck -> head, and an
# arm branching off the spine. Metres, in front of the camera so the frame change matters.
RIG_NAMES = ("root", "spine", "neck", "head", "arm.L")
RIG_PARENTS = np.array([-1, 0, 1, 2, 1])
RIG_JOINTS = np.array(
    [[0.0, 0.3, 1.0], [0.0, 0.1, 1.0], [0.0, -0.1, 1.0], [0.0, -0.25, 1.0], [0.12, 0.0, 1.0]],
    dtype=np.float32,
)
# joint -> the joints it moves (itself and its descendants)
RIG_SUBTREE = {"root": {0, 1, 2, 3, 4}, "spine": {1, 2, 3, 4}, "head": {3}, "arm.L": {4}}


def _tube(rings: int = 21, sections: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An open tube along y around the rig: vertices (V, 3), faces (F, 3), UVs (V, 2)."""
    angle = np.linspace(0.0, 2 * np.pi, sections, endpoint=False)
    height = np.linspace(0.6, -0.4, rings)
    ys, ts = np.meshgrid(height, angle, indexing="ij")
    vertices = np.stack([0.08 * np.cos(ts), ys, 1.0 + 0.08 * np.sin(ts)], axis=-1).reshape(-1, 3)
    uv = np.stack(np.meshgrid(np.arange(rings), np.arange(sections), indexing="ij"), axis=-1)
    uv = (uv.reshape(-1, 2)[:, ::-1] + 0.5) / [sections, rings]
    r, s = np.meshgrid(np.arange(rings - 1), np.arange(sections), indexing="ij")
    a, b = r * sections + s, r * sections + (s + 1) % sections
    c, d = a + sections, b + sections
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([b, d, c], -1)]).reshape(-1, 3)
    return vertices, faces, uv


def _rig_skeleton(vertices: np.ndarray, seed: int = 0) -> Skeleton:
    """Gaussian falloff from every joint, cut below 0.3 %: 1 to 5 influences per vertex, in
    shuffled columns, so the exporter must pick and renormalise the top 4 of some rows."""
    distance = np.linalg.norm(vertices[:, None, :] - RIG_JOINTS[None].astype(np.float64), axis=2)
    weights = np.exp(-((distance / 0.15) ** 2))
    weights /= weights.sum(axis=1, keepdims=True)
    weights[weights < 3e-3] = 0.0
    weights /= weights.sum(axis=1, keepdims=True)
    indices = np.tile(np.arange(len(RIG_NAMES)), (len(vertices), 1))
    order = np.random.default_rng(seed).permuted(indices, axis=1)
    return Skeleton(
        RIG_NAMES,
        RIG_PARENTS,
        RIG_JOINTS,
        order.astype(np.int32),
        np.take_along_axis(weights, order, 1).astype(np.float32),
    )


@pytest.fixture
def rigged() -> trimesh.Trimesh:
    vertices, faces, uv = _tube()
    tube = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    tube.visual = trimesh.visual.TextureVisuals(uv=uv, image=_gradient_image())
    tube.metadata["skeleton"] = _rig_skeleton(vertices)
    return tube


def _read(gltf: object, index: int) -> np.ndarray:
    """Accessor ``index`` of a pygltflib GLB as a (count, components) array."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = {5126: "<f4", 5123: "<u2", 5125: "<u4", 5121: "u1"}[accessor.componentType]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor.type]
    assert view.byteStride in (None, np.dtype(dtype).itemsize * width)
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    raw = gltf.binary_blob()[start : start + accessor.count * width * np.dtype(dtype).itemsize]
    return np.frombuffer(raw, dtype=dtype).reshape(accessor.count, width)


def _load(path: Path) -> object:
    import pygltflib

    return pygltflib.GLTF2.load_from_bytes(path.read_bytes())


def _global_transforms(gltf: object, rotations: dict[str, np.ndarray]) -> dict[int, np.ndarray]:
    """node -> (4, 4) world transform, walking the scene; ``rotations`` overrides the rotation
    (3, 3) of the named nodes (a pose)."""
    out: dict[int, np.ndarray] = {}

    def visit(index: int, parent: np.ndarray) -> None:
        node = gltf.nodes[index]
        local = np.eye(4)
        if node.matrix is not None:
            local = np.asarray(node.matrix, dtype=np.float64).reshape(4, 4).T
        else:
            quat = node.rotation if node.rotation is not None else [0.0, 0.0, 0.0, 1.0]
            scale = node.scale if node.scale is not None else [1.0, 1.0, 1.0]
            local[:3, :3] = Rotation.from_quat(quat).as_matrix() * scale  # glTF: x, y, z, w
            local[:3, 3] = node.translation if node.translation is not None else 0.0
        if node.name in rotations:
            local[:3, :3] = rotations[node.name]
        out[index] = parent @ local
        for child in node.children:
            visit(child, out[index])

    for root in gltf.scenes[gltf.scene or 0].nodes:
        visit(root, np.eye(4))
    return out


def _skin_vertices(gltf: object, rotations: dict[str, np.ndarray]) -> np.ndarray:
    """Linear blend skinning of the GLB's mesh with its own skin data: (V, 3) posed vertices."""
    (primitive,) = gltf.meshes[0].primitives
    skin = gltf.skins[0]
    world = _global_transforms(gltf, rotations)
    inverse_bind = _read(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    joint_matrices = np.stack(
        [world[node] @ ibm for node, ibm in zip(skin.joints, inverse_bind, strict=True)]
    )
    positions = _read(gltf, primitive.attributes.POSITION).astype(np.float64)
    joints = _read(gltf, primitive.attributes.JOINTS_0).astype(np.int64)
    weights = _read(gltf, primitive.attributes.WEIGHTS_0).astype(np.float64)
    blended = np.einsum("vk,vkij->vij", weights, joint_matrices[joints])
    homogeneous = np.column_stack([positions, np.ones(len(positions))])
    return np.einsum("vij,vj->vi", blended, homogeneous)[:, :3]


def _expected_influences(skeleton: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """What JOINTS_0/WEIGHTS_0 must hold: the top 4, unused slots pointing at joint 0."""
    indices, weights = skeleton.top_influences(4)
    return np.where(weights > 0, indices, 0), weights


@pytest.mark.parametrize("to_gltf_frame", [True, False])
def test_rigged_glb_round_trip(
    rigged: trimesh.Trimesh, tmp_path: Path, to_gltf_frame: bool
) -> None:
    skeleton = rigged.metadata["skeleton"]
    rotation = OPENCV_TO_GLTF if to_gltf_frame else np.eye(3)

    (path,) = export_glb(rigged, tmp_path / "limb.glb", to_gltf_frame=to_gltf_frame)

    _assert_no_leftovers(tmp_path, {"limb.glb"})
    gltf = _load(path)
    (skin,) = gltf.skins
    (mesh_node,) = [i for i, node in enumerate(gltf.nodes) if node.mesh is not None]
    assert gltf.nodes[mesh_node].skin == 0
    scene_roots = gltf.scenes[gltf.scene or 0].nodes
    assert mesh_node in scene_roots  # a skinned mesh node must be a root (validator warning)
    # joints: one node per joint, named, in rig order, in the rig's hierarchy
    assert [gltf.nodes[n].name for n in skin.joints] == list(RIG_NAMES)
    parent_of = {c: p for p, node in enumerate(gltf.nodes) for c in node.children}
    parents = [skin.joints.index(parent_of[n]) if n in parent_of else -1 for n in skin.joints]
    assert parents == RIG_PARENTS.tolist()
    assert skin.skeleton == skin.joints[0] and skin.joints[0] in scene_roots
    for index, node in zip(skin.joints, map(gltf.nodes.__getitem__, skin.joints), strict=True):
        assert node.rotation in (None, [0.0, 0.0, 0.0, 1.0]) and node.matrix is None, index
    # bind pose: each joint node sits at the joint (rotated like the mesh); IBMs invert that
    bind = rigged.vertices @ rotation.T
    world = _global_transforms(gltf, {})
    joints_world = np.stack([world[n] for n in skin.joints])
    np.testing.assert_allclose(joints_world[:, :3, 3], RIG_JOINTS @ rotation.T, atol=1e-6)
    # root: absolute position; others: offset from the parent joint
    offsets = RIG_JOINTS - np.where(RIG_PARENTS[:, None] >= 0, RIG_JOINTS[RIG_PARENTS], 0)
    translations = [gltf.nodes[n].translation for n in skin.joints]
    np.testing.assert_allclose(translations, offsets @ rotation.T, atol=1e-6)
    ibm_accessor = gltf.accessors[skin.inverseBindMatrices]
    assert (ibm_accessor.type, ibm_accessor.componentType) == ("MAT4", 5126)
    inverse_bind = _read(gltf, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    np.testing.assert_allclose(inverse_bind, np.linalg.inv(joints_world), atol=1e-6)
    # skin attributes: the input's top 4, renormalised, in the mesh's vertex order
    (primitive,) = gltf.meshes[0].primitives
    np.testing.assert_allclose(_read(gltf, primitive.attributes.POSITION), bind, atol=1e-6)
    joints_acc = gltf.accessors[primitive.attributes.JOINTS_0]
    weights_acc = gltf.accessors[primitive.attributes.WEIGHTS_0]
    assert (joints_acc.type, joints_acc.componentType) == ("VEC4", 5123)
    assert (weights_acc.type, weights_acc.componentType) == ("VEC4", 5126)
    expected_joints, expected_weights = _expected_influences(skeleton)
    weights = _read(gltf, primitive.attributes.WEIGHTS_0)
    np.testing.assert_array_equal(_read(gltf, primitive.attributes.JOINTS_0), expected_joints)
    np.testing.assert_array_equal(weights, expected_weights)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
    influences = (skeleton.skin_weights > 0).sum(axis=1)
    assert (influences == 5).any() and (influences < 4).any()  # top-4 cut and empty slots
    np.testing.assert_array_equal((weights > 0).sum(axis=1), np.minimum(influences, 4))
    # the texture path is the real one
    assert primitive.material is not None and primitive.attributes.TEXCOORD_0 is not None


@pytest.mark.parametrize("to_gltf_frame", [True, False])
def test_rigged_glb_bind_pose_reproduces_the_mesh(
    rigged: trimesh.Trimesh, tmp_path: Path, to_gltf_frame: bool
) -> None:
    (path,) = export_glb(rigged, tmp_path / "limb.glb", to_gltf_frame=to_gltf_frame)

    gltf = _load(path)
    (primitive,) = gltf.meshes[0].primitives
    positions = _read(gltf, primitive.attributes.POSITION)
    np.testing.assert_allclose(_skin_vertices(gltf, {}), positions, atol=1e-5)


@pytest.mark.parametrize("joint", ["spine", "head", "arm.L", "root"])
def test_rigged_glb_posing_a_joint_moves_what_it_weights(
    rigged: trimesh.Trimesh, tmp_path: Path, joint: str
) -> None:
    (path,) = export_glb(rigged, tmp_path / "limb.glb")
    gltf = _load(path)
    (primitive,) = gltf.meshes[0].primitives
    positions = _read(gltf, primitive.attributes.POSITION).astype(np.float64)
    quarter = Rotation.from_euler("z", 90, degrees=True).as_matrix()

    posed = _skin_vertices(gltf, {joint: quarter})

    # independent expectation: a vertex follows the rotation about the joint (in the glTF frame)
    # by the share s of its weight on the joint and its descendants
    pivot = RIG_JOINTS[RIG_NAMES.index(joint)].astype(np.float64) @ OPENCV_TO_GLTF.T
    indices, weights = _expected_influences(rigged.metadata["skeleton"])
    share = (weights * np.isin(indices, list(RIG_SUBTREE[joint]))).sum(axis=1)[:, None]
    turned = (positions - pivot) @ quarter.T + pivot
    np.testing.assert_allclose(posed, (1 - share) * positions + share * turned, atol=1e-5)
    moved = np.linalg.norm(posed - positions, axis=1) > 1e-4
    off_axis = np.linalg.norm((positions - pivot)[:, :2], axis=1) > 0.01  # axis: z through pivot
    assert moved[(share[:, 0] > 1e-3) & off_axis].all()
    assert moved.any()
    if joint != "root":
        still = share[:, 0] == 0  # the rest of the body stays exactly where it was
        assert still.any()
        np.testing.assert_allclose(posed[still], positions[still], atol=1e-6)


def test_rig_rows_gltf_forbids_are_repaired(rigged: trimesh.Trimesh, tmp_path: Path) -> None:
    skeleton = rigged.metadata["skeleton"]
    indices, weights = skeleton.skin_indices.copy(), skeleton.skin_weights.copy()
    indices[0], weights[0] = [2, 4, 1, 2, 2], [0.2, 0.0, 0.1, 0.3, 0.4]  # joint 2 three times
    weights[1] = 0.0  # a vertex the rig leaves free
    rigged.metadata["skeleton"] = Skeleton(RIG_NAMES, RIG_PARENTS, RIG_JOINTS, indices, weights)

    (path,) = export_glb(rigged, tmp_path / "limb.glb")

    gltf = _load(path)
    (primitive,) = gltf.meshes[0].primitives
    joints, weights = (
        _read(gltf, primitive.attributes.JOINTS_0),
        _read(gltf, primitive.attributes.WEIGHTS_0),
    )
    # a joint appears once per vertex with the sum of its weights; a free vertex follows the root
    np.testing.assert_array_equal(joints[:2], [[2, 1, 0, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(weights[:2], [[0.9, 0.1, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        _skin_vertices(gltf, {}), _read(gltf, primitive.attributes.POSITION), atol=1e-5
    )


def _old_glb_bytes(mesh: trimesh.Trimesh, name: str) -> bytes:
    """What export_glb wrote before skeletons existed: trimesh's GLB of the rotated copy."""
    copy = glb_mod._export_copy(mesh, OPENCV_TO_GLTF, name=name)
    return trimesh.exchange.gltf.export_glb(copy, include_normals=True)


@pytest.mark.parametrize("metadata", [{}, {"skeleton": None}])
def test_glb_without_skeleton_is_unchanged(
    mesh: trimesh.Trimesh, tmp_path: Path, metadata: dict
) -> None:
    mesh.metadata.update(metadata)

    (path,) = export_glb(mesh, tmp_path / "head.glb")

    assert path.read_bytes() == _old_glb_bytes(mesh, "head")
    gltf = glb_json(path)
    assert "skins" not in gltf and len(gltf["nodes"]) == 1
    assert "JOINTS_0" not in gltf["meshes"][0]["primitives"][0]["attributes"]


def test_glb_imports_pygltflib_only_for_a_skeleton(
    mesh: trimesh.Trimesh, rigged: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not hasattr(glb_mod, "pygltflib")
    monkeypatch.setitem(__import__("sys").modules, "pygltflib", None)  # import fails

    export_glb(mesh, tmp_path / "head.glb")
    with pytest.raises(ExportError, match="pygltflib"):
        export_glb(rigged, tmp_path / "limb.glb")
    _assert_no_leftovers(tmp_path, {"head.glb"})


def _broken_rigs(vertices: np.ndarray) -> dict[str, object]:
    good = _rig_skeleton(vertices)
    idx, w = good.skin_indices, good.skin_weights
    rig = (RIG_NAMES, RIG_PARENTS, RIG_JOINTS)
    nan_weights, negative_weights, far_joint = w.copy(), w.copy(), idx.copy()
    nan_weights[3, 1] = np.nan
    negative_weights[5, 0] = -0.1
    far_joint[7, 2] = len(RIG_NAMES)
    bad_joints = RIG_JOINTS.copy()
    bad_joints[2, 0] = np.inf
    return {
        "rows": Skeleton(*rig, idx[:-1], w[:-1]),
        "index": Skeleton(*rig, far_joint, w),
        "nan": Skeleton(*rig, idx, nan_weights),
        "negative": Skeleton(*rig, idx, negative_weights),
        "float-indices": Skeleton(*rig, idx.astype(np.float32), w),
        "joints": Skeleton(RIG_NAMES, RIG_PARENTS, bad_joints, idx, w),
        "type": {"names": RIG_NAMES},
    }


@pytest.mark.parametrize("case", list(_broken_rigs(_tube()[0])))
def test_rig_that_does_not_fit_writes_nothing(
    rigged: trimesh.Trimesh, tmp_path: Path, case: str
) -> None:
    rigged.metadata["skeleton"] = _broken_rigs(rigged.vertices)[case]

    with pytest.raises(ExportError, match="skeleton"):
        export_mesh(rigged, tmp_path / "limb.glb")
    _assert_no_leftovers(tmp_path)


def test_rig_failure_while_amending_writes_nothing(
    rigged: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pygltflib

    def broken(self: object) -> list[bytes]:
        raise RuntimeError("injected pygltflib failure")

    monkeypatch.setattr(pygltflib.GLTF2, "save_to_bytes", broken)
    (tmp_path / "limb.glb").write_bytes(b"previous")
    with pytest.raises(ExportError, match="injected pygltflib failure"):
        export_mesh(rigged, tmp_path / "limb.glb")
    _assert_no_leftovers(tmp_path, {"limb.glb"})
    assert (tmp_path / "limb.glb").read_bytes() == b"previous"


@pytest.mark.parametrize("name", ["fsync", "replace"])
def test_rigged_write_failure_leaves_nothing(
    rigged: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    _fail_on_call(monkeypatch, os, name, 1)
    with pytest.raises(ExportError, match="injected I/O error"):
        export_mesh(rigged, tmp_path / "limb.glb")
    _assert_no_leftovers(tmp_path)


def _permuting_exporter(monkeypatch: pytest.MonkeyPatch, change: object) -> None:
    """Make trimesh's GLB writer see ``change(mesh)`` instead of the mesh it is handed."""
    original = trimesh.exchange.gltf.export_glb

    def export(mesh: trimesh.Trimesh, **kwargs: object) -> bytes:
        return original(change(mesh), **kwargs)

    monkeypatch.setattr(trimesh.exchange.gltf, "export_glb", export)


def test_rig_follows_vertices_that_trimesh_reorders(
    rigged: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    perm = np.random.default_rng(1).permutation(len(rigged.vertices))

    def shuffle(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        out = trimesh.Trimesh(
            vertices=mesh.vertices[perm],
            faces=np.argsort(perm)[mesh.faces],
            vertex_normals=mesh.vertex_normals[perm],
            process=False,
        )
        out.visual = trimesh.visual.TextureVisuals(
            uv=mesh.visual.uv[perm], material=mesh.visual.material
        )
        return out

    _permuting_exporter(monkeypatch, shuffle)
    (path,) = export_glb(rigged, tmp_path / "limb.glb")

    gltf = _load(path)
    (primitive,) = gltf.meshes[0].primitives
    np.testing.assert_allclose(
        _read(gltf, primitive.attributes.POSITION), rigged.vertices[perm] * FLIP, atol=1e-6
    )
    expected_joints, expected_weights = _expected_influences(rigged.metadata["skeleton"])
    np.testing.assert_array_equal(_read(gltf, primitive.attributes.JOINTS_0), expected_joints[perm])
    np.testing.assert_array_equal(
        _read(gltf, primitive.attributes.WEIGHTS_0), expected_weights[perm]
    )


@pytest.mark.parametrize("same_skin", [True, False])
def test_rig_with_vertices_that_trimesh_merges(
    rigged: trimesh.Trimesh, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, same_skin: bool
) -> None:
    # a UV seam: vertex V is a copy of vertex 0 used by one face; merged back by the "trimesh"
    skeleton = rigged.metadata["skeleton"]
    vertices = np.vstack([rigged.vertices, rigged.vertices[:1]])
    faces = rigged.faces.copy()
    faces[faces[:, 0] == 0, 0] = len(rigged.vertices)
    source = np.append(np.arange(len(rigged.vertices)), 0 if same_skin else 40)
    seamed = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    seamed.visual = trimesh.visual.TextureVisuals(
        uv=np.vstack([rigged.visual.uv, [[0.99, 0.5]]]), image=_gradient_image()
    )
    seamed.metadata["skeleton"] = skeleton.for_vertices(source)

    def merge(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
        mesh = mesh.copy()
        mesh.merge_vertices(merge_tex=True, merge_norm=True)
        return mesh

    _permuting_exporter(monkeypatch, merge)
    if not same_skin:
        with pytest.raises(ExportError, match="different skin"):
            export_glb(seamed, tmp_path / "limb.glb")
        _assert_no_leftovers(tmp_path)
        return
    (path,) = export_glb(seamed, tmp_path / "limb.glb")
    gltf = _load(path)
    (primitive,) = gltf.meshes[0].primitives
    assert gltf.accessors[primitive.attributes.POSITION].count == len(rigged.vertices)
    expected_joints, expected_weights = _expected_influences(skeleton)
    np.testing.assert_array_equal(_read(gltf, primitive.attributes.JOINTS_0), expected_joints)
    np.testing.assert_array_equal(_read(gltf, primitive.attributes.WEIGHTS_0), expected_weights)
