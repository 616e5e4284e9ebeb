"""The head reconstruction pipeline and the one-line :func:`reconstruct`.

image ─► io.image ─► keypoints (MediaPipe face mesh) ─► fitting ─► texture ─► Reconstruction
"""

from __future__ import annotations

import threading
import time
from typing import Any, Literal

import numpy as np
import torch

from recon3d._progress import stages
from recon3d._threads import torch_single_threaded
from recon3d.camera import Camera
from recon3d.errors import NoFaceFound
from recon3d.fitting.head_fit import HeadFitOptions, fit_head
from recon3d.io import DEFAULT_MAX_PIXELS, LoadedImage, load_image_with_metadata
from recon3d.keypoints.base import FaceLandmarkDetector
from recon3d.models.head import HeadModel
from recon3d.models.head_net import HeadRegressor, predict_head_fit
from recon3d.reconstruction import Reconstruction
from recon3d.texture.completion import TextureCompleter, complete
from recon3d.texture.projection import project_texture

Target = Literal["auto", "head", "body"]
STAGES = ("decode", "front end", "fit", "texture", "completion")
#: The stages of a geometry-only call (``texture=False``).
GEOMETRY_STAGES = STAGES[:3]
#: Whether :meth:`HeadReconstructionPipeline.from_pretrained` (and so ``reconstruct``) starts
#: the head fit from the head network. It does: better 3D on held-out synthetic heads, better
#: hidden parts on real faces, no implausible identities (docs/head_network.md).
USE_NETWORK_BY_DEFAULT = True
#: The short fit that refines the network's estimate: 2 iterations instead of 4, pulled towards
#: the network's coefficients: 1e-5, the knee of the 3D-vs-2D curve on a validation set (seed 3;
#: docs/head_network.md).
REFINE_OPTIONS = HeadFitOptions(iterations=2, init_weight=1e-5)


class HeadReconstructionPipeline:
    """Photo -> textured head mesh. Build once with :meth:`from_pretrained`, call many times.

    Example:
        >>> pipe = HeadReconstructionPipeline.from_pretrained()
        >>> rec = pipe("photo.jpg")
        >>> rec.export("head.glb")

    Args:
        model: the head model.
        detector: a :class:`~recon3d.keypoints.base.FaceLandmarkDetector` (MediaPipe's by default).
        fit_options: weights and iteration counts of the landmark fit.
        completer: the texture-completion network for the head layout (the shipped one,
            loaded on first use, by default).
        network: the trained head network (:mod:`recon3d.models.head_net`) that gives the fit
            its starting point; None runs the fit from PnP on the mean face.
        refine_options: iteration counts of the short fit that refines the network's estimate.
    """

    def __init__(
        self,
        model: HeadModel,
        detector: FaceLandmarkDetector | None = None,
        fit_options: HeadFitOptions | None = None,
        completer: TextureCompleter | None = None,
        network: HeadRegressor | None = None,
        refine_options: HeadFitOptions | None = None,
    ) -> None:
        self.model = model
        self.network = network
        self.refine_options = refine_options or REFINE_OPTIONS
        self._detector = detector
        self._completer = completer
        self._detector_lock = threading.Lock()
        self.fit_options = fit_options or HeadFitOptions()

    @classmethod
    def from_pretrained(
        cls,
        device: str | torch.device | None = None,
        *,
        use_network: bool = USE_NETWORK_BY_DEFAULT,
        **kwargs: Any,
    ) -> HeadReconstructionPipeline:
        """The pipeline with the shipped, hash-checked head model.

        Args:
            device: torch device (default CPU).
            use_network: start the fit from the trained head network's estimate
                (``weights/head_net.safetensors``) and refine it briefly (the default), or
                ``False`` to fit from scratch (docs/head_network.md compares the two).
        """
        if use_network and "network" not in kwargs:
            kwargs["network"] = HeadRegressor.from_pretrained()
        return cls(HeadModel.from_pretrained(), **kwargs).to(device)

    def to(self, device: str | torch.device | None) -> HeadReconstructionPipeline:
        """Move the model's tensors to ``device`` (None keeps the CPU)."""
        if device is not None:
            self.model.to(torch.device(device))
            if self.network is not None:
                self.network.to(torch.device(device))
            if self._completer is not None:
                self._completer.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.mean_vertices.device

    @property
    def detector(self) -> FaceLandmarkDetector:
        # Created lazily: building MediaPipe graphs costs ~0.3 s and is not needed for tests of
        # the geometry alone.
        with self._detector_lock:
            if self._detector is None:
                from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

                self._detector = MediaPipeFaceDetector()
            return self._detector

    @property
    def completer(self) -> TextureCompleter:
        """The texture-completion network (``weights/texture_net.safetensors``), loaded on
        first use."""
        with self._detector_lock:
            if self._completer is None:
                self._completer = TextureCompleter.from_pretrained("head", self.model, self.device)
            return self._completer

    def __call__(
        self,
        image: Any,
        *,
        face_index: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        complete_texture: bool = True,
        refine: bool = True,
        texture: bool = True,
    ) -> Reconstruction:
        """Reconstruct the head of one person in ``image``.

        Args:
            image: path, bytes, ``PIL.Image`` or (H, W, 3) uint8 RGB array (grey, RGBA and
                16-bit are converted).
            face_index: which face when there are several, by decreasing size (0 = largest).
            max_pixels: decoding limit (decompression-bomb guard).
            progress: show a progress bar over the stages.
            complete_texture: complete what the photo did not see with the trained network
                (default); ``False`` keeps the raw projection, (T, T, 4) with the visibility as
                alpha.
            refine: with a network, refine its estimate with a short fit (default); ``False``
                gives the network's estimate alone. Without a network the full fit runs.
            texture: project the photo onto the mesh's texture and complete it (default);
                ``False`` gives the geometry alone (``rec.texture`` is None), without the
                texture stages, which take most of a head call.
        Raises:
            InvalidImageError / ImageTooLargeError: the input is not a usable image.
            NoFaceFound: no face (or fewer than ``face_index + 1`` faces) was found.
        """
        timings: dict[str, float] = {}
        with stages(STAGES if texture else GEOMETRY_STAGES, progress) as stage:
            with stage("decode", timings):
                loaded = decoded(image, max_pixels)
                pixels = loaded.pixels
                h, w = pixels.shape[:2]
                camera = Camera.from_image_size(w, h, loaded.focal_length_35mm)
            with stage("front end", timings):
                faces = self.detector.detect(pixels)
                if face_index < 0 or face_index >= len(faces):
                    found = f"found {len(faces)} face(s)" if faces else "found no face"
                    raise NoFaceFound(
                        f"{found} in {loaded.source} ({w}x{h}); face_index={face_index} requested"
                    )
                face = faces[face_index]
            with stage("fit", timings):
                if self.network is None:
                    fit = fit_head(self.model, face, camera.K, options=self.fit_options)
                else:
                    with torch_single_threaded():
                        fit = predict_head_fit(self.network, self.model, face, camera.K)
                    if refine:
                        fit = fit_head(
                            self.model, face, camera.K, options=self.refine_options, init=fit
                        )
                with torch.no_grad():
                    model_vertices = (
                        self.model.vertices(
                            torch.as_tensor(fit.identity, device=self.device)[None],
                            torch.as_tensor(fit.expression, device=self.device)[None],
                        )[0]
                        .cpu()
                        .numpy()
                        .astype(np.float64)
                    )
                vertices = model_vertices @ fit.rotation.T + fit.translation
            tex = completed = None
            if texture:
                with stage("texture", timings):
                    tex = project_texture(
                        pixels, vertices, self.model.faces, camera.K, self.model.texture_layout
                    )
                with stage("completion", timings):
                    completed = complete(self.completer if complete_texture else None, tex)

        params = {
            "identity": fit.identity,
            "expression": dict(
                zip(self.model.expression_labels, fit.expression.tolist(), strict=True)
            ),
            "rotation": fit.rotation.astype(np.float32),
            "translation": fit.translation.astype(np.float32),
            "focal_length_px": camera.focal,
            "reprojection_error_px": fit.reprojection_error_px,
            "face_box": face.box,
            "model": self.model.source,
        }
        return Reconstruction(
            vertices=vertices.astype(np.float32),
            faces=self.model.faces,
            uv=self.model.uv[self.model.face_uv],
            texture=completed,
            texture_confidence=None if tex is None else tex.confidence,
            camera=camera,
            params=params,
            target="head",
            image=pixels,
            keypoints=face.points,
            landmark_points=dict(self.model.landmarks),
            timings=timings,
        )


_DEFAULT: dict[str, Any] = {}
_DEFAULT_LOCK = threading.Lock()


def default_pipeline(
    device: str | torch.device | None = None, use_network: bool | None = None
) -> HeadReconstructionPipeline:
    """The process-wide pipeline used by :func:`reconstruct` (built on first use, per device
    and network choice; ``use_network=None`` is :data:`USE_NETWORK_BY_DEFAULT`)."""
    use_network = USE_NETWORK_BY_DEFAULT if use_network is None else use_network
    key = f"head:{torch.device(device) if device is not None else 'cpu'}:{use_network}"
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = HeadReconstructionPipeline.from_pretrained(
                device, use_network=use_network
            )
        return _DEFAULT[key]


def default_body_pipeline(
    device: str | torch.device | None = None, use_network: bool | None = None
):
    """The process-wide body pipeline used by :func:`reconstruct` (built on first use, per
    device and network choice; ``use_network=None`` is the body pipeline's default)."""
    from recon3d.body_pipeline import USE_NETWORK_BY_DEFAULT as BODY_DEFAULT
    from recon3d.body_pipeline import BodyReconstructionPipeline

    use_network = BODY_DEFAULT if use_network is None else use_network
    key = f"body:{torch.device(device) if device is not None else 'cpu'}:{use_network}"
    with _DEFAULT_LOCK:
        if key not in _DEFAULT:
            _DEFAULT[key] = BodyReconstructionPipeline.from_pretrained(
                device, use_network=use_network
            )
        return _DEFAULT[key]


def reconstruct(
    image: Any,
    *,
    target: Target = "auto",
    device: str | torch.device | None = None,
    face_index: int = 0,
    person_index: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    refine: bool = True,
    complete_texture: bool = True,
    use_network: bool | None = None,
    texture: bool = True,
) -> Reconstruction:
    """Reconstruct a textured 3D mesh of the person in one photo.

    Args:
        image: path, bytes, ``PIL.Image`` or (H, W, 3) uint8 RGB array.
        target: ``"head"``, ``"body"``, or ``"auto"``: the body when it is visible (both
            shoulders and hips and a knee seen by MediaPipe's pose model), else the head.
        device: torch device for the models (default CPU, also the faster for the body fit:
            on an H100 it took twice as long as on two CPU threads, docs/body_network.md).
        face_index: which face for heads when there are several, by decreasing size.
        person_index: which person for bodies when there are several, by decreasing face size.
        max_pixels: decoding limit (decompression-bomb guard).
        progress: show a progress bar.
        refine: when the pipeline starts from a trained network (bodies or heads): refine its
            estimate with a short fit (default), or ``False`` for the network's estimate alone.
        complete_texture: complete the parts the photo did not see with the trained
            texture-completion network (default); ``False`` keeps the raw projection as a
            (T, T, 4) texture whose alpha is the visibility.
        use_network: start the fit from the trained head or body network's estimate
            (``True``), or fit from scratch (``False``); ``None`` (default) takes each
            pipeline's release default (:data:`USE_NETWORK_BY_DEFAULT` for heads,
            ``recon3d.body_pipeline.USE_NETWORK_BY_DEFAULT`` for bodies; see
            docs/head_network.md and docs/body_network.md).
        texture: texture the mesh from the photo (default); ``False`` gives the geometry
            alone (``rec.texture`` is None), faster: the texture stages take most of a head
            call and about a fifth of a body call.
    Returns:
        a :class:`~recon3d.reconstruction.Reconstruction` (``rec.target`` says which).
    Raises:
        InvalidImageError / ImageTooLargeError: the input is not a usable image.
        NoFaceFound: head target (or auto without a visible body) and no face.
        NoPersonFound: body target and nobody found.
    """
    if target not in ("auto", "head", "body"):
        raise ValueError(f"target must be 'auto', 'head' or 'body', got {target!r}")
    if target == "head":
        return default_pipeline(device, use_network)(
            image,
            face_index=face_index,
            max_pixels=max_pixels,
            progress=progress,
            complete_texture=complete_texture,
            refine=refine,
            texture=texture,
        )
    body = default_body_pipeline(device, use_network)
    if target == "body":
        return body(
            image,
            person_index=person_index,
            max_pixels=max_pixels,
            progress=progress,
            refine=refine,
            complete_texture=complete_texture,
            texture=texture,
        )

    from recon3d.body_pipeline import body_visible
    from recon3d.errors import NoPersonFound

    # Decode once and run the pose front end once: its answer decides the target.
    start = time.perf_counter()
    loaded = load_image_with_metadata(image, max_pixels=max_pixels)
    decode = time.perf_counter() - start
    try:
        person = body.detect(loaded.pixels, person_index)
    except NoPersonFound:
        if person_index != 0:
            raise  # the caller asked for a person that is not there
        person = None
    detect = time.perf_counter() - start - decode
    if person is not None and body_visible(person):
        rec = body(
            loaded,
            person_index=person_index,
            progress=progress,
            person=person,
            refine=refine,
            complete_texture=complete_texture,
            texture=texture,
        )
        rec.timings["front end"] = detect
    else:
        rec = default_pipeline(device, use_network)(
            loaded,
            face_index=face_index,
            progress=progress,
            complete_texture=complete_texture,
            refine=refine,
            texture=texture,
        )
        rec.timings["choose target"] = detect
    rec.timings["decode"] = decode
    return rec


def decoded(image: Any, max_pixels: int) -> LoadedImage:
    """Decode ``image`` unless it already is a :class:`~recon3d.io.LoadedImage`."""
    if isinstance(image, LoadedImage):
        return image
    return load_image_with_metadata(image, max_pixels=max_pixels)
