"""Progress bar and timings over the stages of a pipeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def stages(names: tuple[str, ...], progress: bool) -> Iterator[Any]:
    """A progress bar over named pipeline stages; ``stage(name, timings)`` times each one."""
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(names), desc="reconstruct", unit="stage", disable=not progress, leave=False
    )

    @contextmanager
    def stage(name: str, timings: dict[str, float]) -> Iterator[None]:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        yield
        timings[name] = time.perf_counter() - start
        bar.update(1)

    try:
        yield stage
    finally:
        bar.close()
