"""A progress bar (rich, on stderr) for work that takes more than a few seconds: generating data, long scoring."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress_bar(description: str, unit: str = '') -> Iterator[Callable[[int, int], None]]:
    """`with progress_bar('generating shapes') as advance: ... advance(done, total)`, on stderr when it is a
    terminal; nothing in a log or a pipe (the commands log what they did there)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn('{task.description}'), BarColumn(), MofNCompleteColumn(), TextColumn(unit),
               TimeElapsedColumn())
    console = Console(stderr=True)
    with Progress(*columns, console=console, disable=not console.is_terminal) as progress:
        task = progress.add_task(description, total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield advance
