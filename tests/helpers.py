"""Test helpers shared by several test files (pytest puts tests/ on sys.path)."""

from __future__ import annotations

import importlib.util
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from recon3d.keypoints.base import FaceLandmarks
from recon3d.models.head import interpolate_surface

#: The devices a device-parametrised test runs on: the CPU always, CUDA where there is a GPU
#: (reported as skipped elsewhere).
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


REPO = Path(__file__).resolve().parents[1]


def load_repo_module(folder: str, name: str):
    """The script ``<repo>/<folder>/<name>.py`` as a module (benchmarks, examples and scripts
    are not packages)."""
    spec = importlib.util.spec_from_file_location(name, REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def glb_json(path: Path) -> dict:
    """The JSON chunk of a binary glTF file."""
    data = path.read_bytes()
    assert data[:4] == b"glTF"
    (chunk_len,) = struct.unpack("<I", data[12:16])
    return json.loads(data[20 : 20 + chunk_len])


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_header_only(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG whose IHDR declares ``width x height`` RGB with almost no data:
    a decompression bomb's header without the bomb."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _png_chunk(b"IEND", b"")
    )


def synthetic_face(model, seed: int, camera):
    """Landmarks of a random head seen by ``camera``, as MediaPipe would report them."""
    rng = np.random.default_rng(seed)
    identity = rng.normal(0, 1, model.num_identity).astype(np.float32)
    expression = np.zeros(model.num_expression, np.float32)
    expression[model.expression_labels.index("jawOpen")] = rng.uniform(0, 0.4)
    expression[model.expression_labels.index("mouthSmileLeft")] = rng.uniform(0, 0.5)
    yaw, pitch = np.radians(rng.uniform(-30, 30)), np.radians(rng.uniform(-15, 15))
    ry = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    rx = np.array(
        [[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]]
    )
    rotation = ry @ rx
    translation = np.array([rng.uniform(-0.05, 0.05), 0.1, rng.uniform(0.6, 1.0)])
    with torch.no_grad():
        verts = model.vertices(
            torch.from_numpy(identity)[None], torch.from_numpy(expression)[None]
        )[0].numpy()
    cam_verts = verts @ rotation.T + translation
    pts3 = interpolate_surface(cam_verts, model.faces, model.landmarks["mediapipe478"])
    uv = camera.project(pts3)
    z_px = (pts3[:, 2] - pts3[:, 2].mean()) * camera.focal / pts3[:, 2].mean()
    points = np.c_[uv, z_px].astype(np.float32)
    box = np.r_[uv.min(0), uv.max(0)].astype(np.float32)
    return FaceLandmarks(points=points, box=box, score=1.0), cam_verts
