"""The model server the OFX plugin talks to (through the pybind11 bridge), one per process.

It is the one place that knows about clips and caches on the plugin path: every clip an effect
instance shows (shared by all instances that show the same clip), each clip's set of instances,
and a process-wide LRU of the heavy per-clip :class:`~deflicker.engine.Session` objects (an
evicted session is reopened on its next render and reloads its analysis from disk). One
analysis at a time per clip: parallel renders of a clip being analysed wait for it, other clips
proceed; ``reanalyze`` waits for the clip's renders in flight and holds new ones back until it
is done. A render analyses only the segment(s) of the clip its frame needs
(:mod:`deflicker.method.segments`), and :meth:`ModelServer.frames_needed` names the frames that
render reads, from the clip's facts alone before the clip is opened. An aborted analysis keeps
its finished work in the clip's session; the next render resumes it. The on-disk cache is shared by every process on the machine (render queue, Nuke's
frame server, a farm node).

Frames come from the host through ``fetch(i)`` callables that are only valid during the call
that receives them: the server binds the caller's ``fetch`` to its thread for the duration of
the call and never keeps a host buffer afterwards.

A clip the host declares premultiplied (``info["premultiplied"]``, RGBA) is analysed and
corrected on straight colour (:mod:`deflicker.method.premultiply`) and rendered premultiplied again. Its
analysis is keyed on the straight frames' code values (:mod:`deflicker.method.content`), so a
straight source of the same picture finds it (and the other way round) wherever dividing by alpha
gives the straight values back to within half a code value: alpha 0 or 1 (hard mattes, opaque
areas), and soft alpha in float. Where the host rounds colour * alpha to few levels (a small
alpha in 8 or 16 bits) the code values, and so the content fingerprint, may differ, and the clip
is analysed once more: never a wrong analysis, at worst a second one. Its clip key carries
:data:`PREMULTIPLIED_SUFFIX`, so that the two sources, which hand over different pixels, never
share one in-memory entry.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from deflicker.store.lock import WAITING
from deflicker.errors import DeflickerError, InvalidSettingsError, UnknownClipError, VideoIOError
from deflicker.server.plugin_log import log_to_plugin_log
from deflicker.method.premultiply import premultiply
from deflicker.progress import CancelCheck, Progress
from deflicker.server.clip import ClipEntry, Fetch, HostSource
from deflicker.server.plugin_spec import PLUGIN_FIELDS
from deflicker.settings import RENDER_FIELDS, Settings
from deflicker.io.source import ClipInfo

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Analysed clips kept in memory (each holds proxies, flows and an atlas: tens of MB).
MAX_SESSIONS = 4

#: Ends the clip key of a premultiplied source (the part before it is the analysis's cache digest).
PREMULTIPLIED_SUFFIX = "-premultiplied"


class ModelServer:
    """Per-clip sessions on one shared :class:`~deflicker.engine.Engine`."""

    def __init__(self, cache_dir: Optional[Path] = None, max_sessions: int = MAX_SESSIONS):
        self._cache_dir = cache_dir
        self._engine: Any = None
        self._clips: dict[str, ClipEntry] = {}
        self._loaded: list[str] = []  # keys whose session is in memory, least recently used first
        self._lock = threading.Lock()
        self._max_sessions = max_sessions

    def engine(self) -> Any:
        """The shared engine (created on first use: it imports torch)."""
        with self._lock:
            if self._engine is None:
                from deflicker.engine import Engine

                self._engine = Engine(cache_dir=self._cache_dir)
            return self._engine

    def open_clip(self, instance_id: str, info: Mapping[str, Any], settings: Mapping[str, Any], fetch: Fetch,
                  persisted_key: str = "") -> str:
        """Register an instance's clip; returns the clip key (content fingerprint + analysis settings).

        ``info`` holds deflicker ClipInfo's fields and, optionally, ``premultiplied`` (the host's
        frames hold colour * alpha).
        """
        clip_info = _clip_info(info)
        resolved = settings_from_plugin(settings)
        source = HostSource(clip_info, premultiplied=bool(info.get("premultiplied", False)))
        with source.bound(fetch):
            session = self.engine().open(source, settings=resolved)
        key = _clip_key(session, source)
        if persisted_key and persisted_key != key:
            log.info("instance %s: clip key changed from %s to %s (new content or settings)", instance_id, persisted_key, key)
        with self._lock:
            clip = self._clips.get(key)
            if clip is None:
                clip = self._clips[key] = ClipEntry(clip_info, resolved, source, session)
            elif clip.session is None:
                clip.source, clip.session = source, session
            clip.instances.add(instance_id)
            self._touch_locked(key)
        return key

    def analyze(self, key: str, fetch: Fetch, progress: Optional[Progress] = None,
                cancel: Optional[CancelCheck] = None, *, force: bool = False) -> None:
        """Analyse the clip (from the disk cache when possible); ``force`` recomputes."""
        clip = self._clip(key)
        if force:
            with clip.gate.exclusive():
                self._analyze(key, clip, fetch, progress, cancel, force=True)
        else:
            with clip.gate.shared():
                self._analyze(key, clip, fetch, progress, cancel, force=False)

    def reanalyze(self, key: str, fetch: Fetch, progress: Optional[Progress] = None,
                  cancel: Optional[CancelCheck] = None) -> None:
        """Drop the clip's analysis from memory and disk and compute it again."""
        self.analyze(key, fetch, progress, cancel, force=True)

    def render(self, key: str, t: int, fetch: Fetch, settings: Mapping[str, Any],
               progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """Frame t deflickered, (H, W, C) float32, a new array; analyses its segment(s) first if needed."""
        clip = self._clip(key)
        with clip.gate.shared():
            session = self._session(key, clip, fetch)
            render_settings = session.settings.replace(**_render_fields(settings))
            with clip.source.bound(fetch):
                frame = self._tracked(clip, session, progress, lambda tracked: session.render(
                    int(t), render_settings, progress=tracked, cancel=cancel))
            return premultiply(frame) if clip.source.premultiplied else frame

    def frames_needed(self, key: str, t: int, settings: Mapping[str, Any],
                      clip_facts: Optional[Mapping[str, Any]] = None) -> list[tuple[int, int]]:
        """The [first, last] source frame ranges render(t) may fetch. For a clip this process
        has not opened (or has evicted), from ``clip_facts`` (the ``info`` of :meth:`open_clip`):
        the fingerprint frames opening reads and the spans of t's segments; [] without them."""
        with self._lock:
            clip = self._clips.get(key)
        session = clip.session if clip is not None else None
        if clip is not None and session is not None:
            needed: list[tuple[int, int]] = session.frames_needed(int(t), clip.settings.replace(**_render_fields(settings)))
            return needed
        if clip is None and not clip_facts:
            return []
        info = clip.info if clip is not None else _clip_info(clip_facts or {})
        segment_frames = clip.settings.segment_frames if clip is not None else settings_from_plugin(settings).segment_frames
        return frames_before_open(info.frame_count, int(t), segment_frames)

    def status(self, key: str) -> str:
        """'not analysed' | 'waiting for another process analysing clip K' | 'analysing N%' |
        'analysed' | 'analysed N of M segments' | 'failed: reason'."""
        with self._lock:
            clip = self._clips.get(key)
        return clip.status if clip is not None else "not analysed"

    def close_instance(self, instance_id: str) -> None:
        """Forget an instance; clips no other instance uses are dropped from memory."""
        with self._lock:
            for key in list(self._clips):
                clip = self._clips[key]
                clip.instances.discard(instance_id)
                if not clip.instances:
                    self._drop_locked(key)

    def purge_caches(self) -> None:
        """Low-memory hint: drop clips no instance uses and unload every idle session (the disk cache stays)."""
        with self._lock:
            for key in list(self._clips):
                if not self._clips[key].instances:
                    self._drop_locked(key)
                else:
                    self._unload_locked(key)

    # ------------------------------------------------------------------ internals

    def _analyze(self, key: str, clip: ClipEntry, fetch: Fetch, progress: Optional[Progress],
                 cancel: Optional[CancelCheck], *, force: bool) -> Any:
        """The clip's session, every segment analysed (the caller holds the clip's gate)."""
        session = self._session(key, clip, fetch)
        if session.analyzed and not force:
            return session
        with clip.source.bound(fetch):
            self._tracked(clip, session, progress, lambda tracked: session.analyze(tracked, cancel, force=force))
        return session

    @staticmethod
    def _tracked(clip: ClipEntry, session: Any, progress: Optional[Progress], work: Callable[[Progress], T]) -> T:
        """``work(progress)`` with the clip's status line following its analysis progress and outcome."""
        def tracked(fraction: float, label: str) -> None:
            clip.status = label if label.startswith(WAITING) else f"analysing {int(fraction * 100)}%"
            if progress is not None:
                progress(fraction, label)

        try:
            result = work(tracked)
        except DeflickerError as exc:
            clip.status = f"failed: {exc}" if exc.exit_code != 130 else "not analysed (cancelled)"
            raise
        except Exception as exc:
            clip.status = f"failed: {type(exc).__name__}: {exc}"
            raise
        clip.status = session.status()
        return result

    def _session(self, key: str, clip: ClipEntry, fetch: Fetch) -> Any:
        """The clip's session, reopened (fingerprint from the host, analysis from disk) if evicted."""
        with clip.reopen_lock:
            session = clip.session
            if session is None:
                log.info("reopening clip %s (evicted from memory)", key)
                source = HostSource(clip.info, clip.source.premultiplied)
                with source.bound(fetch):
                    session = self.engine().open(source, settings=clip.settings)
                if _clip_key(session, source) != key:
                    raise VideoIOError(f"the source clip's content changed since clip {key} was opened")
                clip.source, clip.session = source, session
            with self._lock:
                self._touch_locked(key)
            return session

    def _clip(self, key: str) -> ClipEntry:
        with self._lock:
            clip = self._clips.get(key)
        if clip is None:
            raise UnknownClipError(f"unknown clip key {key!r}: open the clip first")
        return clip

    def _touch_locked(self, key: str) -> None:
        if key in self._loaded:
            self._loaded.remove(key)
        self._loaded.append(key)
        while len(self._loaded) > self._max_sessions:
            self._unload_locked(self._loaded[0])

    def _unload_locked(self, key: str) -> None:
        if key in self._loaded:
            self._loaded.remove(key)
        clip = self._clips.get(key)
        if clip is not None and clip.session is not None:
            log.info("unloading clip %s from memory (disk cache kept)", key)
            clip.session = None

    def _drop_locked(self, key: str) -> None:
        self._unload_locked(key)
        self._clips.pop(key, None)


def settings_from_plugin(values: Mapping[str, Any]) -> Settings:
    """Settings from the plugin's parameter values (unknown names are an error)."""
    unknown = set(values) - set(PLUGIN_FIELDS)
    if unknown:
        raise InvalidSettingsError(f"unknown plugin parameter(s): {', '.join(sorted(unknown))}")
    return Settings.from_dict(dict(values))


def frames_before_open(frame_count: int, t: int, segment_frames: int) -> list[tuple[int, int]]:
    """The [first, last] frame ranges the first render of frame t reads: the fingerprint
    frames of opening the clip, and the spans of the segments t needs."""
    from deflicker.method.clip_key import fingerprint_frames
    from deflicker.method.segments import merge_ranges, segment_grid, spans_for

    spans = spans_for(segment_grid(frame_count, segment_frames), t)
    return merge_ranges(fingerprint_frames(frame_count) + [i for a, b in spans for i in range(a, b + 1)])


def _clip_key(session: Any, source: HostSource) -> str:
    """The server's key of a clip: the analysis's cache digest, marked for a premultiplied source."""
    digest: str = session.key.digest()
    return digest + PREMULTIPLIED_SUFFIX if source.premultiplied else digest


def _render_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's render settings (those that leave the analysis as it is) among ``values``."""
    settings = settings_from_plugin(values)
    return {name: getattr(settings, name) for name in PLUGIN_FIELDS if name in RENDER_FIELDS}


def _clip_info(info: Mapping[str, Any]) -> ClipInfo:
    try:
        return ClipInfo(width=int(info["width"]), height=int(info["height"]), channels=int(info["channels"]),
                        frame_count=int(info["frame_count"]), fps=float(info.get("fps", 24.0)),
                        bit_depth=int(info.get("bit_depth", 32)))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidSettingsError(f"bad clip description: {exc}") from None


def configure_logging(path: Optional[str] = None) -> None:
    """Send the engine's log to ``path`` (the bridge's deflicker-ofx.log, never through a link); idempotent."""
    if path:
        log_to_plugin_log(logging.getLogger("deflicker"), path)


SERVER = ModelServer()

# Module-level functions: the bridge's C ABI calls these.
open_clip = SERVER.open_clip
analyze = SERVER.analyze
reanalyze = SERVER.reanalyze
render = SERVER.render
frames_needed = SERVER.frames_needed
status = SERVER.status
close_instance = SERVER.close_instance
purge_caches = SERVER.purge_caches
