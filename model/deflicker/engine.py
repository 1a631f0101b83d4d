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
before any frame is rendered with it.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

import numpy as np

from deflicker.errors import InvalidSettingsError
from deflicker.method.image import rgb
from deflicker.progress import CancelCheck, Progress
from deflicker.settings import Settings
from deflicker.io.source import FrameSource

if TYPE_CHECKING:  # torch-heavy modules load lazily
    from deflicker.method.analysis import ClipAnalysis, Guide
    from deflicker.method.clip_key import ClipKey
    from deflicker.method.filter import NeuralFilter
    from deflicker.method.segment_analysis import SegmentAnalyses
    from deflicker.store.cache import AnalysisCache

log = logging.getLogger(__name__)

#: Pipeline variants a Session can render: the product and the benchmark's ablations.
STAGES = ("full", "filter", "atlas", "refine-only")

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


#: DIS preset of the refinement's render-time flows: they span at most ``refine.window`` frames and
#: only steer a smooth correction; on the synthetic set "ultrafast" scores as "medium" does in
#: under half the time (the analysis flows keep ``FlowSettings.preset``).
REFINE_FLOW_PRESET = "ultrafast"


def render_workers() -> int:
    """Frames the CLI renders at once: the machine's cores, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class _Prepared:
    """A frame's proxy and its filter coefficients (both at proxy resolution)."""

    proxy: np.ndarray
    coeffs: np.ndarray
    guide: Optional["Guide"] = None  # the filter's guide, None for the identity


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

    #: Prepared frames and window flows kept per session (a few hundred KB each).
    MEMO_SIZE = 96

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
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._trends: dict[tuple, np.ndarray] = {}  # (analysis id, shot, span) -> kept trend; a few floats a frame
        self._memo_lock = threading.Lock()
        self.segments: SegmentAnalyses = SegmentAnalyses(source, self.settings, engine.cache, self.key,
                                                         on_change=self._forget_memo)

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

    def _forget_memo(self) -> None:
        """A segment's analysis was replaced: renders in flight keep theirs (memo keys carry its
        id), the memo starts over (an id may be reused once the old analysis is gone)."""
        with self._memo_lock:
            self._memo.clear()
            self._trends.clear()

    def _window(self, analysis: "ClipAnalysis", t: int, s: Settings, stage: str = "full") -> list[int]:
        """Frames of ``analysis``'s span whose analysis-time proxies rendering its frame t uses,
        in order (t's canonical frame included)."""
        c = int(analysis.canonical[t])
        use_window = stage == "refine-only" or (stage == "full" and s.local_refinement)
        k = s.refine.window if use_window else 0
        start, end = analysis.shot_range(c)
        return list(range(max(start, c - k), min(end, c + k + 1)))

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
                       [segment.first + i for i in self._window(analysis, local, settings or self.settings)])
        return merge_ranges(frames)

    def _blend(self, t: int) -> list[tuple[Any, float]]:
        from deflicker.method.segments import blend

        return blend(self.segments.grid, t)

    def render(self, t: int, settings: Optional[Settings] = None, *, stage: str = "full",
               progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None) -> np.ndarray:
        """Deflickered frame t, (H, W, C) float32, alpha untouched; analyses t's segment(s) first
        if needed (``progress`` told, ``cancel`` polled).

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
            return self._render_segment(parts[0][0].index, t, s, stage, progress, cancel)
        (a, _), (b, weight) = parts
        out = self._render_segment(a.index, t, s, stage, progress, cancel)
        later = self._render_segment(b.index, t, s, stage, progress, cancel)
        out[..., :3] += np.float32(weight) * (later[..., :3] - out[..., :3])  # exact where both agree
        return out

    def _render_segment(self, k: int, t: int, s: Settings, stage: str, progress: Optional[Progress],
                        cancel: Optional[CancelCheck]) -> np.ndarray:
        """Frame t (of the clip) rendered with segment k's analysis, made or loaded if needed."""
        from deflicker.method.content import ContentMismatch

        source, local = self.segments.sources[k], t - self.segments.grid[k].first
        analysis = self.segments.get(k, progress, cancel)
        try:
            return self._render(analysis, source, local, s, stage)
        except ContentMismatch as exc:
            log.warning("%s (%s): analysing the clip again", exc, self.segments.paths[k])
        analysis = self.segments.get(k, progress, cancel, replacing=analysis)
        try:
            return self._render(analysis, source, local, s, stage)
        except ContentMismatch as exc:
            from deflicker.errors import VideoIOError

            raise VideoIOError(f"the clip's frames change between reads: {exc}") from None

    def _render(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings, stage: str) -> np.ndarray:
        """Frame t of ``source`` (the span ``analysis`` was made from) rendered with it;
        ContentMismatch when a frame it reads is not one the analysis was made from."""
        if s.strength == 0.0:
            return np.array(source[t], dtype=np.float32, copy=True)
        # A repeated frame renders as its first occurrence, pixels included, so the output
        # repeats it exactly even where lossy coding made the input's repeats differ.
        c = int(analysis.canonical[t])
        frame = source[c]  # may be a host's buffer or a cached array: never written to
        image = rgb(frame)  # the frame itself when it is contiguous RGB float32
        from deflicker.method.slow_changes import apply_trend, trend_coefficients

        trend = None if stage == "refine-only" else self._slow_trend(analysis, c, s)
        if stage == "atlas":
            atlas = analysis.atlas_frame(c, size=frame.shape[:2], proxy=_checked_proxy(analysis, c, frame))
            atlas = (atlas if trend is None else apply_trend(atlas, trend)) * analysis.scale
            return _with_alpha(image + s.strength * (atlas - image), frame)
        coeffs, guide = self._coefficients(analysis, source, c, s, stage, frame)
        from deflicker.method.correction import apply_affine, fill_clipped
        from deflicker.method.static_regions import keep_static

        display = analysis.scale == 1.0
        if trend is not None:
            coeffs = trend_coefficients(coeffs, trend)
        corrected = apply_affine(image, coeffs, scale=analysis.scale, strength=s.strength)
        if guide is not None and display:
            fill, bound = guide.image, analysis.colour_coefficients(c)
            if trend is not None:
                fill = apply_trend(fill, trend)
                bound = None if bound is None else trend_coefficients(bound, trend)
            corrected = fill_clipped(corrected, image, fill, strength=s.strength, bound=bound)
        return _with_alpha(keep_static(corrected, image, analysis.static_mask(c), display=display), frame)

    def _slow_trend(self, analysis: "ClipAnalysis", t: int, s: Settings) -> Optional[np.ndarray]:
        """The slow trend (2, 3: gains, offsets) of ``analysis``'s frame t's colour that the render keeps (Keep
        slow changes, :mod:`deflicker.method.slow_changes`), None when off or the atlas has no colour fit.
        One smoothing per shot and span, kept for the session (pure)."""
        from deflicker.method.atlas.fast import FastAtlas
        from deflicker.method.slow_changes import slow_colour, span_frames

        span = span_frames(int(s.keep_slow), self.source.info.fps)
        shot = analysis.shot_index(t)
        atlas = analysis.atlases[shot]
        if span <= 0 or not isinstance(atlas, FastAtlas):
            return None
        key = (id(analysis), shot, span)
        with self._memo_lock:
            trend = self._trends.get(key)
        if trend is None:
            start, end = analysis.shot_range(t)
            means = analysis.frame_means if analysis.scale == 1.0 else None  # black and white exist on display clips
            trend = slow_colour(atlas.colour, span, None if means is None else means[start:end])
            with self._memo_lock:
                self._trends[key] = trend
        return trend[t - int(analysis.shots[shot])]

    def _render_settings(self, settings: Optional[Settings]) -> Settings:
        if settings is None:
            return self.settings
        changed = self.settings.analysis_changes(settings)
        if changed:
            raise InvalidSettingsError(f"{', '.join(changed)} change the analysis: open a new session")
        return settings

    def _coefficients(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings, stage: str,
                      frame: np.ndarray) -> tuple[np.ndarray, Optional["Guide"]]:
        """Final proxy-resolution coefficients of frame t (filter, stateless refinement, then the
        atlas's low frequencies in shots with local flicker) and its filter guide (None without
        the filter); ``frame`` is source frame t, already read (a host fetch is not repeated)."""
        from deflicker.method.refine import atlas_low_frequency, refine_coefficients

        c = int(analysis.canonical[t])
        window = self._window(analysis, t, s, stage)
        prepared = {i: self._prepared(analysis, source, i, s, identity=(stage == "refine-only"),
                                      frame=frame if i == t else None) for i in window}
        own = prepared[c]
        coeffs = own.coeffs
        level = analysis.local_level(c)
        if len(window) > 1:
            flows = {i: self._flow(analysis, c, i, own.proxy, prepared[i].proxy, s) for i in window if i != c}
            # Shots whose flicker the per-frame colour explains need no local correction from the
            # neighbours, only their agreement: a tighter outlier test there (half at level 0).
            refine = replace(s.refine, outlier=s.refine.outlier * (0.5 + 0.5 * level))
            coeffs = refine_coefficients(c, {i: p.coeffs for i, p in prepared.items()},
                                         {i: p.proxy for i, p in prepared.items()}, flows, refine)
        if own.guide is not None and level > 0.0:
            coeffs = atlas_low_frequency(coeffs, own.proxy, own.guide.image, own.guide.represented, level)
        return coeffs, own.guide

    def _flow(self, analysis: "ClipAnalysis", c: int, i: int, proxy_c: np.ndarray, proxy_i: np.ndarray,
              s: Settings) -> tuple[np.ndarray, np.ndarray]:
        """(f_{c->i}, valid) between two proxies of the window (forward-backward checked)."""
        from deflicker.method.warp import consistency_mask

        fw = self._dis(analysis, c, i, proxy_c, proxy_i, s)
        return fw, consistency_mask(fw, self._dis(analysis, i, c, proxy_i, proxy_c, s))

    def _dis(self, analysis: "ClipAnalysis", a: int, b: int, proxy_a: np.ndarray, proxy_b: np.ndarray,
             s: Settings) -> np.ndarray:
        """f_{a->b}, memoized: frame b's render needs the same flows the other way round (pure)."""
        from deflicker.method.flow import estimate_flow

        key = (id(analysis), "flow", a, b, s.flow)
        with self._memo_lock:
            hit = self._memo.get(key)
        if hit is None:
            hit = estimate_flow(proxy_a, proxy_b, replace(s.flow, preset=REFINE_FLOW_PRESET))
            with self._memo_lock:
                self._memo[key] = hit
                self._trim_locked()
        return hit  # type: ignore[no-any-return]

    def _trim_locked(self) -> None:
        while len(self._memo) > self.MEMO_SIZE:
            self._memo.popitem(last=False)

    def _prepared(self, analysis: "ClipAnalysis", source: FrameSource, i: int, s: Settings, *, identity: bool,
                  frame: Optional[np.ndarray] = None) -> _Prepared:
        """Proxy and filter coefficients of source frame i (``frame``, when the caller read it),
        memoized (pure: same inputs, same bytes); the frame checked against its digest first."""
        from deflicker.method.correction import identity_coefficients
        from deflicker.method.filter import predict_coefficients

        key = (id(analysis), i, identity, s.filter, s.device)
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return hit
        proxy = _checked_proxy(analysis, i, source[i] if frame is None else frame)
        if identity:
            prepared = _Prepared(proxy, identity_coefficients(*proxy.shape[:2]))
        else:
            model = self.engine.filter_model(s)
            guide = analysis.guide(i, proxy)
            coeffs = predict_coefficients(model, proxy, guide.image, guide.confidence, locality=s.filter.locality,
                                          reference=analysis.colour_coefficients(i), local_level=analysis.local_level(i))
            prepared = _Prepared(proxy, coeffs, guide)
        with self._memo_lock:
            self._memo[key] = prepared
            self._trim_locked()
        return prepared


def _with_alpha(colour: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """The rendered colour (H, W, 3) float32, a new array, as the output frame: itself for an
    RGB frame, with the frame's alpha added for RGBA (H, W, 4)."""
    if frame.shape[2] == 3:
        return colour.astype(np.float32, copy=False)
    out = np.empty(frame.shape, dtype=np.float32)
    out[..., :3] = colour
    out[..., 3:] = frame[..., 3:]
    return out


def _checked_proxy(analysis: "ClipAnalysis", i: int, frame: np.ndarray) -> np.ndarray:
    """The analysis proxy of source frame i, once the frame is checked to be the one the
    analysis was made from (ContentMismatch otherwise; :mod:`deflicker.method.content`)."""
    if analysis.content is not None:
        analysis.content.check(i, frame)
    return analysis.proxy(frame)


def render_in_order(session: Session, n: int, cancel: Optional[CancelCheck] = None,
                    workers: Optional[int] = None) -> Iterator[tuple[int, np.ndarray]]:
    """(t, frame) for t = 0..n-1, rendered by a small thread pool a few frames ahead.

    At most ``workers`` + 1 frames are queued (rendering, or done and waiting for their turn; one
    more than the workers, so a worker that finishes early starts the next frame), besides the
    one handed out: memory stays bounded at any frame size. Render is pure, so
    the pool changes only the speed, never the pixels. ``cancel`` is polled between frames and by
    an analysis a render has to redo.
    """
    from concurrent.futures import ThreadPoolExecutor

    from deflicker.progress import check_cancel

    workers = workers or render_workers()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deflicker-render") as pool:
        pending = {t: pool.submit(session.render, t, cancel=cancel) for t in range(min(n, workers + 1))}
        try:
            for t in range(n):
                check_cancel(cancel)
                out = pending.pop(t).result()
                ahead = t + workers + 1
                if ahead < n:
                    pending[ahead] = pool.submit(session.render, ahead, cancel=cancel)
                yield t, out
        finally:
            for future in pending.values():
                future.cancel()


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
    from deflicker.io.files import Clip, carried_over, check_output_path, frame_numbers, output_like, write_clip
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
        collector = ReportCollector(n) if report else None

        def frames():
            for t, out in render_in_order(session, n, cancel):
                if any(a is not b for a, b in zip(session.analyses, analysis)):
                    raise ContentMismatch(f"the cached analysis was replaced at frame {t}")
                if collector is not None:
                    collector.add(t, session.source[t], out)
                tell(progress, 0.5 + 0.5 * (t + 1) / n, f"frame {t + 1}/{n}")
                yield out

        try:
            write_clip(dst, frames(), numbers=numbers, overwrite=overwrite, **kwargs)
        except ContentMismatch as exc:  # the partial output is gone; once more, every frame with the new analysis
            log.warning("%s: rendering every frame again", exc)
            analysis = session.analyze()
            collector = ReportCollector(n) if report else None
            write_clip(dst, frames(), numbers=numbers, overwrite=overwrite, **kwargs)
        t2 = time.perf_counter()
        if collector is not None and report:
            collector.save(report, title=Path(str(src)).name)
    return {"frames": float(n), "analysis_seconds": t1 - t0, "render_seconds_per_frame": (t2 - t1) / n}
