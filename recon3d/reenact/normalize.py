"""Global pose normalisation of "Everybody Dance Now" (Chan et al. 2019, section 3.3 / the seed
talk's "Нормализация скелета" slide).

The source person (the driving video) and the target person (the one re-rendered) stand at
different distances from different cameras. Both videos are summarised by their ankle positions
(image y, larger = closer to the camera): ``s_min``/``s_max`` (source) and ``t_min``/``t_max``
(target) are the farthest and closest ankle positions, ``s_far``/``s_close`` and
``t_far``/``t_close`` the person's height in pixels at those positions. Each source frame with
ankle position ``a_source`` (= ``f_source``, the frame's own ankle y) gets

    r     = (a_source - s_min) / (s_max - s_min)
    b     = t_min + r * (t_max - t_min) - f_source
    scale = t_far / s_far + r * (t_close / s_close - t_far / s_far)

i.e. the ankle's relative depth in the source range is carried over to the target range
(translation ``b``, vertical), and the scale is interpolated linearly between the far and the
close height ratios. Every keypoint ``p`` of the frame is scaled about the frame's ankle point
and then moved by ``b``: ``y' = f_source + b + scale * (y - f_source)`` (so the ankle lands
exactly on its mapped position ``t_min + ... (t_max - t_min)``), ``x' = x_ankle * W_t / W_s +
scale * (x - x_ankle)`` (the horizontal position keeps its place relative to the frame width;
the paper maps only the vertical axis). The ratio is not clipped: source frames beyond the
statistics' range extrapolate linearly, as the formulas do.

Statistics (:func:`ankle_stats`), as the paper describes them: the frame's ankle position is the
mean y of its confident ankles; ``max`` ("close") is the median of the largest ankle positions
(the top :data:`EXTREME_FRACTION` of the frames, at least one frame), ``min`` ("far") the median
of the smallest; ``close_height`` / ``far_height`` are the medians of the person's height in
those same frames, the height being the ankle position minus the highest confident head
keypoint (nose, eyes, ears) of the frame.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from recon3d.reenact.poses import BODY18, PoseSequence

__all__ = ["EXTREME_FRACTION", "AnkleStats", "ankle_positions", "ankle_stats", "normalize_poses"]

EXTREME_FRACTION = 0.1
"""Share of frames whose median gives the closest / farthest ankle position."""
MIN_CONFIDENCE = 0.3
"""Keypoints below this confidence are ignored for the statistics."""

_ANKLES = (BODY18.index("r_ankle"), BODY18.index("l_ankle"))
_HEAD = tuple(BODY18.index(n) for n in ("nose", "r_eye", "l_eye", "r_ear", "l_ear"))


@dataclass(frozen=True)
class AnkleStats:
    """Ankle statistics of one video, in the pixels of a frame of ``image_size``.

    Attributes:
        min: farthest ankle position (smallest image y; ``s_min`` / ``t_min``).
        max: closest ankle position (largest image y; ``s_max`` / ``t_max``).
        far_height: person height in pixels at the farthest positions (``s_far`` / ``t_far``).
        close_height: person height in pixels at the closest positions (``s_close`` /
            ``t_close``).
        image_size: (height, width) of the frame.
    """

    min: float
    max: float
    far_height: float
    close_height: float
    image_size: tuple[int, int]

    def to_dict(self) -> dict:
        """JSON-friendly copy (for checkpoints' metadata)."""
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> AnkleStats:
        """Inverse of :meth:`to_dict`; raises ValueError on missing or non-finite values."""
        try:
            values = {k: float(data[k]) for k in ("min", "max", "far_height", "close_height")}
            size = tuple(int(v) for v in data["image_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not ankle statistics: {data!r}") from exc
        if not all(math.isfinite(v) for v in values.values()) or len(size) != 2:
            raise ValueError(f"not ankle statistics: {data!r}")
        if values["far_height"] <= 0 or values["close_height"] <= 0:
            raise ValueError(f"ankle statistics need positive heights: {data!r}")
        return cls(**values, image_size=(size[0], size[1]))


def ankle_positions(poses: PoseSequence) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame ankle point and person height.

    Returns:
        ``ankle`` (T, 2) mean x, y of the frame's confident ankles (NaN where none is) and
        ``height`` (T,) ankle y minus the highest confident head keypoint (NaN where either is
        missing).
    """
    conf = poses.body_confidence[:, list(_ANKLES)] >= MIN_CONFIDENCE  # (T, 2)
    pts = poses.body[:, list(_ANKLES)].astype(np.float64)  # (T, 2, 2)
    count = conf.sum(1)
    ankle = np.full((len(poses), 2), np.nan)
    ok = count > 0
    ankle[ok] = (pts * conf[..., None]).sum(1)[ok] / count[ok, None]
    head_ok = poses.body_confidence[:, list(_HEAD)] >= MIN_CONFIDENCE
    head_y = np.where(head_ok, poses.body[:, list(_HEAD), 1], np.inf).min(1)
    height = np.where(np.isfinite(head_y) & ok, ankle[:, 1] - head_y, np.nan)
    return ankle, height


def ankle_stats(poses: PoseSequence, *, fraction: float = EXTREME_FRACTION) -> AnkleStats:
    """The closest / farthest ankle positions and the heights there (see the module text).

    Args:
        poses: a video's poses.
        fraction: share of frames (at least one) whose median defines each extreme.
    Raises:
        ValueError: no frame shows both a confident ankle and a confident head keypoint with
            the head above the ankle (e.g. an upper-body video): such a video cannot be
            normalised this way.
    """
    ankle, height = ankle_positions(poses)
    valid = np.isfinite(height) & (height > 1.0)
    if not valid.any():
        raise ValueError(
            "no frame shows a confident ankle below a confident head keypoint; the global pose "
            "normalisation needs full-body poses (skip it for this sequence)"
        )
    y, h = ankle[valid, 1], height[valid]
    order = np.argsort(y, kind="stable")
    k = max(1, int(math.ceil(fraction * len(order))))
    far, close = order[:k], order[-k:]
    return AnkleStats(
        min=float(np.median(y[far])),
        max=float(np.median(y[close])),
        far_height=float(np.median(h[far])),
        close_height=float(np.median(h[close])),
        image_size=poses.image_size,
    )


def _filled(values: np.ndarray) -> np.ndarray:
    """(T, D) with NaN rows filled from the nearest frame that has values (in time)."""
    out = values.copy()
    good = np.flatnonzero(np.isfinite(values).all(1))
    if good.size == 0:
        return out
    t = np.arange(len(values))
    nearest = good[np.clip(np.searchsorted(good, t), 0, good.size - 1)]
    before = good[np.clip(np.searchsorted(good, t) - 1, 0, good.size - 1)]
    pick = np.where(np.abs(before - t) <= np.abs(nearest - t), before, nearest)
    bad = ~np.isfinite(values).all(1)
    out[bad] = values[pick[bad]]
    return out


def normalize_poses(
    source: PoseSequence, target: AnkleStats, *, source_stats: AnkleStats | None = None
) -> PoseSequence:
    """Map the source poses into the target's frame with the paper's per-frame translation and
    scale (the two formulas in the module text).

    Args:
        source: the driving poses.
        target: the target video's statistics (:func:`ankle_stats` of its poses).
        source_stats: the source's statistics (default: :func:`ankle_stats` of ``source``).
    Returns:
        The normalised poses, in a frame of ``target.image_size``. Frames without a confident
        ankle use the ankle of the nearest frame in time that has one.
    Raises:
        ValueError: the source has no frame with a confident ankle and head (see
            :func:`ankle_stats`), or statistics with non-positive heights.
    """
    stats = ankle_stats(source) if source_stats is None else source_stats
    for s in (stats, target):
        if s.far_height <= 0 or s.close_height <= 0:
            raise ValueError(f"ankle statistics need positive heights, got {s}")
    ankle, _ = ankle_positions(source)
    if not np.isfinite(ankle).all(1).any():
        raise ValueError("the source has no frame with a confident ankle")
    ankle = _filled(ankle)
    a = ankle[:, 1]  # a_source = f_source: the frame's ankle position
    span = stats.max - stats.min
    ratio = (a - stats.min) / span if abs(span) > 1e-6 else np.full_like(a, 0.5)
    b = target.min + ratio * (target.max - target.min) - a
    far_ratio = target.far_height / stats.far_height
    close_ratio = target.close_height / stats.close_height
    scale = far_ratio + ratio * (close_ratio - far_ratio)
    width_ratio = target.image_size[1] / source.image_size[1]
    anchor_x = ankle[:, 0] * width_ratio
    offset = np.stack([anchor_x - scale * ankle[:, 0], a + b - scale * a], -1)
    out = source.transformed(scale, offset)
    out.image_size = target.image_size
    return out
