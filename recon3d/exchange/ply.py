"""Binary PLY export with per-vertex colours.

PLY has no standard way to reference a texture image (MeshLab's ``comment TextureFile`` is a
convention, and needs per-face UVs). A textured mesh is therefore written with the texture
sampled at each vertex's UV as ``red green blue alpha`` uchar properties, which MeshLab,
CloudCompare, Open3D and Blender all display. The UVs are deliberately *not* written: with
``s``/``t`` present, trimesh's own PLY loader builds an image-less TextureVisuals and shows the
mesh grey (the colours end up in ``vertex_attributes['color']``), and no PLY reader can use them
without the image anyway.

Colour resolution is the vertex density: detail finer than the mesh is lost, which is the price of
a single self-contained file. Coordinates are written unchanged (OpenCV camera frame).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh
from trimesh.visual.color import ColorVisuals, uv_to_interpolated_color
from trimesh.visual.texture import TextureVisuals

from recon3d.errors import ExportError
from recon3d.exchange.atomic import PathInput, check_target, write_atomic

__all__ = ["export_ply", "texture_vertex_colors"]

logger = logging.getLogger(__name__)


def texture_vertex_colors(visual: TextureVisuals) -> np.ndarray | None:
    """Sample the texture of ``visual`` at its per-vertex UVs.

    Bilinear rather than nearest-texel sampling, so a vertex sitting on a texel edge does not
    pick one side at random.

    Args:
        visual: texture visuals with ``uv`` (V, 2) in [0, 1], origin bottom-left.

    Returns:
        (V, 4) uint8 RGBA colours, or None without UVs. A material without an image gives its
        plain colour for every vertex.
    """
    uv = visual.uv
    if uv is None or np.ndim(uv) != 2:
        return None
    material = visual.material
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    if image is None:
        main = getattr(material, "main_color", None)
        if main is None:
            return None
        return np.tile(np.asarray(main, dtype=np.uint8)[:4], (len(uv), 1))
    return uv_to_interpolated_color(uv=uv, image=image)


def export_ply(mesh: trimesh.Trimesh, path: PathInput) -> list[Path]:
    """Write ``mesh`` as binary little-endian PLY with vertex normals and colours.

    Args:
        mesh: V vertices (V, 3), F faces (F, 3). With TextureVisuals the texture is sampled per
            vertex (see :func:`texture_vertex_colors`); ColorVisuals are written as they are.
            The mesh is not modified.
        path: the ``.ply`` file; its folder must exist.

    Returns:
        ``[path]`` as an absolute path.

    Raises:
        TypeError: ``mesh`` is not a :class:`trimesh.Trimesh`.
        ExportError: the mesh has no faces, could not be encoded, or the file could not be
            written; nothing is left at ``path``.
    """
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"export_ply expects a trimesh.Trimesh, got {type(mesh).__name__}")
    target = check_target(path)
    if len(mesh.faces) == 0:
        raise ExportError(f"Cannot write {target.name!r}: the mesh has no faces.")

    try:
        data = trimesh.exchange.ply.export_ply(
            _export_copy(mesh), encoding="binary", vertex_normal=True, include_attributes=False
        )
    except Exception as exc:  # trimesh/PIL raise anything from ValueError to OSError
        raise ExportError(f"Could not encode {target.name!r} as PLY: {exc}") from exc

    written = write_atomic(target, data)
    logger.info("exported PLY %s (%d bytes)", written, len(data))
    return [written]


def _export_copy(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """A copy of ``mesh`` with colour visuals; the caller's mesh is left untouched.

    trimesh's PLY exporter writes ``s``/``t`` into the ``vertex_attributes`` of a textured mesh
    it is given, so it must never see the caller's mesh. Vertex attributes are not carried
    over: the exporter would write every one of them as an extra property.
    """
    visual = mesh.visual
    if isinstance(visual, TextureVisuals):
        colors = texture_vertex_colors(visual)
        if colors is not None and len(colors) == len(mesh.vertices):
            new_visual = ColorVisuals(vertex_colors=colors)
        else:
            logger.warning("texture without per-vertex UVs (V, 2); writing PLY without colours")
            new_visual = None
    else:
        new_visual = visual.copy()
    return trimesh.Trimesh(
        vertices=mesh.vertices,
        faces=mesh.faces,
        vertex_normals=mesh.vertex_normals,
        visual=new_visual,
        process=False,
        validate=False,
    )
