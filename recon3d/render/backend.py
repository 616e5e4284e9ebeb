"""Headless OpenGL backend selection for pyrender.

PyOpenGL decides its platform (EGL, OSMesa, GLX) when it is first imported, from the
``PYOPENGL_PLATFORM`` environment variable, so the choice has to be made before anything imports
``OpenGL`` or ``pyrender``. :func:`import_pyrender` is the only place in recon3d that imports
pyrender; it picks EGL (works without a display, with Mesa's software driver or a GPU), then
OSMesa, and honours a platform the user already set.
"""

from __future__ import annotations

import ctypes.util
import functools
import logging
import os
import sys
from types import ModuleType

from recon3d.errors import RendererUnavailableError

logger = logging.getLogger(__name__)

_LIBRARIES = {"egl": ("EGL",), "osmesa": ("OSMesa",)}
_INSTALL_HINT = (
    "install Debian's 'libegl1 libgl1-mesa-dri' (EGL) or 'libosmesa6' (OSMesa), "
    "e.g. `sudo apt-get install libegl1 libgl1-mesa-dri libosmesa6`, and PyOpenGL >= 3.1.7"
)


def _available_platforms() -> list[str]:
    return [
        name
        for name, libs in _LIBRARIES.items()
        if all(ctypes.util.find_library(lib) for lib in libs)
    ]


def choose_platform() -> str:
    """The PyOpenGL platform recon3d will use: the user's ``PYOPENGL_PLATFORM`` or the first
    headless one whose library is installed."""
    requested = os.environ.get("PYOPENGL_PLATFORM")
    if requested:
        return requested
    available = _available_platforms()
    if not available:
        raise RendererUnavailableError(f"no headless OpenGL library found: {_INSTALL_HINT}")
    return available[0]


@functools.lru_cache(maxsize=1)
def import_pyrender() -> ModuleType:
    """Import pyrender with a headless platform selected; raises RendererUnavailableError."""
    platform = choose_platform()
    if "OpenGL" not in sys.modules:
        os.environ.setdefault("PYOPENGL_PLATFORM", platform)
    try:
        import pyrender
    except Exception as exc:  # pyrender raises bare Exceptions from its GL loaders
        raise RendererUnavailableError(
            f"pyrender could not be imported with PYOPENGL_PLATFORM={platform!r}: {exc}; "
            + _INSTALL_HINT
        ) from exc
    logger.debug("pyrender imported with PYOPENGL_PLATFORM=%s", os.environ.get("PYOPENGL_PLATFORM"))
    return pyrender


def backend_name() -> str:
    """Human-readable name of the rendering backend, for ``recon3d info``."""
    try:
        return f"pyrender/{choose_platform()}"
    except RendererUnavailableError as exc:
        return f"unavailable ({exc})"
