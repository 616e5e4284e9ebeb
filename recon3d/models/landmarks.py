"""Landmarks defined on a mesh: barycentric surface points or linear vertex regressors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SurfacePoints:
    """Points fixed on the surface: ``faces`` (N,) triangle indices, ``bary`` (N, 3) weights."""

    faces: np.ndarray
    bary: np.ndarray


@dataclass(frozen=True)
class VertexRegressor:
    """Points as fixed linear combinations of vertices (e.g. joint centres inside the body):
    ``weights`` (N, V), each row summing to 1."""

    weights: np.ndarray


LandmarkDefinition = SurfacePoints | VertexRegressor


def interpolate_surface(
    vertices: np.ndarray, faces: np.ndarray, points: LandmarkDefinition
) -> np.ndarray:
    """(N, 3) landmark positions on a mesh with (V, 3) ``vertices`` and (F, 3) ``faces``."""
    if isinstance(points, VertexRegressor):
        return points.weights @ vertices
    return np.einsum("nk,nkd->nd", points.bary, vertices[faces[points.faces]])
