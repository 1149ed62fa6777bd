"""Rich progress bars that vanish cleanly in CI / non-TTY runs."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def _enabled(flag: bool) -> bool:
    return flag and os.environ.get("SEMID_NO_PROGRESS") != "1" and sys.stderr.isatty()


@contextlib.contextmanager
def progress_bar(description: str, total: int | None, *, enabled: bool = True) -> Iterator:
    """Yields ``tick(advance=1, **fields)``; a no-op when disabled or not on a terminal."""
    if not _enabled(enabled):
        yield lambda advance=1, **_: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*cols, transient=True) as prog:
        task = prog.add_task(description, total=total, info="")

        def tick(advance: int = 1, **fields) -> None:
            info = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            prog.update(task, advance=advance, info=info)

        yield tick


def track(iterable, description: str, total: int | None = None, *, enabled: bool = True):
    """Iterate with a progress bar (rich.progress.track semantics, quiet when not a TTY)."""
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    with progress_bar(description, total, enabled=enabled) as tick:
        for x in iterable:
            yield x
            tick()
