"""The adversarial pose prior (HMR, Kanazawa et al. 2018): discriminators on body-model
parameters that tell plausible people from implausible ones.

:class:`PoseDiscriminator` scores the rotations of the fitted bones, each on its own and all
together, and the shape: (B, 19, 3, 3) rotations and (B, 16) shapes -> (B, 19 + 2) logits, 1 for
plausible (least-squares GAN targets). The body network's training uses it as its adversary
(``recon3d/train/body_net.py``); the shipped prior (``weights/body_prior.safetensors``, trained by
``recon3d/train/pose_prior.py``) also keeps the refinement of :func:`recon3d.fitting.fit_body` on
the manifold of human poses through :meth:`PoseDiscriminator.pose_loss`.
"""

from __future__ import annotations

import json
import pathlib

import torch
from torch import nn

__all__ = ["ASSET", "PoseDiscriminator"]

ASSET = "body_prior.safetensors"


class PoseDiscriminator(nn.Module):
    """Per-joint, whole-pose and shape discriminators (HMR): (B, J, 3, 3) rotations and (B, S)
    shapes -> (B, J + 2) logits (per joint, whole pose, shape)."""

    def __init__(self, num_bones: int = 19, num_shape: int = 16) -> None:
        super().__init__()
        self.num_bones = num_bones
        self.num_shape = num_shape
        self.joint_features = nn.Sequential(
            nn.Conv1d(9, 32, 1), nn.LeakyReLU(0.2), nn.Conv1d(32, 32, 1), nn.LeakyReLU(0.2)
        )
        self.per_joint = nn.Conv1d(32 * num_bones, num_bones, 1, groups=num_bones)
        self.whole = nn.Sequential(
            nn.Linear(32 * num_bones, 512), nn.LeakyReLU(0.2), nn.Linear(512, 1)
        )
        self.shape = nn.Sequential(
            nn.Linear(num_shape, 10),
            nn.LeakyReLU(0.2),
            nn.Linear(10, 5),
            nn.LeakyReLU(0.2),
            nn.Linear(5, 1),
        )

    def forward(self, rotations: torch.Tensor, shape: torch.Tensor) -> torch.Tensor:
        if rotations.ndim != 4 or rotations.shape[1:] != (self.num_bones, 3, 3):
            raise ValueError(
                f"rotations must be (B, {self.num_bones}, 3, 3), got {tuple(rotations.shape)}"
            )
        if shape.shape != (rotations.shape[0], self.num_shape):
            raise ValueError(
                f"shape must be ({rotations.shape[0]}, {self.num_shape}), got {tuple(shape.shape)}"
            )
        b, j = rotations.shape[:2]
        # The 1x1 convolutions as matrix products on the same parameters: a grouped Conv1d runs
        # one small convolution per group, ten times slower on a CPU for one pose.
        conv1, act1, conv2, act2 = self.joint_features
        feats = act1(
            nn.functional.linear(rotations.reshape(b, j, 9), conv1.weight[..., 0], conv1.bias)
        )
        feats = act2(nn.functional.linear(feats, conv2.weight[..., 0], conv2.bias))  # (B, J, 32)
        per_joint = (feats * self.per_joint.weight[..., 0]).sum(-1) + self.per_joint.bias
        whole = self.whole(feats.reshape(b, -1))
        return torch.cat([per_joint, whole, self.shape(shape)], -1)

    def pose_loss(self, rotations: torch.Tensor) -> torch.Tensor:
        """Least-squares generator loss of the pose logits (per joint and whole pose; the shape
        has its own Gaussian prior in the fit): (B, J, 3, 3) -> (B,), 0 where the prior finds the
        pose fully plausible. Differentiable in ``rotations``."""
        shape = rotations.new_zeros(rotations.shape[0], self.num_shape)
        logits = self(rotations, shape)[:, : self.num_bones + 1]
        return ((logits - 1) ** 2).mean(-1)

    def config(self) -> dict[str, int]:
        return {"num_bones": self.num_bones, "num_shape": self.num_shape}

    @classmethod
    def from_pretrained(cls, name: str = ASSET) -> PoseDiscriminator:
        """The shipped, hash-checked prior (``weights/body_prior.safetensors``)."""
        from recon3d.weights import verified_path

        return cls.from_file(verified_path(name))

    @classmethod
    def from_file(cls, path: str | pathlib.Path) -> PoseDiscriminator:
        """A prior from a safetensors file of a trainer (``train_body_prior.py``'s, or a body
        network run's ``discriminator.safetensors``; its ``config`` in the metadata), in eval
        mode and frozen; no hash check (use :meth:`from_pretrained` for shipped weights)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get("config", "{}"))
        disc = cls(**config)
        disc.load_state_dict(load_file(str(path)))
        return disc.eval().requires_grad_(False)
