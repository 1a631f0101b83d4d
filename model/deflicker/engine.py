"""The one orchestrator: ``Engine(settings).open(clip) -> Session``; ``session.analyze()``;
``session.render(t)``.

The CLI, the model server behind the OFX plugin, the benchmark and the host scripts all go
through this API. Rendering frame t is a pure function of (clip content, settings, t): it
reads only the analysis of t's segment (:mod:`deflicker.method.segments`: a long clip is
analysed in segments on a fixed grid, each computed once and cached on its own; near a cut
between two segments, both, blended) and the source frames of a fixed window around t, so
frames come out the same in any order and from any thread. The first render of a frame
analyses only the segment(s) it needs: its cost does not grow with the clip's length. Every source
frame a render reads is checked against the digest the analysis stored for it
(:mod:`deflicker.method.content`): a cached analysis made from other frames is replaced by a new one
before any frame is rendered with it. Rendering one frame with one analysis (the pipeline's stages)
is :class:`deflicker.method.frame_render.FrameRenderer`'s job; a clip's frames in order on a thread
pool, :func:`deflicker.render_queue.render_in_order`'s.
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from deflicker.errors import InvalidSettingsError
from deflicker.method.frame_render import STAGES, FrameRenderer, window
from deflicker.progress import CancelCheck, Progress
from deflicker.settings import Settings
from deflicker.io.source import FrameSource, check_frame

if TYPE_CHECKING:  # torch-heavy modules load lazily
    from deflicker.method.analysis import ClipAnalysis
    from deflicker.method.clip_key import ClipKey
    from deflicker.method.filter import NeuralFilter
    from deflicker.method.segment_analysis import SegmentAnalyses
    from deflicker.store.cache import AnalysisCache

log = logging.getLogger(__name__)

ClipLike = Union[FrameSource, str, Path]


def limit_torch_threads() -> None:
    """One intra-op torch thread per render call ($DEFLICKER_TORCH_THREADS to change).

    Renders run in parallel (host render threads, the CLI's worker pool); torch's own thread
    pool on top of that oversubscribes the cores and, on a busy machine, makes a frame tens of
    times slower. Same count everywhere also keeps the pixels identical across processes.
    """
    import torch

    wanted = max(1, int(os.environ.get("DEFLICKER_TORCH_THREADS", "1") or 1))
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


class Engine:
    """Holds the settings, the on-disk analysis cache and the (lazily loaded) neural filter."""

    def __init__(self, settings: Optional[Settings] = None, *, cache_dir: Union[str, Path, None] = None):
        from deflicker.store.cache import AnalysisCache

        self.settings = settings or Settings()
        self.cache: AnalysisCache = AnalysisCache(Path(cache_dir) if cache_dir else None)
        self._filters: dict[tuple[str, str], NeuralFilter] = {}
        self._lock = threading.Lock()

    def open(self, clip: ClipLike, *, frame_range: Optional[tuple[int, int]] = None,
             settings: Optional[Settings] = None, allow_short: bool = False) -> "Session":
        """A :class:`Session` on a clip (a path or any FrameSource); nothing is analysed yet.

        ``settings`` overrides the engine's for this session (the server shares one engine);
        ``allow_short`` accepts a damaged video or a sequence with gaps (see ``open_clip``).
        A device that is not there (``cuda`` without CUDA) is a DeviceError here, before any work.
        """
        from deflicker.method.filter import resolve_device

        resolve_device((settings or self.settings).device)
        if isinstance(clip, (str, Path)):
            from deflicker.io.files import open_clip

            start, end = frame_range or (0, None)
            return Session(self, open_clip(clip, start=start, end=end, allow_short=allow_short), settings=settings,
                           owns_source=True)
        if frame_range is not None:
            raise InvalidSettingsError("frame_range applies to clip paths; slice the FrameSource instead")
        return Session(self, clip, settings=settings)

    def filter_model(self, settings: Settings) -> "NeuralFilter":
        """The neural filter for these settings' weights and device, loaded once per engine."""
        from deflicker.method.filter import load_filter, resolve_device

        limit_torch_threads()
        device = str(resolve_device(settings.device))
        key = (settings.filter.weights, device)
        with self._lock:
            model = self._filters.get(key)
            if model is None:
                model = load_filter(settings.filter, device)
                self._filters[key] = model
        return model


class Session:
    """One clip: its cache key, its segments' analyses and frame rendering. Thread-safe."""

    def __init__(self, engine: Engine, source: FrameSource, *, settings: Optional[Settings] = None,
                 owns_source: bool = False):
        from deflicker.method.clip_key import ClipKey
        from deflicker.method.segment_analysis import SegmentAnalyses

        if len(source) == 0:
            from deflicker.errors import VideoIOError

            raise VideoIOError("the clip has no frames")
        self.engine = engine
        self.source = source
        self.settings = settings or engine.settings
        self.key: ClipKey = ClipKey.for_source(source, self.settings)
        self._owns_source = owns_source
        # Its memos (prepared frames, window flows, slow trends) start over when a segment's analysis is replaced.
        self._frames = FrameRenderer(engine.filter_model, source.info.fps)
        self.segments: SegmentAnalyses = SegmentAnalyses(source, self.settings, engine.cache, self.key,
                                                         on_change=self._frames.forget)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the source if this session opened it."""
        if self._owns_source and hasattr(self.source, "close"):
            self.source.close()  # type: ignore[union-attr]

    def __len__(self) -> int:
        return len(self.source)

    @property
    def analyzed(self) -> bool:
        """True once every segment's analysis is in memory."""
        return self.segments.analysed() == len(self.segments)

    @property
    def analyses(self) -> tuple[Optional["ClipAnalysis"], ...]:
        """Each segment's analysis, None where not in memory yet."""
        return tuple(self.segments.current(k) for k in range(len(self.segments)))

    @property
    def cache_path(self) -> Optional[Path]:
        """The cache entry of the first segment's analysis (the whole clip's, in one segment), once made or loaded."""
        return self.segments.paths[0]

    def analyze(self, progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None,
                *, force: bool = False) -> tuple["ClipAnalysis", ...]:
        """Load every segment's analysis from the cache or compute it (once; concurrent callers
        wait); one analysis a segment, in order. A cancelled analysis keeps its finished work in
        memory and the next call (or render) resumes it."""
        from deflicker.progress import scaled

        m = len(self.segments)
        return tuple(self.segments.get(k, scaled(progress, k / m, (k + 1) / m), cancel, force=force) for k in range(m))

    def in_cache(self, t: Optional[int] = None) -> bool:
        """Whether the analyses render(t) needs (every segment's, without t) are in memory or on disk."""
        from deflicker.method.segments import blend

        needed = range(len(self.segments)) if t is None else [s.index for s, _ in blend(self.segments.grid, t)]
        return all(self.segments.in_cache(k) for k in needed)

    def status(self) -> str:
        """'analysed N of M segments' (or 'analysed' / 'not analysed' for a clip in one segment)."""
        done, m = self.segments.analysed(), len(self.segments)
        if m == 1:
            return "analysed" if done else "not analysed"
        return f"analysed {done} of {m} segments"

    def frames_needed(self, t: int, settings: Optional[Settings] = None) -> list[tuple[int, int]]:
        """The [first, last] source frame ranges render(t) may read: the span of every segment it
        needs whose analysis is not in memory, else the window around t's canonical frame (t's
        first occurrence when it repeats an earlier frame)."""
        from deflicker.method.segments import merge_ranges

        frames: list[int] = []
        for segment, _ in self._blend(t):
            analysis = self.segments.current(segment.index)
            local = t - segment.first
            frames += (range(segment.first, segment.stop) if analysis is None else
                       [segment.first + i for i in window(analysis, local, settings or self.settings)])
        return merge_ranges(frames)

    def _blend(self, t: int) -> list[tuple[Any, float]]:
        from deflicker.method.segments import blend

        return blend(self.segments.grid, t)

    def render(self, t: int, settings: Optional[Settings] = None, *, stage: str = "full",
               progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None,
               depth: Optional[int] = None) -> np.ndarray:
        """Deflickered frame t, (H, W, C) float32, alpha untouched; analyses t's segment(s) first
        if needed (``progress`` told, ``cancel`` polled). With ``depth`` (8 | 16), the pixels an
        output of that depth stores (:func:`deflicker.io.clip.quantize` of that frame), made a band
        of rows at a time: no float frame exists where the clip is a file of integer pixels.

        ``settings`` may change the render settings (:class:`~deflicker.settings.RenderSettings`),
        not the analysis settings; ``stage`` picks a benchmark ablation (see :data:`STAGES`). The shot's static
        regions (bars, a film gate, black or white areas; :mod:`deflicker.method.static_regions`) come
        out exactly as the input. A frame unlike the one the analysis was made from (a cache
        entry of another clip with the same key) makes its segment be analysed again, then the
        frame is rendered with that. Near a cut between two segments the frame is rendered with
        both and the RGB blended (:func:`deflicker.method.segments.blend`).
        """
        s = self._render_settings(settings)
        if stage not in STAGES:
            raise InvalidSettingsError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
        if not 0 <= t < len(self.source):
            raise InvalidSettingsError(f"frame {t} is outside the clip (0..{len(self.source) - 1})")
        parts = self._blend(t)
        if len(parts) == 1:
            return self._render_segment(parts[0][0].index, t, s, stage, progress, cancel, depth)
        from deflicker.io.clip import quantize

        (a, _), (b, weight) = parts
        out = self._render_segment(a.index, t, s, stage, progress, cancel)
        later = self._render_segment(b.index, t, s, stage, progress, cancel)
        out[..., :3] += np.float32(weight) * (later[..., :3] - out[..., :3])  # exact where both agree
        return out if depth is None else quantize(check_frame(out, self.source.info, t), depth)

    def _render_segment(self, k: int, t: int, s: Settings, stage: str, progress: Optional[Progress],
                        cancel: Optional[CancelCheck], depth: Optional[int] = None) -> np.ndarray:
        """Frame t (of the clip) rendered with segment k's analysis, made or loaded if needed."""
        from deflicker.method.content import ContentMismatch

        source, local = self.segments.sources[k], t - self.segments.grid[k].first
        analysis = self.segments.get(k, progress, cancel)
        try:
            return self._frames.render(analysis, source, local, s, stage, depth)
        except ContentMismatch as exc:
            log.warning("%s (%s): analysing the clip again", exc, self.segments.paths[k])
        analysis = self.segments.get(k, progress, cancel, replacing=analysis)
        try:
            return self._frames.render(analysis, source, local, s, stage, depth)
        except ContentMismatch as exc:
            from deflicker.errors import VideoIOError

            raise VideoIOError(f"the clip's frames change between reads: {exc}") from None

    def _render_settings(self, settings: Optional[Settings]) -> Settings:
        if settings is None:
            return self.settings
        changed = self.settings.analysis_changes(settings)
        if changed:
            raise InvalidSettingsError(f"{', '.join(changed)} change the analysis: open a new session")
        return settings


def process(engine: Engine, src: Union[str, Path], dst: Union[str, Path], *,
            frame_range: Optional[tuple[int, int]] = None, codec: Optional[str] = None,
            progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None,
            report: Union[str, Path, None] = None, overwrite: bool = False,
            allow_short: bool = False) -> dict[str, float]:
    """Deflicker the file ``src`` into ``dst`` (written atomically); returns timings.

    Analysis comes from the cache when it holds this clip. ``report`` names a before/after PNG.
    Image outputs keep the input's frame numbers; existing outputs are refused unless
    ``overwrite``, and every output error is found before the analysis starts. A video output
    keeps the input's frame timestamps and audio; ``allow_short``: see :meth:`Engine.open`.
    Should a render find the cached analysis made from other frames (:meth:`Session.render`
    analyses again), the output is started over with the new analysis: no file mixes two.
    """
    import time

    from deflicker.method.content import ContentMismatch
    from deflicker.render_queue import render_in_order
    from deflicker.io.files import Clip, ClipWriter, carried_over, check_output_path, frame_numbers, output_like
    from deflicker.io.source import file_pixels
    from deflicker.io.target import check_targets, output_target, refuse_existing
    from deflicker.progress import check_cancel, report as tell, scaled
    from deflicker.cli.report import ReportCollector

    target = output_target(dst, codec=codec, inputs=[src])
    if report:
        refuse_existing(check_output_path(report, [src, dst]), overwrite)
    with engine.open(src, frame_range=frame_range, allow_short=allow_short) as session:
        numbers = frame_numbers(session.source) if isinstance(session.source, Clip) else None
        kwargs = output_like(session.source.info, dst, codec) | carried_over(session.source, dst)
        check_targets(target, bit_depth=kwargs["bit_depth"], numbers=numbers or [], overwrite=overwrite)
        t0 = time.perf_counter()
        analysis = session.analyze(scaled(progress, 0.0, 0.5), cancel)
        t1 = time.perf_counter()
        n = len(session)
        info = session.source.info

        def write() -> Optional[ReportCollector]:
            collector = ReportCollector(n) if report else None
            with ClipWriter(dst, width=info.width, height=info.height, channels=info.channels, numbers=numbers,
                            overwrite=overwrite, **kwargs) as writer:

                def finish(frame: np.ndarray, t: int) -> np.ndarray:
                    """In the render worker: frame t as the pixels the output stores (the queue holds those)."""
                    pixels = writer.prepare(frame, t)
                    if collector is not None:
                        collector.add_output(t, pixels)
                    return pixels

                # the report reads a frame's input in the worker, before the render reads it too
                start = None if collector is None else (lambda t: collector.add_input(t, file_pixels(session.source, t)))
                for t, pixels in render_in_order(session, n, cancel, depth=writer.stored_depth, finish=finish,
                                                 start=start):
                    if any(a is not b for a, b in zip(session.analyses, analysis)):
                        raise ContentMismatch(f"the cached analysis was replaced at frame {t}")
                    tell(progress, 0.5 + 0.5 * (t + 1) / n, f"frame {t + 1}/{n}")
                    writer.write(pixels, prepared=True)
            return collector

        try:
            collector = write()
        except ContentMismatch as exc:  # the partial output is gone; once more, every frame with the new analysis
            log.warning("%s: rendering every frame again", exc)
            analysis = session.analyze()
            collector = write()
        t2 = time.perf_counter()
        if collector is not None and report:
            collector.save(report, title=Path(str(src)).name)
    return {"frames": float(n), "analysis_seconds": t1 - t0, "render_seconds_per_frame": (t2 - t1) / n}
