"""Contact sheet of DeepMimic clips retargeted onto the body model, to check the retargeting.

Usage:  PYOPENGL_PLATFORM=egl python scripts/check_mocap_retarget.py \
            [--mocap /work/shared/data/mocap] [--out docs/images/mocap_retarget.jpg]

For each clip (dance_a, walk, kick, cartwheel) it renders a few evenly spaced frames of the mean
body (zero shape, lit grey) standing on a dark floor square at the retargeted ground height: one
row seen from the front (the camera faces the person's rest facing) and one from the person's
left side (the person's rest facing points left in the picture). The camera follows the pelvis
horizontally; the floor square is centred under it.
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import sys

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recon3d.io.mocap import load_deepmimic, retarget_to_body  # noqa: E402
from recon3d.models.body import BodyModel  # noqa: E402
from recon3d.render.renderer import look_at_intrinsics, render_mesh  # noqa: E402

CLIPS = ("dance_a", "walk", "kick", "cartwheel")
FRAMES_PER_CLIP = 6
PANEL = (210, 300)  # width, height
LABEL_WIDTH = 120
FOV = 30.0
VIEW_HEIGHT = 2.5  # metres covered vertically at the pelvis distance
PITCH = math.radians(12.0)  # camera looks slightly down to show the floor
VIEWS = {"front": 0.0, "left side": math.pi / 2}
FLOOR_HALF = 0.45
BODY_GREY = (200, 200, 200)
FLOOR_GREY = (90, 90, 110)


def rotation_xy(yaw: float, pitch: float) -> np.ndarray:
    """(3, 3) camera rotation: turn the scene by ``yaw`` about y, then tilt by ``pitch`` about
    x (positive pitch raises the camera above the subject)."""
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    r_yaw = np.array([[cy, 0.0, sy], [0.0, 1.0, 0.0], [-sy, 0.0, cy]])
    r_pitch = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    return r_pitch @ r_yaw


def floor_square(centre: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """(4, 3) vertices and (2, 3) faces of a square on the ground under ``centre``."""
    x, z = float(centre[0]), float(centre[2])
    h = FLOOR_HALF
    vertices = np.array(
        [[x - h, floor, z - h], [x + h, floor, z - h], [x + h, floor, z + h], [x - h, floor, z + h]]
    )
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def render_panel(
    vertices: np.ndarray, faces: np.ndarray, floor: float, pelvis: np.ndarray, yaw: float
) -> np.ndarray:
    """(H, W, 3) uint8 RGB render of one posed body over its floor square."""
    fv, ff = floor_square(pelvis, floor)
    allv = np.concatenate([vertices, fv])
    allf = np.concatenate([faces, ff + len(vertices)])
    colours = np.array([BODY_GREY] * len(vertices) + [FLOOR_GREY] * 4, np.uint8)
    centre = np.array([pelvis[0], floor - 0.9, pelvis[2]])
    rot = rotation_xy(yaw, PITCH)
    distance = 0.5 * VIEW_HEIGHT / math.tan(math.radians(FOV) / 2)
    camera = (allv - centre) @ rot.T + [0.0, 0.0, distance]
    K = look_at_intrinsics(PANEL[0], PANEL[1], FOV)
    out = render_mesh(camera, allf, K, PANEL, vertex_colors=colours, lit=True)
    return out.color


def label(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mocap", type=pathlib.Path, default=pathlib.Path("/work/shared/data/mocap")
    )
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs/images/mocap_retarget.jpg")
    parser.add_argument("--frames", type=int, default=FRAMES_PER_CLIP)
    args = parser.parse_args()

    torch.set_num_threads(1)
    model = BodyModel.from_pretrained()
    faces = model.faces
    rows: list[np.ndarray] = []
    for name in CLIPS:
        clip = load_deepmimic(args.mocap / f"humanoid3d_{name}.txt")
        motion = retarget_to_body(clip, model)
        picks = np.linspace(0, clip.num_frames - 1, args.frames).round().astype(int)
        with torch.no_grad():
            out = model(
                torch.zeros(len(picks), model.num_shape),
                torch.from_numpy(motion.poses[picks]),
                torch.from_numpy(motion.translation[picks]),
            )
        vertices = out.vertices.numpy().astype(np.float64)
        hips = [model.bone("upperleg01.L"), model.bone("upperleg01.R")]
        pelvis = out.joints[:, hips].mean(1).numpy()
        for view, yaw in VIEWS.items():
            panels = []
            for k, frame in enumerate(picks):
                img = render_panel(vertices[k], faces, motion.floor, pelvis[k], yaw)
                img = np.ascontiguousarray(img)
                label(img, f"t={clip.times[frame]:.2f}s", (6, 16), 0.4)
                panels.append(img)
            strip = np.concatenate(panels, axis=1)
            head = np.full((PANEL[1], LABEL_WIDTH, 3), 255, np.uint8)
            label(head, name, (8, PANEL[1] // 2 - 8), 0.55)
            label(head, view, (8, PANEL[1] // 2 + 14))
            rows.append(np.concatenate([head, strip], axis=1))
            rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    sheet = np.concatenate(rows[:-1], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85]
    )
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main()
