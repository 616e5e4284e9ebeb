"""The skeleton that travels with a body mesh: joints, hierarchy and skin weights."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Skeleton:
    """A rig in its bind pose, which is the pose of the mesh it belongs to.

    Attributes:
        names: J joint names (Anny/MakeHuman bone names, e.g. ``"upperarm01.L"``).
        parents: (J,) int parent of each joint, -1 for the root; parents come before children.
        joints: (J, 3) float32 joint (bone head) positions in the mesh's frame, metres.
        skin_indices: (V, k) int joints influencing each vertex of the mesh.
        skin_weights: (V, k) float32 weights of those joints; each row sums to 1.
    """

    names: tuple[str, ...]
    parents: np.ndarray
    joints: np.ndarray
    skin_indices: np.ndarray
    skin_weights: np.ndarray

    def __post_init__(self) -> None:
        j = len(self.names)
        if self.parents.shape != (j,) or self.joints.shape != (j, 3):
            raise ValueError(
                f"expected parents ({j},) and joints ({j}, 3), got {self.parents.shape} and "
                f"{self.joints.shape}"
            )
        if self.skin_indices.shape != self.skin_weights.shape or self.skin_indices.ndim != 2:
            raise ValueError(
                "expected skin_indices and skin_weights of one shape (V, k), got "
                f"{self.skin_indices.shape} and {self.skin_weights.shape}"
            )
        if (self.parents >= np.arange(j)).any():
            raise ValueError("every joint's parent must come before it (parents[j] < j)")

    def for_vertices(self, source: np.ndarray) -> Skeleton:
        """The same rig for a mesh whose vertex ``i`` is vertex ``source[i]`` of this one (for
        example after splitting vertices at UV seams)."""
        return Skeleton(
            self.names,
            self.parents,
            self.joints,
            self.skin_indices[source],
            self.skin_weights[source],
        )

    def top_influences(self, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` largest influences per vertex, renormalised (glTF's JOINTS_0/WEIGHTS_0).

        Returns:
            indices (V, k) int and weights (V, k) float32 summing to 1 per row.
        """
        order = np.argsort(-self.skin_weights, axis=1)[:, :k]
        weights = np.take_along_axis(self.skin_weights, order, 1).astype(np.float64)
        indices = np.take_along_axis(self.skin_indices, order, 1)
        if weights.shape[1] < k:
            pad = k - weights.shape[1]
            weights = np.pad(weights, ((0, 0), (0, pad)))
            indices = np.pad(indices, ((0, 0), (0, pad)))
        total = weights.sum(1, keepdims=True)
        weights = np.where(total > 0, weights / np.where(total > 0, total, 1.0), 0.0)
        return indices.astype(np.int64), weights.astype(np.float32)
