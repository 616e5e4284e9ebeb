"""The person-specific re-renderer: driving poses in, frames of the target person out.

``Reposer.render`` runs the "Everybody Dance Now" inference chain: driving poses
(:func:`recon3d.reenact.poses.load_driving`) -> global pose normalisation to the target person's
ankle statistics (:func:`recon3d.reenact.normalize.normalize_poses`) -> pose maps
(:func:`recon3d.reenact.posemap.draw_pose_map`) -> the pix2pixHD generator, fed the previous
output frame (temporal smoothing) -> the FaceGAN residual on the face crop -> frames.

A reposer is trained per person (:meth:`Reposer.fit`, the only public entry point that trains;
it imports :mod:`recon3d.train` on demand) and stored as a safetensors file plus a JSON sidecar
(architecture, the target's ankle statistics, training settings, the weights' sha256), which
:meth:`Reposer.load` verifies before reading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import pathlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from recon3d.errors import (
    CorruptedWeightsError,
    MissingWeightsError,
    UnsupportedTargetError,
)
from recon3d.reenact.face import crop_boxes, face_boxes, face_visible, paste_boxes
from recon3d.reenact.networks import FaceGenerator, RendererConfig, build_generator

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "PERCEPTUAL_WEIGHTS_ENV", "Reposer"]

FORMAT = "recon3d-reposer"
_VERSION = 1
PERCEPTUAL_WEIGHTS_ENV = "RECON3D_PERCEPTUAL_WEIGHTS"
"""Environment variable with the path of torchvision's ``mobilenet_v2-b0353104.pth``, used for
the perceptual losses when :meth:`Reposer.fit` is given no ``perceptual_weights``."""
_MAX_SIDECAR_BYTES = 64 << 20
# The FaceGAN's residual fades out over this fraction of the face box at its borders.
_FEATHER = 0.15


class Reposer:
    """A trained renderer for one person.

    Attributes:
        config: the networks' architecture (output ``size``, temporal smoothing, FaceGAN).
        target_stats: the person's ankle statistics
            (:class:`recon3d.reenact.normalize.AnkleStats`) that driving poses are normalised
            to, in pixels of a ``size`` x ``size`` frame; None when the training frames showed
            no ankles (a talking head): driving poses are then only fitted into the frame.
        info: training settings and final losses (free-form, stored with the weights).
    """

    def __init__(
        self,
        generator: nn.Module,
        face_generator: nn.Module | None,
        config: RendererConfig,
        target_stats: Any,
        *,
        info: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
    ) -> None:
        if config.face != (face_generator is not None):
            raise ValueError("face_generator must be given exactly when config.face is true")
        self.config = config
        self.target_stats = target_stats
        self.info = dict(info or {})
        self.device = torch.device(device or "cpu")
        self.generator = generator.to(self.device).eval()
        self.face_generator = None
        if face_generator is not None:
            self.face_generator = face_generator.to(self.device).eval()

    def __repr__(self) -> str:
        c = self.config
        return (
            f"Reposer(size={c.size}, ngf={c.ngf}, temporal={c.temporal}, face={c.face}, "
            f"device={self.device})"
        )

    @property
    def size(self) -> int:
        """Output frames are ``size`` x ``size``."""
        return self.config.size

    # -- training -------------------------------------------------------------------------
    @classmethod
    def fit(
        cls,
        source,
        *,
        size: int = 256,
        steps: int = 2000,
        face_steps: int = 500,
        temporal: bool = True,
        face: bool = True,
        ngf: int = 16,
        n_blocks: int = 6,
        batch_size: int = 1,
        learning_rate: float = 2e-4,
        perceptual_weights: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        seed: int = 0,
        progress: bool = True,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
        checkpoint_every: int = 200,
        time_limit: float = 0.0,
        data_options: dict[str, Any] | None = None,
    ) -> Reposer:
        """Train a reposer for one person.

        Args:
            source: a body :class:`~recon3d.reconstruction.Reconstruction` (the training frames
                are renders of its mesh in many poses:
                :func:`recon3d.train.reenact_data.render_reposed`), a video of the person (a
                path, or an iterable of RGB uint8 frames; self-reenactment:
                :func:`recon3d.train.reenact_data.video_frames`), or a ready ``FrameSet``.
            size: output frames are ``size`` x ``size`` (a multiple of 16; the local enhancer
                is used from 512).
            steps: body-generator steps; face_steps: FaceGAN steps after them.
            temporal: temporal smoothing (the generator sees the previous frame).
            face: train a FaceGAN.
            ngf, n_blocks: generator width and residual blocks (see
                :mod:`recon3d.reenact.networks` for the speed / quality trade-off).
            batch_size, learning_rate: optimisation.
            perceptual_weights: path of torchvision's ``mobilenet_v2-b0353104.pth`` for the
                perceptual losses (default: ``$RECON3D_PERCEPTUAL_WEIGHTS``; without either,
                training runs without perceptual loss and logs a warning).
            device: "cpu", "cuda", ... (default: CUDA when available).
            seed: seeds the training data, the initial weights and the sampling.
            progress: progress bars.
            checkpoint_dir: write checkpoints there (every ``checkpoint_every`` steps);
                ``resume=True`` continues from the one found there.
            time_limit: wall-time budget per training stage in seconds (0: none); a stage
                that runs out stops early.
            data_options: extra keyword arguments for the frame-set builder
                (``render_reposed`` or ``video_frames``).
        Raises:
            UnsupportedTargetError: ``source`` is a head reconstruction.
        """
        from recon3d.train import reenact as training

        frame_set = _frame_set(source, size, seed, progress, data_options or {})
        renderer = RendererConfig(
            size=size, ngf=ngf, n_blocks=n_blocks, temporal=temporal, face=face
        )
        config = training.ReenactTrainConfig(
            steps=steps,
            face_steps=face_steps,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            checkpoint_every=checkpoint_every,
            time_limit=time_limit,
        )
        perceptual = _perceptual(perceptual_weights)
        data = training.prepare_data(frame_set, size)
        result = training.train_reposer(
            data,
            renderer,
            config,
            perceptual=perceptual,
            device=device,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            progress=progress,
        )
        info = {
            "train": dataclasses.asdict(config),
            "frames": len(data.frames),
            "body_steps_done": sum(h["step"] < steps for h in result.history),
            "face_steps_done": sum(h["step"] >= steps for h in result.history),
            "perceptual": "mobilenet_v2" if perceptual is not None else "none",
            "seconds": round(result.seconds, 1),
            "steps_per_second": round(result.steps_per_second, 3),
            "final_losses": _final_losses(result.history),
        }
        return cls(
            result.generator,
            result.face_generator,
            renderer,
            result.stats,
            info=info,
            device=device or "cpu",
        )

    def without_face(self) -> Reposer:
        """The same reposer without its FaceGAN (shares the body generator; for ablations)."""
        config = dataclasses.replace(self.config, face=False)
        return Reposer(
            self.generator, None, config, self.target_stats, info=self.info, device=self.device
        )

    # -- storage --------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> pathlib.Path:
        """Write the weights to ``path`` (``.safetensors``) and the metadata to the sidecar
        ``path`` with ``.json`` (both or neither, atomically). Returns the weights' path."""
        from safetensors.torch import save

        from recon3d.exchange.atomic import check_target, write_group_atomic

        target = check_target(path)
        if target.suffix != ".safetensors":
            raise ValueError(f"a reposer is saved as .safetensors, got {target.name}")
        tensors = _prefixed("generator.", self.generator.state_dict())
        if self.face_generator is not None:
            tensors.update(_prefixed("face.", self.face_generator.state_dict()))
        meta = {
            "format": FORMAT,
            "version": _VERSION,
            "renderer": self.config.to_dict(),
            "target_stats": _stats_to_json(self.target_stats),
            "info": self.info,
        }
        blob = save(tensors, metadata={"recon3d": json.dumps(meta)})
        sidecar = {
            **meta,
            "weights": target.name,
            "sha256": hashlib.sha256(blob).hexdigest(),
            "bytes": len(blob),
        }
        text = json.dumps(sidecar, indent=1, default=_json_default).encode()
        write_group_atomic({target: blob, _sidecar(target): text})
        return target

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | torch.device | None = None) -> Reposer:
        """Load a reposer written by :meth:`save`, after checking the weights' sha256 and size
        against the JSON sidecar.

        Raises:
            MissingWeightsError: the weights or the sidecar are not there.
            CorruptedWeightsError: hash, size, format or tensors do not match.
        """
        from safetensors import SafetensorError
        from safetensors.torch import load

        path = pathlib.Path(path)
        side = _sidecar(path)
        for p in (path, side):
            if not p.is_file():
                raise MissingWeightsError(f"reposer file {p} not found")
        try:
            with open(side, "rb") as fh:
                raw = fh.read(_MAX_SIDECAR_BYTES + 1)
            if len(raw) > _MAX_SIDECAR_BYTES:
                raise ValueError("the sidecar is too large")
            meta = json.loads(raw.decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} sidecar")
            if meta.get("version") != _VERSION:
                raise ValueError(f"unsupported version {meta.get('version')!r}")
            blob = path.read_bytes()
        except (OSError, ValueError) as exc:
            raise CorruptedWeightsError(f"cannot read reposer {path}: {exc}") from exc
        digest = hashlib.sha256(blob).hexdigest()
        if digest != meta.get("sha256") or len(blob) != meta.get("bytes"):
            raise CorruptedWeightsError(
                f"{path} does not match its sidecar {side.name} (sha256 {digest}, expected "
                f"{meta.get('sha256')}): the file is corrupted or was replaced"
            )
        try:
            config = RendererConfig.from_dict(meta["renderer"])
            stats = _stats_from_json(meta["target_stats"])
            tensors = load(blob)
            generator = build_generator(config)
            generator.load_state_dict(_unprefixed("generator.", tensors))
            face = None
            if config.face:
                face = FaceGenerator(config.face_ngf, n_blocks=config.face_blocks)
                face.load_state_dict(_unprefixed("face.", tensors))
            extra = [k for k in tensors if not k.startswith(("generator.", "face."))]
            if extra:
                raise ValueError(f"unexpected tensors {extra[:3]}")
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise CorruptedWeightsError(f"reposer {path} is not usable: {exc}") from exc
        return cls(generator, face, config, stats, info=meta.get("info"), device=device)

    # -- inference ------------------------------------------------------------------------
    def render(
        self, driving, *, normalize: bool = True, progress: bool = True
    ) -> Iterator[np.ndarray]:
        """Frames of the person moving like the driving poses.

        Args:
            driving: anything :func:`recon3d.reenact.poses.load_driving` takes (a video path,
                OpenPose JSON files, a DeepMimic clip, body-model pose parameters, or a
                :class:`~recon3d.reenact.poses.PoseSequence`).
            normalize: map the driving poses to the target's scale and position with the
                paper's global pose normalisation (ankle statistics); without it, the driving
                frame is fitted into the output square (uniform scale, centred).
            progress: progress bars (pose detection of a video, rendering).
        Returns:
            An iterator over (size, size, 3) uint8 RGB frames, one per driving frame; frames
            are computed as the iterator is consumed. The driving poses are loaded (and
            checked) before this method returns.
        Raises:
            PoseFileError, InvalidImageError: from loading the driving poses.
        """
        from recon3d.reenact.poses import load_driving

        poses = self.prepare_poses(load_driving(driving, progress=progress), normalize=normalize)
        return self._frames(poses, progress)

    def prepare_poses(self, poses, *, normalize: bool = True):
        """Driving poses as the generator sees them: normalised to the target (or fitted into
        the frame) and in pixels of a ``size`` x ``size`` frame."""
        from recon3d.reenact.normalize import normalize_poses

        s = self.config.size
        if normalize and self.target_stats is None:
            log.warning(
                "the reposer has no ankle statistics (trained on upper-body frames): "
                "driving poses are not normalised"
            )
        elif normalize:
            try:
                poses = normalize_poses(poses, self.target_stats)
            except ValueError as exc:
                log.warning("driving poses not normalised: %s", exc)
            else:
                return poses if tuple(poses.image_size) == (s, s) else poses.resized((s, s))
        h, w = poses.image_size
        scale = s / max(h, w)
        offset = np.array([(s - w * scale) / 2, (s - h * scale) / 2], np.float32)
        t = len(poses)
        moved = poses.transformed(np.full(t, scale, np.float32), np.tile(offset, (t, 1)))
        return dataclasses.replace(moved, image_size=(s, s))

    def _frames(self, poses, progress: bool) -> Iterator[np.ndarray]:
        from tqdm.auto import tqdm

        from recon3d.reenact.posemap import draw_pose_map

        s = self.config.size
        boxes = torch.from_numpy(face_boxes(poses, size=(s, s)))
        visible = face_visible(poses)
        prev = None
        with tqdm(total=len(poses), desc="repose", unit="frame", disable=not progress) as bar:
            for i in range(len(poses)):
                pose_map = draw_pose_map(poses, i, size=(s, s))
                box = boxes[i] if visible[i] else None
                frame, prev = self.render_pose_map(pose_map, prev, box)
                bar.update(1)
                yield frame

    @torch.inference_mode()
    def render_pose_map(
        self,
        pose_map: np.ndarray,
        previous: torch.Tensor | None = None,
        face_box: torch.Tensor | np.ndarray | None = None,
    ) -> tuple[np.ndarray, torch.Tensor]:
        """One frame from a (size, size, 3) uint8 pose map.

        Args:
            pose_map: the drawn driving pose.
            previous: the body generator's previous output (1, 3, size, size) in [-1, 1], as
                returned by the previous call (None for the first frame).
            face_box: (4,) ``x0, y0, x1, y1`` face crop for the FaceGAN (None: no FaceGAN, as
                for frames where the face is not visible, see
                :func:`recon3d.reenact.face.face_visible`).
        Returns:
            The (size, size, 3) uint8 frame, and the body generator's output to pass as
            ``previous`` for the next frame.
        """
        s = self.config.size
        if pose_map.shape != (s, s, 3) or pose_map.dtype != np.uint8:
            raise ValueError(f"pose_map must be ({s}, {s}, 3) uint8, got {pose_map.shape}")
        x = torch.from_numpy(pose_map).to(self.device).permute(2, 0, 1)[None].float()
        x = x / 127.5 - 1.0
        if self.config.temporal:
            prev = torch.zeros_like(x) if previous is None else previous
            body = self.generator(torch.cat([x, prev], 1))
        else:
            body = self.generator(x)
        out = body
        if self.face_generator is not None and face_box is not None:
            box = torch.as_tensor(np.asarray(face_box), device=self.device).reshape(1, 4)
            fs = self.config.face_size
            body_crop = crop_boxes(body, box, fs)
            refined = self.face_generator(crop_boxes(x, box, fs), body_crop)
            out = paste_boxes(body, refined - body_crop, box, feather=_FEATHER).clamp(-1.0, 1.0)
        frame = ((out[0].permute(1, 2, 0) + 1.0) * 127.5).round().clamp(0, 255)
        return frame.to(torch.uint8).cpu().numpy(), body


def _frame_set(source, size: int, seed: int, progress: bool, options: dict):
    """The training frames of a source (see :meth:`Reposer.fit`)."""
    from recon3d.reconstruction import Reconstruction

    if all(hasattr(source, a) for a in ("frames", "poses", "sequence")):
        return source
    from recon3d.train import reenact_data

    if isinstance(source, Reconstruction):
        if source.target != "body":
            raise UnsupportedTargetError(
                f"re-posing needs a body reconstruction, got a {source.target} reconstruction "
                "(reconstruct the photo with target='body')"
            )
        return reenact_data.render_reposed(
            source, size=size, seed=seed, progress=progress, **options
        )
    return reenact_data.video_frames(source, size=size, progress=progress, **options)


def _perceptual(weights):
    weights = weights or os.environ.get(PERCEPTUAL_WEIGHTS_ENV)
    if not weights:
        log.warning(
            "no perceptual-loss weights (pass perceptual_weights= or set %s to torchvision's "
            "mobilenet_v2-b0353104.pth): training without the perceptual loss",
            PERCEPTUAL_WEIGHTS_ENV,
        )
        return None
    from recon3d.train.perceptual import MobileNetV2Features

    return MobileNetV2Features.from_file(weights)


def _final_losses(history: list[dict[str, float]], window: int = 50) -> dict[str, float]:
    """Mean of each loss over the last ``window`` steps that report it."""
    out: dict[str, float] = {}
    keys = {k for h in history for k in h if k != "step"}
    for k in sorted(keys):
        values = [h[k] for h in history if k in h][-window:]
        out[k] = round(float(np.mean(values)), 5)
    return out


def _sidecar(path: pathlib.Path) -> pathlib.Path:
    return path.with_suffix(".json")


def _prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {prefix + k: v.detach().cpu().contiguous() for k, v in state.items()}


def _unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _json_default(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in JSON")


def _stats_to_json(stats) -> dict[str, Any] | None:
    return None if stats is None else stats.to_dict()


def _stats_from_json(data: dict[str, Any] | None):
    from recon3d.reenact.normalize import AnkleStats

    return None if data is None else AnkleStats.from_dict(data)
