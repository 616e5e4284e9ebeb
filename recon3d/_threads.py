"""Process-wide BLAS thread settings for code that may run in several threads at once.

NumPy's and SciPy's OpenBLAS (pthreads builds) keep one pool of worker threads for the whole
process. When several Python threads call into it at once (``reconstruct()`` from an
application's own threads, or :func:`recon3d.reconstruct_many` with ``workers > 1``), those calls
contend for the pool: on the 2-core development machine the head fit (small QR factorisations
and matrix products) became 15-90 times slower with 4 threads (``docs/hardening.md``).

:func:`blas_single_threaded` runs a block with OpenBLAS on one thread. It is reference-counted
across threads: the first thread to enter sets every loaded OpenBLAS to one thread, the last one
to leave restores the previous counts, so concurrent users never undo each other (unlike nested
``threadpoolctl.threadpool_limits`` from several threads). Other threads of the program see the
change while any user is inside.

Why the head fit *always* runs inside it (not only when threads overlap): the fit's floating-point
results depend on OpenBLAS's thread count in the last bits (QR with 1 and with 2 threads differ
by ~1e-9), so a fit that ran single-threaded only while other threads happened to be fitting would
not be bit-identical to the same fit run alone.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["blas_single_threaded", "loaded_openblas", "torch_single_threaded"]

logger = logging.getLogger(__name__)

# (get, set) entry points of the OpenBLAS builds in NumPy wheels (64-bit ints), SciPy wheels and
# system packages; each takes/returns a C int.
_OPENBLAS_SYMBOLS = (
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)
_BLAS_LOCK = threading.Lock()
_BLAS_STATE: dict[str, Any] = {"users": 0, "saved": []}


def loaded_openblas() -> list[tuple[Any, Any]]:
    """(get, set) functions of every OpenBLAS already loaded in this process.

    Linux only (read from ``/proc/self/maps``); elsewhere nothing is found and nothing changes.
    Libraries are opened with ``RTLD_NOLOAD``: nothing new is ever loaded.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as fh:
            paths = dict.fromkeys(
                line.split(maxsplit=5)[5].strip()
                for line in fh
                if line.count(" ") >= 5 and "openblas" in line.lower()
            )
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LOCAL)
        except OSError:
            continue
        for get, set_ in _OPENBLAS_SYMBOLS:
            if hasattr(lib, get) and hasattr(lib, set_):
                found.append((getattr(lib, get), getattr(lib, set_)))
                break
    return found


@contextmanager
def blas_single_threaded() -> Iterator[None]:
    """OpenBLAS on one thread while the block runs, in any number of threads at once.

    The previous thread counts come back when the last concurrent user leaves. Best effort: any
    failure to read or set the counts leaves the settings alone (it only costs speed).
    """
    with _BLAS_LOCK:
        if _BLAS_STATE["users"] == 0:
            saved = []
            try:
                for get, set_ in loaded_openblas():
                    previous = int(get())
                    if previous != 1:
                        set_(1)
                        saved.append((set_, previous))
            except Exception:  # noqa: BLE001 - a speed setting; never fail a call for it
                logger.debug("could not limit OpenBLAS threads", exc_info=True)
            _BLAS_STATE["saved"] = saved
        _BLAS_STATE["users"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_STATE["users"] -= 1
            if _BLAS_STATE["users"] == 0:
                for set_, previous in _BLAS_STATE["saved"]:
                    set_(previous)
                _BLAS_STATE["saved"] = []


_TORCH_LOCK = threading.Lock()
_TORCH_STATE = {"users": 0, "previous": 1}


@contextmanager
def torch_single_threaded() -> Iterator[None]:
    """torch on one intra-op thread while the block runs, in any number of threads at once.

    The body fit and the texture-completion network work on small tensors, where several
    OpenMP threads that spin-wait slow them down up to tenfold when other processes share the
    cores. Reference-counted like :func:`blas_single_threaded`: the caller's setting comes back
    when the last concurrent block ends."""
    with _TORCH_LOCK:
        if _TORCH_STATE["users"] == 0:
            import torch

            _TORCH_STATE["previous"] = torch.get_num_threads()
            torch.set_num_threads(1)
        _TORCH_STATE["users"] += 1
    try:
        yield
    finally:
        with _TORCH_LOCK:
            _TORCH_STATE["users"] -= 1
            if _TORCH_STATE["users"] == 0:
                import torch

                torch.set_num_threads(_TORCH_STATE["previous"])
