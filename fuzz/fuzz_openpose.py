"""Coverage-guided fuzzing of the OpenPose JSON parser (driving poses).

Run (see docs/hardening.md)::

    .venv/bin/python fuzz/fuzz_openpose.py -max_total_time=60 fuzz/corpus_openpose

The input is one OpenPose frame file: :func:`recon3d.reenact.poses.parse_openpose` on the bytes,
then the conversion of the chosen person into a :class:`~recon3d.reenact.poses.PoseSequence`.
Anything but a :class:`recon3d.errors.PoseFileError` escaping, or a parsed result with
non-finite numbers or confidences outside [0, 1], is a finding.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import atheris

# Instrument only the parsing code under test (and json); torch, mediapipe etc. load
# uninstrumented.
with atheris.instrument_imports(include=["recon3d.reenact.poses", "json"]):
    import numpy as np

    from recon3d.errors import PoseFileError
    from recon3d.reenact.poses import _pick_person, _sequence_from_people, parse_openpose

logging.disable(logging.CRITICAL)


def test_one_input(data: bytes) -> None:
    try:
        people = parse_openpose(data, "fuzz.json")
    except PoseFileError:
        return
    for person in people:
        for value in person.values():
            assert np.all(np.isfinite(value)), "non-finite keypoints parsed"
            assert np.all((value[:, 2] >= 0) & (value[:, 2] <= 1)), "confidence out of range"
    seq = _sequence_from_people([_pick_person(people)], None, 30.0)
    assert len(seq) == 1 and min(seq.image_size) >= 1


def _seed_corpus(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    body25 = [float(v) for i in range(25) for v in (10.0 * i, 5.0 * i, 0.9)]
    coco18 = [float(v) for i in range(18) for v in (10.0 * i, 5.0 * i, 0.8)]
    person = {
        "person_id": [-1],
        "pose_keypoints_2d": body25,
        "face_keypoints_2d": [1.0, 2.0, 0.5] * 70,
        "hand_left_keypoints_2d": [3.0, 4.0, 0.7] * 21,
        "hand_right_keypoints_2d": [],
    }
    seeds = {
        "body25": {"version": 1.3, "people": [person]},
        "coco18": {"version": 1.1, "people": [{"pose_keypoints_2d": coco18}]},
        "empty": {"version": 1.3, "people": []},
    }
    for name, doc in seeds.items():
        with open(os.path.join(folder, name), "wb") as fh:
            fh.write(json.dumps(doc).encode())


def main() -> None:
    for folder in [a for a in sys.argv[1:] if not a.startswith("-")]:
        _seed_corpus(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
