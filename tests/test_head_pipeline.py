"""End-to-end head reconstruction on real public-domain photos (no mocks of our own code)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
import trimesh
from helpers import png_header_only

from recon3d import reconstruct
from recon3d.errors import ImageTooLargeError, InvalidImageError, NoFaceFound
from recon3d.metrics import face_region_psnr, landmark_error
from recon3d.models.head import HeadModel

HEAD_PHOTOS = ("grace_hopper.jpg", "obama.jpg", "astronaut.png")


@pytest.mark.parametrize("name", HEAD_PHOTOS)
def test_projected_landmarks_land_on_the_face(head_reconstructions, name):
    pixels, fraction = landmark_error(head_reconstructions[name])
    # 3% of the face size: a few pixels on these photos (the fit is a 60+52 parameter model).
    assert fraction < 0.03, f"{name}: {pixels:.1f} px, {100 * fraction:.1f}% of the face"


@pytest.mark.parametrize("name", HEAD_PHOTOS)
def test_result_contract(head_reconstructions, name):
    rec = head_reconstructions[name]
    model = HeadModel.from_pretrained()
    assert rec.target == "head"
    assert rec.vertices.dtype == np.float32 and rec.vertices.shape == (model.num_vertices, 3)
    assert rec.faces.shape[1] == 3 and rec.uv.shape == (len(rec.faces), 3, 2)
    assert rec.texture.dtype == np.uint8 and rec.texture.shape == (1024, 1024, 3)
    assert rec.camera.K.shape == (3, 3)
    assert (rec.vertices[:, 2] > 0).all(), "the head must be in front of the camera"
    ib2, ib3 = rec.landmarks_2d("ibug68"), rec.landmarks_3d("ibug68")
    assert ib2.shape == (68, 2) and ib3.shape == (68, 3)
    # The iBUG points project inside the detected face's box (with a small margin).
    x0, y0, x1, y1 = rec.params["face_box"]
    margin = 0.1 * max(x1 - x0, y1 - y0)
    assert ((ib2[:, 0] > x0 - margin) & (ib2[:, 0] < x1 + margin)).all()
    assert ((ib2[:, 1] > y0 - margin) & (ib2[:, 1] < y1 + margin)).all()
    # A human head: 12-30 cm tall.
    height = np.ptp(rec.vertices[:, 1])
    assert 0.12 < height < 0.30


def test_ibug_points_are_ordered_like_ibug(grace):
    pts = grace.landmarks_2d("ibug68")
    # Chin (8) is below the nose tip (30), which is below the eyes (36-47) and brows (17-26).
    assert pts[8, 1] > pts[30, 1] > pts[36:48, 1].mean() > pts[17:27, 1].mean()
    # Point 36 is the outer corner of the eye on the image's left, 45 on the image's right.
    assert pts[36, 0] < pts[39, 0] < pts[42, 0] < pts[45, 0]


def test_unknown_landmark_scheme(grace):
    with pytest.raises(ValueError, match="ibug68"):
        grace.landmarks_2d("coco17")


def test_mesh_is_watertight_where_the_model_is(grace):
    model = HeadModel.from_pretrained()
    template = trimesh.Trimesh(model.mean_vertices.numpy(), model.faces, process=False)
    fitted = trimesh.Trimesh(grace.vertices, grace.faces, process=False)
    split_template = template.split(only_watertight=False)
    split_fitted = fitted.split(only_watertight=False)
    assert len(split_template) == len(split_fitted)
    assert sorted(c.is_watertight for c in split_template) == sorted(
        c.is_watertight for c in split_fitted
    )
    assert sum(c.is_watertight for c in split_fitted) >= 2  # eyeballs and the mouth interior
    # The head surface itself is open only at the neck: one boundary loop.
    head = max(split_fitted, key=lambda c: len(c.faces))
    boundary_edges = head.edges_sorted[
        trimesh.grouping.group_rows(head.edges_sorted, require_count=1)
    ]
    loops = trimesh.graph.connected_components(boundary_edges)
    assert len(loops) == 1
    assert np.isfinite(grace.vertices).all()


@pytest.mark.parametrize("name", HEAD_PHOTOS)
def test_texture_front_matches_the_photo(head_reconstructions, name):
    """Re-render the textured mesh with the photo's camera and compare inside the face."""
    psnr = face_region_psnr(head_reconstructions[name])
    assert psnr > 24.0, f"{name}: PSNR {psnr:.1f} dB inside the face"


def test_texture_completes_the_back_of_the_head(grace):
    # Every texel inside the layout has a colour; the back was not seen, so confidence is 0 there.
    layout = HeadModel.from_pretrained().texture_layout
    used_colours = grace.texture.reshape(-1, 3)[layout.used]
    assert used_colours.max(axis=1).min() > 0, "no black holes in the texture"
    back = grace.render(yaw=180, size=128)
    assert (back < 250).any(axis=2).mean() > 0.2, "the back view shows the head"
    conf = grace.texture_confidence.ravel()[layout.used]
    assert 0.05 < (conf > 0).mean() < 0.8


@pytest.mark.parametrize("ext", [".obj", ".glb", ".ply"])
def test_export_round_trip(grace, tmp_path, ext):
    written = grace.export(tmp_path / f"head{ext}")
    loaded = trimesh.load(written[0], force="mesh")
    expected = grace.to_trimesh()
    assert len(loaded.faces) == len(grace.faces)
    assert len(loaded.vertices) == len(expected.vertices)
    bounds = np.asarray(expected.bounds)
    if ext == ".glb":  # exported in glTF's y-up frame
        bounds = np.sort(bounds * [1, -1, -1], axis=0)
    np.testing.assert_allclose(loaded.bounds, bounds, atol=1e-5)
    if ext in (".obj", ".glb"):
        image = np.asarray(
            loaded.visual.material.baseColorTexture
            if ext == ".glb"
            else loaded.visual.material.image
        )
        np.testing.assert_array_equal(image[..., :3], grace.texture)
        assert loaded.visual.uv.shape == (len(loaded.vertices), 2)
    if ext == ".obj":
        assert sorted(p.name for p in written) == ["head.mtl", "head.obj", "head.png"]


def test_render_views(grace):
    front = grace.render(yaw=0, size=200)
    side = grace.render(yaw=90, size=200)
    geometry = grace.render(yaw=30, pitch=10, size=200, shading="geometry")
    for img in (front, side, geometry):
        assert img.shape == (200, 200, 3) and img.dtype == np.uint8
        assert (img < 250).any(axis=2).mean() > 0.1
    assert not np.array_equal(front, side)
    with pytest.raises(ValueError):
        grace.render(shading="wireframe")


def test_rgba_input_is_converted(data_dir):
    rec = reconstruct(data_dir / "32bit.png", target="head")
    assert rec.image.shape[2] == 3
    assert rec.params["reprojection_error_px"] < 0.03 * np.ptp(rec.keypoints[:, 0])


def test_every_input_form_gives_the_same_result(data_dir, grace):
    from PIL import Image

    path = data_dir / "grace_hopper.jpg"
    for form in (
        str(path),
        path.read_bytes(),
        Image.open(path),
        np.asarray(Image.open(path).convert("RGB")),
    ):
        rec = reconstruct(form, target="head")
        np.testing.assert_allclose(rec.vertices, grace.vertices, atol=1e-5)


def test_bad_target(grace):
    with pytest.raises(ValueError, match="target"):
        reconstruct(grace.image, target="torso")


def _png_bytes(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


BAD_INPUTS = {
    "not an image": (b"this is not an image", InvalidImageError),
    "truncated jpeg": ("truncated", InvalidImageError),
    "empty array": (np.zeros((0, 0, 3), np.uint8), InvalidImageError),
    "1x1": (np.zeros((1, 1, 3), np.uint8), InvalidImageError),
    "huge dimensions": (png_header_only(60000, 60000), ImageTooLargeError),
    "no face": ("noface", NoFaceFound),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_raises_typed_error_and_writes_nothing(case, data_dir, tmp_path):
    from recon3d.cli import main

    value, error = BAD_INPUTS[case]
    if isinstance(value, str) and value == "truncated":
        raw = (data_dir / "grace_hopper.jpg").read_bytes()
        value = raw[: len(raw) // 2]
    elif isinstance(value, str) and value == "noface":
        rng = np.random.default_rng(0)
        value = cv2.GaussianBlur(rng.integers(0, 255, (320, 320, 3), dtype=np.uint8), (9, 9), 3)
    with pytest.raises(error):
        reconstruct(value, target="head")
    # Through the CLI, too: a clear message, a non-zero exit, and no files.
    src = tmp_path / "input.bin"
    src.write_bytes(value if isinstance(value, bytes) else _png_bytes(value) if value.size else b"")
    out = tmp_path / "out"
    out.mkdir()
    code = main(
        [
            "reconstruct",
            str(src),
            "-o",
            str(out / "head.obj"),
            "--preview",
            str(out / "p.png"),
            "-q",
        ]
    )
    assert code != 0
    assert list(out.iterdir()) == []


def test_face_index_out_of_range(grace):
    with pytest.raises(NoFaceFound, match="face_index=3"):
        reconstruct(grace.image, target="head", face_index=3)


def test_cli_reconstruct_and_info(data_dir, tmp_path, capsys):
    from recon3d.cli import main

    out = tmp_path / "head.obj"
    assert (
        main(
            [
                "reconstruct",
                str(data_dir / "obama.jpg"),
                "-o",
                str(out),
                "--preview",
                str(tmp_path / "p.png"),
                "-q",
            ]
        )
        == 0
    )
    assert {p.name for p in tmp_path.iterdir()} == {"head.obj", "head.mtl", "head.png", "p.png"}
    preview = cv2.imread(str(tmp_path / "p.png"))
    assert preview.shape[1] == 5 * preview.shape[0]
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "head_model.safetensors" in text and ": ok" in text and "renderer: pyrender/" in text
    assert main(["reconstruct", str(data_dir / "obama.jpg"), "-o", str(tmp_path / "x.stl")]) == 2


def test_several_faces_largest_first_and_face_index(data_dir):
    """A group photo (tests only): each face_index gives a different person, largest first."""
    path = data_dir / "group_sample1.jpg"
    recs = [reconstruct(path, target="head", face_index=i) for i in range(3)]
    boxes = [r.params["face_box"] for r in recs]
    sizes = [np.hypot(b[2] - b[0], b[3] - b[1]) for b in boxes]
    assert sizes == sorted(sizes, reverse=True)
    for rec, box in zip(recs, boxes, strict=True):
        centre = rec.landmarks_2d("ibug68")[30]  # nose tip inside its own face box
        assert box[0] < centre[0] < box[2] and box[1] < centre[1] < box[3]
    centres = np.array([r.landmarks_2d("ibug68")[30] for r in recs])
    assert (
        np.linalg.norm(centres[:, None] - centres[None], axis=-1)[np.triu_indices(3, 1)].min() > 100
    )
    with pytest.raises(NoFaceFound, match="found 3 face"):
        reconstruct(path, target="head", face_index=3)


def test_same_input_gives_bit_identical_results(head_reconstructions, data_dir):
    again = reconstruct(data_dir / "obama.jpg", target="head")
    first = head_reconstructions["obama.jpg"]
    assert np.array_equal(again.vertices, first.vertices)
    assert np.array_equal(again.texture, first.texture)


def test_use_network_switch_picks_the_pipeline(data_dir, tmp_path, monkeypatch):
    """``reconstruct(use_network=...)`` and ``recon3d reconstruct --network`` start from the
    trained networks; the default follows each pipeline's release default."""
    import recon3d.pipeline
    from recon3d.body_pipeline import USE_NETWORK_BY_DEFAULT as BODY_DEFAULT
    from recon3d.cli import main
    from recon3d.pipeline import (
        USE_NETWORK_BY_DEFAULT,
        default_body_pipeline,
        default_pipeline,
    )

    assert default_pipeline(use_network=True).network is not None
    assert default_pipeline(use_network=False).network is None
    assert (default_pipeline().network is not None) == USE_NETWORK_BY_DEFAULT
    assert default_body_pipeline(use_network=True).network is not None
    assert default_body_pipeline(use_network=False).network is None
    assert (default_body_pipeline().network is not None) == BODY_DEFAULT
    assert default_pipeline(use_network=True) is default_pipeline(use_network=True)

    rec = reconstruct(data_dir / "obama.jpg", target="head", use_network=True, refine=False)
    assert rec.timings["fit"] < 0.5 and np.isfinite(rec.vertices).all()

    seen = []
    real = recon3d.pipeline.reconstruct
    monkeypatch.setattr(
        recon3d.pipeline,
        "reconstruct",
        lambda *a, **k: seen.append(k["use_network"]) or real(*a, **k),
    )
    for flag, expected in (("--network", True), ("--no-network", False), (None, None)):
        args = ["reconstruct", str(data_dir / "obama.jpg"), "-o", str(tmp_path / "h.ply"), "-q"]
        assert main(args + ([flag] if flag else [])) == 0
        assert seen[-1] is expected


def test_cli_refine_flag(data_dir, tmp_path, monkeypatch) -> None:
    """--no-refine reaches reconstruct() as refine=False (the network's estimate alone), the
    default as refine=True; with --no-network it is a usage error and nothing is written."""
    import recon3d.pipeline
    from recon3d.cli import EXIT_USAGE, main

    seen = []
    monkeypatch.setattr(
        recon3d.pipeline, "reconstruct", lambda *a, **k: seen.append(k["refine"]) or _Stub()
    )
    out = tmp_path / "h.ply"
    for flags, expected in ((["--no-refine"], False), (["--refine"], True), ([], True)):
        assert main(["reconstruct", str(data_dir / "obama.jpg"), "-o", str(out), "-q", *flags]) == 0
        assert seen[-1] is expected
    bad = tmp_path / "bad.ply"
    args = ["reconstruct", str(data_dir / "obama.jpg"), "-o", str(bad), "--no-refine"]
    assert main([*args, "--no-network"]) == EXIT_USAGE
    assert not bad.exists() and len(seen) == 3


def test_cli_checks_the_output_folders_before_reconstructing(
    data_dir, tmp_path, monkeypatch, capsys
) -> None:
    """A missing output (or preview) folder is reported before any reconstruction runs."""
    import recon3d.pipeline
    from recon3d.cli import EXIT_ENVIRONMENT, main

    calls = []
    monkeypatch.setattr(recon3d.pipeline, "reconstruct", lambda *a, **k: calls.append(1) or _Stub())
    photo = str(data_dir / "obama.jpg")
    missing = tmp_path / "missing" / "h.ply"
    assert main(["reconstruct", photo, "-o", str(missing), "-q"]) == EXIT_ENVIRONMENT
    assert "does not exist" in capsys.readouterr().err
    preview = str(tmp_path / "missing" / "p.png")
    out = str(tmp_path / "h.ply")
    assert main(["reconstruct", photo, "-o", out, "--preview", preview, "-q"]) == EXIT_ENVIRONMENT
    assert not calls and not (tmp_path / "h.ply").exists()


class _Stub:
    """A reconstruction stand-in for CLI argument tests: exports nothing, reports no error."""

    target = "head"
    params: dict = {}

    def export(self, path):
        return []
