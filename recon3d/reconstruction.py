"""The typed result of :func:`recon3d.reconstruct`: mesh, texture, parameters and camera."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon3d.camera import Camera
from recon3d.models.landmarks import LandmarkDefinition, interpolate_surface
from recon3d.skeleton import Skeleton

# Pictures made with the photo's camera are rendered at most this many pixels on the long side.
_MAX_OVERLAY_SIDE = 1024


@dataclass
class Reconstruction:
    """A textured mesh of the person in a photo, in that photo's camera frame (untextured when
    reconstructed with ``texture=False``).

    Attributes:
        vertices: (V, 3) float32, metres, OpenCV camera frame of the photo (x right, y down,
            z forward); ``camera.project(vertices)`` lands on the person in the photo.
        faces: (F, 3) int64 triangles.
        uv: (F, 3, 2) float32 per-corner texture coordinates (origin at the texture's
            bottom-left, glTF/OBJ convention).
        texture: (T, T, 3) uint8 RGB texture in the model's UV layout, with the parts the photo
            did not see completed by the texture network; (T, T, 4) RGBA with
            ``complete_texture=False``: the photo's projection alone, alpha = visibility;
            None with ``texture=False`` (geometry only).
        texture_confidence: (T, T) float32 in [0, 1]: how directly each texel was seen in the
            photo (0 where the texture was completed); None without a texture.
        camera: the photo's pinhole camera.
        params: model parameters (``identity``, ``expression``, ``rotation``, ``translation``...).
        target: ``"head"`` or ``"body"``.
        image: (H, W, 3) uint8 input photo, as decoded (EXIF-rotated, RGB).
        keypoints: (N, 3) float32 detected landmarks: for heads MediaPipe's 478 face-mesh
            points (x, y in pixels, z relative depth in the same units); for bodies MediaPipe's
            33 pose landmarks (x, y in pixels, visibility in [0, 1]).
        landmark_points: landmark schemes on the mesh (``"ibug68"``, ``"mediapipe478"`` for
            heads; ``"coco17"``, ``"coco_wholebody23"`` for bodies).
        timings: seconds spent per pipeline stage.
        skeleton: the rig of body reconstructions (joints in the camera frame, skin weights);
            GLB exports carry it. None for heads.
        person_mask: (H, W) float32 person segmentation in [0, 1] for bodies, else None.
    """

    vertices: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    texture: np.ndarray | None
    texture_confidence: np.ndarray | None
    camera: Camera
    params: dict[str, Any]
    target: str
    image: np.ndarray
    keypoints: np.ndarray
    landmark_points: dict[str, LandmarkDefinition] = field(default_factory=dict, repr=False)
    timings: dict[str, float] = field(default_factory=dict)
    skeleton: Skeleton | None = field(default=None, repr=False)
    person_mask: np.ndarray | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (
            f"Reconstruction(target={self.target!r}, vertices={self.vertices.shape}, "
            f"faces={self.faces.shape}, "
            f"texture={None if self.texture is None else self.texture.shape}, "
            f"image={self.image.shape[1]}x{self.image.shape[0]})"
        )

    @property
    def has_texture(self) -> bool:
        """False for a geometry-only reconstruction (``texture=False``)."""
        return self.texture is not None

    def _require_texture(self, what: str) -> None:
        if self.texture is None:
            from recon3d.errors import UnsupportedTargetError

            raise UnsupportedTargetError(
                f"{what} needs a textured reconstruction; this one was made with "
                "texture=False (geometry only): reconstruct again with texture=True"
            )

    # -- geometry -------------------------------------------------------------------------
    def project(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) pixel positions in the input photo of (N, 3) camera-frame points."""
        return self.camera.project(points)

    def landmarks_3d(self, scheme: str | None = None) -> np.ndarray:
        """(N, 3) landmark positions on the mesh, camera frame, metres.

        Schemes: ``"ibug68"`` (the 68 iBUG/300-W points) and ``"mediapipe478"`` for heads;
        ``"coco17"`` (COCO's 17 body keypoints, joint centres inside the body) and
        ``"coco_wholebody23"`` (plus big toe, small toe and heel per foot) for bodies."""
        if scheme is None:
            scheme = "ibug68" if self.target == "head" else "coco17"
        try:
            points = self.landmark_points[scheme]
        except KeyError:
            raise ValueError(
                f"unknown landmark scheme {scheme!r} for a {self.target} reconstruction; "
                f"expected one of {sorted(self.landmark_points)}"
            ) from None
        return interpolate_surface(self.vertices, self.faces, points).astype(np.float32)

    def landmarks_2d(self, scheme: str | None = None) -> np.ndarray:
        """(N, 2) landmark positions projected into the input photo, pixels (default scheme:
        ``"ibug68"`` for heads, ``"coco17"`` for bodies)."""
        return self.project(self.landmarks_3d(scheme)).astype(np.float32)

    # -- mesh export ----------------------------------------------------------------------
    def to_trimesh(self):
        """A textured ``trimesh.Trimesh`` (vertices split where the UV layout has seams); without
        a texture the plain mesh, vertices and faces as they are.

        Body meshes carry their rig in ``mesh.metadata["skeleton"]`` (a
        :class:`~recon3d.skeleton.Skeleton` matching the mesh's vertices)."""
        import trimesh
        from PIL import Image

        if self.texture is None:
            mesh = trimesh.Trimesh(vertices=self.vertices, faces=self.faces, process=False)
            if self.skeleton is not None:
                mesh.metadata["skeleton"] = self.skeleton
            return mesh
        corner_uv = self.uv.reshape(-1, 2)
        corner_vertex = self.faces.reshape(-1)
        # One output vertex per distinct (vertex, uv) pair, so per-vertex UVs are exact.
        key = np.c_[corner_vertex, np.round(corner_uv * 1e6).astype(np.int64)]
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        vertices = self.vertices[corner_vertex[first]]
        uv = corner_uv[first]
        faces = inverse.reshape(-1, 3)
        material = trimesh.visual.material.SimpleMaterial(
            image=Image.fromarray(self.texture), diffuse=(255, 255, 255, 255)
        )
        visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
        if self.skeleton is not None:
            # The GLB exporter writes it as a glTF skin; other formats ignore it.
            mesh.metadata["skeleton"] = self.skeleton.for_vertices(corner_vertex[first])
        return mesh

    def export(self, path: str | os.PathLike) -> list[pathlib.Path]:
        """Write the textured mesh; the format follows the extension (``.obj`` with ``.mtl`` and
        ``.png`` beside it, ``.glb`` self-contained, ``.ply`` with vertex colours; a geometry-only
        reconstruction writes the mesh alone). Files are written atomically: on error nothing is
        left at the output paths.

        Returns:
            Every path written.
        """
        from recon3d.exchange import export_mesh

        return export_mesh(self.to_trimesh(), path)

    # -- re-posing ------------------------------------------------------------------------
    def repose(
        self, driving, *, reposer=None, normalize: bool = True, progress: bool = True, **fit_kwargs
    ) -> list[np.ndarray]:
        """Frames of this person moving like the driving poses ("Everybody Dance Now").

        Args:
            driving: a video path, OpenPose JSON files, a DeepMimic clip, body-model pose
                parameters or a :class:`~recon3d.reenact.poses.PoseSequence` (see
                :func:`recon3d.reenact.poses.load_driving`).
            reposer: a trained :class:`~recon3d.reenact.reposer.Reposer` for this person;
                None trains one first (:meth:`Reposer.fit` on renders of this reconstruction
                in many poses, with ``fit_kwargs``; minutes to hours on a CPU).
            normalize: the paper's global pose normalisation of the driving poses.
            progress: progress bars.
        Returns:
            (size, size, 3) uint8 RGB frames, one per driving frame.
        Raises:
            UnsupportedTargetError: a head reconstruction (re-posing needs the body), or one
                without a texture (the re-poser learns the person's appearance from it).
        """
        from recon3d.errors import UnsupportedTargetError
        from recon3d.reenact.reposer import Reposer

        if self.target != "body":
            raise UnsupportedTargetError(
                f"re-posing needs a body reconstruction, this one is a {self.target} "
                "(reconstruct with target='body')"
            )
        self._require_texture("re-posing")
        if reposer is None:
            reposer = Reposer.fit(self, progress=progress, **fit_kwargs)
        elif fit_kwargs:
            raise TypeError(f"fit options {sorted(fit_kwargs)} given with a trained reposer")
        return list(reposer.render(driving, normalize=normalize, progress=progress))

    # -- pictures -------------------------------------------------------------------------
    def render(
        self,
        yaw: float = 0.0,
        pitch: float = 0.0,
        *,
        size: int = 512,
        shading: str | None = None,
        background: tuple[int, int, int] = (255, 255, 255),
    ) -> np.ndarray:
        """Render the mesh from a viewpoint orbiting its centre.

        Args:
            yaw: degrees around the vertical axis; 0 is the photo's viewpoint, 180 the back.
                Positive values move the viewpoint to the person's left (the viewer's right).
            pitch: degrees; positive values look from above.
            size: output is ``size`` x ``size`` pixels.
            shading: ``"texture"`` (unlit texture colours) or ``"geometry"`` (lit grey); None
                (default): the texture when there is one, else the geometry.
            background: RGB of empty pixels.
        Returns:
            (size, size, 3) uint8 RGB image.
        Raises:
            UnsupportedTargetError: ``shading="texture"`` without a texture.
        """
        from recon3d.render.renderer import look_at_intrinsics, render_mesh

        if shading is None:
            shading = "texture" if self.has_texture else "geometry"
        if shading not in ("texture", "geometry"):
            raise ValueError(f"shading must be 'texture' or 'geometry', got {shading!r}")
        if shading == "texture":
            self._require_texture("shading='texture'")
        centre = 0.5 * (self.vertices.min(0) + self.vertices.max(0))
        rot = _orbit_rotation(yaw, pitch)
        radius = float(np.linalg.norm(self.vertices - centre, axis=1).max())
        K = look_at_intrinsics(size, size, fov_deg=20.0)
        distance = radius / np.tan(np.radians(20.0) / 2) * 1.05

        def view(points: np.ndarray) -> np.ndarray:
            return (points - centre) @ rot.T + (0.0, 0.0, distance)

        if shading == "texture":
            # to_trimesh splits vertices at UV seams, so the textured mesh has its own vertices.
            mesh = self.to_trimesh()
            out = render_mesh(
                view(np.asarray(mesh.vertices)),
                mesh.faces,
                K,
                (size, size),
                uv=mesh.visual.uv,
                texture=self.texture,
                background=background,
            )
        else:
            grey = np.full((len(self.vertices), 3), 200, np.uint8)
            out = render_mesh(
                view(self.vertices),
                self.faces,
                K,
                (size, size),
                vertex_colors=grey,
                lit=True,
                background=background,
            )
        return out.color

    def overlay(self, *, alpha: float = 0.6, shading: str = "geometry") -> np.ndarray:
        """The mesh rendered with the photo's own camera, blended over the photo.

        Returns:
            (H, W, 3) uint8 image of the input's size (rendered at most 1024 px on the long side).
        """
        from recon3d.render.renderer import render_mesh

        if shading not in ("texture", "geometry"):
            raise ValueError(f"shading must be 'texture' or 'geometry', got {shading!r}")
        small = self.camera.bounded(_MAX_OVERLAY_SIDE)
        K, rw, rh = small.K, small.width, small.height
        if shading == "texture":
            self._require_texture("shading='texture'")
            mesh = self.to_trimesh()
            out = render_mesh(
                np.asarray(mesh.vertices),
                mesh.faces,
                K,
                (rw, rh),
                uv=mesh.visual.uv,
                texture=self.texture,
            )
        else:
            grey = np.full((len(self.vertices), 3), 200, np.uint8)
            out = render_mesh(self.vertices, self.faces, K, (rw, rh), vertex_colors=grey, lit=True)
        photo = small.resize_image(self.image)
        mask = out.alpha[..., None]
        blended = np.where(mask, (alpha * out.color + (1 - alpha) * photo), photo)
        return blended.astype(np.uint8)

    def preview(self, size: int = 384) -> np.ndarray:
        """A strip for people: photo crop, geometry overlay, then textured views (grey without a
        texture) from the front, the side (60°) and the back (180°), each ``size`` pixels tall.

        Returns:
            (size, 5 * size, 3) uint8 image.
        """
        import cv2

        small = self.camera.bounded(_MAX_OVERLAY_SIDE)
        projected = small.project(self.vertices)
        (x0, y0), (x1, y1) = projected.min(0), projected.max(0)
        cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.65

        def crop(img: np.ndarray) -> np.ndarray:
            affine = np.array(
                [
                    [size / (2 * half), 0, size / 2 - cx * size / (2 * half)],
                    [0, size / (2 * half), size / 2 - cy * size / (2 * half)],
                ]
            )
            return cv2.warpAffine(
                img, affine, (size, size), flags=cv2.INTER_AREA, borderValue=(255, 255, 255)
            )

        panels = [crop(small.resize_image(self.image)), crop(self.overlay())]
        panels += [self.render(yaw=y, size=size) for y in (0.0, 60.0, 180.0)]
        return np.concatenate(panels, axis=1)


def _orbit_rotation(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Rotation applied to the object so that the viewpoint orbits by (yaw, pitch)."""
    y, p = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    return rx @ ry
