"""Pose maps: the skeleton drawn as an RGB image, the renderer's conditioning input.

OpenPose's rendering conventions: the 17 limbs of COCO-18 in OpenPose's colours
(:data:`LIMB_COLOURS`, red at the neck-shoulder through green (legs) and blue to magenta (head)),
a dot of the keypoint's colour at every joint, face landmarks as white polylines (jaw, brows,
nose, eyes, lips) and hands as 20 bones coloured by finger, on a black background. Line widths
scale with the frame (:func:`line_widths`). A limb, face line or hand bone is drawn only when
both its end points are confident (body > 0.1, face > 0.3, hands > 0.2, OpenPose's own render
thresholds' order of magnitude). Lines are not anti-aliased (as in OpenPose's renderer): every
drawn pixel has exactly its limb's colour, so the colour identifies the limb for the network.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from recon3d.reenact.poses import PoseSequence

__all__ = [
    "BODY_THRESHOLD",
    "FACE_POLYLINES",
    "FACE_THRESHOLD",
    "HAND_BONES",
    "HAND_THRESHOLD",
    "LIMBS",
    "LIMB_COLOURS",
    "draw_pose_map",
    "line_widths",
    "pose_maps",
]

BODY_THRESHOLD = 0.1
FACE_THRESHOLD = 0.3
HAND_THRESHOLD = 0.2

#: COCO-18 limbs (BODY18 rows), OpenPose's order.
LIMBS: tuple[tuple[int, int], ...] = (
    (1, 2),
    (1, 5),
    (2, 3),
    (3, 4),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (1, 0),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)
#: RGB colour of each limb of :data:`LIMBS` (and of the joint of the same index).
LIMB_COLOURS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0),
    (255, 85, 0),
    (255, 170, 0),
    (255, 255, 0),
    (170, 255, 0),
    (85, 255, 0),
    (0, 255, 0),
    (0, 255, 85),
    (0, 255, 170),
    (0, 255, 255),
    (0, 170, 255),
    (0, 85, 255),
    (0, 0, 255),
    (85, 0, 255),
    (170, 0, 255),
    (255, 0, 255),
    (255, 0, 85),
)
_JOINT_COLOURS = LIMB_COLOURS + ((255, 0, 170),)  # 18 joints
#: iBUG-68 polylines: (first, last, closed).
FACE_POLYLINES: tuple[tuple[int, int, bool], ...] = (
    (0, 16, False),  # jaw
    (17, 21, False),  # right brow
    (22, 26, False),  # left brow
    (27, 30, False),  # nose bridge
    (31, 35, False),  # nose bottom
    (36, 41, True),  # right eye
    (42, 47, True),  # left eye
    (48, 59, True),  # outer lips
    (60, 67, True),  # inner lips
)
FACE_COLOUR = (255, 255, 255)
#: 21-point hand bones (wrist 0; thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20).
HAND_BONES: tuple[tuple[int, int], ...] = tuple(
    (0 if k == 0 else 1 + 4 * f + k - 1, 1 + 4 * f + k) for f in range(5) for k in range(4)
)


def _hand_colours() -> tuple[tuple[int, int, int], ...]:
    """OpenPose-like hand colours: a hue per bone, around the colour wheel."""
    import colorsys

    out = []
    for i in range(len(HAND_BONES)):
        r, g, b = colorsys.hsv_to_rgb(i / len(HAND_BONES), 1.0, 1.0)
        out.append((round(255 * r), round(255 * g), round(255 * b)))
    return tuple(out)


HAND_COLOURS = _hand_colours()


def line_widths(size: tuple[int, int]) -> dict[str, int]:
    """Line widths in pixels for a frame of ``size`` (height, width): body limbs 4 px at 512
    (OpenPose's stick width), face and hands 2 px at 512, at least 1 px; joint dots of the limb
    width."""
    side = min(size)
    return {
        "limb": max(1, round(4 * side / 512)),
        "face": max(1, round(2 * side / 512)),
        "hand": max(1, round(2 * side / 512)),
    }


def draw_pose_map(
    poses: PoseSequence, index: int, *, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The pose map of frame ``index``.

    Args:
        poses: the keypoints.
        index: frame index (negative counts from the end).
        size: (height, width) of the map (default ``poses.image_size``); coordinates are scaled
            from ``poses.image_size``.
    Returns:
        (H, W, 3) uint8 RGB image, black where nothing is drawn.
    """
    import cv2

    n = len(poses)
    if not -n <= index < n:
        raise IndexError(f"frame {index} of a {n}-frame sequence")
    h, w = (int(v) for v in (size or poses.image_size))
    scale = np.array([w / poses.image_size[1], h / poses.image_size[0]])
    widths = line_widths((h, w))
    canvas = np.zeros((h, w, 3), np.uint8)
    shift = 4  # sub-pixel precision of cv2's drawing: coordinates in 1/16 pixel

    def fixed(p: np.ndarray) -> tuple[int, int]:
        q = np.clip(p * scale, -4 * max(h, w), 5 * max(h, w))
        return int(round(q[0] * (1 << shift))), int(round(q[1] * (1 << shift)))

    def line(a, b, colour, width):
        cv2.line(canvas, fixed(a), fixed(b), colour, width, cv2.LINE_8, shift)

    body, conf = poses.body[index], poses.body_confidence[index]
    for (i, j), colour in zip(LIMBS, LIMB_COLOURS, strict=True):
        if conf[i] > BODY_THRESHOLD and conf[j] > BODY_THRESHOLD:
            line(body[i], body[j], colour, widths["limb"])
    radius = max(1, widths["limb"])
    for k, colour in enumerate(_JOINT_COLOURS):
        if conf[k] > BODY_THRESHOLD:
            cv2.circle(canvas, fixed(body[k]), radius << shift, colour, -1, cv2.LINE_8, shift)

    if poses.face is not None:
        face, fconf = poses.face[index], poses.face_confidence[index]
        for first, last, closed in FACE_POLYLINES:
            idx = list(range(first, last + 1)) + ([first] if closed else [])
            for a, b in zip(idx[:-1], idx[1:], strict=True):
                if fconf[a] > FACE_THRESHOLD and fconf[b] > FACE_THRESHOLD:
                    line(face[a], face[b], FACE_COLOUR, widths["face"])

    if poses.hands is not None:
        for hand, hconf in zip(poses.hands[index], poses.hands_confidence[index], strict=True):
            for (a, b), colour in zip(HAND_BONES, HAND_COLOURS, strict=True):
                if hconf[a] > HAND_THRESHOLD and hconf[b] > HAND_THRESHOLD:
                    line(hand[a], hand[b], colour, widths["hand"])
    return canvas


def pose_maps(poses: PoseSequence, *, size: tuple[int, int] | None = None) -> Iterator[np.ndarray]:
    """:func:`draw_pose_map` of every frame, in order."""
    for i in range(len(poses)):
        yield draw_pose_map(poses, i, size=size)
