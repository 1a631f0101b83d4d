"""The object layer of the fast atlas: one more texture, for what moves on its own.

The shot's atlas maps the scene the camera sees; an object moving across it (a car, a person, a
cup carried through the frame) follows no mesh of that atlas. Where it moves unlike the mapping
the guide falls back to the frame itself, whose clipped highlights then flicker with the gain (a
white object clips in the brighter frames, and its normalized value is only a bound); where it
moves with the camera for a while, the atlas texture holds it smeared into the background.

The object layer follows the shot's dominant independently moving object with one similarity
per frame: chained from the neighbour flows at the pixels unlike the atlas mapping, and where too
few are (it moved nearly with the camera) by the median flow over the pixels its texture covers;
then registered to the object texture a few times (DIS flow, robust similarity, texture
re-splatted), as the atlas registers its frames. The texture holds the pixels that move on their
own (:meth:`FastAtlas.moving`), colour-normalized, the clipped ones left out: the object's
appearance, consistent over the shot, its highlights from the frames that did not clip them.
A per-frame trust (how well the layer shows the frame) switches it off where tracking was lost.
:meth:`FastAtlas.guide` takes it where it matches the frame's structure better than A_t, and for
clipped pixels off the atlas.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from deflicker.method.atlas.geometry import grid_matches, robust_similarity, sample_grid
from deflicker.method.atlas.texture import canvas_box, fill_holes, normalize_colour, splat, unclipped
from deflicker.method.flow import estimate_flow
from deflicker.progress import CancelCheck, check_cancel
from deflicker.settings import FlowSettings

if TYPE_CHECKING:
    from deflicker.method.atlas.fast import ShotFlows

#: FastAtlas.static (and agreement with A_t's structure) below which a pixel moves on its own.
MOVING = 0.5
#: Share of the shot's pixels that must move for an object layer to be fitted at all.
MIN_SHARE = 0.01
#: Moving flow correspondences a frame pair needs for its object similarity.
MIN_POINTS = 12
#: Largest object canvas, in multiples of the proxy area.
MAX_CANVAS = 4.0
#: Passes registering every frame's object pixels to the object texture (then re-splatting it).
REGISTER_PASSES = 4
#: DIS preset of those registrations (displacements of a fraction of a pixel to a few).
REGISTER_PRESET = "fast"
#: Share of the object texture's typical splat weight from which a texel counts as the object.
COVERED = 0.3
#: Median difference (normalized units) between a frame and the layer where the layer covers it,
#: up to which the layer is trusted fully in that frame (not at all from twice that).
TRUST_ERROR = 0.04


@dataclass
class ObjectLayer:
    """Object texture (Ho, Wo, 3) with its splat weight (Ho, Wo), and per frame the (2, 3) affine
    from frame pixels to texture pixels and how far the layer can be trusted there, in [0, 1]
    (it shows the frame's moving pixels: :func:`trust`)."""

    texture: np.ndarray
    weight: np.ndarray
    transforms: np.ndarray  # (n, 2, 3)
    trust: np.ndarray  # (n,)
    cover: float = field(init=False)  # splat weight from which a texel is the object

    def __post_init__(self) -> None:
        self.cover = cover_weight(self.weight)

    def frame(self, t: int, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """(object texture seen from frame t (h, w, 3), the pixels it covers (:meth:`covers`))."""
        mx, my = _maps(self.transforms[t], *shape)
        image = cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return image, _covered(self.weight, self.cover, mx, my)

    def covers(self, t: int, shape: tuple[int, int]) -> np.ndarray:
        """(h, w) bool: the pixels of frame t that the object texture covers (:func:`cover_weight`)."""
        return _covered(self.weight, self.cover, *_maps(self.transforms[t], *shape))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Plain arrays for the cache, keys starting with ``prefix``."""
        return {f"{prefix}texture": self.texture, f"{prefix}weight": self.weight, f"{prefix}transforms": self.transforms,
                f"{prefix}trust": self.trust}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str) -> Optional["ObjectLayer"]:
        """Rebuild from :meth:`to_arrays` output; None when the entry holds no object layer."""
        if f"{prefix}texture" not in arrays:
            return None
        return cls(np.asarray(arrays[f"{prefix}texture"], np.float32), np.asarray(arrays[f"{prefix}weight"], np.float32),
                   np.asarray(arrays[f"{prefix}transforms"], np.float64), np.asarray(arrays[f"{prefix}trust"], np.float64))


def cover_weight(weight: np.ndarray) -> float:
    """The splat weight from which a texel counts as the object: COVERED of its typical (90th
    percentile) weight, so that a halo few frames reached does not."""
    reached = weight[weight > 1e-3]
    return COVERED * (float(np.percentile(reached, 90)) if reached.size else 1.0)


def _covered(weight: np.ndarray, cover: float, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """(h, w) bool: the frame pixels at texture positions (``mx``, ``my``) whose weight reaches ``cover``."""
    seen = cv2.remap(weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return seen >= cover  # type: ignore[no-any-return]


def _to_affine(s: np.ndarray) -> np.ndarray:
    return np.vstack([s, [0.0, 0.0, 1.0]])


def _object_steps(moving: np.ndarray, flows: "ShotFlows", h: int, w: int,
                  cancel: Optional[CancelCheck] = None) -> list[Optional[np.ndarray]]:
    """Per neighbour pair (t, t+1) the object's similarity frame t+1 -> frame t, fitted to the
    flow at the pixels that move on their own in both; None where too few do (the object moved
    nearly with the camera there)."""

    steps: list[Optional[np.ndarray]] = []
    for t in range(len(flows.bw)):
        check_cancel(cancel)
        src, dst = grid_matches(flows.bw[t], flows.valid_bw[t], h, w)  # frame t+1 -> frame t
        sx, sy = src[:, 0].astype(int), src[:, 1].astype(int)
        dx = np.clip(np.round(dst[:, 0]).astype(int), 0, w - 1)
        dy = np.clip(np.round(dst[:, 1]).astype(int), 0, h - 1)
        keep = moving[t + 1][sy, sx] & moving[t][dy, dx]
        steps.append(robust_similarity(src[keep], dst[keep]) if keep.sum() >= MIN_POINTS else None)
    return steps


def _shifted(flow: np.ndarray, valid: np.ndarray, where: np.ndarray) -> np.ndarray:
    """(3, 3) translation by the median flow over ``where`` & ``valid`` (identity without any)."""
    on = where & valid
    out = np.eye(3)
    if on.sum() >= MIN_POINTS:
        out[:2, 2] = -np.median(flow[on].astype(np.float64), axis=0)
    return out


def _propagate(steps: list[Optional[np.ndarray]], flows: "ShotFlows", ref: int, first: np.ndarray,
               weight: Optional[np.ndarray] = None) -> np.ndarray:
    """(n, 3, 3) frame -> texture transforms from frame ``ref``'s (``first``): each frame from its
    neighbour's through the step between them, or where there is none, by the median flow over
    the neighbour's pixels that the texture's ``weight`` covers (the whole frame without one)."""
    n = len(steps) + 1
    out = np.zeros((n, 3, 3))
    out[ref] = first
    h, w = flows.fw.shape[1:3]

    cover = None if weight is None else cover_weight(weight)

    def covered(t: int) -> np.ndarray:
        if weight is None or cover is None:
            return np.ones((h, w), bool)
        return _covered(weight, cover, *_maps(out[t, :2], h, w))

    for t in range(ref + 1, n):  # frame t -> t-1 -> ... -> ref
        step = steps[t - 1]
        out[t] = out[t - 1] @ (_to_affine(step) if step is not None else
                               _shifted(flows.fw[t - 1], flows.valid_fw[t - 1], covered(t - 1)))
    for t in range(ref - 1, -1, -1):  # frame t -> t+1: the inverse of step t+1 -> t
        step = steps[t]
        out[t] = out[t + 1] @ (np.linalg.inv(_to_affine(step)) if step is not None else
                               _shifted(flows.bw[t], flows.valid_bw[t], covered(t + 1)))
    return out


def _canvas(to_ref: np.ndarray, moving: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """(3, 3) reference -> texture shift and the texture's (Ho, Wo): the box of every moving
    pixel's reference position, at most MAX_CANVAS proxy areas (:func:`canvas_box`)."""
    n, h, w = moving.shape
    ys, xs = np.nonzero(moving.reshape(n * h, w))
    frames, ys = ys // h, ys % h
    refs = np.einsum("kij,kj->ki", to_ref[frames][:, :2], np.stack([xs, ys, np.ones(len(xs))], 1))
    lo, scale, canvas = canvas_box(refs, h, w, MAX_CANVAS)
    return np.array([[scale, 0.0, -lo[0] * scale], [0.0, scale, -lo[1] * scale], [0.0, 0.0, 1.0]]), canvas


def _maps(a: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Texture positions (map_x, map_y), (h, w) float32 each, of a frame's pixels under ``a``."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = a.astype(np.float32)
    return a[0, 0] * xs + a[0, 1] * ys + a[0, 2], a[1, 0] * xs + a[1, 1] * ys + a[1, 2]


class _Frames:
    """The shot's frames as the object layer sees them, one at a time (no second copy of the
    shot): colour-normalized proxies and their splat weights (the moving pixels, clipped ones
    of ``display``-referred proxies all but left out: they only bound the scene)."""

    def __init__(self, proxies: np.ndarray, moving: np.ndarray, colour: np.ndarray, display: bool,
                 cancel: Optional[CancelCheck] = None):
        self.proxies, self.moving, self.colour, self.display = proxies, moving, colour, display
        self.cancel = cancel  # polled by every loop over the frames

    def normalized(self, t: int) -> np.ndarray:
        """Frame t with its colour transform undone, (h, w, 3) float32."""
        return normalize_colour(self.proxies[t], self.colour[t])

    def weights(self, t: int) -> np.ndarray:
        """Frame t's splat weights, (h, w) float64."""
        weight = self.moving[t].astype(np.float64)
        if self.display:
            weight *= np.where(unclipped(self.proxies[t]), 1.0, 1e-3)
        return weight


def _splat_layer(frames: _Frames, transforms: np.ndarray, canvas: tuple[int, int]) -> ObjectLayer:
    """The object layer of ``transforms``: every frame's moving pixels splatted into the texture."""
    n, h, w = frames.moving.shape
    acc = np.zeros((4, canvas[0] * canvas[1]))
    for t in range(n):
        check_cancel(frames.cancel)
        if frames.moving[t].any():
            mx, my = _maps(transforms[t], h, w)
            splat(acc, mx, my, frames.normalized(t).reshape(-1, 3).astype(np.float64), frames.weights(t).ravel(), canvas)
    weight = acc[3].reshape(canvas)
    texture = (acc[:3] / np.maximum(acc[3], 1e-9)).T.reshape(canvas[0], canvas[1], 3)
    return ObjectLayer(fill_holes(texture, weight).astype(np.float32), weight.astype(np.float32), transforms, np.ones(n))


def _register(layer: ObjectLayer, t: int, normalized: np.ndarray, points: np.ndarray, flow: FlowSettings) -> np.ndarray:
    """Frame t's transform refitted so that its object pixels (``points``) land on the object
    texture: DIS flow from the normalized frame to the texture seen from the frame, robust
    similarity."""

    h, w = points.shape
    ys, xs = sample_grid(h, w)
    on = points[ys, xs]
    if on.sum() < MIN_POINTS:
        return layer.transforms[t]
    seen, _ = layer.frame(t, (h, w))
    d = estimate_flow(normalized, seen, replace(flow, preset=REGISTER_PRESET))
    src = np.stack([xs[on], ys[on]], 1).astype(np.float64)
    a = layer.transforms[t]
    dst = (src + d[ys[on], xs[on]].astype(np.float64)) @ a[:, :2].T + a[:, 2]
    return robust_similarity(src, dst)


def _points(layer: ObjectLayer, t: int, unmapped: np.ndarray) -> np.ndarray:
    """The pixels frame t registers to the object texture by: those unlike the atlas mapping, or
    where too few are (it moved nearly with the camera), those the texture covers."""
    return unmapped if unmapped.sum() >= 4 * MIN_POINTS else layer.covers(t, unmapped.shape)


def fit_object_layer(proxies: np.ndarray, moving: np.ndarray, unmapped: np.ndarray, colour: np.ndarray,
                     flows: "ShotFlows", flow: FlowSettings = FlowSettings(),
                     display: bool = True, cancel: Optional[CancelCheck] = None) -> Optional[ObjectLayer]:
    """The object layer of one shot from its (n, h, w, 3) proxies, two (n, h, w) bool masks: what
    moves on its own (``moving``: unlike the atlas mapping and its structure unlike A_t's) and
    what is only unlike the mapping (``unmapped``, a margin around the object included), the
    (n, 2, 3) colour transforms and the flows; None when too little moves."""
    n, h, w, _ = proxies.shape
    if n < 2 or moving.mean() < MIN_SHARE:
        return None
    ref = int(np.argmax(moving.reshape(n, -1).sum(1)))
    steps = _object_steps(unmapped, flows, h, w, cancel)
    shift, canvas = _canvas(_propagate(steps, flows, ref, np.eye(3)), moving)
    frames = _Frames(proxies, moving, colour, display, cancel)
    layer = _splat_layer(frames, _propagate(steps, flows, ref, shift)[:, :2], canvas)
    # Where the object moved nearly with the camera, follow the flow where the texture has it.
    layer = _splat_layer(frames, _propagate(steps, flows, ref, shift, layer.weight)[:, :2], canvas)
    for _ in range(REGISTER_PASSES):
        transforms = np.zeros((n, 2, 3))
        for t in range(n):
            check_cancel(cancel)
            transforms[t] = _register(layer, t, frames.normalized(t), _points(layer, t, unmapped[t]), flow)
        layer = _splat_layer(frames, transforms, canvas)
    layer.trust = np.ones(n)
    for t in range(n):
        check_cancel(cancel)
        layer.trust[t] = trust(layer, t, frames)
    return layer


def trust(layer: ObjectLayer, t: int, frames: _Frames) -> float:
    """How well the layer shows frame t where it covers it (unclipped pixels), in [0, 1]: 1 up to
    a median difference of TRUST_ERROR (normalized units), 0 from twice that (tracking lost);
    1 where it covers too little of the frame to tell."""
    seen, on = layer.frame(t, frames.moving.shape[1:])
    if frames.display:
        on &= unclipped(frames.proxies[t])
    if on.sum() < MIN_POINTS:
        return 1.0
    error = float(np.median(np.abs(seen - frames.normalized(t))[on].mean(-1)))
    return float(np.clip(2.0 - error / TRUST_ERROR, 0.0, 1.0))
