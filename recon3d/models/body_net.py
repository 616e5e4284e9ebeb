"""The body network: MediaPipe's pose landmarks, world landmarks and person mask -> body-model
parameters and camera, in one forward pass (trained by ``recon3d/train/body_net.py`` with an
HMR-style adversarial prior; weights in ``weights/body_net.safetensors``).

Inputs, all in the person's square crop (see :func:`recon3d.train.synthetic.network_inputs`, the
same code at training and inference):

* ``keypoints`` (B, 33, 3): x, y relative to the crop centre in crop-side units, visibility;
* ``world`` (B, 33, 3): MediaPipe's metric world landmarks;
* ``mask`` (B, 1, 32, 32): the person mask in [0, 1];
* ``image`` (B, 3, S, S), only for a network built with ``image_size=S``: the photo's RGB crop
  of the same square, in [0, 1]. The shipped network reads none (measured in
  docs/body_network.md, "An aligned image crop").

Outputs: ``rotations`` (B, 19, 3, 3) of the fitted bones (:data:`FREE_BONES` order by bone
index, world-aligned axes as :class:`~recon3d.models.body.BodyModel` expects), ``shape`` (B, 16)
and ``camera`` (B, 3): the root joint's image position relative to the crop centre in crop units
(x, y) and ``log(z * side / f)``, the log of the crop's metric size at the root's depth.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import torch
from torch import nn

from recon3d.models.body import COCO17

__all__ = [
    "BodyRegressor",
    "align_limbs",
    "camera_to_root",
    "mirror_person",
    "mirror_pose",
    "network_inputs",
    "predict_fit",
    "root_to_camera",
    "rotation_6d_to_matrix",
    "solve_translation",
]

ASSET = "body_net.safetensors"
MASK_SIZE = 32


def rotation_6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) continuous rotation representation (Zhou et al. 2019) -> (..., 3, 3)."""
    a, b = x[..., :3], x[..., 3:]
    e1 = nn.functional.normalize(a, dim=-1)
    e2 = nn.functional.normalize(b - (e1 * b).sum(-1, keepdim=True) * e1, dim=-1)
    e3 = torch.cross(e1, e2, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1)


def _conv_encoder(channels: tuple[int, ...], side: int, features: int = 256) -> nn.Sequential:
    """Stride-2 3x3 convolutions with ReLUs through ``channels`` (the first is the input's),
    then a linear layer: (B, channels[0], side, side) -> (B, features)."""
    layers: list[nn.Module] = []
    for inputs, outputs in zip(channels, channels[1:], strict=False):
        layers += [nn.Conv2d(inputs, outputs, 3, stride=2, padding=1), nn.ReLU()]
    cells = side >> (len(channels) - 1)
    layers += [nn.Flatten(), nn.Linear(channels[-1] * cells * cells, features), nn.ReLU()]
    return nn.Sequential(*layers)


class BodyRegressor(nn.Module):
    """MLP over the landmarks plus a small CNN over the mask (and, optionally, one over an
    aligned image crop).

    Args:
        num_bones: bones predicted (19).
        num_shape: shape coefficients (16).
        width: hidden width.
        image_size: side of the RGB crop of the person's square that a second CNN reads
            (a multiple of 16); 0 (default, the shipped network): no image input.
    """

    def __init__(
        self, num_bones: int = 19, num_shape: int = 16, width: int = 512, image_size: int = 0
    ) -> None:
        super().__init__()
        if image_size < 0 or image_size % 16:
            raise ValueError(f"image_size must be 0 or a positive multiple of 16, got {image_size}")
        self.num_bones, self.num_shape = num_bones, num_shape
        self.image_size = image_size
        self.mask_encoder = _conv_encoder((1, 16, 32, 64), MASK_SIZE)
        image_features = 0
        if image_size:
            self.image_encoder = _conv_encoder((3, 16, 32, 64, 64), image_size)
            image_features = 256
        self.trunk = nn.Sequential(
            nn.Linear(33 * 6 + 256 + image_features, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
            nn.Linear(width, width),
            nn.ReLU(),
        )
        self.head = nn.Linear(width, num_bones * 6 + num_shape + 3)
        # Start at the rest pose (identity rotations), mean shape, a centred person.
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            bias = torch.zeros(num_bones * 6 + num_shape + 3)
            bias[: num_bones * 6] = torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(num_bones)
            bias[-1] = 0.7
            self.head.bias.copy_(bias)

    def forward(
        self,
        keypoints: torch.Tensor,
        world: torch.Tensor,
        mask: torch.Tensor,
        image: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """See the module docstring for shapes."""
        b = keypoints.shape[0]
        if keypoints.shape[1:] != (33, 3) or world.shape[1:] != (33, 3):
            raise ValueError(
                f"expected keypoints and world of shape (B, 33, 3), got "
                f"{tuple(keypoints.shape)} and {tuple(world.shape)}"
            )
        if mask.shape[1:] != (1, 32, 32):
            raise ValueError(f"expected mask of shape (B, 1, 32, 32), got {tuple(mask.shape)}")
        # Visibility gates the coordinates: unseen points carry little information.
        vis = keypoints[..., 2:]
        features = torch.cat(
            [
                (keypoints * torch.cat([vis, vis, torch.ones_like(vis)], -1)).reshape(b, -1),
                world.reshape(b, -1),
            ],
            -1,
        )
        parts = [features, self.mask_encoder(mask)]
        if self.image_size:
            expected = (3, self.image_size, self.image_size)
            if image is None or image.shape[1:] != expected:
                got = None if image is None else tuple(image.shape)
                side = self.image_size
                raise ValueError(f"expected image of shape (B, 3, {side}, {side}), got {got}")
            # Centred, as the landmark coordinates are.
            parts.append(self.image_encoder(image - 0.5))
        elif image is not None:
            raise ValueError("this network reads no image (built with image_size=0)")
        hidden = self.trunk(torch.cat(parts, -1))
        out = self.head(hidden)
        n6 = self.num_bones * 6
        return {
            "rotations": rotation_6d_to_matrix(out[:, :n6].reshape(b, self.num_bones, 6)),
            "shape": out[:, n6 : n6 + self.num_shape],
            "camera": out[:, n6 + self.num_shape :],
        }

    def config(self) -> dict[str, int]:
        config = {
            "num_bones": self.num_bones,
            "num_shape": self.num_shape,
            "width": self.trunk[0].out_features,
        }
        if self.image_size:
            config["image_size"] = self.image_size
        return config

    @classmethod
    def from_pretrained(cls, name: str = ASSET) -> BodyRegressor:
        """The shipped, hash-checked network (``weights/body_net.safetensors``)."""
        from recon3d.weights import verified_path

        return cls.from_file(verified_path(name))

    @classmethod
    def from_file(cls, path: str | pathlib.Path) -> BodyRegressor:
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


def network_inputs(
    person, image: np.ndarray | None = None, image_size: int = 0
) -> dict[str, np.ndarray]:
    """The front end's output as the network sees it, in the person's crop frame.

    Returns ``keypoints`` (33, 3): x, y relative to the crop centre in crop-size units and
    visibility; ``world`` (33, 3) metric landmarks; ``mask`` (MASK_SIZE, MASK_SIZE) uint8 crop of
    the person mask; ``crop`` (3,): centre x, y and side of the square crop in pixels; and, when
    ``image`` (H, W, 3) uint8 RGB and ``image_size`` are given, ``image`` (image_size,
    image_size, 3) uint8: the photo's crop of the same square (anti-aliased, black outside)."""
    import cv2

    x0, y0, x1, y1 = person.box
    side = 1.15 * max(x1 - x0, y1 - y0, 1.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    keypoints = np.c_[(person.points - (cx, cy)) / side, person.visibility].astype(np.float32)
    scale = MASK_SIZE / side
    affine = np.array(
        [[scale, 0, MASK_SIZE / 2 - scale * cx], [0, scale, MASK_SIZE / 2 - scale * cy]]
    )
    mask = cv2.warpAffine(person.mask, affine, (MASK_SIZE, MASK_SIZE), flags=cv2.INTER_AREA)
    inputs = {
        "keypoints": keypoints,
        "world": person.world.astype(np.float32),
        "mask": np.clip(mask * 255 + 0.5, 0, 255).astype(np.uint8),
        "crop": np.array([cx, cy, side], np.float32),
    }
    if image is not None and image_size:
        if image.shape[:2] != person.mask.shape or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"expected an (H, W, 3) image of the mask's size {person.mask.shape}, "
                f"got {image.shape}"
            )
        # warpAffine samples point-wise (its INTER_AREA is bilinear), so a large reduction
        # is blurred to the target's pixel footprint first, or thin limbs alias away.
        # Pixel centres at half-integers, as the landmarks have them, so that the crop of the
        # mirrored photo is exactly the mirrored crop (the mask crop predates this).
        scale = image_size / side
        shift = image_size / 2 - 0.5 + 0.5 * scale
        affine = np.array([[scale, 0, shift - scale * cx], [0, scale, shift - scale * cy]])
        source = image
        if scale < 0.5:
            source = cv2.GaussianBlur(image, (0, 0), 0.5 / scale)
        inputs["image"] = cv2.warpAffine(
            source, affine, (image_size, image_size), flags=cv2.INTER_LINEAR
        )
    return inputs


ALIGNMENTS = ("torso", "translation", "none")
LIMB_SOURCES = ("mediapipe", "image", "network")
HEIGHT_SOURCES = ("prior", "network")
RIGID_SOURCES = ("world", "photo")
CLOTHING_SOURCES = ("none", "mask")
#: The clothing parts ``clothing="mask"`` reads off the mask: all of them. The head's is hair,
#: on the scalp alone (:meth:`~recon3d.models.body.BodyModel.part_weights`), so it leaves the
#: face's keypoints where they are: on 58 real images the silhouette IoU rises from 0.792 to
#: 0.822 at the same keypoint error, 0.031 torso lengths. (When the head part was the whole head,
#: its offsets moved the eyes, ears and nose: keypoint error 0.044, so it was left out.)
MASK_CLOTHING_PARTS = ("torso", "head", "upperarm", "forearm", "hand", "thigh", "shin", "foot")
_ANKLES = ("left_ankle", "right_ankle")


def predict_fit(
    net: BodyRegressor,
    model,
    person,
    K: np.ndarray,
    *,
    align: str = "torso",
    mirror: bool = True,
    limbs: str = "mediapipe",
    height: str = "prior",
    rigid: str = "world",
    clothing: str = "none",
    image: np.ndarray | None = None,
):
    """The network's estimate for one person as a :class:`~recon3d.fitting.body_fit.BodyFit`
    (the fit's ``init``): all bones but the predicted ones at rest.

    Args:
        net: the body network.
        model: the body model.
        person: MediaPipe pose of the person.
        K: (3, 3) intrinsics.
        align: how the estimate is placed in the camera.

            * ``"torso"`` (default): the posed body is turned so that its torso (shoulders and
              hips) best matches MediaPipe's metric world torso (Kabsch), then translated so
              that its keypoints best reproject onto the detected ones
              (:func:`solve_translation`, closed form). On real photos the network's global
              orientation and camera are its least reliable outputs (it can take a person
              facing the camera for one facing away), and a wrong global pose is what a short
              refinement fixes worst.
            * ``"translation"``: the network's orientation, the closed-form translation.
            * ``"none"``: the network's own orientation and camera.
        mirror: test-time augmentation: the network also sees the mirrored person
            (:func:`mirror_person`), its estimate is mirrored back (:func:`mirror_pose`) and the
            two are averaged (bone rotations by the chordal L2 mean, shape coefficients
            linearly). The camera comes from the unmirrored pass.
        limbs: ``"mediapipe"`` (default): each upper and lower arm and leg whose two ends
            MediaPipe sees is swung onto the direction of its metric world landmarks
            (:func:`align_limbs`), keeping the network's twist about the bone, which landmarks
            cannot tell; hidden limbs keep the network's estimate. ``"network"``: the network's
            limbs as they are. ``"image"``: as ``"mediapipe"``, then each seen limb is turned so
            that its far end lies on the camera ray of its landmark in the photo
            (:func:`align_limbs_to_rays`): the world landmarks are MediaPipe's own 3D guess and
            do not reproject onto its 2D landmarks, so this makes the estimate agree with the
            photo where MediaPipe sees the limb, with the depth taken from the world landmarks.
            The ``"mediapipe"`` and ``"image"`` sources need ``align="torso"`` (the landmarks'
            frame).
        height: ``"prior"`` (default): when MediaPipe sees no ankle inside the photo, the
            shape is moved to the mean body's standing height
            (:meth:`~recon3d.models.body.BodyModel.with_height`), keeping the rest of the
            network's shape. Without the whole leg the network's height is a guess that carries
            almost nothing (on held-out synthetic portraits, correlation 0.06 with the truth
            where the knees are seen, and a larger error than the mean height), and on real
            adults cut off above the ankles it guessed 1.26-1.72 m, 1.3 m for the upper body
            alone (docs/body_network.md). ``"network"``: the network's shape as it is.
        rigid: ``"world"`` (default): the body's orientation is the torso alignment's (on
            MediaPipe's metric world torso) and its position the closed-form translation.
            ``"photo"``: then the whole body is turned and moved, rigidly, so that its
            keypoints reproject onto the landmarks MediaPipe sees in the photo
            (:func:`solve_rigid_pose`), before the limbs go onto their rays; needs
            ``align="torso"``.
        clothing: ``"none"`` (default): no clothing thickness (``clothing=None``; the network
            predicts the naked body). ``"mask"``: each part's thickness read off the person
            mask around the placed body (:func:`~recon3d.fitting.clothing.person_clothing`,
            closed form, about 10 ms; :data:`MASK_CLOTHING_PARTS`), so that the estimate's
            silhouette covers clothes; the clothed body is then placed on the photo again.
        image: (H, W, 3) uint8 RGB photo, for a network that reads an image crop
            (``net.image_size > 0``; ignored otherwise); the mirrored pass sees it mirrored.
    """
    import cv2
    from scipy.spatial.transform import Rotation

    from recon3d.fitting.body_fit import FREE_BONES, MEDIAPIPE_TO_MODEL, BodyFit
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    if align not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {align!r}")
    if limbs not in LIMB_SOURCES:
        raise ValueError(f"limbs must be one of {LIMB_SOURCES}, got {limbs!r}")
    if limbs != "network" and align != "torso":
        raise ValueError(f'limbs={limbs!r} needs align="torso"')
    if height not in HEIGHT_SOURCES:
        raise ValueError(f"height must be one of {HEIGHT_SOURCES}, got {height!r}")
    if rigid not in RIGID_SOURCES:
        raise ValueError(f"rigid must be one of {RIGID_SOURCES}, got {rigid!r}")
    if rigid != "world" and align != "torso":
        raise ValueError(f'rigid={rigid!r} needs align="torso"')
    if clothing not in CLOTHING_SOURCES:
        raise ValueError(f"clothing must be one of {CLOTHING_SOURCES}, got {clothing!r}")
    image_size = getattr(net, "image_size", 0)
    if image_size and image is None:
        raise ValueError("this network reads an image crop: pass the photo as image=")
    people = [person, mirror_person(person)] if mirror else [person]
    images = [None, None]
    if image_size:
        images = [image, np.ascontiguousarray(image[:, ::-1])]
    batch = [network_inputs(p, i, image_size) for p, i in zip(people, images, strict=False)]
    inputs = batch[0]
    device = next(net.parameters()).device
    with torch.no_grad():
        crops = None
        if image_size:
            crops = torch.as_tensor(np.stack([b["image"] for b in batch]), device=device)
            crops = crops.permute(0, 3, 1, 2).float() / 255
        out = net(
            torch.as_tensor(np.stack([b["keypoints"] for b in batch]), device=device),
            torch.as_tensor(np.stack([b["world"] for b in batch]), device=device),
            torch.as_tensor(np.stack([b["mask"] for b in batch]), device=device)[:, None].float()
            / 255,
            crops,
        )
    free = sorted(model.bone(n) for n in FREE_BONES)
    rotations = out["rotations"].cpu().numpy().astype(np.float64)  # (1 or 2, 19, 3, 3)
    pose = np.zeros((model.num_joints, 3), np.float32)
    pose[free] = Rotation.from_matrix(rotations[0]).as_rotvec()
    shape = out["shape"][0].cpu().numpy().astype(np.float32)
    if mirror:
        mirrored = np.zeros_like(pose)
        mirrored[free] = Rotation.from_matrix(rotations[1]).as_rotvec()
        mirrored = mirror_pose(model, mirrored)
        for bone in free:
            pair = Rotation.from_rotvec(np.stack([pose[bone], mirrored[bone]]).astype(np.float64))
            pose[bone] = pair.mean().as_rotvec()
        shape = 0.5 * (shape + out["shape"][1].cpu().numpy().astype(np.float32))
    seen = person.visible(0.5)
    if height == "prior" and not any(seen[POSE_LANDMARKS.index(n)] for n in _ANKLES):
        shape = model.with_height(shape, model.height(np.zeros_like(shape)))
    root = camera_to_root(out["camera"][0].cpu().numpy().astype(np.float64), inputs["crop"], K)
    rest_root = (
        model.mean_joints[0].cpu().numpy() + shape @ model.joint_shape_basis[:, 0].cpu().numpy()
    )
    translation = root - rest_root
    if align != "none":
        names = list(MEDIAPIPE_TO_MODEL)
        index = [POSE_LANDMARKS.index(k) for k in names]
        model_index = [model.keypoint(MEDIAPIPE_TO_MODEL[k]) for k in names]
        if align == "torso":
            torso = [names.index(k) for k in _TORSO]
            src = _posed_keypoints(model, shape, pose)[model_index][torso]
            dst = person.world[index][torso].astype(np.float64)
            correction, _ = Rotation.align_vectors(dst - dst.mean(0), src - src.mean(0))
            correction = correction.as_matrix()
            root_rotation = cv2.Rodrigues(pose[0].astype(np.float64))[0]
            pose[0] = cv2.Rodrigues(correction @ root_rotation)[0].ravel()
            if limbs != "network":
                pose = align_limbs(model, person, shape, pose)
        weights = np.where(person.visibility[index] > 0.5, person.visibility[index], 0.0)
        solved = solve_translation(
            _posed_keypoints(model, shape, pose)[model_index],
            person.points[index].astype(np.float64),
            weights,
            K,
        )
        if solved is not None:
            translation = solved
        if rigid == "photo":
            placed = solve_rigid_pose(model, person, shape, pose, translation, K)
            if placed is not None:
                pose, translation = placed
        if limbs == "image":
            pose = align_limbs_to_rays(model, person, shape, pose, translation, K)
    translation = np.asarray(translation, np.float32)
    thickness = None
    if clothing == "mask":
        from recon3d.fitting.clothing import person_clothing

        part_w = model.part_weights()[0].cpu().numpy()
        with torch.no_grad():
            as_t = lambda a: torch.as_tensor(a, device=model.mean_vertices.device)[None]  # noqa: E731
            vertices = model(as_t(shape), as_t(pose), as_t(translation)).vertices[0]
        thickness = person_clothing(
            model, vertices.cpu().numpy(), person, K, parts=MASK_CLOTHING_PARTS
        )
        # Clothes move the keypoints (they are regressed from the surface): place the clothed
        # body on the photo again, as the naked one was.
        offsets = part_w @ thickness
        if rigid == "photo":
            placed = solve_rigid_pose(model, person, shape, pose, translation, K, offsets=offsets)
            if placed is not None:
                pose, translation = placed[0], placed[1].astype(np.float32)
        if limbs == "image":
            pose = align_limbs_to_rays(model, person, shape, pose, translation, K, offsets=offsets)
    return BodyFit(
        shape=shape,
        pose=pose,
        translation=translation,
        keypoint_error_px=float("nan"),
        keypoint_scale_px=float("nan"),
        clothing=thickness,
    )


_TORSO = ("left_shoulder", "right_shoulder", "left_hip", "right_hip")


def align_limbs(
    model, person, shape: np.ndarray, pose: np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """Swing each upper and lower arm and leg of ``pose`` (J, 3) onto the direction of
    MediaPipe's metric world landmarks, when both ends are visible (above ``threshold``).

    The smallest world rotation that turns the posed limb (between its two keypoints) onto the
    landmarks' direction is applied to the bone, so its twist about its own axis, which two
    landmarks do not determine, stays the network's. Upper limbs first, then lower ones on the
    corrected parents. A shin whose alignment would bend the knee backwards keeps the network's
    rotation. ``pose`` must already be in the landmarks' frame (after the torso
    alignment). Returns a new (J, 3) pose.

    Why: on real photos the network, trained on renders, is least reliable on where the limbs
    point, while MediaPipe's landmarks for the limbs it sees are good; for limbs it does not
    see, the network (with its adversarial prior) is the better guess.
    """
    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL, rotation_between
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    world = person.world.astype(np.float64)

    def swing_of(bone, a, b, keypoints, joints):
        ia, ib = POSE_LANDMARKS.index(a), POSE_LANDMARKS.index(b)
        if min(person.visibility[ia], person.visibility[ib]) < threshold:
            return None
        posed = (
            keypoints[model.keypoint(MEDIAPIPE_TO_MODEL[b])]
            - keypoints[model.keypoint(MEDIAPIPE_TO_MODEL[a])]
        )
        return rotation_between(posed, world[ib] - world[ia])

    return _swing_limbs(model, shape, pose, swing_of)


def align_limbs_to_rays(
    model,
    person,
    shape: np.ndarray,
    pose: np.ndarray,
    translation: np.ndarray,
    K: np.ndarray,
    threshold: float = 0.5,
    offsets: np.ndarray | None = None,
    shoulders: bool = True,
) -> np.ndarray:
    """Turn each upper and lower arm and leg of ``pose`` (J, 3) whose far end MediaPipe sees
    (visibility above ``threshold``) so that the end's keypoint projects onto its landmark in
    the photo, keeping the bone's length; with ``shoulders``, first each clavicle towards its
    shoulder's ray (:data:`SHOULDER_CHAINS`, by at most :data:`SHOULDER_SWING_MAX` and to at
    most :data:`CLAVICLE_ANGLE_MAX` from rest); then upper limbs, then lower ones on the
    corrected parents. Returns a new (J, 3) pose.

    Turning the bone about its joint ``J`` moves the end keypoint ``P`` on the sphere of radius
    ``|P - J|`` about ``J``; the landmark's camera ray meets that sphere in up to two points (a
    limb pointing towards or away from the camera): the one nearer ``P`` is taken, so the depth
    comes from the estimate (on MediaPipe's world landmarks after :func:`align_limbs`). A ray
    that misses the sphere (the landmark lies further from the joint than the limb reaches)
    gives the point of the sphere nearest the ray. The smallest rotation is applied, so the
    twist about the bone stays. A shin that would bend the knee backwards keeps its rotation.

    Args:
        model: the body model.
        person: MediaPipe pose of the person.
        shape: (num_shape,) shape coefficients.
        pose: (J, 3) axis-angle pose in the camera's axes.
        translation: (3,) camera-frame translation of the posed body.
        K: (3, 3) intrinsics.
        threshold: the visibility above which MediaPipe sees a landmark.
        offsets: (V,) clothing along the normals (metres), which moves the keypoints.
        shoulders: turn the clavicles too. The network's trunk is placed as a whole, so its
            shoulders missed their landmarks by 0.07-0.08 torso lengths on whole bodies; on 58
            real images the keypoint error falls from 0.034 to 0.031 and PCK@0.1 rises from
            0.923 to 0.937 (docs/body_network.md).
    """
    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL, rotation_between
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    translation = np.asarray(translation, np.float64)
    inverse_k = np.linalg.inv(np.asarray(K, np.float64))

    def swing_of(bone, _, end, keypoints, joints):
        index = POSE_LANDMARKS.index(end)
        if person.visibility[index] < threshold:
            return None
        joint = joints[model.bone(bone)] + translation
        tip = keypoints[model.keypoint(MEDIAPIPE_TO_MODEL[end])] + translation
        target = _nearest_on_ray_sphere(inverse_k @ np.r_[person.points[index], 1.0], joint, tip)
        return rotation_between(tip - joint, target - joint)

    return _swing_limbs(model, shape, pose, swing_of, offsets, shoulders)


#: The shoulders of :func:`align_limbs_to_rays`: each clavicle turns its shoulder keypoint
#: towards the landmark's ray, as the limb chains (bone, parent, from, to landmark) do.
SHOULDER_CHAINS = (
    ("clavicle.L", None, "left_shoulder", "left_shoulder"),
    ("clavicle.R", None, "right_shoulder", "right_shoulder"),
)
#: Largest turn of a clavicle towards its ray, and largest clavicle rotation from rest
#: (radians): a shrug of about 20°, within a clavicle's reach of about 30°. Without the second
#: bound 8.7 % of the estimates on 425 real inputs had a clavicle beyond its anatomical range.
SHOULDER_SWING_MAX = 0.35
CLAVICLE_ANGLE_MAX = 0.5


def _swing_limbs(
    model,
    shape: np.ndarray,
    pose: np.ndarray,
    swing_of,
    offsets: np.ndarray | None = None,
    shoulders: bool = False,
) -> np.ndarray:
    """A new (J, 3) pose with each upper, then lower, limb bone of ``LIMB_CHAINS`` turned by the
    world rotation ``swing_of(bone, start_landmark, end_landmark, keypoints, joints)`` gives
    (None: the bone stays), on the posed body at zero translation (keypoints (K, 3), joints
    (J, 3); ``offsets``: (V,) clothing along the normals), the lower limbs on their corrected
    parents; with ``shoulders``, the clavicles of :data:`SHOULDER_CHAINS` first, each turn
    bounded as :func:`align_limbs_to_rays` says.

    A shin whose swing would bend the knee backwards keeps its rotation: landmarks of a
    straight leg often say "bent backwards", and a knee cannot do that, so the network's
    (plausible) shin stays."""
    import cv2

    from recon3d.fitting.body_fit import LIMB_CHAINS

    pose = pose.copy()
    device = model.mean_vertices.device
    chains = LIMB_CHAINS + (SHOULDER_CHAINS if shoulders else ())
    levels = (("clavicle",) if shoulders else ()) + ("upper", "lower")
    for level in levels:
        with torch.no_grad():
            keypoints, out = model.posed_keypoints(
                torch.as_tensor(shape, device=device)[None],
                torch.as_tensor(pose, device=device)[None],
                normal_offsets=_normal_offsets(model, offsets),
            )
            keypoints = keypoints[0].cpu().numpy().astype(np.float64)
            joints = out.joints[0].cpu().numpy().astype(np.float64)
            world_rotations = out.rotations[0].cpu().numpy().astype(np.float64)
        for bone, _, a, b in chains:
            if not bone.startswith(level):
                continue
            swing = swing_of(bone, a, b, keypoints, joints)
            if swing is None:
                continue
            if level == "clavicle":
                swing = _at_most(swing, SHOULDER_SWING_MAX)
            j = model.bone(bone)
            parent = world_rotations[model.parents[j]]
            local = cv2.Rodrigues(pose[j].astype(np.float64))[0]
            aligned = cv2.Rodrigues(parent.T @ swing @ parent @ local)[0].ravel()
            if bone.startswith("lowerleg") and aligned[0] < 0:
                continue
            if level == "clavicle" and np.linalg.norm(aligned) > CLAVICLE_ANGLE_MAX:
                aligned = aligned * (CLAVICLE_ANGLE_MAX / np.linalg.norm(aligned))
            pose[j] = aligned
    return pose


def _at_most(rotation: np.ndarray, angle: float) -> np.ndarray:
    """The (3, 3) ``rotation`` about the same axis by at most ``angle`` radians."""
    import cv2

    vector = cv2.Rodrigues(rotation)[0].ravel()
    norm = np.linalg.norm(vector)
    return rotation if norm <= angle else cv2.Rodrigues(vector * (angle / norm))[0]


def _nearest_on_ray_sphere(ray: np.ndarray, centre: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The point of the sphere about ``centre`` through ``point`` that lies on the ray
    ``s * ray`` (s > 0) from the camera and is nearest ``point``; where the ray misses the
    sphere, the sphere's point nearest the ray."""
    radius = np.linalg.norm(point - centre)
    d = ray / np.linalg.norm(ray)
    along = float(d @ centre)
    closest = along * d
    gap2 = float(np.sum((centre - closest) ** 2))
    if gap2 >= radius**2:
        towards = closest - centre
        return centre + radius * towards / max(np.linalg.norm(towards), 1e-12)
    half = np.sqrt(radius**2 - gap2)
    hits = [(along - half) * d, (along + half) * d]
    hits = [h for h in hits if h @ d > 0] or hits
    return min(hits, key=lambda h: float(np.sum((h - point) ** 2)))


def _swapped_sides(names) -> np.ndarray:
    """Index of each name's mirror twin (``left_x`` <-> ``right_x``, ``x.L`` <-> ``x.R``)."""
    names = list(names)

    def twin(name: str) -> str:
        for a, b in (("left_", "right_"), ("right_", "left_")):
            if name.startswith(a):
                return b + name[len(a) :]
        for a, b in ((".L", ".R"), (".R", ".L")):
            if name.endswith(a):
                return name[: -len(a)] + b
        return name

    return np.array([names.index(twin(n)) for n in names])


def mirror_person(person):
    """The MediaPipe pose of the horizontally mirrored image: x flipped in the image, the mask
    and the metric world landmarks, left and right landmarks exchanged."""
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS, BodyLandmarks

    swap = _swapped_sides(POSE_LANDMARKS)
    w = person.mask.shape[1]
    points = person.points[swap].copy()
    points[:, 0] = w - points[:, 0]
    world = person.world[swap].copy()
    world[:, 0] = -world[:, 0]
    x0, y0, x1, y1 = person.box
    return BodyLandmarks(
        points=points,
        visibility=person.visibility[swap].copy(),
        world=world,
        mask=np.ascontiguousarray(person.mask[:, ::-1]),
        box=np.array([w - x1, y0, w - x0, y1], dtype=person.box.dtype),
    )


def mirror_pose(model, pose: np.ndarray) -> np.ndarray:
    """(J, 3) axis-angle pose of the mirror image of a posed body (reflection across the model's
    x = 0 plane, which is its plane of symmetry): left and right bones exchanged, and each
    rotation reflected, ``(x, y, z) -> (x, -y, -z)`` (the axes are world-aligned)."""
    return (pose[_swapped_sides(model.bone_labels)] * np.array([1, -1, -1], pose.dtype)).astype(
        pose.dtype
    )


def _posed_keypoints(model, shape: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(K, 3) keypoints of the posed body at zero translation."""
    return _posed_keypoints_and_root(model, shape, pose)[0]


def _normal_offsets(model, offsets: np.ndarray | None) -> torch.Tensor | None:
    """(1, V) tensor of per-vertex clothing offsets for the model's forward, or None."""
    if offsets is None:
        return None
    return torch.as_tensor(
        offsets, dtype=model.mean_vertices.dtype, device=model.mean_vertices.device
    )[None]


def _posed_keypoints_and_root(
    model, shape: np.ndarray, pose: np.ndarray, offsets: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) keypoints and (3,) root joint of the posed body at zero translation
    (``offsets``: (V,) clothing along the normals, metres)."""
    device = model.mean_vertices.device
    with torch.no_grad():
        keypoints, out = model.posed_keypoints(
            torch.as_tensor(shape, device=device)[None],
            torch.as_tensor(pose, device=device)[None],
            normal_offsets=_normal_offsets(model, offsets),
        )
        keypoints = keypoints[0]
    return (
        keypoints.cpu().numpy().astype(np.float64),
        out.joints[0, 0].cpu().numpy().astype(np.float64),
    )


def camera_to_root(camera: np.ndarray, crop: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(3,) camera-frame position of the root joint from the network's ``camera`` (3,), the
    crop (centre x, y, side) and intrinsics K."""
    f = 0.5 * (K[0, 0] + K[1, 1])
    z = np.exp(camera[2]) * f / crop[2]
    u = crop[0] + camera[0] * crop[2]
    v = crop[1] + camera[1] * crop[2]
    return np.array([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z])


def root_to_camera(root: np.ndarray, crop: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Inverse of :func:`camera_to_root`: the network's ``camera`` target (3,)."""
    f = 0.5 * (K[0, 0] + K[1, 1])
    u = K[0, 0] * root[0] / root[2] + K[0, 2]
    v = K[1, 1] * root[1] / root[2] + K[1, 2]
    return np.array(
        [(u - crop[0]) / crop[2], (v - crop[1]) / crop[2], np.log(root[2] * crop[2] / f)]
    )


#: The landmarks :func:`solve_rigid_pose` makes the whole estimate match in the photo: the 17
#: COCO keypoints (head, trunk and limb joints). The trunk and head alone turned the limbs'
#: depths wrongly on held-out synthetic people (PVE 122.0 against 116.7 mm; with all of them
#: 116.3); see docs/body_network.md.
RIGID_LANDMARKS = COCO17


def solve_rigid_pose(
    model,
    person,
    shape: np.ndarray,
    pose: np.ndarray,
    translation: np.ndarray,
    K: np.ndarray,
    threshold: float = 0.5,
    offsets: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """Turn and move the whole posed body, rigidly, so that its keypoints of
    :data:`RIGID_LANDMARKS` reproject onto MediaPipe's landmarks in the photo.

    Perspective-n-point by Levenberg-Marquardt (``cv2.solvePnP``), started from the given
    placement, on the landmarks MediaPipe sees (visibility above ``threshold``) inside the photo.
    The start comes from MediaPipe's metric world torso, which is a 3D guess: on portraits cut
    at the waist it can pitch the torso towards the camera (the head then lands on the chest),
    which no translation makes agree with the photo.

    Args:
        model: the body model.
        person: MediaPipe pose of the person.
        shape: (num_shape,) shape coefficients.
        pose: (J, 3) axis-angle pose in the camera's axes.
        translation: (3,) camera-frame translation of the posed body.
        K: (3, 3) intrinsics.
        threshold: the visibility above which MediaPipe sees a landmark.
        offsets: (V,) clothing along the normals (metres), which moves the keypoints.

    Returns:
        The new (J, 3) pose (only the root rotation changes) and (3,) translation, or None when
        fewer than five such landmarks are seen or the solution is behind the camera.
    """
    import cv2

    from recon3d.fitting.body_fit import MEDIAPIPE_TO_MODEL
    from recon3d.keypoints.mediapipe_pose import POSE_LANDMARKS

    index = [POSE_LANDMARKS.index(n) for n in RIGID_LANDMARKS]
    seen = person.visible(threshold)[index]
    if seen.sum() < 5:
        return None
    points_2d = person.points[index].astype(np.float64)
    model_index = [model.keypoint(MEDIAPIPE_TO_MODEL[n]) for n in RIGID_LANDMARKS]
    all_keypoints, root = _posed_keypoints_and_root(model, shape, pose, offsets)
    keypoints = all_keypoints[model_index][seen]
    translation = np.asarray(translation, np.float64)
    ok, rvec, tvec = cv2.solvePnP(
        keypoints,
        points_2d[seen],
        np.asarray(K, np.float64),
        None,
        rvec=np.zeros((3, 1)),
        tvec=translation.reshape(3, 1).copy(),
        useExtrinsicGuess=True,
        flags=cv2.SOLVEPNP_ITERATIVE,
    )
    if not ok:
        return None
    rotation = cv2.Rodrigues(rvec)[0]
    if np.min((keypoints @ rotation.T + tvec.ravel())[:, 2]) <= 0:
        return None
    # The model turns the root about the root joint: r = R p + t becomes pose[0] <- R pose[0]
    # with the translation that keeps the root joint where R and t put it.
    pose = pose.copy()
    root_rotation = cv2.Rodrigues(pose[0].astype(np.float64))[0]
    pose[0] = cv2.Rodrigues(rotation @ root_rotation)[0].ravel()
    return pose, rotation @ root + tvec.ravel() - root


def solve_translation(
    points: np.ndarray, targets: np.ndarray, weights: np.ndarray, K: np.ndarray
) -> np.ndarray | None:
    """The camera-frame translation ``t`` (3,) that best projects ``points + t`` onto ``targets``.

    Weighted linear least squares on the algebraic reprojection error: for a pinhole camera,
    ``u = (x - cx) / fx`` gives ``t_x - u t_z = u Z - X`` (and likewise for y), two equations
    per point, exact when the points can be projected exactly.

    Args:
        points: (N, 3) 3D points in the camera's axes, before translation.
        targets: (N, 2) their detected pixel positions.
        weights: (N,) confidence of each target (0: ignored).
        K: (3, 3) intrinsics.

    Returns:
        (3,) translation, or None when the solution would put the points behind the camera or
        the system is degenerate (fewer than two weighted points).
    """
    points, targets = np.asarray(points, np.float64), np.asarray(targets, np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or targets.shape != (len(points), 2):
        raise ValueError(
            f"expected points (N, 3) and targets (N, 2), got {points.shape} and {targets.shape}"
        )
    w = np.sqrt(np.clip(np.asarray(weights, np.float64), 0, None))
    if np.count_nonzero(w) < 2:
        return None
    u = (targets[:, 0] - K[0, 2]) / K[0, 0]
    v = (targets[:, 1] - K[1, 2]) / K[1, 1]
    zeros, ones = np.zeros_like(u), np.ones_like(u)
    a = np.concatenate([np.c_[ones, zeros, -u], np.c_[zeros, ones, -v]]) * np.r_[w, w][:, None]
    b = np.r_[u * points[:, 2] - points[:, 0], v * points[:, 2] - points[:, 1]] * np.r_[w, w]
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    if np.linalg.matrix_rank(a) < 3 or np.min(points[:, 2][w > 0] + t[2]) <= 0:
        return None
    return t
