"""Load a segment's analysis from the cache, or analyse it and store it: the load-or-analyse
step behind :meth:`deflicker.engine.Session.analyze`.

The cache (:mod:`deflicker.store.cache`) is a plain store of bytes; this module names the
entries (:func:`entry_name`: the clip key's digest, plus the segment's span for a clip analysed
in segments, :mod:`deflicker.method.segments`) and turns them into analyses and back
(:mod:`deflicker.method.analysis_entry`, every entry checked before use). Another process
analysing the same segment is waited for; a cancelled analysis leaves no entry, and its
:class:`~deflicker.method.analysis.AnalysisWork` stays with :class:`SegmentAnalyses`, so the next
call resumes it. A cache that fails costs a warning, never the run.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, NamedTuple, Optional

from deflicker.io.source import FrameSource, SubSource
from deflicker.method.analysis import AnalysisWork, ClipAnalysis, analyze_clip
from deflicker.method.analysis_entry import EntryRefused, analysis_from_entry, entry_bytes, entry_limit, read_entry
from deflicker.method.clip_key import ClipKey
from deflicker.method.image import proxy_shape
from deflicker.method.segments import Segment, segment_grid
from deflicker.progress import CancelCheck, Progress
from deflicker.settings import Settings
from deflicker.store.cache import AnalysisCache

log = logging.getLogger(__name__)


class CachedAnalysis(NamedTuple):
    """An analysis (its ``content``: the digests of the frames it was made from) and its entry's path."""

    analysis: ClipAnalysis
    path: Path


def entry_name(key: ClipKey, segment: Segment, frame_count: int) -> str:
    """The cache entry's name of a segment: the key's digest for the whole clip, else with its span."""
    if segment.first == 0 and segment.stop == frame_count:
        return key.digest()
    return f"{key.digest()}-{segment.first}-{segment.stop}"


def load_analysis(cache: AnalysisCache, name: str, source: FrameSource, settings: Settings, *,
                  quiet: bool = False) -> Optional[ClipAnalysis]:
    """The analysis stored as ``name`` for ``source``, or None when absent or unusable (then
    warned, unless ``quiet``: refused entries are replaced by the next store)."""
    info = source.info
    limit = entry_limit(len(source), proxy_shape(info.height, info.width, settings.analysis_size), settings)
    data = cache.read(name, limit, quiet=quiet)
    if data is None:
        return None
    try:
        analysis = analysis_from_entry(read_entry(data, limit), name, len(source), (info.height, info.width), settings)
    except EntryRefused as exc:
        if not quiet:
            log.warning("not using the cache entry %s: %s; analysing again", cache.path_for(name), exc)
        return None
    log.info("analysis %s loaded from %s", name, cache.path_for(name))
    return analysis


def load_or_analyze(source: FrameSource, settings: Settings, *, cache: AnalysisCache, name: Optional[str] = None,
                    force: bool = False, progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None,
                    work: Optional[AnalysisWork] = None) -> CachedAnalysis:
    """The analysis of ``source`` (a clip or a segment's span) from the cache entry ``name``
    (default: the clip's key digest), or computed (resuming ``work``), stored and returned.

    ``force`` recomputes (Reanalyze). Another process analysing it is waited for. A cancelled
    analysis leaves no entry. A cache that fails costs a warning, never the run.
    """
    name = name or ClipKey.for_source(source, settings).digest()
    if not force:
        hit = load_analysis(cache, name, source, settings, quiet=True)
        if hit is not None:
            return CachedAnalysis(hit, cache.path_for(name))
    with cache.lock(name, progress, cancel):
        if not force:
            hit = load_analysis(cache, name, source, settings)  # someone else finished while we waited
            if hit is not None:
                return CachedAnalysis(hit, cache.path_for(name))
        else:
            cache.remove(name)
        analysis = analyze_clip(source, settings, progress, cancel, work)
        cache.write(name, entry_bytes(name, analysis))
    return CachedAnalysis(analysis, cache.path_for(name))


class SegmentAnalyses:
    """The analyses of a clip's segments (:mod:`deflicker.method.segments`), each loaded or made
    once and kept; a cancelled one keeps its work for the next call. Thread-safe: one analysis
    at a time, concurrent callers wait."""

    def __init__(self, source: FrameSource, settings: Settings, cache: AnalysisCache, key: ClipKey,
                 on_change: Callable[[], None] = lambda: None):
        """Segments of ``source`` under ``settings``, their entries named after ``key``;
        ``on_change`` is called when an analysis in memory is replaced (Reanalyze, a stale entry)."""
        n = len(source)
        self.grid = segment_grid(n, settings.segment_frames)
        self.sources = [source if len(self.grid) == 1 else SubSource(source, s.first, s.stop) for s in self.grid]
        self.names = [entry_name(key, s, n) for s in self.grid]
        self.paths: list[Optional[Path]] = [None] * len(self.grid)
        self._analyses: list[Optional[ClipAnalysis]] = [None] * len(self.grid)
        self._work: dict[int, AnalysisWork] = {}
        self._settings, self._cache, self._on_change = settings, cache, on_change
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.grid)

    def current(self, k: int) -> Optional[ClipAnalysis]:
        """Segment k's analysis if in memory, else None."""
        return self._analyses[k]

    def analysed(self) -> int:
        """Segments whose analysis is in memory."""
        return sum(a is not None for a in self._analyses)

    def in_cache(self, k: int) -> bool:
        """Whether segment k's analysis is in memory or has an entry in the cache."""
        return self._analyses[k] is not None or self._cache.has(self.names[k])

    def work(self, k: int) -> Optional[AnalysisWork]:
        """The unfinished work of segment k's cancelled analysis, if any."""
        return self._work.get(k)

    def get(self, k: int, progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None, *,
            force: bool = False, replacing: Optional[ClipAnalysis] = None) -> ClipAnalysis:
        """Segment k's analysis, loaded or computed; ``force`` recomputes it; ``replacing``:
        recompute only if that analysis is still the current one (threads that found it stale
        together redo it once)."""
        current = self._analyses[k]
        if current is not None and not force and replacing is None:
            return current
        with self._lock:
            current = self._analyses[k]
            stale = replacing is not None and current is replacing
            if current is None or (force and replacing is None) or stale:
                if force or stale:
                    self._work.pop(k, None)
                work = self._work.setdefault(k, AnalysisWork())
                found = load_or_analyze(self.sources[k], self._settings, cache=self._cache, name=self.names[k],
                                        force=force or stale, progress=progress, cancel=cancel, work=work)
                self._work.pop(k, None)
                if current is not None:
                    self._on_change()  # the replaced analysis may be freed, and its id reused
                self._analyses[k], self.paths[k] = found
            analysis = self._analyses[k]
            assert analysis is not None
            return analysis
