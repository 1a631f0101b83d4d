"""The per-clip analysis: proxies, repeated frames, shot cuts, flows, static regions and one atlas per shot.

``analyze_clip(source, settings)`` streams the clip once (one frame in memory at full
resolution), keeps brightness-normalizable proxies of ``analysis_size`` on the long side,
and returns a :class:`ClipAnalysis`: everything a render of any frame needs besides the
source frames themselves. Memory grows with proxy size x frame count, never with the clip's
resolution. The result is plain arrays (``to_arrays``/``from_arrays``) for the disk cache.

An :class:`AnalysisWork` handed to ``analyze_clip`` keeps what the analysis has done (frames
read, flows, shot atlases); when the analysis is cancelled, the next call with the same work
goes on from there and gives the same result as an uninterrupted one.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional, Union

import cv2
import numpy as np

from deflicker.method.atlas.fast import FastAtlas, ShotFlows, fit_fast
from deflicker.method.content import CODE_SCALE, DIGEST_SIZE, ContentDigests, code_thumbnail, content_digest
from deflicker.errors import ModelLoadError
from deflicker.method.flow import flow_input, flow_pair, flows_both
from deflicker.method.image import frame_proxy, local_contrast, local_correlation, proxy_shape, resize
from deflicker.progress import CancelCheck, Progress, check_cancel, report, scaled
from deflicker.method.repeats import exact_key, is_repeat
from deflicker.settings import Settings
from deflicker.io.source import FrameSource, file_pixels
from deflicker.method import static_regions
from deflicker.method.warp import inside_mask, warp

log = logging.getLogger(__name__)

#: Bumped whenever the analysis or its stored layout changes (old cache entries recompute).
FORMAT_VERSION = 16

Atlas = Union[FastAtlas, Any]  # FastAtlas or deflicker.method.atlas.neural.NeuralAtlas


class Guide(NamedTuple):
    """The filter's guide for one frame, all at proxy size, float32."""

    image: np.ndarray  # (h, w, 3) proxy units: A_t, the frame's own pixels where A_t does not show it
    confidence: np.ndarray  # (h, w) in [0, 1]: where the image's structure can be trusted
    represented: np.ndarray  # (h, w) in [0, 1]: where the image is A_t (the atlas shows the frame)

#: A shot's local-flicker level ramps from 0 to 1 as the median over its frames of
#: :func:`local_mismatch` goes from LOCAL_LOW to LOCAL_HIGH (proxy units). Measured on the
#: synthetic set: global-flicker clips 0.004-0.008, time-lapse 0.012, processed 0.007-0.019,
#: local gain fields and mains bands 0.026-0.045.
LOCAL_LOW = 0.012
LOCAL_HIGH = 0.02


def clip_scale(proxies: np.ndarray) -> float:
    """Full-resolution units per proxy unit: 1 for display-referred clips, the clip's bright
    end (99.9th percentile) for HDR/float clips above 1.0, so proxies sit near [0, 1]."""
    high = float(np.percentile(proxies[:, ::2, ::2], 99.9)) if proxies.size else 1.0
    return max(1.0, high)


#: Proxies whose mean local contrast (luma std over 7x7 windows, proxy units) is below this hold
#: no structure to compare (a clear sky, a black frame, the bottom of a fade): two such
#: neighbours do not make a cut, whatever their brightness does (that may be the flicker).
FLAT_FRAME = 0.008


def cut_score(a: np.ndarray, b: np.ndarray, flow_ab: np.ndarray, valid_ab: np.ndarray) -> float:
    """1 - (correlation of frame a with frame b warped into it, brightness normalized) x
    (share of consistent flow, saturating at half the frame): near 0 within a shot, near 1 at a
    cut; 0 between two flat frames (FLAT_FRAME)."""
    if float(local_contrast(a).mean()) < FLAT_FRAME and float(local_contrast(b).mean()) < FLAT_FRAME:
        return 0.0
    ya = flow_input(a).astype(np.float32)
    yb = warp(flow_input(b).astype(np.float32), flow_ab)
    inside = inside_mask(flow_ab)
    if inside.mean() < 0.2:
        return 1.0
    ya, yb = ya[inside], yb[inside]
    ya, yb = ya - ya.mean(), yb - yb.mean()
    den = float(np.sqrt((ya * ya).sum() * (yb * yb).sum()))
    ncc = max(0.0, float((ya * yb).sum()) / den) if den > 1e-9 else 0.0
    return 1.0 - ncc * min(1.0, float(valid_ab.mean()) / 0.5)


@dataclass
class ClipAnalysis:
    """One clip's analysis. Shot s covers frames ``shots[s]:shots[s+1]``; repeated frames map
    to their first occurrence through ``canonical``. Proxies are ``rgb / scale`` at ``shape``."""

    shape: tuple[int, int]
    scale: float
    canonical: np.ndarray
    shots: np.ndarray
    atlases: list
    method: str = "fast"
    local_levels: Optional[np.ndarray] = None  # per shot, in [0, 1]; None: treat every shot as local
    static: Optional[np.ndarray] = None  # (shots, h, w) bool: static_regions.static_mask per shot; None: none
    content: Optional[ContentDigests] = None  # what it was made from (deflicker.method.content; the cache stores it)
    frame_means: Optional[np.ndarray] = None  # (n, 3) every frame's mean proxy colour (proxy units)

    @property
    def frame_count(self) -> int:
        """Frames in the clip."""
        return len(self.canonical)

    def shot_index(self, t: int) -> int:
        """The shot holding frame t."""
        return int(np.searchsorted(self.shots, t, side="right") - 1)

    def shot_range(self, t: int) -> tuple[int, int]:
        """[start, end) of frame t's shot."""
        s = self.shot_index(t)
        return int(self.shots[s]), int(self.shots[s + 1])

    def _shot_atlas(self, t: int) -> tuple[Atlas, int]:
        """Frame t's shot atlas and t's index inside that shot."""
        s = self.shot_index(t)
        return self.atlases[s], t - int(self.shots[s])

    def proxy(self, frame: np.ndarray) -> np.ndarray:
        """The analysis proxy of a full-resolution frame (float, or the integer pixels a file
        stores: the same proxy), (h, w, 3) float32 proxy units: an array of its own, never the
        frame's memory (a render writes its result into a frame it owns, while the proxy stays
        memoized for its neighbours' windows): :func:`frame_proxy` over ``scale``."""
        p = frame_proxy(frame, self.shape)
        return p if self.scale == 1.0 else p / np.float32(self.scale)

    def flow_proxy(self, frame: np.ndarray) -> np.ndarray:
        """The proxy of a full-resolution frame's 8-bit code values (:func:`~deflicker.method.content.code_values`),
        (h, w, 3) float32 proxy units: what render-time flows are estimated on.

        DIS is not continuous in its input: frames that differ by a fraction of a code value (the
        same media as 8-bit, half or float) gave flows pixels apart, and 8-bit media rendered
        up to 9/255 apart with local refinement on. Frames with the same code values get the
        same flows, bit for bit.
        """
        p = code_thumbnail(frame, self.shape, unit=1.0 / CODE_SCALE)
        return p if self.scale == 1.0 else p / np.float32(self.scale)

    def atlas_frame(self, t: int, size: Optional[tuple[int, int]] = None,
                    proxy: Optional[np.ndarray] = None) -> np.ndarray:
        """A_t in proxy units, (h, w, 3) float32, resized to ``size`` = (H, W) if given.

        With frame t's ``proxy``, the guide the filter uses: A_t where the frame follows the
        atlas mapping, the gain-normalized frame itself on independently moving objects.
        """
        if proxy is not None:
            frame = self.guide(t, proxy).image
        else:
            atlas, local = self._shot_atlas(t)
            frame = atlas.frame(local)
        return frame if size is None else resize(frame, size)

    def guide(self, t: int, proxy: np.ndarray) -> Guide:
        """The filter's guide for frame t (see :meth:`atlas_frame`), where its structure can be
        trusted, and where it is the atlas itself (:class:`Guide`). Neither holds on the shot's
        static regions: the atlas follows the moving picture, so there it shows other frames'
        content (and the render passes those pixels through anyway)."""
        atlas, local = self._shot_atlas(t)
        if not isinstance(atlas, FastAtlas):
            image = atlas.frame(local)
            trusted = self._off_static(t, cv2.GaussianBlur(local_correlation(proxy, image), (0, 0), 1.5))
            return Guide(image, trusted, trusted)
        image, keep, coverage = atlas.guide(local, proxy, display=self.scale == 1.0)
        conf = local_correlation(proxy, image)
        conf *= keep * np.clip(coverage / 2.0, 0.0, 1.0) + (1.0 - keep)
        return Guide(image, self._off_static(t, cv2.GaussianBlur(conf, (0, 0), 1.5)), self._off_static(t, keep))

    def _off_static(self, t: int, weight: np.ndarray) -> np.ndarray:
        """A (h, w) weight of frame t set to 0 on its shot's static regions."""
        mask = self.static_mask(t)
        return weight if mask is None else np.where(mask, np.float32(0.0), weight).astype(np.float32)

    def colour_coefficients(self, t: int) -> Optional[np.ndarray]:
        """Frame t's fitted colour transform as a 12-vector of :mod:`deflicker.method.correction`
        (P -> (P - b) / g: the frame in the atlas's appearance), None for atlases without one."""
        atlas, local = self._shot_atlas(t)
        if not isinstance(atlas, FastAtlas):
            return None
        g, b = atlas.colour[local].astype(np.float64)
        return np.concatenate([np.diag(1.0 / g).ravel(), -b / g]).astype(np.float32)

    def local_level(self, t: int) -> float:
        """How local the flicker of frame t's shot is, in [0, 1] (see :func:`local_flicker_level`)."""
        return 1.0 if self.local_levels is None else float(self.local_levels[self.shot_index(t)])

    def atlas_confidence(self, t: int, proxy: np.ndarray) -> np.ndarray:
        """Where the guide's structure can be trusted for frame t's proxy, (h, w) float32 in [0, 1]."""
        return self.guide(t, proxy).confidence

    def static_mask(self, t: int) -> Optional[np.ndarray]:
        """Frame t's shot's static regions (:mod:`deflicker.method.static_regions`), (h, w) bool; None: none."""
        if self.static is None:
            return None
        mask = self.static[self.shot_index(t)]
        return mask if mask.any() else None

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the cache (``shotN.name`` per shot atlas)."""
        out = {"version": np.array(FORMAT_VERSION), "shape": np.array(self.shape), "scale": np.array(self.scale),
               "canonical": self.canonical, "shots": self.shots, "method": np.array(self.method)}
        if self.local_levels is not None:
            out["local_levels"] = self.local_levels
        if self.static is not None:
            out["static"] = self.static
        if self.frame_means is not None:
            out["frame_means"] = self.frame_means
        for i, atlas in enumerate(self.atlases):
            out.update({f"shot{i}.{k}": v for k, v in atlas.to_arrays().items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "ClipAnalysis":
        """Rebuild from :meth:`to_arrays`; ModelLoadError on another version or missing parts."""
        try:
            if int(arrays["version"]) != FORMAT_VERSION:
                raise ModelLoadError(f"analysis format {int(arrays['version'])}, expected {FORMAT_VERSION}")
            method = str(arrays["method"])
            shots = np.asarray(arrays["shots"], np.int64)
            kind = _atlas_class(method)
            atlases = []
            for i in range(len(shots) - 1):
                prefix = f"shot{i}."
                atlases.append(kind.from_arrays({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}))
            shape = tuple(int(v) for v in arrays["shape"])
            levels, static, means = arrays.get("local_levels"), arrays.get("static"), arrays.get("frame_means")
            return cls(shape=(shape[0], shape[1]), scale=float(arrays["scale"]),
                       canonical=np.asarray(arrays["canonical"], np.int64), shots=shots, atlases=atlases, method=method,
                       local_levels=None if levels is None else np.asarray(levels, np.float64),
                       static=None if static is None else np.asarray(static, bool),
                       frame_means=None if means is None else np.asarray(means, np.float64))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelLoadError(f"incomplete analysis: {exc}") from None


def _atlas_class(method: str) -> Any:
    if method == "neural":
        from deflicker.method.atlas.neural import NeuralAtlas

        return NeuralAtlas
    return FastAtlas


@dataclass
class AnalysisWork:
    """What an analysis of one clip has done so far (module doc); its memory is the analysis's."""

    proxies: Optional[np.ndarray] = None  # (n, h, w, 3) float16, the first ``read`` filled
    canonical: Optional[np.ndarray] = None
    digests: Optional[np.ndarray] = None
    seen: dict[bytes, int] = field(default_factory=dict)
    read: int = 0
    scale: Optional[float] = None  # set once every frame is read and the proxies are divided by it
    flows: Optional[tuple[np.ndarray, ...]] = None  # fw, valid_fw, bw, valid_bw, cut scores
    flowed: int = 0
    atlases: list = field(default_factory=list)  # of the first shots

    @property
    def started(self) -> bool:
        """True once any frame was read."""
        return self.read > 0


def read_proxies(source: FrameSource, settings: Settings, progress: Optional[Progress],
                 cancel: Optional[CancelCheck], work: Optional[AnalysisWork] = None
                 ) -> tuple[np.ndarray, np.ndarray, ContentDigests]:
    """(proxies (n, h, w, 3) float16 in clip units, canonical (n,), the frames' content digests
    (:func:`deflicker.method.content.content_digest`, the same from any source format)) in one
    pass over the clip;
    a frame's canonical frame is its first exact occurrence (the same proxy,
    :func:`deflicker.method.repeats.exact_key`) or, for a near-identical repeat of the previous
    distinct frame (:func:`deflicker.method.repeats.is_repeat`), that frame.

    Proxies are stored at half precision (relative error 1e-3; appearance is low-frequency), so
    a 1000-frame clip at the default 256-pixel proxy holds about 220 MB.
    """
    n = len(source)
    work = work if work is not None else AnalysisWork()
    first = None
    if work.proxies is None:
        first = file_pixels(source, 0)
        shape = proxy_shape(first.shape[0], first.shape[1], settings.analysis_size)
        work.proxies = np.empty((n, *shape, 3), np.float16)
        work.canonical = np.arange(n, dtype=np.int64)
        work.digests = np.empty((n, DIGEST_SIZE), np.uint8)
    proxies, canonical, digests, seen = work.proxies, work.canonical, work.digests, work.seen
    assert canonical is not None and digests is not None
    shape = (proxies.shape[1], proxies.shape[2])
    for t in range(work.read, n):
        check_cancel(cancel)
        frame = first if t == 0 and first is not None else file_pixels(source, t)  # as stored: no float frame
        proxies[t] = frame_proxy(frame, shape)
        digests[t] = content_digest(frame, shape)
        canonical[t] = seen.setdefault(exact_key(proxies[t]), t)  # an exact repeat: the same proxy
        if canonical[t] == t and t > 0 and is_repeat(proxies[t], proxies[canonical[t - 1]]):
            canonical[t] = canonical[t - 1]  # a lossy-coded repeat of the previous distinct frame
        work.read = t + 1
        report(progress, (t + 1) / n, f"reading frame {t + 1}/{n}")
    return proxies, canonical, ContentDigests(digests, shape)


def neighbour_flows(proxies: np.ndarray, settings: Settings, progress: Optional[Progress],
                    cancel: Optional[CancelCheck], work: Optional[AnalysisWork] = None
                    ) -> tuple[np.ndarray, ...]:
    """fw, valid_fw, bw, valid_bw (float16 flows) between neighbours, and each pair's cut score
    (the pairs ``work`` holds are not computed again)."""
    n, h, w, _ = proxies.shape
    work = work if work is not None else AnalysisWork()
    if work.flows is None:
        fw = np.zeros((max(0, n - 1), h, w, 2), np.float16)
        vfw = np.zeros((max(0, n - 1), h, w), bool)
        work.flows = (fw, vfw, np.zeros_like(fw), np.zeros_like(vfw), np.zeros(max(0, n - 1)))
    fw, vfw, bw, vbw, scores = work.flows
    for t in range(work.flowed, n - 1):
        check_cancel(cancel)
        f, vf, b, vb = flows_both(proxies[t], proxies[t + 1], settings.flow)
        fw[t], vfw[t], bw[t], vbw[t] = f, vf, b, vb
        scores[t] = cut_score(proxies[t], proxies[t + 1], f, vf)
        work.flowed = t + 1
        report(progress, (t + 1) / max(1, n - 1), f"flow {t + 1}/{n - 1}")
    return work.flows


def shot_flows(proxies: np.ndarray, flows: tuple[np.ndarray, ...], start: int, end: int, settings: Settings,
               cancel: Optional[CancelCheck] = None) -> ShotFlows:
    """The flows of frames [start, end) (float16 views, no copies), plus direct keyframe flows."""
    fw, vfw, bw, vbw = (f[start:end - 1] for f in flows[:4])
    gap = settings.atlas.key_gap
    keys = []
    for t in range(start, end - gap, gap):
        check_cancel(cancel)
        f, v = flow_pair(proxies[t], proxies[t + gap], settings.flow)
        keys.append((t - start, t - start + gap, f, v))
    return ShotFlows(fw, vfw, bw, vbw, tuple(keys))


def analyze_clip(source: FrameSource, settings: Settings, progress: Optional[Progress] = None,
                 cancel: Optional[CancelCheck] = None, work: Optional[AnalysisWork] = None) -> ClipAnalysis:
    """Analyse a clip (module doc). Raises Cancelled when ``cancel`` says so; ``work`` then
    keeps what was done, and a call with it resumes."""
    work = work if work is not None else AnalysisWork()
    proxies, canonical, content = read_proxies(source, settings, scaled(progress, 0.0, 0.4), cancel, work)
    if work.scale is None:
        work.scale = clip_scale(proxies)
        if work.scale != 1.0:
            proxies /= np.float16(work.scale)
    scale = work.scale
    flows = neighbour_flows(proxies, settings, scaled(progress, 0.4, 0.75), cancel, work)
    cuts = [t + 1 for t, s in enumerate(flows[4]) if s > settings.atlas.cut_threshold]
    shots = np.array([0, *cuts, len(proxies)], np.int64)
    log.info("analysis: %d frames, %d shot(s), %d repeated frame(s), scale %.3g", len(proxies), len(shots) - 1,
             int((canonical != np.arange(len(canonical))).sum()), scale)
    atlases = work.atlases
    for i in range(len(atlases), len(shots) - 1):
        start, end = int(shots[i]), int(shots[i + 1])
        part = scaled(progress, 0.75 + 0.25 * start / len(proxies), 0.75 + 0.25 * end / len(proxies))
        sflows = shot_flows(proxies, flows, start, end, settings, cancel)
        atlases.append(fit_shot(proxies[start:end], sflows, settings, part, cancel, display=scale == 1.0))
    static = np.stack([static_regions.static_mask(proxies[int(shots[i]):int(shots[i + 1])], display=scale == 1.0)
                       for i in range(len(shots) - 1)])
    analysis = ClipAnalysis(shape=(proxies.shape[1], proxies.shape[2]), scale=scale, canonical=canonical, shots=shots,
                            atlases=list(atlases), method=settings.method, static=static, content=content,
                            frame_means=np.array([p.mean(axis=(0, 1), dtype=np.float64) for p in proxies]))
    if all(isinstance(a, FastAtlas) for a in atlases):
        analysis.local_levels = np.array([local_flicker_level(analysis, proxies, int(shots[i]), int(shots[i + 1]), cancel)
                                          for i in range(len(atlases))])
    report(progress, 1.0, "analysis done")
    return analysis


def local_mismatch(guide: np.ndarray, normalized: np.ndarray, confidence: np.ndarray) -> float:
    """Confidence-weighted mean of the low-frequency difference between a frame's guide and the
    frame with its fitted global colour undone (proxy units): structure differences average
    out at that scale, a local gain field (local flicker, per-frame local processing) does not."""
    sigma = max(guide.shape[:2]) / 16.0
    diff = cv2.GaussianBlur((guide - normalized).astype(np.float32), (0, 0), sigma)
    weight = np.asarray(confidence, np.float64)
    return float((np.abs(diff).max(-1) * weight).sum() / max(weight.sum(), 1e-9))


def local_flicker_level(analysis: ClipAnalysis, proxies: np.ndarray, start: int, end: int,
                        cancel: Optional[CancelCheck] = None) -> float:
    """The local-flicker level in [0, 1] of shot [start, end) (LOCAL_LOW .. LOCAL_HIGH): 0 where
    each frame's global colour transform explains its flicker, 1 where local correction is needed.
    The shot's static regions count as explained (the guide there shows other frames' picture)."""
    from deflicker.method.atlas.texture import normalize_colour

    atlas = analysis.atlases[analysis.shot_index(start)]
    static = analysis.static_mask(start)
    mismatch = []
    for t in range(start, end, max(1, (end - start) // 64)):  # at most ~64 frames a shot
        check_cancel(cancel)
        proxy = proxies[t].astype(np.float32)
        guide = analysis.guide(t, proxy)
        normalized = normalize_colour(proxy, atlas.colour[t - start])
        image = guide.image if static is None else np.where(static[..., None], normalized, guide.image)
        mismatch.append(local_mismatch(image, normalized, guide.confidence))
    return float(np.clip((np.median(mismatch) - LOCAL_LOW) / (LOCAL_HIGH - LOCAL_LOW), 0.0, 1.0))


def fit_shot(proxies: np.ndarray, flows: ShotFlows, settings: Settings, progress: Optional[Progress],
             cancel: Optional[CancelCheck], display: bool = True) -> Atlas:
    """The atlas of one shot with the settings' method."""
    if settings.method == "neural":
        from deflicker.method.atlas.neural import fit_neural
        from deflicker.method.filter import resolve_device

        wide = ShotFlows(flows.fw.astype(np.float32), flows.valid_fw, flows.bw.astype(np.float32), flows.valid_bw,
                         flows.keys)
        return fit_neural(proxies.astype(np.float32), wide, settings.atlas, device=str(resolve_device(settings.device)),
                          progress=progress, cancel=cancel)
    return fit_fast(proxies, flows, settings.atlas, settings.flow, display=display, progress=progress, cancel=cancel)
