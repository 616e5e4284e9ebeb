"""Binary glTF (GLB) export: one self-contained file with the texture embedded.

recon3d meshes live in the OpenCV camera frame: x right, y *down*, z *forward* (away from the
camera, into the scene). glTF 2.0 defines +y up and the front of an asset facing +z, with a
default camera looking down -z. Written unchanged, a head would appear upside down and facing
away from the viewer in every glTF viewer. With ``to_gltf_frame=True`` (the default) positions
and normals are rotated by ``diag(1, -1, -1)`` (a 180 degree turn about x): the head stands
upright and looks at a default glTF camera. That matrix is a proper rotation (det = +1), so face
winding and therefore front faces stay correct. Use ``to_gltf_frame=False`` to keep the camera
frame, for example to overlay the mesh on the input photo in a tool that knows the convention.

Skeleton: a mesh that carries a :class:`recon3d.skeleton.Skeleton` in
``mesh.metadata["skeleton"]`` is written as a skinned mesh that Blender, three.js and other glTF
tools can pose. Every joint becomes a node named after it, nested like the rig (translation =
joint minus parent joint, identity rotation; the root's translation is its position), the joint
positions are rotated like the vertices, a ``skin`` lists the joint nodes in rig order with their
inverse bind matrices, and the primitive gets ``JOINTS_0``/``WEIGHTS_0`` (the four largest
influences of each vertex, renormalised). The file is still produced by trimesh and then amended
with ``pygltflib`` (imported only for a rigged mesh). Without a skeleton the output is exactly
trimesh's.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import trimesh
from trimesh.visual.material import PBRMaterial, SimpleMaterial
from trimesh.visual.texture import TextureVisuals

from recon3d.errors import ExportError
from recon3d.exchange._png import fast_png
from recon3d.exchange.atomic import check_target, write_atomic
from recon3d.skeleton import Skeleton

if TYPE_CHECKING:
    import pygltflib

__all__ = ["OPENCV_TO_GLTF", "export_glb"]

logger = logging.getLogger(__name__)

#: (3, 3) rotation taking OpenCV camera coordinates (x right, y down, z forward) to glTF's
#: (x right, y up, viewer on +z).
OPENCV_TO_GLTF = np.diag([1.0, -1.0, -1.0])

#: Influences per vertex in the glTF skin (one ``JOINTS_0``/``WEIGHTS_0`` set).
_INFLUENCES = 4
# glTF enums
_FLOAT = 5126
_UNSIGNED_SHORT = 5123
_ARRAY_BUFFER = 34962


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
            ``mesh.metadata["skeleton"]``, if present and not None, is a
            :class:`~recon3d.skeleton.Skeleton` with J joints (J, 3) in the same frame and one
            skin row per vertex (V, k); it is written as a glTF skin (see the module docstring).
        path: the ``.glb`` file; its folder must exist.
        to_gltf_frame: rotate positions and normals by :data:`OPENCV_TO_GLTF` so the model is
            upright in glTF viewers (see the module docstring). ``False`` writes the
            coordinates unchanged.

    Returns:
        ``[path]`` as an absolute path.

    Raises:
        TypeError: ``mesh`` is not a :class:`trimesh.Trimesh`.
        ExportError: the mesh has no faces, its skeleton does not fit it (wrong type, skin rows
            other than V, joint indices outside [0, J), non-finite or negative values), it could
            not be encoded, or the file could not be written; nothing is left at ``path``.
    """
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"export_glb expects a trimesh.Trimesh, got {type(mesh).__name__}")
    target = check_target(path)
    if len(mesh.faces) == 0:
        raise ExportError(f"Cannot write {target.name!r}: the mesh has no faces.")
    skeleton = _mesh_skeleton(mesh, target.name)

    rotation = OPENCV_TO_GLTF if to_gltf_frame else np.eye(3)
    exported = _export_copy(mesh, rotation, name=target.stem)
    try:
        data = trimesh.exchange.gltf.export_glb(exported, include_normals=True)
    except Exception as exc:  # trimesh/PIL raise anything from ValueError to OSError
        raise ExportError(f"Could not encode {target.name!r} as GLB: {exc}") from exc

    if skeleton is not None:
        try:
            data = _add_skin(data, skeleton, rotation, np.asarray(exported.vertices))
        except ExportError:
            raise
        except Exception as exc:  # pygltflib and numpy raise anything on a malformed file
            raise ExportError(f"Could not add the skeleton to {target.name!r}: {exc}") from exc

    written = write_atomic(target, data)
    logger.info(
        "exported GLB %s (%d bytes, gltf frame: %s, joints: %d)",
        written,
        len(data),
        to_gltf_frame,
        0 if skeleton is None else len(skeleton.names),
    )
    return [written]


def _mesh_skeleton(mesh: trimesh.Trimesh, name: str) -> Skeleton | None:
    """The validated ``mesh.metadata["skeleton"]``, or None when the mesh carries none.

    Checked before any encoding so a rig that does not fit fails fast and writes nothing.
    """
    skeleton = mesh.metadata.get("skeleton")
    if skeleton is None:
        return None
    if not isinstance(skeleton, Skeleton):
        raise ExportError(
            f"Cannot write {name!r}: mesh.metadata['skeleton'] must be a recon3d Skeleton, "
            f"got {type(skeleton).__name__}."
        )
    n_joints, n_vertices = len(skeleton.names), len(mesh.vertices)
    indices, weights = skeleton.skin_indices, skeleton.skin_weights
    problem = None
    if n_joints == 0:
        problem = "it has no joints"
    elif n_joints > np.iinfo(np.uint16).max:
        problem = f"it has {n_joints} joints; JOINTS_0 holds at most {np.iinfo(np.uint16).max}"
    elif indices.shape[0] != n_vertices:
        problem = f"its skin has {indices.shape[0]} rows for a mesh of {n_vertices} vertices"
    elif indices.shape[1] == 0:
        problem = "its skin has no influence columns"
    elif not np.issubdtype(indices.dtype, np.integer):
        problem = f"its skin indices are {indices.dtype}, not integers"
    elif indices.size and (indices.min() < 0 or indices.max() >= n_joints):
        problem = f"its skin indices leave [0, {n_joints})"
    elif not np.isfinite(weights).all() or (weights < 0).any():
        problem = "its skin weights are not all finite and >= 0"
    elif not np.isfinite(skeleton.joints).all():
        problem = "its joint positions are not all finite"
    if problem is not None:
        raise ExportError(f"Cannot write {name!r}: the mesh's skeleton does not fit it: {problem}.")
    return skeleton


def _add_skin(data: bytes, skeleton: Skeleton, rotation: np.ndarray, vertices: np.ndarray) -> bytes:
    """Add ``skeleton`` as nodes + skin + JOINTS_0/WEIGHTS_0 to trimesh's one-mesh GLB ``data``.

    Args:
        data: the GLB trimesh wrote for the exported copy of the mesh.
        skeleton: J joints (J, 3) in the frame of the original mesh, skin rows (V, k) in the
            order of its vertices.
        rotation: (3, 3) rotation that was applied to the vertices; applied to the joints too.
        vertices: (V, 3) vertices of the exported copy (already rotated), as handed to trimesh.

    Returns:
        The complete GLB with the skin.
    """
    try:
        import pygltflib
    except ImportError as exc:
        raise ExportError(
            "Writing a skeleton to GLB needs pygltflib (pip install 'pygltflib>=1.16.5,<2')."
        ) from exc

    gltf = pygltflib.GLTF2.load_from_bytes(data)
    blob = bytearray(gltf.binary_blob() or b"")
    if len(gltf.meshes) != 1 or len(gltf.meshes[0].primitives) != 1 or len(gltf.buffers) != 1:
        raise ExportError("trimesh wrote an unexpected GLB layout (not one mesh, one primitive).")
    primitive = gltf.meshes[0].primitives[0]
    scene = gltf.scenes[gltf.scene or 0]
    mesh_nodes = [i for i, node in enumerate(gltf.nodes) if node.mesh == 0]
    if len(mesh_nodes) != 1 or mesh_nodes[0] not in scene.nodes:
        raise ExportError(
            "trimesh wrote an unexpected GLB layout (the mesh node is not a root; trimesh < 5 "
            "adds a 'world' node: pip install 'trimesh>=5,<6')."
        )
    mesh_node = gltf.nodes[mesh_nodes[0]]
    if any(v is not None for v in (mesh_node.matrix, mesh_node.translation, mesh_node.rotation)):
        # glTF ignores a skinned mesh node's own transform; trimesh writes none for one mesh.
        raise ExportError("trimesh wrote an unexpected GLB layout (a transformed mesh node).")

    positions = _read_accessor(gltf, blob, primitive.attributes.POSITION)
    source = _vertex_source(positions, vertices, skeleton)
    indices, weights = _merge_duplicate_influences(skeleton).top_influences(_INFLUENCES)
    indices, weights = indices[source], weights[source]
    unbound = weights.sum(axis=1) <= 0
    if unbound.any():
        # glTF needs weights summing to 1; a vertex the rig leaves free follows the root.
        logger.warning("%d vertices have no skin weight; binding them to the root", unbound.sum())
        weights[unbound] = 0.0
        weights[unbound, 0] = 1.0
        indices[unbound] = 0
    indices = np.where(weights > 0, indices, 0).astype(np.uint16)  # unused slots point at 0

    parents = np.asarray(skeleton.parents, dtype=np.int64)
    joints = np.asarray(skeleton.joints, dtype=np.float64) @ np.asarray(rotation).T
    local = joints - np.where(parents[:, None] >= 0, joints[np.maximum(parents, 0)], 0.0)
    inverse_bind = np.tile(np.eye(4), (len(joints), 1, 1))
    inverse_bind[:, :3, 3] = -joints
    # glTF matrices are column-major: store each transposed.
    inverse_bind_cm = np.ascontiguousarray(inverse_bind.transpose(0, 2, 1), dtype=np.float32)

    primitive.attributes.JOINTS_0 = _append_accessor(
        gltf, blob, indices, _UNSIGNED_SHORT, "VEC4", target=_ARRAY_BUFFER
    )
    primitive.attributes.WEIGHTS_0 = _append_accessor(
        gltf, blob, weights.astype(np.float32), _FLOAT, "VEC4", target=_ARRAY_BUFFER
    )
    ibm_accessor = _append_accessor(gltf, blob, inverse_bind_cm.reshape(-1, 16), _FLOAT, "MAT4")

    first = len(gltf.nodes)
    children: list[list[int]] = [[] for _ in parents]
    for joint, parent in enumerate(parents):
        if parent >= 0:
            children[parent].append(first + joint)
    for joint, name in enumerate(skeleton.names):
        gltf.nodes.append(
            pygltflib.Node(
                name=str(name),
                translation=[float(t) for t in local[joint]],
                children=children[joint],
            )
        )
    roots = [first + int(j) for j in np.flatnonzero(parents < 0)]
    scene.nodes.extend(roots)
    gltf.skins.append(
        pygltflib.Skin(
            name="skeleton",
            joints=list(range(first, first + len(parents))),
            inverseBindMatrices=ibm_accessor,
            skeleton=roots[0] if len(roots) == 1 else None,
        )
    )
    mesh_node.skin = len(gltf.skins) - 1

    gltf.buffers[0].byteLength = len(blob)
    gltf.set_binary_blob(bytes(blob))
    return b"".join(gltf.save_to_bytes())


def _vertex_source(positions: np.ndarray, vertices: np.ndarray, skeleton: Skeleton) -> np.ndarray:
    """(N,) index into the mesh's V vertices of every one of the N vertices in the GLB.

    trimesh writes the vertices of a ``process=False`` mesh in order, which the fast path
    confirms. Should a trimesh version reorder or merge them, each GLB vertex is matched to the
    mesh vertex at the same (float32) position; that is only accepted where all mesh vertices
    sharing the position have the same skin, otherwise the skin would be guessed.

    Args:
        positions: (N, 3) the GLB's POSITION accessor.
        vertices: (V, 3) the vertices handed to trimesh.
        skeleton: the rig, with (V, k) skin rows.
    """
    expected = np.ascontiguousarray(vertices, dtype=np.float32)
    if positions.shape == expected.shape and np.array_equal(positions, expected):
        return np.arange(len(expected))
    logger.warning(
        "trimesh changed the vertex order/count (%d -> %d)", len(expected), len(positions)
    )
    rows = np.ascontiguousarray(expected).view(np.dtype((np.void, 12))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    indices, weights = skeleton.top_influences(_INFLUENCES)
    leader = first[inverse]  # (V,) first mesh vertex with the same position
    same = (indices == indices[leader]).all(axis=1) & np.isclose(weights, weights[leader]).all(1)
    ambiguous = np.zeros(len(first), dtype=bool)
    ambiguous[inverse[~same]] = True
    lookup = {row.tobytes(): group for group, row in enumerate(rows[first])}
    wanted = np.ascontiguousarray(positions, dtype=np.float32).view(np.dtype((np.void, 12))).ravel()
    groups = np.array([lookup.get(row.tobytes(), -1) for row in wanted], dtype=np.int64)
    if (groups < 0).any():
        raise ExportError("trimesh wrote vertices that are not in the mesh; cannot map the skin.")
    if ambiguous[groups].any():
        raise ExportError(
            "trimesh merged vertices that have different skin weights; cannot map the skin."
        )
    return first[groups]


def _merge_duplicate_influences(skeleton: Skeleton) -> Skeleton:
    """The rig with each joint at most once per skin row (weights of repeats summed).

    glTF forbids a joint twice in one vertex's JOINTS_0 with non-zero weights.
    """
    indices = skeleton.skin_indices
    weights = np.array(skeleton.skin_weights, dtype=np.float64)
    changed = False
    for b in range(1, indices.shape[1]):
        for a in range(b):
            same = (indices[:, a] == indices[:, b]) & (weights[:, b] > 0)
            if same.any():
                changed = True
                weights[same, a] += weights[same, b]
                weights[same, b] = 0.0
    if not changed:
        return skeleton
    return Skeleton(
        skeleton.names, skeleton.parents, skeleton.joints, indices, weights.astype(np.float32)
    )


_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}
_DTYPES = {_FLOAT: np.float32, _UNSIGNED_SHORT: np.uint16, 5125: np.uint32, 5121: np.uint8}


def _read_accessor(gltf: pygltflib.GLTF2, blob: bytes | bytearray, index: int) -> np.ndarray:
    """A dense, non-sparse accessor as an (count, components) array."""
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    dtype = np.dtype(_DTYPES[accessor.componentType])
    width = _COMPONENTS[accessor.type]
    stride = view.byteStride or dtype.itemsize * width
    start = (view.byteOffset or 0) + (accessor.byteOffset or 0)
    out = np.ndarray(
        shape=(accessor.count, width),
        dtype=dtype.newbyteorder("<"),
        buffer=bytes(blob),
        offset=start,
        strides=(stride, dtype.itemsize),
    )
    return out.astype(dtype)


def _append_accessor(
    gltf: pygltflib.GLTF2,
    blob: bytearray,
    array: np.ndarray,
    component_type: int,
    kind: str,
    target: int | None = None,
) -> int:
    """Append (count, components) ``array`` to ``blob`` (4-byte aligned) as a new bufferView and
    accessor; return the accessor's index."""
    import pygltflib

    blob.extend(b"\0" * (-len(blob) % 4))
    payload = np.ascontiguousarray(array, dtype=np.dtype(_DTYPES[component_type]).newbyteorder("<"))
    gltf.bufferViews.append(
        pygltflib.BufferView(
            buffer=0, byteOffset=len(blob), byteLength=payload.nbytes, target=target
        )
    )
    blob.extend(payload.tobytes())
    gltf.accessors.append(
        pygltflib.Accessor(
            bufferView=len(gltf.bufferViews) - 1,
            byteOffset=0,
            componentType=component_type,
            count=len(payload),
            type=kind,
        )
    )
    return len(gltf.accessors) - 1


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
    if image is not None and image.format in (None, "PNG"):
        # trimesh writes these as PNG (it keeps a JPEG's format): at the faster level.
        image = fast_png(image)
    return PBRMaterial(
        name=material.name,
        baseColorTexture=image,
        baseColorFactor=[1.0, 1.0, 1.0, 1.0] if image is not None else converted.baseColorFactor,
        metallicFactor=0.0,
        roughnessFactor=converted.roughnessFactor,
    )
