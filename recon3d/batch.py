"""Many photos in one call: :func:`reconstruct_many`, which keeps going past bad inputs.

>>> from recon3d import reconstruct_many
>>> result = reconstruct_many(["a.jpg", "b.png", "junk.txt"], output_dir="out", workers=2)
>>> [s.source for s in result.successes], [(f.source, f.error_type) for f in result.failures]
(['a.jpg', 'b.png'], [('junk.txt', 'InvalidImageError')])

Every input is reconstructed with :func:`recon3d.reconstruct` (so it shares the process-wide
pipeline and its weights); a failure of one input is recorded and the others go on. Results are
reported in input order whatever the number of workers.

Threads, not processes: the models and the MediaPipe graphs are loaded once and shared. With
``workers > 1`` the calls run concurrently; what must not overlap is serialised where it lives,
not here: MediaPipe calls by each detector's own lock, renders by the lock of
:mod:`recon3d.render.renderer` (which releases its EGL context after every render, so any thread
can render next). Everything else overlaps: decoding, the fits, the texture work and the
exports (mesh and PNG encoding, file writes).

One process-wide setting changes while ``workers > 1`` runs: OpenBLAS (NumPy's and SciPy's)
computes on one thread (:func:`recon3d._threads.blas_single_threaded`; the previous counts come
back when the last batch ends, and other threads of the program see the change meanwhile).
Called from several threads at once, OpenBLAS's own worker threads contend: on 2 cores the head
fit (small ``np.linalg.qr`` and matrix products) became dozens of times slower and 4 workers were
several times slower than 1. The head fit itself always runs with OpenBLAS on one thread (so
plain ``reconstruct()`` from your own threads is covered too, and results are bit-identical to
serial calls). Speed-ups and the measurements: ``docs/hardening.md``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon3d._threads import blas_single_threaded
from recon3d.errors import ExportError, Recon3dError
from recon3d.exchange import SUPPORTED_EXTENSIONS, export_mesh
from recon3d.io import DEFAULT_MAX_PIXELS
from recon3d.reconstruction import Reconstruction

__all__ = ["BatchFailure", "BatchResult", "BatchSuccess", "output_names", "reconstruct_many"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSuccess:
    """One input that was reconstructed.

    Attributes:
        index: position of the input in the list given to :func:`reconstruct_many`.
        source: the input as text (its path, or ``"<ndarray #3>"`` for in-memory inputs).
        outputs: files written for it (main file first); empty without ``output_dir``.
        reconstruction: the result, when ``keep`` was true (the default without
            ``output_dir``), else ``None`` so that large batches do not hold every mesh.
        seconds: wall time of reconstruction plus export.
    """

    index: int
    source: str
    outputs: tuple[Path, ...]
    reconstruction: Reconstruction | None = field(repr=False)
    seconds: float


@dataclass(frozen=True)
class BatchFailure:
    """One input that could not be reconstructed or exported.

    Attributes:
        index: position of the input in the list given to :func:`reconstruct_many`.
        source: the input as text.
        error: the exception raised. A :class:`~recon3d.errors.Recon3dError` for every
            anticipated problem (bad image, no face, export or weights trouble); anything else
            is a bug in recon3d or a dependency, recorded rather than ending the batch.
    """

    index: int
    source: str
    error: BaseException

    @property
    def error_type(self) -> str:
        """Class name of the error, e.g. ``"NoFaceFound"``."""
        return type(self.error).__name__

    @property
    def message(self) -> str:
        return str(self.error)

    @property
    def expected(self) -> bool:
        """True for typed recon3d errors (bad input or environment), False for a bug."""
        return isinstance(self.error, Recon3dError)


@dataclass(frozen=True)
class BatchResult:
    """Outcome of :func:`reconstruct_many`: successes and failures, each in input order."""

    successes: tuple[BatchSuccess, ...]
    failures: tuple[BatchFailure, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every input succeeded."""
        return not self.failures

    def __len__(self) -> int:
        return len(self.successes) + len(self.failures)

    def summary(self) -> str:
        """Multi-line, human-readable report: counts, then one line per failure."""
        lines = [
            f"{len(self.successes)} of {len(self)} reconstructed, {len(self.failures)} failed "
            f"({self.seconds:.1f} s)"
        ]
        lines += [f"  FAILED {f.source}: {f.error_type}: {f.message}" for f in self.failures]
        return "\n".join(lines)


def output_names(sources: Sequence[Any]) -> list[str]:
    """File stems for the outputs of ``sources``, unique within the batch.

    A path gives its stem (``photos/anna.jpg`` -> ``anna``); when two inputs share a stem, each
    of them keeps its suffix (``anna.jpg``, ``anna.png``), and remaining clashes get ``-2``,
    ``-3``... In-memory inputs are named ``item0000``, ``item0001``... by position.

    Returns:
        One stem per source, in order.
    """
    stems: list[str] = []
    for i, src in enumerate(sources):
        if isinstance(src, (str, os.PathLike)):  # bytes are encoded images, not paths
            stems.append(Path(os.fsdecode(os.fspath(src))).name)
        else:
            stems.append(f"item{i:04d}")
    bare = [Path(s).stem if "." in s.lstrip(".") else s for s in stems]
    counts: dict[str, int] = {}
    for b in bare:
        counts[b.lower()] = counts.get(b.lower(), 0) + 1
    names = [b if counts[b.lower()] == 1 else s for b, s in zip(bare, stems, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        key = name.lower()  # case-insensitive file systems (macOS, Windows) would collide
        seen[key] = seen.get(key, 0) + 1
        unique.append(name if seen[key] == 1 else f"{name}-{seen[key]}")
    return unique


def reconstruct_many(
    images: Iterable[Any],
    *,
    workers: int = 1,
    output_dir: str | os.PathLike | None = None,
    format: str = ".obj",
    keep: bool | None = None,
    target: str = "auto",
    device: Any = None,
    face_index: int = 0,
    person_index: int = 0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    texture: bool = True,
    on_result: Callable[[BatchSuccess | BatchFailure], None] | None = None,
) -> BatchResult:
    """Reconstruct every image in ``images``; bad inputs are reported, never fatal.

    Args:
        images: N inputs, each anything :func:`recon3d.reconstruct` takes (usually paths).
        workers: threads working at once (>= 1). See the module docstring for what overlaps.
        output_dir: when given, each result is exported there as ``<name><format>`` (names
            from :func:`output_names`); the folder must exist. ``None`` exports nothing.
        format: ``".obj"``, ``".glb"`` or ``".ply"`` (the dot is optional).
        keep: keep each :class:`~recon3d.reconstruction.Reconstruction` in the result
            (default: only when nothing is exported, so big batches stay small in memory).
        target, device, face_index, person_index, max_pixels, texture: as for
            :func:`recon3d.reconstruct` (``texture=False``: geometry only, faster).
        on_result: called with each success or failure as soon as it is known (from the
            worker thread, in completion order), e.g. to print progress.

    Returns:
        :class:`BatchResult` with N entries in total, successes and failures in input order.

    Raises:
        ValueError: ``workers`` < 1.
        ExportError: unsupported ``format``, or ``output_dir`` does not exist or is not a
            folder (checked before any work is done).
    """
    from recon3d.pipeline import reconstruct

    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an int >= 1, got {workers!r}")
    ext = format.lower() if format.startswith(".") else f".{format.lower()}"
    if ext not in SUPPORTED_EXTENSIONS:
        raise ExportError(
            f"unsupported format {format!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    folder = None
    if output_dir is not None:
        folder = Path(os.fsdecode(os.fspath(output_dir)))
        if not folder.is_dir():
            raise ExportError(
                f"output folder {str(folder)!r} does not exist or is not a folder "
                "(recon3d does not create output folders; create it first)"
            )
    keep = (folder is None) if keep is None else keep
    items = list(images)
    names = output_names(items)

    def run(index: int) -> BatchSuccess | BatchFailure:
        image = items[index]
        source = _describe(image, index)
        start = time.perf_counter()
        try:
            rec = reconstruct(
                image,
                target=target,  # type: ignore[arg-type]
                device=device,
                face_index=face_index,
                person_index=person_index,
                max_pixels=max_pixels,
                texture=texture,
            )
            outputs = []
            if folder is not None:
                outputs = export_mesh(rec.to_trimesh(), folder / f"{names[index]}{ext}")
            outcome: BatchSuccess | BatchFailure = BatchSuccess(
                index=index,
                source=source,
                outputs=tuple(outputs),
                reconstruction=rec if keep else None,
                seconds=time.perf_counter() - start,
            )
        except Recon3dError as exc:
            logger.info("batch: %s failed: %s: %s", source, type(exc).__name__, exc)
            outcome = BatchFailure(index=index, source=source, error=exc)
        except Exception as exc:  # noqa: BLE001 - one broken input must not end the batch
            logger.exception("batch: unexpected error on %s", source)
            outcome = BatchFailure(index=index, source=source, error=exc)
        if on_result is not None:
            on_result(outcome)
        return outcome

    start = time.perf_counter()
    if workers == 1:
        outcomes = [run(i) for i in range(len(items))]
    else:
        with (
            blas_single_threaded(),
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recon3d") as pool,
        ):
            outcomes = list(pool.map(run, range(len(items))))
    return BatchResult(
        successes=tuple(o for o in outcomes if isinstance(o, BatchSuccess)),
        failures=tuple(o for o in outcomes if isinstance(o, BatchFailure)),
        seconds=time.perf_counter() - start,
    )


def _describe(image: Any, index: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return os.fsdecode(os.fspath(image))
    return f"<{type(image).__name__} #{index}>"
