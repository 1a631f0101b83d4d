"""One frame rendered with one analysis: :class:`FrameRenderer`, the stages in order.

The atlas frame (the ``atlas`` stage) or the filter's coefficients, the stateless refinement over a
window of neighbours (:mod:`deflicker.method.refine`), the correction (:mod:`deflicker.method.correction`),
the kept slow trend (:mod:`deflicker.method.slow_changes`) and the static regions
(:mod:`deflicker.method.static_regions`). Pure: the same analysis, source frames and settings give
the same bytes in any order and from any thread; the memos only save work.
:class:`deflicker.engine.Session` picks the analysis (segments, blending, re-analysis on a mismatch).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from deflicker.io.source import FrameSource, file_pixels, owns_frames
from deflicker.errors import VideoIOError
from deflicker.io.clip import STORED_TYPES, quantize, to_float
from deflicker.method.image import Colour, colour_of, rgb
from deflicker.settings import Settings

if TYPE_CHECKING:  # torch-heavy modules load lazily
    from deflicker.method.analysis import ClipAnalysis, Guide
    from deflicker.method.filter import NeuralFilter

#: Pipeline variants a Session can render: the product and the benchmark's ablations.
STAGES = ("full", "filter", "atlas", "refine-only")

#: DIS preset of the refinement's render-time flows: they span at most ``refine.window`` frames and
#: only steer a smooth correction; on the synthetic set "ultrafast" scores as "medium" does in
#: under half the time (the analysis flows keep ``FlowSettings.preset``).
REFINE_FLOW_PRESET = "ultrafast"


@dataclass(frozen=True)
class _Prepared:
    """A frame's proxy, the proxy its render-time flows read and its filter coefficients (all at proxy resolution)."""

    proxy: np.ndarray
    flow_proxy: np.ndarray
    coeffs: np.ndarray
    guide: Optional["Guide"] = None  # the filter's guide, None for the identity


def memo_entries(k: int, renders: int) -> int:
    """Entries the memo keeps for ``renders`` frames rendering at once with windows of k frames
    each side: their prepared frames (a window's 2k + 1, one more for each further render, and
    the next frame's) and window flows (4k a render, both ways to each neighbour, and the
    k (k + 1) between frames still to render and frames already rendered, which those reuse)."""
    return 2 * k + renders + 1 + 4 * k * renders + k * (k + 1)


def window(analysis: "ClipAnalysis", t: int, s: Settings, stage: str = "full") -> list[int]:
    """Frames of ``analysis``'s span whose analysis-time proxies rendering its frame t uses,
    in order (t's canonical frame included)."""
    c = int(analysis.canonical[t])
    use_window = stage == "refine-only" or (stage == "full" and s.local_refinement)
    k = s.refine.window if use_window else 0
    start, end = analysis.shot_range(c)
    return list(range(max(start, c - k), min(end, c + k + 1)))


class FrameRenderer:
    """Renders frames with any analysis of one clip; memoizes prepared frames, window flows and
    slow trends (keys carry the analysis's id). Thread-safe.

    The memo keeps the prepared frames and window flows (a few hundred KB each at the default
    proxy size) that the most renders seen in flight at once need (:func:`memo_entries`): a
    host rendering on many threads gets a larger memo than the CLI's two workers."""

    def __init__(self, filter_model: Callable[[Settings], "NeuralFilter"], fps: float):
        """``filter_model`` gives the neural filter for a settings' weights and device; ``fps``
        is the clip's frame rate (the span of Keep slow changes)."""
        self._filter_model = filter_model
        self._fps = fps
        self._memo: OrderedDict[tuple, Any] = OrderedDict()
        self._trends: dict[tuple, np.ndarray] = {}  # (analysis id, shot, span) -> kept trend; a few floats a frame
        self._memo_lock = threading.Lock()
        self._rendering = 0  # renders in flight
        self._memo_limit = 0  # memo entries kept: memo_entries of the most renders seen in flight
        self._making: dict[tuple, Future] = {}  # memo values being made, for renders that need them too

    def forget(self) -> None:
        """An analysis was replaced: renders in flight keep theirs (memo keys carry its id), the
        memo starts over (an id may be reused once the old analysis is gone)."""
        with self._memo_lock:
            self._memo.clear()
            self._trends.clear()

    def render(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings, stage: str,
               depth: Optional[int] = None) -> np.ndarray:
        """Frame t of ``source`` (the span ``analysis`` was made from) rendered with it, (H, W, C)
        float32; with ``depth`` (8 | 16) the pixels :func:`~deflicker.io.clip.quantize` makes of it,
        made a band of rows at a time (no float frame exists where the source gives the pixels its
        file stores). ContentMismatch when a frame it reads is not one the analysis was made from."""
        with self._memo_lock:
            self._rendering += 1
            self._memo_limit = max(self._memo_limit, memo_entries(s.refine.window, self._rendering))
        try:
            return self._render(analysis, source, t, s, stage, depth)
        finally:
            with self._memo_lock:
                self._rendering -= 1

    def _render(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings, stage: str,
                depth: Optional[int]) -> np.ndarray:
        """:meth:`render`, once counted in flight."""
        if s.strength == 0.0 or stage == "atlas":
            out = self._render_whole(analysis, source, t, s, stage)
            return out if depth is None else quantize(out, depth)
        # A repeated frame renders as its first occurrence, pixels included, so the output
        # repeats it exactly even where lossy coding made the input's repeats differ.
        c = int(analysis.canonical[t])
        frame = file_pixels(source, c)  # may be a host's buffer or a cached array: never written to
        image = colour_of(frame)  # the frame itself when it is contiguous RGB float32
        from deflicker.bands import CACHE_BAND_PIXELS, row_bands
        from deflicker.method.correction import affine_rows, clipped_filler
        from deflicker.method.slow_changes import apply_trend, trend_coefficients
        from deflicker.method.static_regions import static_keeper

        trend = None if stage == "refine-only" else self._slow_trend(analysis, c, s)
        coeffs, guide = self._coefficients(analysis, source, c, s, stage, frame)
        display = analysis.scale == 1.0
        if trend is not None:
            coeffs = trend_coefficients(coeffs, trend)
        corrected = affine_rows(image, coeffs, scale=analysis.scale, strength=s.strength)
        fill = None
        if guide is not None and display:
            guide_image, bound = guide.image, analysis.colour_coefficients(c)
            if trend is not None:
                guide_image = apply_trend(guide_image, trend)
                bound = None if bound is None else trend_coefficients(bound, trend)
            fill = clipped_filler(image, guide_image, strength=s.strength, bound=bound)
        keep = static_keeper(analysis.static_mask(c), image, display=display)
        put, out = _output(frame, image, depth, owns_frames(source), t)
        for rows in row_bands(image.shape[0], image.shape[1], CACHE_BAND_PIXELS):
            band = corrected(rows)
            if fill is not None:
                fill(rows, band)
            if keep is not None:
                keep(rows, band)
            put(rows, band)
        return out

    def _render_whole(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings,
                      stage: str) -> np.ndarray:
        """Frame t at strength 0 (the input) or through the ``atlas`` stage, (H, W, C) float32."""
        if s.strength == 0.0:
            return np.array(source[t], dtype=np.float32, copy=True)
        from deflicker.method.slow_changes import apply_trend

        c = int(analysis.canonical[t])
        frame = source[c]
        trend = self._slow_trend(analysis, c, s)
        atlas = analysis.atlas_frame(c, size=frame.shape[:2], proxy=_checked_proxy(analysis, c, frame))
        atlas = (atlas if trend is None else apply_trend(atlas, trend)) * analysis.scale
        image = rgb(frame)
        return _with_alpha(image + s.strength * (atlas - image), frame)

    def _slow_trend(self, analysis: "ClipAnalysis", t: int, s: Settings) -> Optional[np.ndarray]:
        """The slow trend (2, 3: gains, offsets) of ``analysis``'s frame t's colour that the render keeps (Keep
        slow changes, :mod:`deflicker.method.slow_changes`), None when off or the atlas has no colour fit.
        One smoothing per shot and span, kept for the session (pure)."""
        from deflicker.method.atlas.fast import FastAtlas
        from deflicker.method.slow_changes import slow_colour, span_frames

        span = span_frames(int(s.keep_slow), self._fps)
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

    def _coefficients(self, analysis: "ClipAnalysis", source: FrameSource, t: int, s: Settings, stage: str,
                      frame: np.ndarray) -> tuple[np.ndarray, Optional["Guide"]]:
        """Final proxy-resolution coefficients of frame t (filter, stateless refinement, then the
        atlas's low frequencies in shots with local flicker) and its filter guide (None without
        the filter); ``frame`` is source frame t, already read (a host fetch is not repeated)."""
        from deflicker.method.refine import atlas_low_frequency, refine_coefficients

        c = int(analysis.canonical[t])
        frames = window(analysis, t, s, stage)
        prepared = {i: self._prepared(analysis, source, i, s, identity=(stage == "refine-only"),
                                      frame=frame if i == t else None) for i in frames}
        own = prepared[c]
        coeffs = own.coeffs
        level = analysis.local_level(c)
        if len(frames) > 1:
            flows = {i: self._flow(analysis, c, i, own.flow_proxy, prepared[i].flow_proxy, s) for i in frames if i != c}
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
        return self._memoized(  # type: ignore[no-any-return]
            key, lambda: estimate_flow(proxy_a, proxy_b, replace(s.flow, preset=REFINE_FLOW_PRESET)))

    def _memoized(self, key: tuple, make: Callable[[], Any]) -> Any:
        """The memo's value for ``key`` (now its most recently used), made by ``make()`` once: a
        render that needs a value another render is making waits for it rather than making it
        too (two workers starting side by side share most of their windows). The least recently
        used entries beyond the limit go."""
        with self._memo_lock:
            hit = self._memo.get(key)
            if hit is not None:
                self._memo.move_to_end(key)
                return hit
            waiting = self._making.get(key)
            if waiting is None:
                making: Future = Future()
                self._making[key] = making
        if waiting is not None:
            return waiting.result()  # the maker's value, or its error
        try:
            value = make()
        except BaseException as exc:
            with self._memo_lock:
                del self._making[key]
            making.set_exception(exc)
            raise
        with self._memo_lock:
            del self._making[key]
            self._memo[key] = value
            while len(self._memo) > self._memo_limit:
                self._memo.popitem(last=False)
        making.set_result(value)
        return value

    def _prepared(self, analysis: "ClipAnalysis", source: FrameSource, i: int, s: Settings, *, identity: bool,
                  frame: Optional[np.ndarray] = None) -> _Prepared:
        """Proxy, flow proxy and filter coefficients of source frame i (``frame``, when the caller read it),
        memoized (pure: same inputs, same bytes); the frame checked against its digest first."""
        key = (id(analysis), i, identity, s.filter, s.device)
        return self._memoized(key, lambda: self._prepare(analysis, source, i, s, identity, frame))  # type: ignore[no-any-return]

    def _prepare(self, analysis: "ClipAnalysis", source: FrameSource, i: int, s: Settings, identity: bool,
                 frame: Optional[np.ndarray]) -> _Prepared:
        """:meth:`_prepared`'s value, made."""
        from deflicker.method.correction import identity_coefficients
        from deflicker.method.filter import predict_coefficients

        if frame is None:  # a neighbour: only its proxies are made, from the pixels as stored
            frame = file_pixels(source, i)
        proxy, flow_proxy = _checked_proxy(analysis, i, frame), analysis.flow_proxy(frame)
        if identity:
            return _Prepared(proxy, flow_proxy, identity_coefficients(*proxy.shape[:2]))
        model = self._filter_model(s)
        guide = analysis.guide(i, proxy)
        coeffs = predict_coefficients(model, proxy, guide.image, guide.confidence, locality=s.filter.locality,
                                      reference=analysis.colour_coefficients(i), local_level=analysis.local_level(i))
        return _Prepared(proxy, flow_proxy, coeffs, guide)


def _output(frame: np.ndarray, image: Colour, depth: Optional[int], in_place: bool,
            t: int) -> tuple[Callable[[slice, np.ndarray], None], np.ndarray]:
    """(put, out): ``put(rows, colour)`` stores a band's rendered colour in ``out``, frame t's
    (H, W, C) result (float32, or ``depth``-bit pixels quantized a band at a time), with the
    frame's alpha rows. A float result goes into ``image`` itself where that is the render's own
    copy (``in_place``: the source hands out frames its caller owns, or the colour is a copy of a
    frame's): every step reads the frame only at and after the band it makes, going down it."""
    out: np.ndarray
    if depth is None and isinstance(image, np.ndarray) and frame.shape[2] == 3 and (
            in_place or not np.may_share_memory(image, frame)):
        out = image
    else:
        out = np.empty(frame.shape, np.float32 if depth is None else STORED_TYPES[depth])
    alpha = frame.shape[2] == 4

    def put(rows: slice, colour: np.ndarray) -> None:
        if depth is not None and not np.isfinite(colour.sum()):  # what the output's frame check finds in a float frame
            raise VideoIOError(f"frame {t} contains NaN or infinite pixel values")
        out[rows, :, :3] = colour if depth is None else quantize(colour, depth)
        if alpha:
            values = to_float(frame[rows, :, 3:])
            out[rows, :, 3:] = values if depth is None else quantize(values, depth)

    return put, out


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
