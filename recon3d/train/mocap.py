"""Moved to :mod:`recon3d.io.mocap` (mocap clips also drive the re-renderer at inference).

This module re-exports it so existing training scripts keep working.
"""

from recon3d.io.mocap import (
    BONE_MAP,
    FRAME_LENGTH,
    H_TO_B,
    HUMANOID_LINKS,
    HUMANOID_SCALE,
    JOINT_NAMES,
    MAX_FILE_BYTES,
    REVOLUTE,
    DeepMimicClip,
    Retargeted,
    humanoid_forward_kinematics,
    load_deepmimic,
    read_humanoid_urdf,
    retarget_to_body,
)

__all__ = [
    "BONE_MAP",
    "FRAME_LENGTH",
    "H_TO_B",
    "HUMANOID_LINKS",
    "HUMANOID_SCALE",
    "JOINT_NAMES",
    "MAX_FILE_BYTES",
    "REVOLUTE",
    "DeepMimicClip",
    "Retargeted",
    "humanoid_forward_kinematics",
    "load_deepmimic",
    "read_humanoid_urdf",
    "retarget_to_body",
]
