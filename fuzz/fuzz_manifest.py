"""Coverage-guided fuzzing of the weights parsers: ``manifest.json`` and safetensors headers.

Run (see docs/hardening.md)::

    .venv/bin/python fuzz/fuzz_manifest.py -max_total_time=150 fuzz/corpus_weights

The first input byte picks the target: even -> the bytes are a ``manifest.json`` (checked with
:func:`recon3d.weights.verified_path` in a scratch folder), odd -> they are a ``.safetensors``
file (parsed with :func:`recon3d.weights.read_safetensors`). Anything but a
:class:`recon3d.errors.WeightsError` subclass escaping is a finding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import struct
import sys
import tempfile

import atheris

# Instrument only the parsing code under test; torch, mediapipe etc. (imported by the recon3d
# package) load uninstrumented, which would otherwise take minutes.
with atheris.instrument_imports(include=["recon3d.weights", "json"]):
    from recon3d.errors import CorruptedWeightsError, WeightsError
    from recon3d.weights import read_safetensors, verified_path

logging.disable(logging.CRITICAL)
_TMP = pathlib.Path(tempfile.mkdtemp(prefix="recon3d-fuzz-"))
_MANIFEST = _TMP / "manifest.json"
_ASSET = _TMP / "x.safetensors"
_ASSET.write_bytes(b"\0" * 8)
_DIGEST = hashlib.sha256(b"\0" * 8).hexdigest()


def test_one_input(data: bytes) -> None:
    if not data:
        return
    selector, body = data[0], data[1:]
    if selector % 2 == 0:
        _MANIFEST.write_bytes(body)
        try:
            verified_path("x.safetensors", _TMP)
        except WeightsError:
            return
        # Success is only legitimate when the manifest states the placeholder's real digest
        # (libFuzzer does find it: it watches the string comparison and splices the digest in).
        entry = json.loads(body.decode("utf-8"))["files"]["x.safetensors"]
        assert entry["sha256"].lower() == _DIGEST, "a wrong digest verified the placeholder"
    path = _TMP / "fuzzed.safetensors"
    path.write_bytes(body)
    try:
        arrays, metadata = read_safetensors(path, ("a",) if selector & 2 else ())
    except CorruptedWeightsError:
        return
    assert isinstance(metadata, dict)
    for array in arrays.values():
        assert array.nbytes <= len(body)


def _seed_corpus(folder: str) -> None:
    os.makedirs(folder, exist_ok=True)
    if os.listdir(folder):
        return
    manifest = {
        "files": {
            "x.safetensors": {"sha256": "a" * 64, "size": 8, "command": "c", "metrics": {"m": 1}}
        }
    }
    with open(os.path.join(folder, "manifest"), "wb") as fh:
        fh.write(b"\0" + json.dumps(manifest).encode())
    header = json.dumps(
        {
            "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "I64", "shape": [1], "data_offsets": [16, 24]},
            "__metadata__": {"expression_labels": '["x"]'},
        }
    ).encode()
    with open(os.path.join(folder, "safetensors"), "wb") as fh:
        fh.write(b"\x03" + struct.pack("<Q", len(header)) + header + bytes(24))


def main() -> None:
    for folder in [a for a in sys.argv[1:] if not a.startswith("-")]:
        _seed_corpus(folder)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
