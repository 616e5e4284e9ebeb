"""Shared fixtures: real photos from tests/data and reconstructions of them (computed once)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

# CI replays the same examples on every run (a red build is reproducible); local runs keep
# exploring new ones, which is how the property tests find bugs.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

DATA = Path(__file__).resolve().parent / "data"
HEAD_PHOTOS = ("grace_hopper.jpg", "obama.jpg", "astronaut.png")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def head_reconstructions() -> dict:
    """Reconstructions of the head photos, by file name (the pipeline's real weights)."""
    from recon3d import reconstruct

    return {name: reconstruct(DATA / name, target="head") for name in HEAD_PHOTOS}


@pytest.fixture(scope="session")
def grace(head_reconstructions):
    return head_reconstructions["grace_hopper.jpg"]
