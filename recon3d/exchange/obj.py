"""Wavefront OBJ export: ``<stem>.obj`` + ``<stem>.mtl`` + ``<stem>.png``.

The text is produced by trimesh's own exporter (:func:`trimesh.exchange.obj.export_obj`); this
module only decides the companion file names and writes the group atomically. For ``head.obj``:

* ``head.obj`` starts with ``mtllib head.mtl`` and has ``v``, ``vt`` and ``vn`` lines with faces
  as ``f v/vt/vn``;
* ``head.mtl`` defines one material (named after the stem) with ``map_Kd head.png``;
* ``head.png`` is the texture, always PNG (lossless, and what every OBJ viewer reads).

Vertex coordinates are written as they are (OpenCV camera frame for recon3d results); OBJ has no
convention for the up axis, and most tools import it as-is.

A mesh without texture gives only the OBJ (and an MTL when it carries a plain material colour);
per-vertex colours go into the ``v x y z r g b`` extension trimesh writes.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from trimesh.visual.material import SimpleMaterial
from trimesh.visual.texture import TextureVisuals

from recon3d.errors import ExportError
from recon3d.exchange._png import fast_png
from recon3d.exchange.atomic import PathInput, check_target, write_group_atomic

__all__ = ["export_obj"]

logger = logging.getLogger(__name__)

# PNG can store these PIL modes without conversion.
_PNG_MODES = frozenset({"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"})
_HEADER = "exported by recon3d"
_WHITE = np.array([255, 255, 255, 255], dtype=np.uint8)
# File names decoded by os.fsdecode carry undecodable bytes as surrogates; encoding the text
# with the same error handler writes those exact bytes, so `mtllib`/`map_Kd` match the disk.
_FS_ERRORS = "surrogateescape"


def export_obj(mesh: trimesh.Trimesh, path: PathInput) -> list[Path]:
    """Write ``mesh`` as OBJ with its MTL and PNG texture next to it.

    Args:
        mesh: V vertices (V, 3), F faces (F, 3). A :class:`~trimesh.visual.TextureVisuals` with
            UVs (V, 2) and an image gives the MTL + PNG; other visuals are written without them.
            The mesh is not modified.
        path: the ``.obj`` file. Its folder must exist. The MTL and PNG are named after its stem
            in the same folder and overwrite files of those names. Names that are not valid
            UTF-8 (str with surrogates from ``os.fsdecode``, or bytes) work: the ``mtllib`` and
            ``map_Kd`` lines hold the file names' exact bytes.

    Returns:
        The paths written: ``[obj, mtl, png]`` for a textured mesh, fewer without a texture.

    Raises:
        TypeError: ``mesh`` is not a :class:`trimesh.Trimesh`.
        ExportError: the mesh has no faces, could not be encoded, or the files could not be
            written. No file is left at any of the output paths.
    """
    if not isinstance(mesh, trimesh.Trimesh):
        raise TypeError(f"export_obj expects a trimesh.Trimesh, got {type(mesh).__name__}")
    target = check_target(path)
    if len(mesh.faces) == 0:
        raise ExportError(f"Cannot write {target.name!r}: the mesh has no faces.")
    stem = target.stem
    if any(c in stem for c in "\r\n"):
        # The stem ends up on `mtllib` / `map_Kd` lines; a line break would corrupt them.
        raise ExportError(f"Cannot write {target.name!r}: the file name contains a line break.")

    mtl_path = target.with_suffix(".mtl")
    png_path = target.with_suffix(".png")
    try:
        copy = _export_copy(mesh, material_name=_material_name(stem))
        text, extra = trimesh.exchange.obj.export_obj(
            copy,
            include_normals=True,
            include_color=True,
            include_texture=True,
            return_texture=True,
            write_texture=False,
            mtl_name=mtl_path.name,
            header=_HEADER,
        )
    except Exception as exc:  # trimesh/PIL raise anything from ValueError to OSError
        raise ExportError(f"Could not encode {target.name!r} as OBJ: {exc}") from exc
    if isinstance(copy.visual, TextureVisuals):
        _check_texture_kept(target, copy.visual.material.image, text, extra, mtl_path.name)

    files: dict[Path, bytes] = {target: text.encode("utf-8", _FS_ERRORS)}
    files.update(_name_companions(extra, mtl_path, png_path))
    written = write_group_atomic(files)
    logger.info("exported OBJ %s (%d files)", target, len(written))
    return written


def _check_texture_kept(
    target: Path, image: Image.Image | None, text: str, extra: dict[str, bytes], mtl_name: str
) -> None:
    """Fail loudly if trimesh silently dropped the texture.

    trimesh's exporter wraps the material/UV step in ``except BaseException`` and only logs at
    debug level, so a texture that cannot be encoded yields an OBJ without ``vt`` lines or
    material instead of an error. Re-encoding the image here recovers the real cause.
    """
    has_uv = "\nvt " in text
    has_image = image is None or any(not name.endswith(".mtl") for name in extra)
    if has_uv and mtl_name in extra and has_image:
        return
    if image is not None:
        try:
            image.save(io.BytesIO(), format="PNG")
        except Exception as exc:
            raise ExportError(
                f"Could not encode the texture of {target.name!r} as PNG: {exc}"
            ) from exc
    raise ExportError(
        f"Could not encode {target.name!r} as OBJ: trimesh dropped the UVs or material "
        "(enable DEBUG logging for trimesh.exchange.obj to see why)."
    )


def _material_name(stem: str) -> str:
    """``newmtl``/``usemtl`` take one whitespace-free token; file names may have spaces.

    Surrogates (undecodable bytes of a non-UTF-8 file name) become ``_`` too: the material name
    is only a label, and trimesh encodes it as strict UTF-8."""
    return re.sub(r"[\s\ud800-\udfff]+", "_", stem.strip()) or "material"


def _export_copy(mesh: trimesh.Trimesh, material_name: str) -> trimesh.Trimesh:
    """A shallow copy of ``mesh`` whose material is named ``material_name`` with a PNG image.

    Assigning a visual to a Trimesh rebinds ``visual.mesh``, so the caller's visual object must
    not be reused; new visual objects are built instead (arrays are shared, not copied).
    """
    visual = mesh.visual
    uv = getattr(visual, "uv", None)
    has_uv = uv is not None and np.shape(uv) == (len(mesh.vertices), 2)
    if isinstance(visual, TextureVisuals) and has_uv:
        material = visual.material
        if hasattr(material, "to_simple"):
            material = material.to_simple()
        image = _png_ready(material.image)
        simple = SimpleMaterial(
            image=image,
            # MTL multiplies map_Kd by Kd; trimesh's default Kd is 0.4 grey, which would render
            # a textured head at 40 % brightness in spec-following viewers.
            diffuse=_WHITE if image is not None else material.diffuse,
            ambient=material.ambient,
            specular=material.specular,
            glossiness=material.glossiness,
            name=material_name,
        )
        new_visual = TextureVisuals(uv=uv, material=simple)
    elif isinstance(visual, TextureVisuals):
        logger.warning("mesh has a texture but no per-vertex UVs (V, 2); writing OBJ without it")
        new_visual = None
    else:
        new_visual = visual.copy()
    return trimesh.Trimesh(
        vertices=mesh.vertices,
        faces=mesh.faces,
        # Computed once here (O(F)) so viewers do not fall back to flat shading.
        vertex_normals=mesh.vertex_normals,
        visual=new_visual,
        process=False,
        validate=False,
    )


def _png_ready(image: Image.Image | None) -> Image.Image | None:
    """Return an image trimesh will encode as PNG.

    trimesh saves a texture in ``image.format`` and names it ``<material>.<format>``, so a
    texture loaded from a JPEG would come out as ``<material>.jpeg``. PIL copies have
    ``format=None``, which trimesh writes as PNG; the copy is encoded at
    :data:`~recon3d.exchange._png.PNG_COMPRESS_LEVEL`.
    """
    if image is None:
        return None
    if image.mode not in _PNG_MODES:
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return fast_png(image)


def _name_companions(extra: dict[str, bytes], mtl_path: Path, png_path: Path) -> dict[Path, bytes]:
    """Map trimesh's ``{file name: bytes}`` companions onto ``<stem>.mtl`` / ``<stem>.png``.

    trimesh names the texture ``<material name>.png``; the material name is the stem with
    whitespace replaced, so the texture is renamed (and ``map_Kd`` rewritten) when they differ.
    """
    mtl = extra.pop(mtl_path.name, None)
    if len(extra) > 1:
        raise ExportError(
            f"Expected at most one texture from the OBJ exporter, got {sorted(extra)}."
        )
    files: dict[Path, bytes] = {}
    if mtl is not None:
        if extra:
            (old_name,) = extra
            if old_name != png_path.name:
                mtl = _rename_map_kd(mtl, old_name, png_path.name)
        files[mtl_path] = mtl
    elif extra:
        raise ExportError("The OBJ exporter produced a texture without a material file.")
    for data in extra.values():
        files[png_path] = data
    return files


def _rename_map_kd(mtl: bytes, old: str, new: str) -> bytes:
    lines = mtl.decode("utf-8", _FS_ERRORS).split("\n")
    for i, line in enumerate(lines):
        if line.strip().lower().startswith("map_kd") and line.rstrip().endswith(old):
            lines[i] = f"map_Kd {new}"
    return "\n".join(lines).encode("utf-8", _FS_ERRORS)
