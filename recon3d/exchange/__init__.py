"""Mesh export: one module per file format, like :mod:`trimesh.exchange`.

=========  =====================================================  ==========================
extension  files written for ``head.<ext>``                       module
=========  =====================================================  ==========================
``.obj``   ``head.obj``, ``head.mtl``, ``head.png`` (texture)      :mod:`recon3d.exchange.obj`
``.glb``   ``head.glb`` (texture embedded, y-up glTF frame; the    :mod:`recon3d.exchange.glb`
           skeleton as a glTF skin when ``mesh.metadata``
           carries one)
``.ply``   ``head.ply`` (binary, texture baked to vertex colours)  :mod:`recon3d.exchange.ply`
=========  =====================================================  ==========================

Only the GLB writer carries a rig (``mesh.metadata["skeleton"]``, a
:class:`~recon3d.skeleton.Skeleton`): joints become nodes, the skin weights ``JOINTS_0`` and
``WEIGHTS_0``, so the body can be posed in Blender or three.js. OBJ and PLY ignore it.

Every writer is atomic (see :mod:`recon3d.exchange.atomic`): either all files of a result appear
complete, or :class:`~recon3d.errors.ExportError` is raised and none is left at the output paths.
Output folders are never created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import trimesh

from recon3d.errors import ExportError
from recon3d.exchange.atomic import PathInput, fspath_str
from recon3d.exchange.glb import export_glb
from recon3d.exchange.obj import export_obj
from recon3d.exchange.ply import export_ply

__all__ = ["SUPPORTED_EXTENSIONS", "export_glb", "export_mesh", "export_obj", "export_ply"]

SUPPORTED_EXTENSIONS = (".obj", ".glb", ".ply")

_EXPORTERS: dict[str, Callable[[trimesh.Trimesh, PathInput], list[Path]]] = {
    ".obj": export_obj,
    ".glb": export_glb,
    ".ply": export_ply,
}


def export_mesh(mesh: trimesh.Trimesh, path: PathInput) -> list[Path]:
    """Write ``mesh`` in the format named by the extension of ``path`` (case-insensitive).

    Args:
        mesh: V vertices (V, 3) in the OpenCV camera frame, F faces (F, 3), usually with
            TextureVisuals (UVs (V, 2) + image). Not modified.
        path: output file (str, bytes or os.PathLike; any name the OS accepts, including
            non-UTF-8 bytes); its folder must exist. ``.obj`` also writes ``<stem>.mtl`` and
            ``<stem>.png`` next to it; ``.glb`` is rotated to glTF's y-up frame.

    Returns:
        Every path written, absolute, main file first.

    Raises:
        ExportError: unsupported extension, not a path (wrong type, NUL byte), or the export
            failed (nothing left behind).
        TypeError: ``mesh`` is not a :class:`trimesh.Trimesh`.
    """
    text = fspath_str(path)
    suffix = Path(text).suffix.lower()
    exporter = _EXPORTERS.get(suffix)
    if exporter is None:
        raise ExportError(
            f"Cannot export to {text!r}: unsupported extension {suffix or '(none)'!r}; "
            f"supported: {', '.join(SUPPORTED_EXTENSIONS)}."
        )
    return exporter(mesh, text)
