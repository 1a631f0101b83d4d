"""What the model server keeps per clip: the host frame source, the render/reanalysis gate, the entry.

:class:`HostSource` is a FrameSource over the host: each thread reads frames through the
``fetch`` it bound for the call in progress (OFX images are only valid inside their action).
:class:`ClipGate` lets a clip's renders run together and a reanalysis run alone.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io.clip import to_float
from deflicker.method.premultiply import unpremultiply
from deflicker.settings import Settings
from deflicker.io.source import ClipInfo, check_frame

Fetch = Callable[[int], np.ndarray]


class HostSource:
    """A FrameSource whose frames come from the fetch bound to the calling thread.

    With ``premultiplied`` (an RGBA clip the host declares premultiplied) every frame comes out
    unpremultiplied, straight colour: the analysis, its cache key and the correction all see the
    picture a straight source of the same content would give.
    """

    def __init__(self, info: ClipInfo, premultiplied: bool = False):
        self.info = info
        self.premultiplied = premultiplied and info.channels == 4
        self._local = threading.local()

    def __len__(self) -> int:
        return self.info.frame_count

    @contextmanager
    def bound(self, fetch: Fetch) -> Iterator[None]:
        """Make ``fetch`` this thread's frame supplier for the duration of the block."""
        previous = getattr(self._local, "fetch", None)
        self._local.fetch = fetch
        try:
            yield
        finally:
            self._local.fetch = previous

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        fetch = getattr(self._local, "fetch", None)
        if fetch is None:
            raise VideoIOError("no frame supplier bound to this thread")
        raw = fetch(index)
        if raw is None:
            raise VideoIOError(f"the host has no image for frame {index}")
        # Integer frames are normalized exactly like decoded files (deflicker.io.files), so a render
        # through the plugin matches `deflicker run` on the same pixels.
        # Float frames stay zero-copy views of the host's buffer (any row stride): the engine
        # copies the channels it uses (deflicker.method.image.rgb) and keeps no frame.
        frame = check_frame(to_float(np.asarray(raw)), self.info, index, contiguous=False)
        if self.premultiplied:  # a new array; checked again: a denormal alpha may overflow the division
            frame = check_frame(unpremultiply(frame), self.info, index)
        return frame


class ClipGate:
    """Renders of a clip run together; a reanalysis runs alone (and new renders wait for it)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._renders = 0
        self._exclusive = 0  # reanalyses running or waiting

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: self._exclusive == 0)
            self._renders += 1
        try:
            yield
        finally:
            with self._cond:
                self._renders -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._exclusive += 1
            self._cond.wait_for(lambda: self._renders == 0)
        try:
            yield
        finally:
            with self._cond:
                self._exclusive -= 1
                self._cond.notify_all()


@dataclass
class ClipEntry:
    """One clip known to the server; ``session`` is None while evicted from memory."""

    info: ClipInfo
    settings: Settings
    source: HostSource  # its ``premultiplied`` says how the clip's frames come from the host
    session: Any  # deflicker.engine.Session or None
    status: str = "not analysed"
    instances: set[str] = field(default_factory=set)
    gate: ClipGate = field(default_factory=ClipGate)
    reopen_lock: threading.Lock = field(default_factory=threading.Lock)
