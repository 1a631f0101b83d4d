"""The ordered renderer: :func:`render_in_order` renders a clip's frames on a small thread pool and
hands them out in order (the CLI's output, the benchmark's render queue)."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import numpy as np

from deflicker.progress import CancelCheck

if TYPE_CHECKING:
    from deflicker.engine import Session


def render_workers() -> int:
    """Frames the CLI renders at once: the machine's cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def render_in_order(session: "Session", n: int, cancel: Optional[CancelCheck] = None,
                    workers: Optional[int] = None, depth: Optional[int] = None,
                    finish: Optional[Callable[[np.ndarray, int], np.ndarray]] = None,
                    start: Optional[Callable[[int], None]] = None) -> Iterator[tuple[int, np.ndarray]]:
    """(t, frame) for t = 0..n-1, rendered by a small thread pool a few frames ahead (with
    ``depth``, as the pixels an output of that depth stores: :meth:`~deflicker.engine.Session.render`);
    with ``finish``, (t, finish(frame, t)), called by the worker (an output's check and conversion
    to the pixels it stores: queued frames then take the stored size, half a float frame's at 16 bits);
    with ``start``, start(t) is called by the worker before it renders t (work on t's input: the
    clip's cache holds that frame then, for the render reads it next, and a frame read after its
    render may be gone, to be decoded again).

    At most ``workers`` + 1 frames are queued (rendering, or done and waiting for their turn; one
    more than the workers, so a worker that finishes early starts the next frame), besides the
    one handed out: memory stays bounded at any frame size; the heap's free pages go back to the
    OS after each frame (:func:`~deflicker.heap.return_free_heap`). Render is pure, so
    the pool changes only the speed, never the pixels. ``cancel`` is polled between frames and by
    an analysis a render has to redo.
    """
    from concurrent.futures import ThreadPoolExecutor

    from deflicker.heap import return_free_heap
    from deflicker.progress import check_cancel

    workers = workers or render_workers()

    def job(t: int) -> np.ndarray:
        if start is not None:
            start(t)
        out = session.render(t, cancel=cancel, depth=depth)
        return out if finish is None else finish(out, t)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deflicker-render") as pool:
        pending = {t: pool.submit(job, t) for t in range(min(n, workers + 1))}
        try:
            for t in range(n):
                check_cancel(cancel)
                out = pending.pop(t).result()
                ahead = t + workers + 1
                if ahead < n:
                    pending[ahead] = pool.submit(job, ahead)
                yield t, out
                del out  # handed out and used: the frame's memory goes back before the next
                return_free_heap()
        finally:
            for future in pending.values():
                future.cancel()
