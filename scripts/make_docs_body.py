"""Regenerate the pictures and quality numbers of the full-body documentation from real photos.

Usage:  python scripts/make_docs_body.py [--out docs/images] [--height 440]
For each public-domain photo in tests/data (reconstructed with ``target="body"``) it writes a strip
``body_<photo>.jpg``: the photo, the fitted mesh (lit grey) drawn over it with the photo's camera,
then the textured mesh from the front, from 60° to the person's left, from 90° to the right and
from behind. It also writes ``body_rig.jpg``: the skeleton of the first photo (joints connected to
their parents) over the mesh and over the photo, with the photo's camera. It prints, as a Markdown
table: silhouette IoU and PCK@0.1 (``recon3d.metrics``), the mean keypoint error (px and % of the
torso length), the fitted height and the stage timings (after one warm-up call).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

import cv2
import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon3d import reconstruct  # noqa: E402
from recon3d.metrics import keypoint_pck, landmark_error, silhouette_iou  # noqa: E402
from recon3d.reconstruction import Reconstruction  # noqa: E402
from recon3d.render.renderer import render_mesh  # noqa: E402

PHOTOS = ("obama3.jpg", "biden.jpg", "camera.png", "astronaut.png")
RIG_PHOTO = "obama3.jpg"
VIEWS = (0.0, 60.0, -90.0, 180.0)  # yaw of the textured views, degrees
STAGES = ("decode", "front end", "fit", "texture")
MAX_WIDTH = 1600
JPEG = [cv2.IMWRITE_JPEG_QUALITY, 88]
WHITE = (255, 255, 255)
# Background of the views while they are rendered: a colour no texture has, to find the body.
KEY = (255, 0, 255)
GUTTER = 6  # white pixels between panels
OVERLAY_SIDE = 1024  # Reconstruction.overlay renders at most this many pixels on the long side


def fit_height(img: np.ndarray, height: int) -> np.ndarray:
    """``img`` resized to ``height`` pixels tall, aspect kept."""
    width = max(1, round(img.shape[1] * height / img.shape[0]))
    interpolation = cv2.INTER_AREA if height < img.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(img, (width, height), interpolation=interpolation)


def hstack(panels: Sequence[np.ndarray], gutter: int = GUTTER) -> np.ndarray:
    """Panels of one height side by side with white gutters."""
    height = panels[0].shape[0]
    gap = np.full((height, gutter, 3), 255, np.uint8)
    out: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if i:
            out.append(gap)
        out.append(panel)
    return np.concatenate(out, axis=1)


def cap_width(img: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """``img`` shrunk to ``max_width`` pixels wide when it is wider, aspect kept."""
    if img.shape[1] <= max_width:
        return img
    height = round(img.shape[0] * max_width / img.shape[1])
    return cv2.resize(img, (max_width, height), interpolation=cv2.INTER_AREA)


def body_box(points: np.ndarray, width: int, height: int, pad: float = 0.06) -> tuple[int, ...]:
    """(x0, y0, x1, y1) around ``points`` (N, 2), padded by ``pad`` x its height, inside the
    image."""
    (x0, y0), (x1, y1) = points.min(0), points.max(0)
    margin = pad * (y1 - y0)
    return (
        int(max(0, np.floor(x0 - margin))),
        int(max(0, np.floor(y0 - margin))),
        int(min(width, np.ceil(x1 + margin))),
        int(min(height, np.ceil(y1 + margin))),
    )


def view(rec: Reconstruction, yaw: float, size: int) -> np.ndarray:
    """The textured mesh seen from ``yaw``, cut to the body's columns (scale kept across yaws:
    ``Reconstruction.render`` frames the whole mesh the same way from every side)."""
    img = rec.render(yaw=yaw, size=size, shading="texture", background=KEY)
    body = np.any(img != np.array(KEY, np.uint8), axis=2)
    img[~body] = WHITE
    cols = np.flatnonzero(body.any(axis=0))
    if len(cols) == 0:
        return img
    margin = round(0.04 * size)
    return img[:, max(0, cols[0] - margin) : min(size, cols[-1] + 1 + margin)]


def strip(rec: Reconstruction, height: int) -> np.ndarray:
    """photo | geometry overlay | textured views (VIEWS), ``height`` pixels tall, at most
    MAX_WIDTH wide."""
    small = rec.camera.bounded(OVERLAY_SIDE)
    x0, y0, x1, y1 = body_box(small.project(rec.vertices), small.width, small.height)
    photo = small.resize_image(rec.image)[y0:y1, x0:x1]
    overlay = rec.overlay(alpha=0.6)[y0:y1, x0:x1]
    panels = [fit_height(photo, height), fit_height(overlay, height)]
    # Render at 2x and shrink: smoother edges than the rasteriser's own.
    panels += [fit_height(view(rec, yaw, 2 * height), height) for yaw in VIEWS]
    return cap_width(hstack(panels))


def joint_colour(name: str) -> tuple[int, int, int]:
    """RGB of a bone: left side green, right side red, middle blue (MakeHuman ``.L``/``.R``)."""
    if name.endswith(".L") or name.endswith("_l"):
        return (20, 160, 40)
    if name.endswith(".R") or name.endswith("_r"):
        return (210, 30, 30)
    return (30, 80, 220)


def draw_skeleton(img: np.ndarray, points: np.ndarray, rec: Reconstruction, scale: float) -> None:
    """Draw the joints (``points`` (J, 2), pixels of ``img``) as dots joined to their parents;
    ``scale`` multiplies the line width and the dot radius."""
    skel = rec.skeleton
    if skel is None:
        raise ValueError("draw_skeleton needs a body reconstruction")
    shift = 4  # cv2 fixed point: coordinates and radii in 1/16 pixel
    one = 1 << shift
    thick = max(1, round(2 * scale))
    radius = round(3.5 * scale * one)

    def px(p: np.ndarray) -> tuple[int, int]:
        return round(float(p[0]) * one), round(float(p[1]) * one)

    for j, parent in enumerate(skel.parents):
        if parent >= 0:
            cv2.line(
                img, px(points[parent]), px(points[j]), (40, 40, 40), thick, cv2.LINE_AA, shift
            )
    for j, name in enumerate(skel.names):
        cv2.circle(img, px(points[j]), radius + one, (0, 0, 0), -1, cv2.LINE_AA, shift)
        cv2.circle(img, px(points[j]), radius, joint_colour(name), -1, cv2.LINE_AA, shift)


def render_geometry(
    rec: Reconstruction, s: float, origin: tuple[float, float], size: tuple[int, int]
) -> np.ndarray:
    """The mesh (lit grey on white) seen by the photo's camera, on the canvas where photo pixel
    (x, y) lands at ((x - x0) s, (y - y0) s), ``size`` = (width, height).

    The canvas's principal point is off its centre, but the renderer is only exercised (and
    correct) with centred principal points, so this renders a larger canvas centred on the
    principal point, at twice the size for smoother edges, and cuts the canvas out of it."""
    x0, y0 = origin
    width, height = size
    ss = 2.0 * s
    # The principal point in the doubled canvas, and the centred render around it.
    px, py = (rec.camera.K[0, 2] - x0) * ss, (rec.camera.K[1, 2] - y0) * ss
    half_w = int(np.ceil(max(px, 2 * width - px))) + 1
    half_h = int(np.ceil(max(py, 2 * height - py))) + 1
    K = np.diag([ss, ss, 1.0]) @ rec.camera.K
    K[:2, 2] = (half_w - 0.5, half_h - 0.5)  # centre of a (2 half_w, 2 half_h) image
    grey = np.full((len(rec.vertices), 3), 200, np.uint8)
    full = render_mesh(
        rec.vertices, rec.faces, K, (2 * half_w, 2 * half_h), vertex_colors=grey, lit=True
    ).color
    left, top = round(half_w - 0.5 - px), round(half_h - 0.5 - py)
    doubled = full[top : top + 2 * height, left : left + 2 * width]
    return cv2.resize(doubled, (width, height), interpolation=cv2.INTER_AREA)


def rig_picture(rec: Reconstruction, height: int, pad: float = 0.03) -> np.ndarray:
    """The skeleton over the mesh (lit grey, white background) and over the photo, both with the
    photo's camera: the canvas is that camera's image plane, widened past the photo's edges
    where the body leaves the frame, cut to the body and scaled to ``height`` pixels."""
    if rec.skeleton is None:
        raise ValueError("rig_picture needs a body reconstruction")
    joints = rec.camera.project(rec.skeleton.joints)  # pixels of the photo
    everything = np.r_[rec.camera.project(rec.vertices), joints]
    (x0, y0), (x1, y1) = everything.min(0), everything.max(0)
    margin = pad * (y1 - y0)
    x0, y0, x1, y1 = x0 - margin, y0 - margin, x1 + margin, y1 + margin
    s = height / (y1 - y0)
    width = int(np.ceil((x1 - x0) * s))
    # Photo pixels (x, y) -> canvas pixels ((x - x0) s, (y - y0) s).
    geometry = render_geometry(rec, s, (x0, y0), (width, height))
    # Resize with an area filter first (warpAffine has none), then shift onto the canvas.
    shrink = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    photo = cv2.resize(rec.image, None, fx=s, fy=s, interpolation=shrink)
    sx, sy = photo.shape[1] / rec.image.shape[1], photo.shape[0] / rec.image.shape[0]
    affine = np.array([[s / sx, 0.0, -x0 * s], [0.0, s / sy, -y0 * s]])
    photo = cv2.warpAffine(photo, affine, (width, height), borderValue=WHITE)
    canvas_joints = joints * s - (x0 * s, y0 * s)
    panels = []
    for img in (geometry, photo):
        img = np.ascontiguousarray(img)
        draw_skeleton(img, canvas_joints, rec, scale=height / 880)
        panels.append(img)
    return cap_width(hstack(panels))


def main(argv: list[str] | None = None) -> int:
    """Write the pictures and print the table; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "images")
    parser.add_argument("--height", type=int, default=440, help="strip height in pixels")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    # One warm-up call, so that the timings below are those of a built, warm pipeline.
    reconstruct(ROOT / "tests" / "data" / PHOTOS[0], target="body")
    rows = []
    for name in PHOTOS:
        rec = reconstruct(ROOT / "tests" / "data" / name, target="body")
        stem = pathlib.Path(name).stem
        picture = strip(rec, args.height)
        cv2.imwrite(str(args.out / f"body_{stem}.jpg"), picture[..., ::-1], JPEG)
        if name == RIG_PHOTO:
            rig = rig_picture(rec, 2 * args.height)
            cv2.imwrite(str(args.out / "body_rig.jpg"), rig[..., ::-1], JPEG)
        err, err_fraction = landmark_error(rec)
        times = [rec.timings[s] for s in STAGES]
        rows.append(
            (
                name,
                f"{rec.image.shape[1]}x{rec.image.shape[0]}",
                f"{silhouette_iou(rec):.3f}",
                f"{keypoint_pck(rec, 0.1):.3f}",
                f"{err:.1f}",
                f"{100 * err_fraction:.1f}",
                f"{rec.params['height_m']:.2f}",
                *(f"{t:.2f}" for t in times),
                f"{sum(times):.2f}",
            )
        )

    print(
        "| photo | size | silhouette IoU | PCK@0.1 | keypoint error (px) | (% of torso) "
        "| height (m) | decode (s) | front end (s) | fit (s) | texture (s) | total (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
