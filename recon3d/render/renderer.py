"""Offscreen rendering of meshes in the OpenCV camera frame with pyrender.

All public functions take vertices in the OpenCV camera frame (x right, y down, z forward, metres)
and pinhole intrinsics ``K`` in pixels with pixel centres at integer coordinates, and convert to
OpenGL's conventions in one place (:func:`_gl_camera`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from recon3d.errors import RendererUnavailableError
from recon3d.render.backend import import_pyrender

# OpenCV camera frame -> OpenGL camera frame (y up, looking down -z).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])

# One offscreen renderer per process, resized per call, used under a lock: GL contexts are not
# thread-safe, and deleting one EGL renderer terminates the display the others share.
_LOCK = threading.RLock()
_RENDERER: list[object] = []


@dataclass(frozen=True)
class RenderOutput:
    """``color`` (H, W, 3) uint8 or None; ``depth`` (H, W) float32 camera-z in metres, 0 where
    nothing was drawn; ``alpha`` (H, W) bool coverage."""

    color: np.ndarray | None
    depth: np.ndarray

    @property
    def alpha(self) -> np.ndarray:
        return self.depth > 0


def _renderer(width: int, height: int):
    """The shared renderer, resized to (width, height); call with ``_LOCK`` held."""
    pyrender = import_pyrender()
    if not _RENDERER:
        try:
            _RENDERER.append(pyrender.OffscreenRenderer(width, height))
        except Exception as exc:  # EGL/OSMesa context creation raises assorted errors
            raise RendererUnavailableError(
                f"could not create an offscreen GL context: {exc}"
            ) from exc
    renderer = _RENDERER[0]
    renderer.viewport_width, renderer.viewport_height = width, height
    return renderer


def _release_context(renderer) -> None:
    """Detach the shared EGL context from the calling thread. pyrender's EGL
    ``make_uncurrent`` does nothing, so the context would stay bound to the last thread that
    rendered and every other thread would get ``EGL_BAD_ACCESS``. OSMesa binds per call."""
    platform = getattr(renderer, "_platform", None)
    display = getattr(platform, "_egl_display", None)
    if display is None:
        return
    from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglMakeCurrent

    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)


def _gl_camera(K: np.ndarray, width: int, height: int, znear: float, zfar: float):
    """pyrender camera equivalent to OpenCV intrinsics ``K`` for an image of this size."""
    pyrender = import_pyrender()
    # pyrender measures cx and cy from the top-left corner (as OpenCV) with pixel centres at +0.5.
    return pyrender.IntrinsicsCamera(
        fx=float(K[0, 0]),
        fy=float(K[1, 1]),
        cx=float(K[0, 2]) + 0.5,
        cy=float(K[1, 2]) + 0.5,
        znear=znear,
        zfar=zfar,
    )


def render_mesh(
    vertices: np.ndarray,
    faces: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    *,
    uv: np.ndarray | None = None,
    texture: np.ndarray | None = None,
    vertex_colors: np.ndarray | None = None,
    lit: bool = False,
    depth_only: bool = False,
    background: tuple[int, int, int] = (255, 255, 255),
) -> RenderOutput:
    """Render a mesh seen by a pinhole camera at the origin of the OpenCV frame.

    Args:
        vertices: (V, 3) positions in the camera frame, metres.
        faces: (F, 3) vertex indices.
        K: (3, 3) intrinsics in pixels.
        size: (width, height) of the output image.
        uv: (V, 2) per-vertex texture coordinates (origin bottom-left), with ``texture``.
        texture: (T, T, 3) uint8 texture image.
        vertex_colors: (V, 3) uint8 colours, used when there is no texture.
        lit: shade with a head light (grey plastic look when there is no texture); unlit
            renders show the texture colours as they are.
        depth_only: skip the colour pass. pyrender's depth pass culls back faces (it ignores
            ``SKIP_CULL_FACES``), which suits visibility tests on closed, outward-facing meshes.
        background: RGB of empty pixels.
    Returns:
        RenderOutput with colour (unless ``depth_only``) and depth.
    """
    import trimesh

    pyrender = import_pyrender()
    width, height = int(size[0]), int(size[1])
    vertices = np.asarray(vertices, dtype=np.float64)
    z = vertices[:, 2]
    z_front = z[z > 1e-6]
    znear = max(float(z_front.min()) * 0.5, 1e-3) if z_front.size else 0.01
    zfar = float(max(z.max(), znear) * 2.0 + 1.0)

    if texture is not None and uv is not None:
        visual = trimesh.visual.TextureVisuals(
            uv=uv,
            # White diffuse: trimesh's default (0.4 grey) would darken the texture.
            material=trimesh.visual.material.SimpleMaterial(
                image=_to_pil(texture), diffuse=(255, 255, 255, 255)
            ),
        )
    elif vertex_colors is not None:
        visual = trimesh.visual.ColorVisuals(vertex_colors=vertex_colors)
    else:
        visual = None
    if depth_only:
        # Depth needs positions only: no trimesh, no vertex normals (~10 ms for a body).
        pr_mesh = pyrender.Mesh(
            [
                pyrender.Primitive(
                    positions=vertices.astype(np.float32),
                    indices=np.asarray(faces, dtype=np.uint32),
                    mode=pyrender.constants.GLTF.TRIANGLES,
                )
            ]
        )
    else:
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False)
        pr_mesh = pyrender.Mesh.from_trimesh(mesh, smooth=True)

    scene = pyrender.Scene(
        bg_color=np.array([*background, 0], dtype=np.float32) / 255.0,
        ambient_light=np.array([0.35, 0.35, 0.35]) if lit else np.ones(3),
    )
    scene.add(pr_mesh)
    scene.add(_gl_camera(K, width, height, znear, zfar), pose=_CV_TO_GL)
    if lit:
        scene.add(pyrender.DirectionalLight(color=np.ones(3), intensity=2.5), pose=_CV_TO_GL)

    flags = pyrender.RenderFlags.SKIP_CULL_FACES
    if depth_only:
        flags |= pyrender.RenderFlags.DEPTH_ONLY
    elif not lit:
        flags |= pyrender.RenderFlags.FLAT
    with _LOCK:
        renderer = _renderer(width, height)
        try:
            result = renderer.render(scene, flags=flags)
        except Exception as exc:  # OpenGL/EGL/OSMesa raise their own error types
            raise RendererUnavailableError(f"offscreen rendering failed: {exc}") from exc
        finally:
            _release_context(renderer)
    if depth_only:
        return RenderOutput(color=None, depth=np.asarray(result, dtype=np.float32))
    color, depth = result
    return RenderOutput(color=np.ascontiguousarray(color[..., :3]), depth=depth.astype(np.float32))


def _to_pil(texture: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(texture[..., :3]).astype(np.uint8), "RGB")


def look_at_intrinsics(width: int, height: int, fov_deg: float = 20.0) -> np.ndarray:
    """(3, 3) intrinsics of a camera with the given vertical field of view."""
    f = 0.5 * height / np.tan(np.radians(fov_deg) / 2)
    return np.array(
        [[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=np.float64
    )


class TexturedMeshRenderer:
    """Renders one textured mesh of fixed topology many times with new vertex positions (a
    posed body, frame after frame), unlit like :func:`render_mesh`'s texture path.

    :func:`render_mesh` rebuilds a trimesh, its normals and the GL texture on every call
    (~0.1 s for a body mesh with a 1024² texture); here the texture and the material are built
    once (the texture stays on the GPU while no other texture is rendered in between) and a
    frame only uploads positions, about 5x faster.

    Args:
        faces: (F, 3) vertex indices.
        uv: (V, 2) per-vertex texture coordinates (origin bottom-left).
        texture: (T, T, 3) uint8 RGB texture.
    """

    def __init__(self, faces: np.ndarray, uv: np.ndarray, texture: np.ndarray) -> None:
        pyrender = import_pyrender()
        self.faces = np.ascontiguousarray(faces, dtype=np.uint32)
        self.uv = np.ascontiguousarray(uv, dtype=np.float32)
        source = np.ascontiguousarray(texture[..., :3], dtype=np.uint8)
        # Trilinear minification (mipmaps) and linear magnification.
        sampler = pyrender.Sampler(minFilter=0x2703, magFilter=0x2601)
        self._material = pyrender.MetallicRoughnessMaterial(
            baseColorTexture=pyrender.Texture(
                source=source, source_channels="RGB", sampler=sampler
            ),
            baseColorFactor=np.ones(4),
            metallicFactor=0.0,
            roughnessFactor=1.0,
        )

    def render(
        self,
        vertices: np.ndarray,
        K: np.ndarray,
        size: tuple[int, int],
        *,
        background: tuple[int, int, int] = (255, 255, 255),
    ) -> RenderOutput:
        """Render (V, 3) camera-frame ``vertices`` (metres) with intrinsics ``K`` (3, 3) into an
        image of ``size`` (width, height)."""
        pyrender = import_pyrender()
        width, height = int(size[0]), int(size[1])
        vertices = np.asarray(vertices, dtype=np.float32)
        z = vertices[:, 2]
        z_front = z[z > 1e-6]
        znear = max(float(z_front.min()) * 0.5, 1e-3) if z_front.size else 0.01
        zfar = float(max(z.max(), znear) * 2.0 + 1.0)
        primitive = pyrender.Primitive(
            positions=vertices,
            texcoord_0=self.uv,
            indices=self.faces,
            material=self._material,
        )
        scene = pyrender.Scene(
            bg_color=np.array([*background, 0], dtype=np.float32) / 255.0,
            ambient_light=np.ones(3),
        )
        scene.add(pyrender.Mesh(primitives=[primitive]))
        scene.add(_gl_camera(K, width, height, znear, zfar), pose=_CV_TO_GL)
        flags = pyrender.RenderFlags.SKIP_CULL_FACES | pyrender.RenderFlags.FLAT
        with _LOCK:
            renderer = _renderer(width, height)
            try:
                color, depth = renderer.render(scene, flags=flags)
            except Exception as exc:  # OpenGL/EGL/OSMesa raise their own error types
                raise RendererUnavailableError(f"offscreen rendering failed: {exc}") from exc
            finally:
                _release_context(renderer)
        return RenderOutput(
            color=np.ascontiguousarray(color[..., :3]), depth=depth.astype(np.float32)
        )
