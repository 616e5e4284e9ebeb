"""Tests for recon3d.exchange: round trips through trimesh, atomicity, error reporting."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from recon3d.errors import ExportError
from recon3d.exchange import SUPPORTED_EXTENSIONS, export_mesh
from recon3d.exchange import atomic as atomic_mod
from recon3d.exchange.glb import OPENCV_TO_GLTF, export_glb

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


def _glb_json(path: Path) -> dict:
    data = path.read_bytes()
    assert data[:4] == b"glTF"
    (chunk_len,) = struct.unpack("<I", data[12:16])
    return json.loads(data[20 : 20 + chunk_len])


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
    gltf = _glb_json(tmp_path / "head.glb")
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


def test_glb_passes_khronos_validator(
    mesh: trimesh.Trimesh, tmp_path: Path, gltf_validator: Path
) -> None:
    (glb,) = export_mesh(mesh, tmp_path / "head.glb")
    script = tmp_path / "validate.js"
    script.write_text(_VALIDATE_JS)

    result = subprocess.run(
        ["node", str(script), str(gltf_validator), str(glb)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    issues = report["issues"]
    for message in issues["messages"]:
        # severity 0 = error, 1 = warning, 2 = info, 3 = hint
        logger.info("gltf-validator %s: %s", message["code"], message["message"])
        print(f"gltf-validator [{message['severity']}] {message['code']}: {message['message']}")
    errors = [m for m in issues["messages"] if m["severity"] == 0]
    assert issues["numErrors"] == 0, errors
