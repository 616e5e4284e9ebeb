"""The full-body reconstruction pipeline.

image ─► io.image ─► keypoints (MediaPipe pose + mask, face mesh, hands) ─► fitting (rigged Anny)
      ─► texture
      ─► Reconstruction (with the skeleton, so exports carry the rig)
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import numpy as np
import torch

from recon3d._progress import stages
from recon3d._threads import torch_single_threaded
from recon3d.camera import Camera
from recon3d.fitting.body_fit import BodyFit, BodyFitOptions, fit_body, keypoint_error
from recon3d.io import DEFAULT_MAX_PIXELS
from recon3d.keypoints.base import FaceLandmarkDetector, FaceLandmarks
from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks
from recon3d.models.body import BodyModel
from recon3d.models.body_net import BodyRegressor, predict_fit
from recon3d.models.body_prior import PoseDiscriminator
from recon3d.pipeline import GEOMETRY_STAGES, STAGES, decoded
from recon3d.reconstruction import Reconstruction
from recon3d.skeleton import Skeleton
from recon3d.texture.completion import TextureCompleter, complete
from recon3d.texture.projection import project_texture

#: Whether :meth:`BodyReconstructionPipeline.from_pretrained` (and so ``reconstruct``) starts
#: from the body network. Measured in docs/body_network.md: against the fit from scratch it
#: lowers the 3D error on held-out synthetic people and completes hidden limbs of real photos
#: better, and fits the unaltered photos about as closely.
USE_NETWORK_BY_DEFAULT = True
#: The fit that refines the network's estimate: 10 torso (the pelvis, the spine and the
#: placement on the keypoints, limbs held), 10 pose and 40 silhouette iterations; a pull towards
#: the network's pose only on limbs whose end MediaPipe does not see inside the photo (not on a
#: bone the photo's edge cuts, whose in-frame part the mask places), and unseen legs that keep
#: the network's guess unless the person mask prefers standing, also where MediaPipe places a
#: knee it reports visible just outside the photo; and the adversarial pose prior
#: (``weights/body_prior.safetensors``) at weight 0.3, which takes most implausible poses out of
#: the refined result at no measurable cost in 3D, silhouette or keypoints. Measured in
#: docs/body_network.md ("A pose prior for the refinement", "Head-and-shoulders framings"): the
#: torso stage and the free cut bones close most of the gap to optimisation only on video-call
#: framings, at about 1 mm of 3D error on synthetic people.
REFINE_OPTIONS = BodyFitOptions(
    torso_iterations=10,
    pose_iterations=10,
    silhouette_iterations=40,
    init_weight=0.0,
    hidden_init_weight=0.5,
    pull_cut_bones=False,
    choose_unseen_legs=True,
    trust_knees_outside_frame=True,
    adversarial_weight=0.3,
)

#: How the network's estimate places the limbs MediaPipe sees (``predict_fit``'s ``limbs``).
#: As the start of the refinement: along MediaPipe's world landmarks. As the result itself
#: (``refine=False``): also turned onto their landmarks' camera rays, so the network-only body
#: agrees with the photo. Measured (docs/body_network.md): the rays make the network-only
#: result better on real photos and synthetic people, and the refined one worse.
REFINE_START_LIMBS = "mediapipe"
NETWORK_ONLY_LIMBS = "image"
#: How the network's estimate is placed as a whole (``predict_fit``'s ``rigid``): turned and
#: moved so that its keypoints agree with MediaPipe's landmarks in the photo, both as the result
#: itself (on 58 real images the keypoint error halves, 0.082 to 0.039 torso lengths, at the
#: same 3D error on held-out synthetic people) and, with the mask's clothing below, as the
#: refinement's start (docs/body_network.md).
REFINE_START_RIGID = "photo"
NETWORK_ONLY_RIGID = "photo"
#: Clothing of the network's estimate (``predict_fit``'s ``clothing``): each part's thickness
#: read off the person mask around the placed body, hair on the scalp included, so that its
#: silhouette covers clothes and hair as the fit's does. As the result itself, on 58 real images
#: the silhouette IoU rises from 0.727 (naked) to 0.822 and the keypoints agree better, 0.039
#: to 0.031 torso lengths. As the refinement's start, with the photo placement (session 14):
#: IoU 0.852 against 0.845, PCK 0.971 against 0.962, keypoint error 0.031 against 0.034 from
#: the world placement without clothing, and better on held-out synthetic people and hidden
#: limbs (docs/body_network.md). The placement alone completed hidden limbs worse (0.338
#: against 0.328 torso lengths); the clothing alone, from the world placement, lost the photos
#: (IoU 0.828).
REFINE_START_CLOTHING = "mask"
NETWORK_ONLY_CLOTHING = "mask"

# A body is "visible" when these are seen: both shoulders and hips, and a knee.
_BODY_CORE = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")
_KNEES = ("left_knee", "right_knee")


def body_visible(person: BodyLandmarks, threshold: float = 0.5) -> bool:
    """True when enough of the body is in frame and unoccluded for a full-body fit: both
    shoulders and both hips, and at least one knee, visible (MediaPipe visibility above
    ``threshold``) inside the image."""
    seen = person.visible(threshold)
    core = all(seen[POSE_LANDMARKS.index(n)] for n in _BODY_CORE)
    return core and any(seen[POSE_LANDMARKS.index(n)] for n in _KNEES)


class BodyReconstructionPipeline:
    """Photo -> textured, rigged full-body mesh. Build once with :meth:`from_pretrained`.

    Example:
        >>> pipe = BodyReconstructionPipeline.from_pretrained()
        >>> rec = pipe("photo.jpg")
        >>> rec.export("body.glb")  # with the skeleton and skin weights

    Args:
        model: the body model.
        detector: a pose detector with ``detect(image, person_index) -> BodyLandmarks``
            (MediaPipe's by default).
        fit_options: weights and iteration counts of the fit from scratch.
        network: the trained body network (:mod:`recon3d.models.body_net`) that gives the fit
            its starting point; None runs the fit from a rigid alignment.
        refine_options: iteration counts of the short fit that refines the network's estimate.
        face_detector: face-mesh detector for head detail (MediaPipe's by default).
        hand_detector: hand-landmark detector with ``detect(image, person) -> {side: (21, 2)}``
            (MediaPipe's by default).
        completer: the texture-completion network for the body layout (the shipped one,
            loaded on first use, by default).
        prior: the adversarial pose prior (:mod:`recon3d.models.body_prior`) of fits whose
            options weigh it (``adversarial_weight``; the refinement's do by default); the
            shipped one (``weights/body_prior.safetensors``), loaded on first use, by default.
    """

    def __init__(
        self,
        model: BodyModel,
        detector: Any | None = None,
        fit_options: BodyFitOptions | None = None,
        network: BodyRegressor | None = None,
        refine_options: BodyFitOptions | None = None,
        face_detector: FaceLandmarkDetector | None = None,
        hand_detector: Any | None = None,
        completer: TextureCompleter | None = None,
        prior: PoseDiscriminator | None = None,
    ) -> None:
        self.model = model
        self._prior = prior
        self._completer = completer
        self.network = network
        self.refine_options = refine_options or REFINE_OPTIONS
        self._detector = detector
        self._face_detector = face_detector
        self._hand_detector = hand_detector
        self._detector_lock = threading.Lock()
        self.fit_options = fit_options or BodyFitOptions()

    @classmethod
    def from_pretrained(
        cls,
        device: str | torch.device | None = None,
        *,
        use_network: bool = USE_NETWORK_BY_DEFAULT,
        **kwargs: Any,
    ) -> BodyReconstructionPipeline:
        """The pipeline with the shipped, hash-checked body model.

        Args:
            device: torch device (default CPU).
            use_network: start the fit from the trained body network's estimate
                (``weights/body_net.safetensors``) and refine it (:data:`REFINE_OPTIONS`); the
                default. ``False`` fits from the rest pose (see docs/body_network.md).
        """
        if use_network and "network" not in kwargs:
            kwargs["network"] = BodyRegressor.from_pretrained()
        return cls(BodyModel.from_pretrained(), **kwargs).to(device)

    def to(self, device: str | torch.device | None) -> BodyReconstructionPipeline:
        """Move the model's tensors to ``device`` (None keeps the CPU)."""
        if device is not None:
            self.model.to(torch.device(device))
            if self.network is not None:
                self.network.to(torch.device(device))
            if self._prior is not None:
                self._prior.to(torch.device(device))
            if self._completer is not None:
                self._completer.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return self.model.mean_vertices.device

    @property
    def detector(self) -> Any:
        from recon3d.keypoints.mediapipe_pose import MediaPipePoseDetector

        return self._lazy("_detector", MediaPipePoseDetector)

    @property
    def face_detector(self) -> FaceLandmarkDetector:
        from recon3d.keypoints.mediapipe_face import MediaPipeFaceDetector

        return self._lazy("_face_detector", MediaPipeFaceDetector)

    @property
    def hand_detector(self) -> Any:
        from recon3d.keypoints.mediapipe_hands import MediaPipeHandDetector

        return self._lazy("_hand_detector", MediaPipeHandDetector)

    @property
    def completer(self) -> TextureCompleter:
        """The texture-completion network (``weights/texture_net.safetensors``), loaded on
        first use."""
        return self._lazy(
            "_completer",
            lambda: TextureCompleter.from_pretrained("body", self.model, self.device),
        )

    @property
    def prior(self) -> PoseDiscriminator:
        """The adversarial pose prior (``weights/body_prior.safetensors``), loaded on first
        use."""
        return self._lazy("_prior", lambda: PoseDiscriminator.from_pretrained().to(self.device))

    def _lazy(self, attribute: str, factory: Any) -> Any:
        """The detector in ``attribute``, built on first use (MediaPipe graphs cost ~0.3 s
        each and tests of the geometry alone need none)."""
        with self._detector_lock:
            if getattr(self, attribute) is None:
                setattr(self, attribute, factory())
            return getattr(self, attribute)

    def person_face(self, image: np.ndarray, person: BodyLandmarks) -> FaceLandmarks | None:
        """The face mesh of ``person`` when the face is visible: the detected face whose box
        holds the person's nose (MediaPipe pose), else None."""
        nose = POSE_LANDMARKS.index("nose")
        if not person.visible()[nose]:
            return None
        x, y = person.points[nose]
        for face in self.face_detector.detect(image):
            x0, y0, x1, y1 = face.box
            if x0 <= x <= x1 and y0 <= y <= y1:
                return face
        return None

    def detect(self, image: np.ndarray, person_index: int = 0) -> BodyLandmarks:
        """The front end alone: MediaPipe pose of person ``person_index``."""
        return self.detector.detect(image, person_index)

    def __call__(
        self,
        image: Any,
        *,
        person_index: int = 0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        person: BodyLandmarks | None = None,
        refine: bool = True,
        complete_texture: bool = True,
        texture: bool = True,
    ) -> Reconstruction:
        """Reconstruct the full body of one person in ``image``.

        Args:
            image: path, bytes, ``PIL.Image`` or (H, W, 3) uint8 RGB array.
            person_index: which person when there are several, by decreasing face size
                (0 = the most prominent).
            max_pixels: decoding limit (decompression-bomb guard).
            progress: show a progress bar over the stages.
            person: the front end's result when the caller already has it (``target="auto"``
                runs the pose detector to decide).
            refine: with a network, refine its estimate with a short fit (default); ``False``
                gives the network's estimate alone, placed to agree with MediaPipe's landmarks
                in the photo (:data:`NETWORK_ONLY_RIGID`), with the limbs MediaPipe sees
                turned onto their landmarks (:data:`NETWORK_ONLY_LIMBS`) and its clothing read
                off the person mask (:data:`NETWORK_ONLY_CLOTHING`); the face mesh and hand
                detectors, which only the fit uses, do not run (``params["face_landmarks"]``
                and ``params["hand_landmarks"]`` are None). Without a network the full fit
                runs.
            complete_texture: complete what the photo did not see with the trained network
                (default); ``False`` keeps the raw projection, (T, T, 4) with the visibility as
                alpha.
            texture: project the photo onto the mesh's texture and complete it (default);
                ``False`` gives the geometry alone (``rec.texture`` is None), without the
                texture stages.
        Raises:
            InvalidImageError / ImageTooLargeError: the input is not a usable image.
            NoPersonFound: nobody (or fewer than ``person_index + 1`` people) was found.
        """
        timings: dict[str, float] = {}
        with stages(STAGES if texture else GEOMETRY_STAGES, progress) as stage:
            with stage("decode", timings):
                loaded = decoded(image, max_pixels)
                pixels = loaded.pixels
                h, w = pixels.shape[:2]
                camera = Camera.from_image_size(w, h, loaded.focal_length_35mm)
            with stage("front end", timings):
                if person is None:
                    person = self.detect(pixels, person_index)
                elif person.mask.shape != (h, w):
                    raise ValueError("the given person landmarks belong to another image size")
                face, hands = None, None
                if self.network is None or refine:
                    # The face mesh and the hands serve the fit; the network's estimate alone
                    # does not use them.
                    face = self.person_face(pixels, person)
                    hands = self.hand_detector.detect(pixels, person)
            with stage("fit", timings), torch_single_threaded():
                init = None
                if self.network is not None:
                    limbs = REFINE_START_LIMBS if refine else NETWORK_ONLY_LIMBS
                    rigid = REFINE_START_RIGID if refine else NETWORK_ONLY_RIGID
                    clothing = REFINE_START_CLOTHING if refine else NETWORK_ONLY_CLOTHING
                    init = predict_fit(
                        self.network,
                        self.model,
                        person,
                        camera.K,
                        limbs=limbs,
                        rigid=rigid,
                        clothing=clothing,
                        image=pixels,
                    )
                if init is not None and not refine:
                    fit = init
                else:
                    options = self.fit_options if init is None else self.refine_options
                    fit = fit_body(
                        self.model,
                        person,
                        camera.K,
                        options=options,
                        init=init,
                        face=face,
                        hands=hands,
                        prior=self.prior if options.adversarial_weight else None,
                    )
                vertices, joints = self._posed(fit)
                if not np.isfinite(fit.keypoint_error_px):
                    # The network's estimate alone runs no fit: measure it as a fit would.
                    error, scale = keypoint_error(
                        self.model,
                        vertices,
                        person,
                        camera.K,
                        hands=hands,
                        options=self.refine_options,
                    )
                    fit = dataclasses.replace(fit, keypoint_error_px=error, keypoint_scale_px=scale)
            tex = None
            if texture:
                with stage("texture", timings):
                    tex = project_texture(
                        pixels,
                        vertices,
                        self.model.faces,
                        camera.K,
                        self.model.texture_layout,
                        person_mask=person.mask,
                    )
                with stage("completion", timings):
                    tex = dataclasses.replace(
                        tex, texture=complete(self.completer if complete_texture else None, tex)
                    )
        rec = self._result(fit, person, camera, pixels, vertices, joints, tex, timings)
        rec.params["face_landmarks"] = None if face is None else face.points
        rec.params["hand_landmarks"] = hands
        return rec

    def _posed(self, fit: BodyFit) -> tuple[np.ndarray, np.ndarray]:
        """Camera-frame vertices (V, 3) and joints (J, 3) of a fit, float64."""
        part_w, _ = self.model.part_weights()
        with torch.no_grad():
            as_t = lambda a: torch.as_tensor(a, device=self.device)[None]  # noqa: E731
            out = self.model(
                as_t(fit.shape),
                as_t(fit.pose),
                as_t(fit.translation),
                normal_offsets=None
                if fit.clothing is None
                else (part_w @ as_t(fit.clothing)[0])[None],
            )
        return (
            out.vertices[0].cpu().numpy().astype(np.float64),
            out.joints[0].cpu().numpy().astype(np.float64),
        )

    def _result(self, fit, person, camera, pixels, vertices, joints, tex, timings):
        model = self.model
        skeleton = Skeleton(
            names=tuple(model.bone_labels),
            parents=model.parents,
            joints=joints.astype(np.float32),
            skin_indices=model.skin_indices.cpu().numpy(),
            skin_weights=model.skin_weights.cpu().numpy(),
        )
        _, part_names = model.part_weights()
        params = {
            "shape": fit.shape,
            "pose": fit.pose,
            "translation": fit.translation,
            "clothing": dict(
                zip(
                    part_names,
                    [0.0] * len(part_names) if fit.clothing is None else fit.clothing.tolist(),
                    strict=True,
                )
            ),
            "height_m": model.height(fit.shape.astype(np.float64)),
            "focal_length_px": camera.focal,
            "keypoint_error_px": fit.keypoint_error_px,
            "torso_length_px": fit.keypoint_scale_px,
            "person_box": person.box,
            "bone_labels": list(model.bone_labels),
            "model": model.source,
        }
        keypoints = np.c_[person.points, person.visibility].astype(np.float32)
        return Reconstruction(
            vertices=vertices.astype(np.float32),
            faces=model.faces,
            uv=model.uv[model.face_uv],
            texture=None if tex is None else tex.texture,
            texture_confidence=None if tex is None else tex.confidence,
            camera=camera,
            params=params,
            target="body",
            image=pixels,
            keypoints=keypoints,
            landmark_points=dict(model.landmarks),
            timings=timings,
            skeleton=skeleton,
            person_mask=person.mask,
        )
