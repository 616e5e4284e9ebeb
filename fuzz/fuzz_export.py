"""Coverage-guided fuzzing of the export path handling (``recon3d.exchange.export_mesh``).

Run (see docs/hardening.md)::

    .venv/bin/python fuzz/fuzz_export.py -max_total_time=150

The input is an output path: its first byte picks the extension and whether the path is passed
as bytes or str; the rest becomes a (possibly multi-component, non-UTF-8, over-long) relative
path under a scratch folder. Either every returned file exists and nothing else was written, or
:class:`recon3d.errors.ExportError` is raised and the scratch folder is left as it was.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile

import atheris

# Instrument only the parsing code under test; torch, mediapipe etc. (imported by the recon3d
# package) load uninstrumented, which would otherwise take minutes.
with atheris.instrument_imports(include=["recon3d.exchange", "trimesh.exchange"]):
    import numpy as np
    import trimesh
    from PIL import Image

    from recon3d.errors import ExportError
    from recon3d.exchange import export_mesh

logging.disable(logging.CRITICAL)
_EXTS = [b".obj", b".glb", b".ply", b".OBJ", b"", b".stl", b".obj/", b"/.ply"]
_ROOT = os.fsencode(tempfile.mkdtemp(prefix="recon3d-fuzz-export-"))
os.makedirs(_ROOT + b"/sub")


def _mesh() -> trimesh.Trimesh:
    mesh = trimesh.creation.icosahedron()
    image = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    mesh.visual = trimesh.visual.TextureVisuals(uv=(mesh.vertices[:, :2] + 1) / 2, image=image)
    return mesh


_MESH = _mesh()


def _listing() -> set[bytes]:
    out = set()
    for folder, _dirs, files in os.walk(_ROOT):
        out.update(os.path.join(folder, f) for f in files)
    return out


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, name = data[0], data[1:]
    path = _ROOT + b"/" + name + _EXTS[selector % len(_EXTS)]
    before = _listing()
    try:
        written = export_mesh(_MESH, path if selector & 0x80 else os.fsdecode(path))
    except ExportError:
        assert _listing() == before, "a failed export left files behind"
        return
    new = {os.fsencode(p) for p in written}
    assert _listing() - before <= new and all(os.path.getsize(p) > 0 for p in new)
    for p in new:
        os.unlink(p)


def main() -> None:
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(_ROOT, ignore_errors=True)


if __name__ == "__main__":
    main()
