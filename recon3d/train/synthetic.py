"""Synthetic training data for the body network: random people rendered headless, seen by the
real MediaPipe front end.

Each sample is an Anny body with a random shape, a pose (retargeted motion capture or a random
valid pose), per-part clothing and skin colours, lit and rendered with pyrender over a crop of a
real photo or video frame, from a random camera. MediaPipe pose then runs on the render, so the
network learns from the detector's real outputs and failures, not from perfect projections.

Shards are ``.npz`` files (no pickles: every array is numeric) named by seed and index; a run
that is stopped resumes by skipping the shards that exist. Everything is deterministic given the
seed: the random generator of shard ``i`` is seeded with ``(seed, i)``.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from recon3d.fitting.body_fit import FREE_BONES, MEDIAPIPE_TO_MODEL
from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks
from recon3d.models.body import BodyModel
from recon3d.models.body_net import MASK_SIZE, network_inputs

log = logging.getLogger(__name__)

IMAGE_SIZE = (384, 512)  # width, height: a portrait frame
SKIN_TONES = np.array(
    [
        [255, 224, 196],
        [234, 192, 160],
        [214, 164, 124],
        [184, 130, 96],
        [141, 94, 64],
        [92, 60, 40],
    ],
    np.float32,
)


@dataclass(frozen=True)
class SyntheticSample:
    """Ground truth of one rendered person: ``shape`` (16,), ``pose`` (104, 3) axis-angle,
    ``translation`` (3,) camera frame, ``K`` (3, 3)."""

    shape: np.ndarray
    pose: np.ndarray
    translation: np.ndarray
    K: np.ndarray


def free_bone_indices(model: BodyModel) -> np.ndarray:
    """Indices of the bones the network predicts (the fit's free bones), increasing."""
    return np.array(sorted(model.bone(n) for n in FREE_BONES))


def random_pose(
    model: BodyModel, rng: np.random.Generator, bank: np.ndarray | None = None
) -> np.ndarray:
    """(104, 3) axis-angle pose: a motion-capture frame from ``bank`` (N, 104, 3) perturbed, or a
    random pose within loose anatomical ranges, then a random global orientation."""
    pose = np.zeros((model.num_joints, 3))
    if bank is not None and len(bank) and rng.random() < 0.7:
        pose[:] = bank[rng.integers(len(bank))]
        free = free_bone_indices(model)
        pose[free[1:]] += rng.normal(0, 0.08, (len(free) - 1, 3))
    else:
        spread = {
            "spine04": 0.15,
            "spine02": 0.15,
            "neck01": 0.15,
            "head": 0.25,
            "clavicle": 0.1,
            "upperarm01": 0.9,
            "lowerarm01": 0.6,
            "wrist": 0.3,
            "upperleg01": 0.45,
            "foot": 0.2,
        }
        for name in FREE_BONES:
            stem = name.split(".")[0]
            if stem in spread:
                pose[model.bone(name)] = rng.normal(0, spread[stem], 3)
        for side in ("L", "R"):
            # Knees bend one way only: flexion about +x.
            pose[model.bone(f"lowerleg01.{side}")] = (abs(rng.normal(0, 0.6)), 0.0, 0.0)
    # Global orientation: any yaw, small pitch and roll (upright people).
    yaw = rng.uniform(-np.pi, np.pi)
    tilt = rng.normal(0, 0.12, 2)
    root = _rotvec_to_matrix(np.array([tilt[0], 0.0, tilt[1]])) @ _rotvec_to_matrix(
        np.array([0.0, yaw, 0.0])
    )
    pose[0] = _matrix_to_rotvec(root @ _rotvec_to_matrix(pose[0]))
    return pose


def random_sample(
    model: BodyModel,
    rng: np.random.Generator,
    bank: np.ndarray | None = None,
    cut_off: float = 0.0,
) -> SyntheticSample:
    """A random person placed in front of a random camera so that it fills most of the frame,
    or (with probability ``cut_off``) framed like a portrait, cut below the hips."""
    w, h = IMAGE_SIZE
    shape = np.clip(rng.normal(0, 0.8, model.num_shape), -2.5, 2.5)
    pose = random_pose(model, rng, bank)
    focal_35 = rng.uniform(28, 85)
    f = focal_35 / 36.0 * max(w, h)
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    with torch.no_grad():
        out = model(
            torch.as_tensor(shape, dtype=torch.float32)[None],
            torch.as_tensor(pose, dtype=torch.float32)[None],
        )
    verts = out.vertices[0].numpy().astype(np.float64)
    lo, hi = verts.min(0), verts.max(0)
    extent = max(hi[1] - lo[1], (hi[0] - lo[0]) * h / w)
    centre = 0.5 * (lo + hi)
    if rng.random() < cut_off:
        # Portrait framing, as in most real photos: the person is larger than the frame and
        # cut at the thighs or the knees; the head stays near the top.
        fill = rng.uniform(1.1, 1.6)
        depth = f * extent / (fill * h)
        top = rng.uniform(0.03, 0.15) * h  # where the top of the head lands, pixels
        y_top = (top - K[1, 2]) * depth / f
        offset = np.array([rng.uniform(-0.08, 0.08) * w * depth / f, y_top - (lo[1] - centre[1])])
    else:
        fill = rng.uniform(0.55, 0.95)
        depth = f * extent / (fill * h)
        offset = rng.uniform(-0.08, 0.08, 2) * np.array([w, h]) * depth / f
    translation = np.array([offset[0], offset[1], depth]) - centre
    return SyntheticSample(shape, pose, translation, K)


def exact_person(
    model: BodyModel, vertices: np.ndarray, K: np.ndarray, image_size: tuple[int, int]
) -> BodyLandmarks:
    """What MediaPipe's pose model would report for a body, without its errors: for tests and
    benchmarks that need a person without running the detector.

    Args:
        model: the body model.
        vertices: (V, 3) the posed body in the camera frame (OpenCV axes, metres, z > 0).
        K: (3, 3) intrinsics.
        image_size: (width, height) of the photo.
    Returns:
        the landmarks the body model has a keypoint for, projected (visibility 0.99; the others
        at zero, unseen), the world landmarks around the hips' midpoint, and the silhouette of
        the projected triangles (filled by OpenCV: the rendered silhouette up to its edge
        pixels) as the mask.
    """
    import cv2

    like = {"dtype": torch.float32, "device": model.mean_vertices.device}
    keypoints = model.keypoints(torch.as_tensor(vertices, **like)[None])[0]
    keypoints = keypoints.cpu().numpy().astype(np.float64)
    points = np.zeros((len(POSE_LANDMARKS), 2), np.float32)
    world = np.zeros((len(POSE_LANDMARKS), 3), np.float32)
    visibility = np.zeros(len(POSE_LANDMARKS), np.float32)
    hips = 0.5 * (keypoints[model.keypoint("left_hip")] + keypoints[model.keypoint("right_hip")])
    for mp_name, model_name in MEDIAPIPE_TO_MODEL.items():
        i = POSE_LANDMARKS.index(mp_name)
        point = keypoints[model.keypoint(model_name)]
        projected = K @ point
        points[i] = projected[:2] / projected[2]
        world[i] = point - hips
        visibility[i] = 0.99
    uv = np.asarray(vertices, np.float64) @ np.asarray(K, np.float64).T
    uv = uv[:, :2] / uv[:, 2:]
    width, height = image_size
    mask = np.zeros((height, width), np.uint8)
    # One triangle at a time: fillPoly over many overlapping contours leaves holes where they
    # overlap. Four fractional bits keep the vertices' sub-pixel positions.
    for triangle in np.round(uv[model.faces] * 16).astype(np.int32):
        cv2.fillConvexPoly(mask, triangle, 1, lineType=cv2.LINE_8, shift=4)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("the body projects outside the photo")
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)
    return BodyLandmarks(points, visibility, world, mask.astype(np.float32), box)


def frame_head_and_shoulders(
    model: BodyModel, sample: SyntheticSample, rng: np.random.Generator
) -> SyntheticSample:
    """``sample`` moved in front of its camera as in a video call: the nose at the frame's
    horizontal centre (within 10 %), the top of the head 3-12 % below the frame's top, and the
    frame's height spanning the crown to 1.0-1.6 times the crown-to-shoulder height below the
    shoulders' midpoint (about mid-chest)."""
    with torch.no_grad():
        out = model(
            torch.as_tensor(sample.shape, dtype=torch.float32)[None],
            torch.as_tensor(sample.pose, dtype=torch.float32)[None],
        )
    verts = out.vertices[0].numpy().astype(np.float64)
    keypoints = model.keypoints(out.vertices)[0].numpy().astype(np.float64)
    nose = keypoints[model.keypoint("nose")]
    shoulders = keypoints[[model.keypoint("left_shoulder"), model.keypoint("right_shoulder")]]
    head = verts[model.vertex_part == model.part_names.index("head")]
    # The posed model's y axis points down the image once placed (as random_sample places it).
    crown = head[np.argmin(head[:, 1])]
    span = (shoulders[:, 1].mean() - crown[1]) * (1.0 + rng.uniform(1.0, 1.6))
    K = sample.K
    h, w = 2 * K[1, 2] + 1, 2 * K[0, 2] + 1
    depth = K[1, 1] * span / h
    top = rng.uniform(0.03, 0.12) * h
    x = (rng.uniform(-0.1, 0.1) * w) * depth / K[0, 0]
    y_crown = (top - K[1, 2]) * depth / K[1, 1]
    translation = np.array([x - nose[0], y_crown - crown[1], depth - nose[2]])
    return dataclasses.replace(sample, translation=translation)


def render_sample(
    model: BodyModel,
    sample: SyntheticSample,
    rng: np.random.Generator,
    backgrounds: Sequence[np.ndarray],
    clothed: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a sample over a background crop: RGB (H, W, 3) uint8 and the person's (H, W) bool
    coverage.

    ``clothed=False`` paints flat per-part colours on the bare body. ``clothed=True`` dresses it
    (:func:`dress`): patterned clothes and hair, each with a thickness, so that the silhouette
    and the appearance MediaPipe sees are those of a clothed person while the ground truth stays
    the body underneath."""
    from recon3d.render.renderer import render_mesh

    w, h = IMAGE_SIZE
    with torch.no_grad():
        out = model(
            torch.as_tensor(sample.shape, dtype=torch.float32)[None],
            torch.as_tensor(sample.pose, dtype=torch.float32)[None],
            torch.as_tensor(sample.translation, dtype=torch.float32)[None],
        )
    verts = out.vertices[0].numpy().astype(np.float64)
    if clothed:
        verts, colours = dress(model, verts, rng)
    else:
        colours = _part_colours(model, rng)
    rendered = render_mesh(
        verts, model.faces, sample.K, (w, h), vertex_colors=colours, lit=True, background=(0, 0, 0)
    )
    alpha = rendered.alpha
    background = _background_crop(backgrounds, rng, w, h)
    image = np.where(alpha[..., None], rendered.color, background).astype(np.uint8)
    return image, alpha


def _part_colours(model: BodyModel, rng: np.random.Generator) -> np.ndarray:
    """(V, 3) uint8 per-vertex colours: skin on the head and hands (and bare arms or legs
    sometimes), a top, trousers or a skirt-length colour, shoes; with a little noise."""
    part = np.asarray(model.part_names)[model.vertex_part]
    stem = np.array([p.split(".")[0] for p in part])
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05)
    top, bottom, shoes = (rng.uniform(20, 235, 3) for _ in range(3))
    colours = np.empty((len(part), 3), np.float32)
    colours[:] = top
    colours[np.isin(stem, ["head", "hand", "eyes", "mouth"])] = skin
    colours[np.isin(stem, ["thigh", "shin"])] = bottom
    colours[stem == "foot"] = shoes
    if rng.random() < 0.4:
        colours[stem == "forearm"] = skin
    if rng.random() < 0.2:
        colours[stem == "shin"] = skin
    colours *= rng.uniform(0.92, 1.08, (len(colours), 1))
    return np.clip(colours, 0, 255).astype(np.uint8)


def dress(
    model: BodyModel, vertices: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random outfit on a posed body: (V, 3) vertices moved out along their normals where
    clothes and hair cover them, and (V, 3) uint8 colours.

    Thickness per garment, drawn per person: hair 0.5-5 cm, shirt 0.3-3 cm (a coat or a loose
    top, 3-7 cm, in one case out of four), trousers 0.3-3 cm, shoes 0.5-2 cm. Clothes and hair
    colours, patterns, sleeve and leg lengths and hairlines come from
    :func:`recon3d.train.texture_data.dress_body`, on the rest body so the patterns follow the
    body as it moves."""
    from recon3d.texture.projection import vertex_normals
    from recon3d.train.texture_data import HAIR_COLOURS, dress_body

    part = np.asarray(model.part_names)[model.vertex_part]
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.9, 1.05, 3)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    outfit = dress_body(_rest_points(model), part, rng, skin, hair)
    coat = rng.random() < 0.25
    shirt = rng.uniform(0.03, 0.07) if coat else rng.uniform(0.003, 0.03)
    thickness = (
        outfit.hair * rng.uniform(0.005, 0.05)
        + outfit.shirt * shirt
        + outfit.trousers * rng.uniform(0.003, 0.03)
        + outfit.shoes * rng.uniform(0.005, 0.02)
    )
    moved = vertices + thickness[:, None] * vertex_normals(vertices, model.faces)
    colours = outfit.colour * rng.uniform(0.92, 1.08, (len(part), 1))
    return moved, np.clip(colours, 0, 255).astype(np.uint8)


def _rest_points(model: BodyModel) -> np.ndarray:
    """(V, 3) the mean body's rest vertices."""
    with torch.no_grad():
        rest = model.rest(torch.zeros(1, model.num_shape))[0][0]
    return rest.cpu().numpy().astype(np.float64)


def _background_crop(
    backgrounds: Sequence[np.ndarray], rng: np.random.Generator, w: int, h: int
) -> np.ndarray:
    import cv2

    if not backgrounds or rng.random() < 0.25:
        # A smooth random gradient with noise: plain studio-like backgrounds.
        a, b = rng.uniform(20, 235, (2, 3))
        t = np.linspace(0, 1, h)[:, None, None]
        img = a * (1 - t) + b * t + rng.normal(0, 6, (h, w, 3))
        return np.clip(img, 0, 255).astype(np.uint8)
    src = backgrounds[rng.integers(len(backgrounds))]
    sh, sw = src.shape[:2]
    scale = max(w / sw, h / sh) * rng.uniform(1.0, 2.0)
    resized = cv2.resize(src, (max(w, int(sw * scale)), max(h, int(sh * scale))))
    y = rng.integers(0, resized.shape[0] - h + 1)
    x = rng.integers(0, resized.shape[1] - w + 1)
    crop = resized[y : y + h, x : x + w]
    if rng.random() < 0.5:
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(1, 4))
    return crop


def load_backgrounds(folders: Sequence[pathlib.Path], max_frames: int = 40) -> list[np.ndarray]:
    """Real photos and video frames (RGB uint8) to render people over. Pass scenes without
    large faces: MediaPipe would follow a real person in the background instead."""

    from recon3d.io import load_image

    out: list[np.ndarray] = []
    for folder in folders:
        for path in sorted(pathlib.Path(folder).iterdir()):
            if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
                out.append(load_image(path))
            elif path.suffix.lower() in (".mp4", ".avi"):
                out.extend(video_frames(path, max_frames))
    return out


def video_frames(path: pathlib.Path, max_frames: int = 40) -> list[np.ndarray]:
    """Up to ``max_frames`` evenly spaced frames (RGB uint8) of a video file."""
    import cv2

    out: list[np.ndarray] = []
    cap = cv2.VideoCapture(str(path))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    for i in np.linspace(0, max(total - 1, 0), max_frames).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, frame = cap.read()
        if ok:
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    cap.release()
    return out


def generate_shard(
    model: BodyModel,
    detector,
    backgrounds: Sequence[np.ndarray],
    out_dir: pathlib.Path,
    seed: int,
    index: int,
    size: int,
    bank: np.ndarray | None = None,
    cut_off: float = 0.0,
    clothed: bool = False,
    image_size: int = 0,
    head_and_shoulders: float = 0.0,
) -> pathlib.Path | None:
    """Write shard ``index`` of a run (``size`` attempted samples); skip it when it exists.

    Samples where MediaPipe finds nobody are dropped (their count is stored). ``clothed``
    dresses every person (see :func:`render_sample`). ``image_size`` > 0 also stores the
    render's RGB crop of the person's square, ``image`` (N, image_size, image_size, 3) uint8
    (:func:`~recon3d.models.body_net.network_inputs`); the other arrays are unchanged.
    ``head_and_shoulders``: the share of people re-framed as in a video call
    (:func:`frame_head_and_shoulders`); with 0 the random stream, and so the shard, is as
    before."""
    path = out_dir / f"body_s{seed}_{index:05d}.npz"
    if path.exists():
        return None
    rng = np.random.default_rng([seed, index])
    free = free_bone_indices(model)
    rows: dict[str, list[np.ndarray]] = {}
    missed = 0
    for _ in range(size):
        sample = random_sample(model, rng, bank, cut_off)
        if head_and_shoulders and rng.random() < head_and_shoulders:
            sample = frame_head_and_shoulders(model, sample, rng)
        image, _ = render_sample(model, sample, rng, backgrounds, clothed)
        try:
            person = detector.detect(image)
        except Exception as exc:  # noqa: BLE001 - NoPersonFound and MediaPipe failures alike
            log.debug("no detection: %s", exc)
            missed += 1
            continue
        inputs = network_inputs(person, image, image_size)
        for key, value in inputs.items():
            rows.setdefault(key, []).append(value)
        rows.setdefault("shape", []).append(sample.shape.astype(np.float32))
        rows.setdefault("pose", []).append(sample.pose[free].astype(np.float32))
        rows.setdefault("translation", []).append(sample.translation.astype(np.float32))
        rows.setdefault("K", []).append(sample.K.astype(np.float32))
    if not rows:
        return None
    arrays = {k: np.stack(v) for k, v in rows.items()}
    arrays["missed"] = np.array(missed)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return path


def _rotvec_to_matrix(v: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(v, np.float64).reshape(3, 1))[0]


def _matrix_to_rotvec(m: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.Rodrigues(np.asarray(m, np.float64))[0].ravel()


__all__ = [
    "IMAGE_SIZE",
    "MASK_SIZE",
    "SyntheticSample",
    "dress",
    "exact_person",
    "free_bone_indices",
    "generate_shard",
    "load_backgrounds",
    "network_inputs",
    "random_pose",
    "random_sample",
    "render_sample",
    "video_frames",
]

# MediaPipe landmarks the network's reprojection loss uses, with their model keypoints.
KEYPOINT_PAIRS = [(POSE_LANDMARKS.index(k), v) for k, v in MEDIAPIPE_TO_MODEL.items()]
