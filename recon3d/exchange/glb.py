"""Binary glTF (GLB) export: one self-contained file with the texture embedded.

recon3d meshes live in the OpenCV camera frame: x right, y *down*, z *forward* (away from the
camera, into the scene). glTF 2.0 defines +y up and the front of an asset facing +z, with a
default camera looking down -z. Written unchanged, a head would appear upside down and facing
away from the viewer in every glTF viewer. With ``to_gltf_frame=True`` (the default) positions
and normals are rotated by ``diag(1, -1, -1)`` (a 180 degree turn about x): the head stands
upright and looks at a default glTF camera. That matrix is a proper rotation (det = +1), so face
winding and therefore front faces stay correct. Use ``to_gltf_frame=False`` to keep the camera
frame, for example to overlay the mesh on the input photo in a tool that knows the convention.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import trimesh
from trimesh.visual.material import PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

from recon3d.errors import ExportError
from recon3d.exchange.atomic import check_target, write_atomic

__all__ = ["OPENCV_TO_GLTF", "export_glb"]

logger = logging.getLogger(__name__)

#: (3, 3) rotation taking OpenCV camera coordinates (x right, y down, z forward) to glTF's
#: (x right, y up, viewer on +z).
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])


def export_glb(
    mesh: trimesh.Trimesh,
    path: str | os.PathLike[str],
    *,
    to_gltf_frame: bool = True,
) -> list[Path]:
    """Write ``mesh`` as a single binary glTF file with the texture embedded.

    Args:
        mesh: V vertices (V, 3) in the OpenCV camera frame, F faces (F, 3), optionally
            TextureVisuals with UVs (V, 2) or per-vertex colours. The mesh is not modified.
        path: the ``.glb`` file; its folder must exist.
        to_gltf_frame: rotate positions and normals by :data:`OPENCV_TO_GLTF` so the model is
            upright in glTF viewers (see the module docstring). ``False`` writes the
            coordinates unchanged.

    Returns:
        ``[path]`` as an absolute path.

    Raises:
        TypeError: ``mesh`` is not a :class:`trimesh.Trimesh`.
        ExportError: the mesh has no faces, could not be encoded, or the file could not be
            written; nothing is left at ``path``.
    """
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"export_glb expects a trimesh.Trimesh, got {type(mesh).__name__}")
    target = check_target(path)
    if len(mesh.faces) == 0:
        raise ExportError(f"Cannot write {target.name!r}: the mesh has no faces.")

    rotation = OPENCV_TO_GLTF if to_gltf_frame else np.eye(3)
    try:
        data = trimesh.exchange.gltf.export_glb(
            _export_copy(mesh, rotation, name=target.stem),
            include_normals=True,
        )
    except Exception as exc:  # trimesh/PIL raise anything from ValueError to OSError
        raise ExportError(f"Could not encode {target.name!r} as GLB: {exc}") from exc

    written = write_atomic(target, data)
    logger.info("exported GLB %s (%d bytes, gltf frame: %s)", written, len(data), to_gltf_frame)
    return [written]


def _export_copy(mesh: trimesh.Trimesh, rotation: np.ndarray, name: str) -> trimesh.Trimesh:
    """A copy of ``mesh`` with vertices and normals (V, 3) rotated by ``rotation`` (3, 3).

    Built from fresh visual objects because assigning a visual rebinds ``visual.mesh``. Vertex
    attributes are left out on purpose: trimesh's glTF exporter would write every one of them as
    a custom ``_name`` attribute (for example the ``s``/``t`` arrays its PLY exporter adds to a
    mesh it exports).
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64) @ rotation.T
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64) @ rotation.T
    visual = mesh.visual
    if isinstance(visual, TextureVisuals):
        new_visual = TextureVisuals(uv=visual.uv, material=_pbr_material(visual.material))
    else:
        new_visual = visual.copy()
    out = trimesh.Trimesh(
        vertices=vertices,
        faces=mesh.faces,
        vertex_normals=normals,
        visual=new_visual,
        process=False,
        validate=False,
    )
    # Becomes the glTF node/mesh name, which viewers show in their outliner.
    out.metadata["name"] = name
    return out


def _pbr_material(material: object) -> object:
    """glTF material for a :class:`SimpleMaterial` (what ``TextureVisuals(image=...)`` makes).

    trimesh's own conversion leaves two defaults that ruin a scanned head in glTF viewers: the
    base colour factor is its default diffuse of 0.4 grey, and glTF multiplies the texture by
    it (40 % brightness); and ``metallicFactor`` is omitted, which glTF reads as 1.0, a fully
    metallic surface that looks near-black without an environment map. With a texture the image
    is the colour, so the factor is white, and skin is a dielectric, so metallic is 0.
    PBR materials (and anything else) are passed through: their author chose the values.
    """
    if not isinstance(material, SimpleMaterial):
        return material
    image = material.image
    converted = material.to_pbr()
    return PBRMaterial(
        name=material.name,
        baseColorTexture=image,
        baseColorFactor=[1.0, 1.0, 1.0, 1.0] if image is not None else converted.baseColorFactor,
        metallicFactor=0.0,
        roughnessFactor=converted.roughnessFactor,
    )
