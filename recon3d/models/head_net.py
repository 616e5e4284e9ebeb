"""The head network: MediaPipe's 478 face-mesh landmarks -> head-model parameters and camera, in
one forward pass (trained by ``recon3d/train/head_net.py`` with an HMR-style adversarial prior;
weights in ``weights/head_net.safetensors``).

Input (see :func:`network_inputs`, the same code at training and inference): ``landmarks``
(B, 478, 3), MediaPipe's points normalised to the face box: ``(x - c_x) / s``, ``(y - c_y) / s``
and ``(z - mean z) / s``, where ``c`` is the centre of the landmarks' bounding box and ``s`` its
longer side, in pixels (MediaPipe's z shares the x scale).

Outputs: ``identity`` (B, 60) PCA coefficients (N(0, 1) prior), ``expression`` (B, 52) facial
action weights in [0, 1] (sigmoid), ``rotation`` (B, 3, 3) model -> camera (6D representation),
and ``camera`` (B, 3): the image position of the centre of the face's landmarks
(:func:`reference_point`) relative to the box centre in box units, and
``log(z * s / f)`` (as :func:`recon3d.models.body_net.camera_to_root`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from recon3d.models.body_net import camera_to_root, rotation_6d_to_matrix

if TYPE_CHECKING:
    from pathlib import Path

    from recon3d.fitting.head_fit import HeadFit
    from recon3d.keypoints.base import FaceLandmarks
    from recon3d.models.head import HeadModel

__all__ = [
    "ALIGNMENTS",
    "HeadRegressor",
    "network_inputs",
    "predict_head_fit",
    "centre_basis",
    "reference_point",
]

ASSET = "head_net.safetensors"
NUM_POINTS = 478
ALIGNMENTS = ("pnp", "none")


class HeadRegressor(nn.Module):
    """MLP over the normalised face-mesh landmarks.

    Args:
        num_identity: identity coefficients (60).
        num_expression: expression weights (52).
        width: hidden width.
        depth: hidden layers.
    """

    def __init__(
        self, num_identity: int = 60, num_expression: int = 52, width: int = 512, depth: int = 3
    ) -> None:
        super().__init__()
        self.num_identity, self.num_expression = num_identity, num_expression
        self.width, self.depth = width, depth
        layers: list[nn.Module] = []
        size = NUM_POINTS * 3
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_identity + num_expression + 6 + 3)
        # Start at the mean identity, a nearly neutral face, frontal, centred.
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            bias = torch.zeros(num_identity + num_expression + 9)
            bias[num_identity : num_identity + num_expression] = -3.0
            bias[-9:-3] = torch.tensor([1.0, 0, 0, 0, 1, 0])
            bias[-1] = -1.9
            self.head.bias.copy_(bias)

    def forward(self, landmarks: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, 478, 3) normalised landmarks -> the outputs in the module docstring."""
        if landmarks.ndim != 3 or landmarks.shape[1:] != (NUM_POINTS, 3):
            raise ValueError(
                f"expected landmarks of shape (B, {NUM_POINTS}, 3), got {tuple(landmarks.shape)}"
            )
        b = landmarks.shape[0]
        return self.split_outputs(self.head(self.trunk(landmarks.reshape(b, -1))))

    def split_outputs(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, num_identity + num_expression + 6 + 3) raw head outputs -> the named outputs
        (expression through a sigmoid, rotation from 6D)."""
        n_id, n_exp = self.num_identity, self.num_expression
        return {
            "identity": out[:, :n_id],
            "expression": torch.sigmoid(out[:, n_id : n_id + n_exp]),
            "rotation": rotation_6d_to_matrix(out[:, n_id + n_exp : n_id + n_exp + 6]),
            "camera": out[:, n_id + n_exp + 6 :],
        }

    def config(self) -> dict[str, int]:
        return {
            "num_identity": self.num_identity,
            "num_expression": self.num_expression,
            "width": self.width,
            "depth": self.depth,
        }

    @classmethod
    def from_pretrained(cls, name: str = ASSET) -> HeadRegressor:
        """The shipped, hash-checked network (``weights/head_net.safetensors``)."""
        from recon3d.weights import verified_path

        return cls.from_file(verified_path(name))

    @classmethod
    def from_file(cls, path: str | Path) -> HeadRegressor:
        """A network from a safetensors checkpoint of the trainer (its ``config`` in the
        metadata), in eval mode; no hash check (use :meth:`from_pretrained` for shipped
        weights)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            config = json.loads((f.metadata() or {}).get("config", "{}"))
        net = cls(**config)
        net.load_state_dict(load_file(str(path)))
        return net.eval()


def network_inputs(points: np.ndarray, box: np.ndarray) -> dict[str, np.ndarray]:
    """The face mesh as the network sees it.

    Args:
        points: (478, 3) MediaPipe landmarks: x, y in pixels, z relative depth in pixels.
        box: (4,) x0, y0, x1, y1 bounding box of the landmarks in pixels.
    Returns:
        ``landmarks`` (478, 3) float32 normalised to the box (module docstring) and ``crop``
        (3,) float32: box centre x, y and side in pixels.
    """
    points = np.asarray(points, np.float64)
    if points.shape != (NUM_POINTS, 3):
        raise ValueError(f"expected points of shape ({NUM_POINTS}, 3), got {points.shape}")
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    side = max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    normalised = np.c_[
        (points[:, 0] - cx) / side,
        (points[:, 1] - cy) / side,
        (points[:, 2] - points[:, 2].mean()) / side,
    ]
    return {
        "landmarks": normalised.astype(np.float32),
        "crop": np.array([cx, cy, side], np.float32),
    }


def reference_point(model: HeadModel, identity: np.ndarray, expression: np.ndarray) -> np.ndarray:
    """(3,) model-frame centre of the face's 478 landmarks for these coefficients: the point
    whose camera position the network's ``camera`` output encodes. (The head model's first
    identity component moves the whole head along y, so a fixed model point would not do.)"""
    centre, id_centre, exp_centre = centre_basis(model)
    return (
        centre
        + np.asarray(identity, np.float64) @ id_centre
        + np.asarray(expression, np.float64) @ exp_centre
    )


def centre_basis(model: HeadModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The landmark centre as a linear function of the coefficients: ``mean`` (3,),
    ``identity`` (K, 3) and ``expression`` (E, 3)."""
    mean, id_basis, exp_basis = model.surface_basis("mediapipe478")
    return (
        mean.detach().cpu().double().mean(0).numpy(),
        id_basis.detach().cpu().double().mean(1).numpy(),
        exp_basis.detach().cpu().double().mean(1).numpy(),
    )


def predict_head_fit(
    net: HeadRegressor,
    model: HeadModel,
    landmarks: FaceLandmarks,
    K: np.ndarray,
    *,
    align: str = "pnp",
) -> HeadFit:
    """The network's estimate for one face as a :class:`~recon3d.fitting.head_fit.HeadFit` (the
    ``init`` of :func:`~recon3d.fitting.head_fit.fit_head`, or a result on its own).

    Args:
        net: the head network.
        model: the head model.
        landmarks: the face's :class:`~recon3d.keypoints.base.FaceLandmarks`.
        K: (3, 3) intrinsics in pixels.
        align: ``"pnp"`` (default): the network's identity and expression, the pose solved by
            PnP on the predicted shape's landmarks, started from the network's pose (exact for
            the given shape, and more accurate than the network's own rotation and camera, see
            ``docs/head_network.md``); ``"none"``: the network's own rotation and camera.
    """
    import cv2

    from recon3d.fitting.head_fit import HeadFit

    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"expected K of shape (3, 3), got {K.shape}")
    inputs = network_inputs(landmarks.points, landmarks.box)
    device = next(net.parameters()).device
    with torch.no_grad():
        out = net(torch.as_tensor(inputs["landmarks"], device=device)[None])
    identity = out["identity"][0].cpu().numpy().astype(np.float32)
    expression = out["expression"][0].cpu().numpy().astype(np.float32)
    rotation = out["rotation"][0].cpu().numpy().astype(np.float64)
    position = camera_to_root(
        out["camera"][0].cpu().numpy().astype(np.float64), inputs["crop"].astype(np.float64), K
    )
    translation = position - rotation @ reference_point(model, identity, expression)
    mean, id_basis, exp_basis = model.surface_basis("mediapipe478")
    points = (
        mean.cpu().numpy().astype(np.float64)
        + np.einsum("k,knd->nd", identity.astype(np.float64), id_basis.cpu().numpy())
        + np.einsum("k,knd->nd", expression.astype(np.float64), exp_basis.cpu().numpy())
    )
    uv = landmarks.points[:, :2].astype(np.float64)
    if align == "pnp":
        ok, rvec, tvec = cv2.solvePnP(
            points,
            uv,
            K,
            None,
            cv2.Rodrigues(rotation)[0],
            translation.reshape(3, 1).copy(),
            useExtrinsicGuess=True,
            flags=cv2.SOLVEPNP_ITERATIVE,
        )
        if ok and tvec[2, 0] > 0:
            rotation, translation = cv2.Rodrigues(rvec)[0], tvec[:, 0]
    camera_points = points @ rotation.T + translation
    z = np.clip(camera_points[:, 2:3], 1e-6, None)
    proj = camera_points[:, :2] / z * (K[0, 0], K[1, 1]) + (K[0, 2], K[1, 2])
    return HeadFit(
        identity=identity,
        expression=expression,
        rotation=rotation,
        translation=np.asarray(translation, np.float64),
        reprojection_error_px=float(np.linalg.norm(proj - uv, axis=1).mean()),
    )
