"""The face crop of the FaceGAN: square boxes from keypoints, and differentiable crop / paste of
boxes in image tensors.

The same :func:`face_boxes` gives the crops at training time and at render time, so the FaceGAN
sees the same framing in both.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["crop_boxes", "face_boxes", "face_visible", "paste_boxes"]

# BODY18 indices of the head: nose, neck, right/left eye, right/left ear.
_NOSE, _NECK, _EYES, _EARS = 0, 1, (14, 15), (16, 17)
_MIN_CONFIDENCE = 0.05


def face_boxes(poses, *, size: tuple[int, int] | None = None, scale: float = 1.0) -> np.ndarray:
    """Square face boxes, one per frame of a pose sequence.

    The box is centred on the face landmarks (iBUG-68, when present and confident) or on the
    head keypoints (eyes, ears, nose); its side is 1.5 x the landmarks' extent, or
    2.2 x the ear-to-ear / eye-to-eye width, or 0.9 x the nose-to-neck distance, whichever is
    available first, and at least 1/16 of the image. Boxes are moved inside the image.

    Args:
        poses: a :class:`recon3d.reenact.poses.PoseSequence` of T frames.
        size: (height, width) of the frames the boxes are for; the poses are rescaled from
            their ``image_size``. Default: ``poses.image_size``.
        scale: multiplies the side.
    Returns:
        (T, 4) int64 ``x0, y0, x1, y1`` with ``x1 - x0 == y1 - y0`` (exclusive end); frames
        without a visible head get a box at the top centre.
    """
    h0, w0 = poses.image_size
    h, w = size if size is not None else (h0, w0)
    sx, sy = w / w0, h / h0
    side_min = max(8.0, min(h, w) / 16)
    body = np.asarray(poses.body, np.float64) * (sx, sy)
    body_conf = np.asarray(poses.body_confidence, np.float64)
    face = None if poses.face is None else np.asarray(poses.face, np.float64) * (sx, sy)
    face_conf = None if poses.face_confidence is None else np.asarray(poses.face_confidence)
    out = np.zeros((len(body), 4), np.int64)
    for t in range(len(body)):
        centre, side = None, None
        if face is not None and face_conf is not None:
            ok = face_conf[t] > _MIN_CONFIDENCE
            if ok.sum() >= 10:
                pts = face[t][ok]
                lo, hi = pts.min(0), pts.max(0)
                centre, side = 0.5 * (lo + hi), 1.5 * float((hi - lo).max())
        if centre is None:
            ok = body_conf[t] > _MIN_CONFIDENCE
            head = [i for i in (_NOSE, *_EYES, *_EARS) if ok[i]]
            if head:
                centre = body[t, head].mean(0)
                if ok[_EARS[0]] and ok[_EARS[1]]:
                    side = 2.2 * float(np.linalg.norm(body[t, _EARS[0]] - body[t, _EARS[1]]))
                elif ok[_EYES[0]] and ok[_EYES[1]]:
                    side = 3.5 * float(np.linalg.norm(body[t, _EYES[0]] - body[t, _EYES[1]]))
                elif ok[_NOSE] and ok[_NECK]:
                    side = 0.9 * float(np.linalg.norm(body[t, _NOSE] - body[t, _NECK]))
        if centre is None:
            centre, side = np.array([w / 2, side_min / 2]), side_min
        side = int(round(min(max(side or side_min, side_min) * scale, h, w)))
        x0 = int(round(centre[0] - side / 2))
        y0 = int(round(centre[1] - side / 2))
        x0 = min(max(x0, 0), w - side)
        y0 = min(max(y0, 0), h - side)
        out[t] = (x0, y0, x0 + side, y0 + side)
    return out


def face_visible(poses) -> np.ndarray:
    """(T,) bool: frames whose face is seen from the front or the side (at least 10 confident
    iBUG-68 points, or the nose and an eye), where the FaceGAN applies; from behind, only the
    box of :func:`face_boxes` is left and the FaceGAN would paint a face on the back of the
    head."""
    body_conf = np.asarray(poses.body_confidence)
    ok = body_conf > _MIN_CONFIDENCE
    visible = ok[:, _NOSE] & (ok[:, _EYES[0]] | ok[:, _EYES[1]])
    if poses.face_confidence is not None:
        visible |= (np.asarray(poses.face_confidence) > _MIN_CONFIDENCE).sum(1) >= 10
    return visible


def _affine(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) affine_grid matrices mapping an output square to each box (x0, y0, x1, y1)."""
    b = boxes.to(torch.float32)
    theta = torch.zeros(len(b), 2, 3, dtype=torch.float32, device=boxes.device)
    theta[:, 0, 0] = (b[:, 2] - b[:, 0]) / width
    theta[:, 1, 1] = (b[:, 3] - b[:, 1]) / height
    theta[:, 0, 2] = (b[:, 0] + b[:, 2]) / width - 1
    theta[:, 1, 2] = (b[:, 1] + b[:, 3]) / height - 1
    return theta


def crop_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear, differentiable crops: (B, C, H, W) images and (B, 4) boxes ``x0, y0, x1, y1``
    (pixels, exclusive end) -> (B, C, size, size)."""
    theta = _affine(boxes, images.shape[2], images.shape[3]).to(images.dtype)
    grid = F.affine_grid(theta, [len(images), images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def paste_boxes(
    images: torch.Tensor, patches: torch.Tensor, boxes: torch.Tensor, *, feather: float = 0.0
) -> torch.Tensor:
    """Add (B, C, S, S) patches, resized to each (B, 4) box, onto (B, C, H, W) images (zero
    outside the boxes). ``feather`` > 0 fades the patches linearly to zero over that fraction
    of their side at the borders (no visible seam at the box's edge). Returns the new
    (B, C, H, W) images."""
    out = images.clone()
    if feather > 0:
        s = patches.shape[-1]
        u = (torch.arange(s, dtype=patches.dtype, device=patches.device) + 0.5) / s
        ramp = (torch.minimum(u, 1 - u) / feather).clamp(max=1.0)
        patches = patches * (ramp[:, None] * ramp[None, :])
    for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
        patch = F.interpolate(
            patches[i : i + 1], size=(y1 - y0, x1 - x0), mode="bilinear", align_corners=False
        )
        out[i : i + 1, :, y0:y1, x0:x1] += patch
    return out
