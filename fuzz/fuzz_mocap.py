"""Coverage-guided fuzzing of the DeepMimic motion-capture parser (mocap driving).

Run (see docs/hardening.md)::

    .venv/bin/python fuzz/fuzz_mocap.py -max_total_time=60 -artifact_prefix=fuzz/ fuzz/corpus_mocap

The input is a motion file: :func:`recon3d.io.mocap.load_deepmimic` on a scratch copy. Anything
but a :class:`recon3d.errors.PoseFileError` escaping, or a parsed clip with non-finite values or
no positive frame rate, is a finding.
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import sys
import tempfile

import atheris

with atheris.instrument_imports(include=["recon3d.io.mocap", "json"]):
    import numpy as np

    from recon3d.errors import PoseFileError
    from recon3d.io.mocap import FRAME_LENGTH, load_deepmimic

logging.disable(logging.CRITICAL)
_CLIP = pathlib.Path(tempfile.mkdtemp(prefix="recon3d-fuzz-mocap-")) / "clip.txt"


def test_one_input(data: bytes) -> None:
    _CLIP.write_bytes(data)
    try:
        clip = load_deepmimic(_CLIP)
    except PoseFileError:
        return
    assert clip.num_frames >= 1
    for array in (clip.durations, clip.root_position, clip.root_rotation, clip.joint_rotations):
        assert np.all(np.isfinite(array)), "non-finite clip values parsed"
    assert np.isfinite(clip.fps) and clip.fps > 0


def _seed_corpus(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    identity = [1.0, 0.0, 0.0, 0.0]
    frame = [0.0333, 0.0, 0.9, 0.0] + identity
    for joint in range(12):
        frame += [0.1] if joint in (3, 6, 8, 11) else identity
    assert len(frame) == FRAME_LENGTH
    with open(os.path.join(folder, "two_frames"), "wb") as fh:
        fh.write(json.dumps({"Loop": "wrap", "Frames": [frame, frame]}).encode())


def main() -> None:
    for folder in [a for a in sys.argv[1:] if not a.startswith("-")]:
        _seed_corpus(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
