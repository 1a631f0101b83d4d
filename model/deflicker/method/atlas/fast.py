"""The fast flawed atlas of one shot: an explicit texture plus a smooth mapping per frame.

Every frame t of a shot maps into one shared 2D atlas through ``M_t``: a bilinear mesh of
``residual_grid`` cells on the frame's long side whose node positions are fitted jointly for
all frames. The losses are the paper's, restricted so that they are quadratic in the node
positions and solved exactly (sparse least squares, a few iteratively reweighted passes):

* **flow consistency**: a pixel x of frame t and its flow partner x + f_{t->s} in frame s map
  to the same atlas point, for neighbouring frames and for keyframe pairs further apart
  (these bound long-term drift);
* **rigidity**: each mesh edge keeps the length and orientation given by the frame's global
  similarity motion (chained from the flows), so the mesh can bend smoothly but not collapse;
* **anchor**: the shot's middle frame defines atlas coordinates.

The texture is then the minimizer of the RGB reconstruction loss given the mapping, with a
per-frame affine colour in the reconstruction (``P_t ~ g_t * T(M_t(x)) + b_t``, per channel):
alternately the mean of every frame's colour-normalized pixels splatted into the atlas, and each
frame's gains and offsets fitted against the texture. Without them, content seen by only a few
frames (the edges of a pan) would keep those frames' flicker and the atlas would drift in
brightness. ``A_t`` samples it back through ``M_t``: temporally consistent (one texture for the shot) but structurally flawed (moving
objects and mapping errors blur or ghost), which is what the neural filter expects.

Chained flows drift (a small bias per frame adds up over a shot), so the fit ends with
passes that register every frame directly to the texture (the role of the paper's
reconstruction loss for the mapping): DIS flow from the colour-normalized frame to A_t,
nodes refitted to it, texture re-splatted. Where a frame's pixels stay unlike A_t after that
(and unlike the flow mesh), they move on their own: ``FastAtlas.static``. The shot's dominant
moving object gets a texture of its own, :mod:`deflicker.method.atlas.object_layer`.

Memory: the fit holds the shot's proxies and flows (proxy size x frame count); the result
is the texture plus ``(n, gh, gw, 2)`` node positions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Optional

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from deflicker.method.atlas.geometry import (IDENTITY, compose, grid_matches, robust_similarity, robust_weights, sample_grid,
                                             sample_stride)
from deflicker.method.atlas.object_layer import MOVING, ObjectLayer, fit_object_layer
from deflicker.method.atlas.texture import (bound_texels, canvas_box, censored, clipped_amount, fill_holes, normalize_colour,
                                            splat, unclipped)
from deflicker.method.flow import estimate_flow
from deflicker.method.image import local_contrast, local_correlation
from deflicker.progress import CancelCheck, Progress, check_cancel, report
from deflicker.settings import AtlasSettings, FlowSettings

log = logging.getLogger(__name__)

#: Largest atlas canvas, in multiples of the proxy area (long pans get a coarser atlas).
MAX_CANVAS = 12.0
#: Splat weight of a texel's unclipped observations under which the bounds of its clipped
#: channels decide (:func:`splat_texture`): less than a twentieth of one mapped frame.
CENSORED_SEEN = 0.05
#: Mesh residual (atlas pixels) up to which a pixel counts as following the mapping.
MOTION_OK = 1.5
#: Local structure correlation below which A_t does not represent the frame (ramps to 2x).
AGREE_LOW = 0.25
#: Local contrast (luma std) below which a region counts as flat: any guide represents it.
FLAT = 0.03
#: Alternations between the texture and the per-frame colour transforms.
GAIN_PASSES = 3
#: Spread (std, proxy units) below which a channel of A_t is flat for the colour fit.
FLAT_CHANNEL = 0.01
#: Reweighted passes of the per-frame colour fit, and its Tukey cut-off in robust standard
#: deviations (1.4826 MAD) of the residuals. The trimmed least squares it replaced (worst 20%
#: dropped twice) kept a bias of up to 4% in a channel's gain, which drifted per-frame white
#: balance (grey-world) through the shot; the biweight follows the true gains to ~0.5%.
COLOUR_PASSES = 6
COLOUR_TUKEY = 4.685
#: Passes registering every frame to the fitted texture (then re-splatting it): they remove
#: the drift that chained flows accumulate, as the paper's reconstruction loss does. On the
#: 600-frame synthetic pan, 2 passes left up to 2.5 px of drift against frame 0, 4 under 0.8 px.
REGISTER_PASSES = 4
#: DIS preset of the registration flows: their displacements are fractions of a pixel, and
#: "fast" registers as well as "medium" on the synthetic clips in a fraction of the time.
REGISTER_PRESET = "fast"
#: Weight of the mesh-shape term of a frame's registration, relative to one flow point.
REGISTER_STIFFNESS = 2.0


@dataclass(frozen=True)
class ShotFlows:
    """Flows between neighbouring frames of one shot, at proxy resolution.

    ``fw[t]`` = f_{t->t+1}, ``bw[t]`` = f_{t+1->t}: (n-1, h, w, 2) float16 or float32; ``valid_*`` (n-1, h, w)
    bool from the forward-backward check. ``keys`` holds direct keyframe flows
    ``(t, s, f_{t->s}, valid)`` between frames further apart (``AtlasSettings.key_gap``).
    """

    fw: np.ndarray
    valid_fw: np.ndarray
    bw: np.ndarray
    valid_bw: np.ndarray
    keys: tuple[tuple[int, int, np.ndarray, np.ndarray], ...] = ()


def mesh_weights(length: int, cells: int) -> np.ndarray:
    """Bilinear hat weights (length, cells + 1) of pixels 0..length-1 on a mesh spanning them."""
    pos = np.arange(length, dtype=np.float64) * (cells / max(1, length - 1))
    lo = np.minimum(np.floor(pos).astype(int), cells - 1)
    frac = pos - lo
    out = np.zeros((length, cells + 1), np.float64)
    out[np.arange(length), lo] = 1.0 - frac
    out[np.arange(length), lo + 1] = frac
    return out


def grid_shape(h: int, w: int, cells: int) -> tuple[int, int]:
    """Mesh cells (gh, gw) for an (h, w) frame: ``cells`` on the long side, at least 1."""
    if w >= h:
        return max(1, int(round(cells * h / w))), cells
    return cells, max(1, int(round(cells * w / h)))


@dataclass(frozen=True)
class _Pairs:
    """Flow correspondences: frame indices and pixel positions of both ends."""

    t: np.ndarray
    s: np.ndarray
    xt: np.ndarray  # (k, 2)
    xs: np.ndarray  # (k, 2)


def _sample_pairs(flows: ShotFlows, h: int, w: int, cancel: Optional[CancelCheck] = None) -> _Pairs:
    """Valid correspondences on the sample grid for every neighbour and keyframe pair."""
    ts, ss, pt, ps = [], [], [], []

    def add(t: int, s: int, flow: np.ndarray, valid: np.ndarray) -> None:
        src, dst = grid_matches(flow, valid, h, w)
        ts.append(np.full(len(src), t))
        ss.append(np.full(len(src), s))
        pt.append(src)
        ps.append(dst)

    for t in range(len(flows.fw)):
        check_cancel(cancel)
        add(t, t + 1, flows.fw[t], flows.valid_fw[t])
        add(t + 1, t, flows.bw[t], flows.valid_bw[t])
    for t, s, flow, valid in flows.keys:
        add(t, s, flow, valid)
    if not ts:
        empty = np.zeros((0, 2))
        return _Pairs(np.zeros(0, int), np.zeros(0, int), empty, empty)
    return _Pairs(np.concatenate(ts), np.concatenate(ss), np.concatenate(pt), np.concatenate(ps))


def chain_similarities(flows: ShotFlows, n: int, ref: int, h: int, w: int,
                       cancel: Optional[CancelCheck] = None) -> np.ndarray:
    """Global similarity (n, 2, 3) of every frame into the reference frame's coordinates."""
    out = np.zeros((n, 2, 3))
    out[ref] = IDENTITY

    def step(flow: np.ndarray, valid: np.ndarray) -> np.ndarray:  # similarity src-frame -> dst-frame
        src, dst = grid_matches(flow, valid, h, w)
        return robust_similarity(src, dst) if len(src) >= 8 else IDENTITY.copy()

    for t in range(ref + 1, n):  # frame t -> t-1 uses bw[t-1] = f_{t->t-1}
        check_cancel(cancel)
        out[t] = compose(out[t - 1], step(flows.bw[t - 1], flows.valid_bw[t - 1]))
    for t in range(ref - 1, -1, -1):  # frame t -> t+1 uses fw[t]
        check_cancel(cancel)
        out[t] = compose(out[t + 1], step(flows.fw[t], flows.valid_fw[t]))
    return out


def _basis(points: np.ndarray, h: int, w: int, gh: int, gw: int) -> tuple[np.ndarray, np.ndarray]:
    """Mesh node indices (k, 4) and bilinear weights (k, 4) of pixel positions (k, 2)."""
    u = np.clip(points[:, 0] * (gw / max(1, w - 1)), 0, gw - 1e-9)
    v = np.clip(points[:, 1] * (gh / max(1, h - 1)), 0, gh - 1e-9)
    x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
    fx, fy = u - x0, v - y0
    stride = gw + 1
    idx = np.stack([y0 * stride + x0, y0 * stride + x0 + 1, (y0 + 1) * stride + x0, (y0 + 1) * stride + x0 + 1], 1)
    wts = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
    return idx, wts


def _edges(gh: int, gw: int) -> np.ndarray:
    """Mesh edges (e, 2) as node index pairs (horizontal and vertical)."""
    ids = np.arange((gh + 1) * (gw + 1)).reshape(gh + 1, gw + 1)
    return np.concatenate([np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], 1),
                           np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], 1)])


#: Frames solved together by the mesh fit, and the overlap that chains the windows: memory
#: and time stay linear in the shot length.
MESH_WINDOW = 96
MESH_OVERLAP = 12
#: Weight of an anchored node (the reference frame, or a frame solved by the previous window).
ANCHOR = 10.0


def _rest_nodes(h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Mesh node positions (k, 2) on an (h, w) frame."""
    grid = np.meshgrid(np.linspace(0, w - 1, gw + 1), np.linspace(0, h - 1, gh + 1))
    return np.stack(grid, -1).reshape(-1, 2)


def _similarity_nodes(sims: np.ndarray, h: int, w: int, gh: int, gw: int) -> np.ndarray:
    """Every frame's rest mesh moved by its global similarity, (n, k, 2): the mesh fit's start."""
    return np.einsum("nij,kj->nki", sims[:, :, :2], _rest_nodes(h, w, gh, gw)) + sims[:, None, :, 2]


def _solve_window(pairs: _Pairs, sims: np.ndarray, init: np.ndarray, frames: range, anchors: dict[int, np.ndarray],
                  h: int, w: int, gh: int, gw: int, passes: int, rigidity: float) -> np.ndarray:
    """Node positions (len(frames), k, 2) of one window of frames, its anchored frames held."""
    n, k = len(frames), (gh + 1) * (gw + 1)
    a0 = frames.start
    inside = (pairs.t >= a0) & (pairs.t < frames.stop) & (pairs.s >= a0) & (pairs.s < frames.stop)
    nodes = _rest_nodes(h, w, gh, gw)
    edges = _edges(gh, gw)
    rest = nodes[edges[:, 1]] - nodes[edges[:, 0]]  # (e, 2)
    it, wt = _basis(pairs.xt[inside], h, w, gh, gw)
    is_, ws = _basis(pairs.xs[inside], h, w, gh, gw)
    cols_flow = np.hstack([(pairs.t[inside] - a0)[:, None] * k + it, (pairs.s[inside] - a0)[:, None] * k + is_])
    vals_flow = np.hstack([wt, -ws])
    m = len(cols_flow)
    # Rigidity rows: g[b] - g[a] = S_t^lin rest, per frame and edge.
    ne = len(edges)
    fr = np.repeat(np.arange(n), ne)
    cols_rig = np.stack([fr * k + np.tile(edges[:, 1], n), fr * k + np.tile(edges[:, 0], n)], 1)
    vals_rig = np.tile([1.0, -1.0], (n * ne, 1))
    rhs_rig = np.einsum("nij,ej->nei", sims[a0:frames.stop, :, :2], rest).reshape(-1, 2)
    held = sorted(anchors)
    cols_anchor = np.concatenate([(f - a0) * k + np.arange(k) for f in held])
    rhs_anchor = np.concatenate([anchors[f] for f in held]) * ANCHOR
    start = init[a0:frames.stop].reshape(-1, 2)
    weight = np.ones(m)
    solution = start
    rows = np.concatenate([np.repeat(np.arange(m), 8), np.repeat(m + np.arange(n * ne), 2),
                           m + n * ne + np.arange(len(cols_anchor))])
    cols = np.concatenate([cols_flow.ravel(), cols_rig.ravel(), cols_anchor])
    rhs = np.concatenate([np.zeros((m, 2)), rhs_rig * np.sqrt(rigidity), rhs_anchor])
    for i in range(passes):
        data = np.concatenate([(vals_flow * np.sqrt(weight)[:, None]).ravel(), (vals_rig * np.sqrt(rigidity)).ravel(),
                               np.full(len(cols_anchor), ANCHOR)])
        a = sp.csr_matrix((data, (rows, cols)), shape=(len(rhs), n * k))
        normal = (a.T @ a).tocsc() + sp.identity(n * k, format="csc") * 1e-6
        solution = spla.splu(normal).solve(np.asarray(a.T @ rhs) + 1e-6 * start)
        res = np.linalg.norm((solution[cols_flow] * vals_flow[..., None]).sum(1), axis=1)
        weight = robust_weights(res, first=i == 0)
    return solution.reshape(n, k, 2)


def solve_mesh(pairs: _Pairs, sims: np.ndarray, ref: int, h: int, w: int, gh: int, gw: int, *,
               passes: int = 3, rigidity: float = 4.0, cancel: Optional[CancelCheck] = None) -> tuple[np.ndarray, np.ndarray]:
    """Node positions (n, gh+1, gw+1, 2) minimizing flow consistency + rigidity + anchor, and
    each correspondence's final residual (atlas pixels): large where the scene moves unlike
    the mesh (independently moving objects, flow errors).

    Long shots are solved in windows of MESH_WINDOW frames, outward from the reference frame,
    each anchored on the frames it shares with the window solved before it.
    """
    n = len(sims)
    k = (gh + 1) * (gw + 1)
    init = _similarity_nodes(sims, h, w, gh, gw)
    out = init.copy()
    first = range(max(0, min(ref - MESH_WINDOW // 2, n - MESH_WINDOW)), min(n, max(ref - MESH_WINDOW // 2, 0) + MESH_WINDOW))
    windows = [(first, {ref: init[ref]})]
    step = MESH_WINDOW - MESH_OVERLAP
    for lo in range(first.stop - MESH_OVERLAP, n - MESH_OVERLAP, step):  # rightwards
        windows.append((range(lo, min(n, lo + MESH_WINDOW)), {f: None for f in range(lo, lo + MESH_OVERLAP)}))
    for hi in range(first.start + MESH_OVERLAP, MESH_OVERLAP, -step):  # leftwards
        windows.append((range(max(0, hi - MESH_WINDOW), hi), {f: None for f in range(hi - MESH_OVERLAP, hi)}))
    for frames, anchors in windows:
        check_cancel(cancel)
        held = {f: (out[f] if v is None else v) for f, v in anchors.items()}
        out[frames.start:frames.stop] = _solve_window(pairs, sims, out, frames, held, h, w, gh, gw, passes, rigidity)
    it, wt = _basis(pairs.xt, h, w, gh, gw)
    is_, ws = _basis(pairs.xs, h, w, gh, gw)
    flat = out.reshape(n * k, 2)
    mapped = (flat[pairs.t[:, None] * k + it] * wt[..., None]).sum(1) - (flat[pairs.s[:, None] * k + is_] * ws[..., None]).sum(1)
    return out.reshape(n, gh + 1, gw + 1, 2), np.linalg.norm(mapped, axis=1)


def motion_maps(pairs: _Pairs, residuals: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
    """Per-frame maps (n, gh, gw) on the sample grid of the largest mesh residual of the
    correspondences starting at each grid pixel: where a frame moves unlike its atlas mapping."""
    step = sample_stride(h, w)
    sh, sw = sample_grid(h, w)[0].shape
    out = np.zeros(n * sh * sw)
    gx = np.clip(((pairs.xt[:, 0] - step // 2) / step).round().astype(int), 0, sw - 1)
    gy = np.clip(((pairs.xt[:, 1] - step // 2) / step).round().astype(int), 0, sh - 1)
    np.maximum.at(out, (pairs.t * sh + gy) * sw + gx, residuals)
    return out.reshape(n, sh, sw)


class FastAtlas:
    """A fitted shot atlas: texture (Ha, Wa, 3) + per-frame mesh nodes in atlas pixels."""

    method = "fast"

    def __init__(self, texture: np.ndarray, weight: np.ndarray, nodes: np.ndarray, frame_shape: tuple[int, int],
                 motion: Optional[np.ndarray] = None, colour: Optional[np.ndarray] = None,
                 objects: Optional[ObjectLayer] = None):
        self.texture = np.ascontiguousarray(texture, dtype=np.float32)
        self.colour = identity_colour(len(nodes)) if colour is None else np.asarray(colour, np.float32)
        self.motion = None if motion is None else np.ascontiguousarray(motion, dtype=np.float16)
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.objects = objects
        h, w = self.frame_shape
        self._wy = mesh_weights(h, nodes.shape[1] - 1)
        self._wx = mesh_weights(w, nodes.shape[2] - 1)

    def __len__(self) -> int:
        return len(self.nodes)

    def mapping(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Atlas coordinates (map_x, map_y), (h, w) float32 each, of frame t's pixels."""
        g = self.nodes[t]
        mx = self._wy @ g[..., 0] @ self._wx.T
        my = self._wy @ g[..., 1] @ self._wx.T
        return mx.astype(np.float32), my.astype(np.float32)

    def frame(self, t: int) -> np.ndarray:
        """A_t: the texture sampled through M_t, (h, w, 3) float32 proxy units."""
        mx, my = self.mapping(t)
        return cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def static(self, t: int) -> np.ndarray:
        """How well frame t's pixels follow the atlas mapping, (h, w) float32 in [0, 1]: 0 on
        independently moving objects (and a margin around them), 1 on the mapped scene."""
        if self.motion is None:
            return np.ones(self.frame_shape, np.float32)
        h, w = self.frame_shape
        res = cv2.dilate(self.motion[t].astype(np.float32), np.ones((3, 3), np.uint8))
        res = cv2.resize(res, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(1.0 - (res - MOTION_OK) / MOTION_OK, 0.0, 1.0).astype(np.float32)

    def _own(self, t: int, proxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frame t's proxy with its colour transform undone, where it is flat: nothing there
        for a texture to disagree with), (h, w, 3) and (h, w) float32."""
        own = normalize_colour(proxy, self.colour[t])
        return own, np.clip(1.0 - local_contrast(own) / FLAT, 0.0, 1.0)

    def unlike_texture(self, t: int, proxy: np.ndarray) -> np.ndarray:
        """(h, w) bool: frame t's pixels whose structure A_t does not show; with ``static(t) <
        MOVING`` the pixels that move on their own (not the margin :meth:`static` leaves)."""
        _, flat = self._own(t, proxy)
        return _shown(local_correlation(proxy, self.frame(t)), flat) < MOVING  # type: ignore[no-any-return]

    def guide(self, t: int, proxy: np.ndarray, display: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(guide, represented, coverage) of frame t, each at proxy size, float32.

        ``represented`` (in [0, 1]) is where A_t shows what the frame shows: the pixel follows
        the atlas mapping and its local structure matches A_t's (not a moving object, ghost or
        disocclusion the atlas got wrong). The guide is A_t there and elsewhere the frame's own
        proxy with its fitted colour transform undone, which already makes its appearance
        consistent; the object layer (:mod:`deflicker.method.atlas.object_layer`) replaces a ghost of the
        object in A_t and bounds clipped pixels (:meth:`_with_object`).
        ``coverage`` is how many frames back each pixel of A_t (its splat weight).
        """
        mx, my = self.mapping(t)
        atlas = cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        coverage = cv2.remap(self.weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        own, flat = self._own(t, proxy)
        atlas_fit = local_correlation(proxy, atlas)
        keep = np.minimum(self.static(t), _shown(atlas_fit, flat))
        guide = keep[..., None] * atlas + (1.0 - keep[..., None]) * own
        if self.objects is not None:
            guide = self._with_object(t, proxy, own, atlas, atlas_fit, guide, keep, display)
        return guide.astype(np.float32), keep.astype(np.float32), coverage

    def _with_object(self, t: int, proxy: np.ndarray, own: np.ndarray, atlas: np.ndarray, atlas_fit: np.ndarray,
                     guide: np.ndarray, keep: np.ndarray, display: bool) -> np.ndarray:
        """The guide with frame t's object layer: where A_t shows the object but its texture's
        local structure matches the frame less well than the object layer's (a ghost of the
        object smeared into the atlas while it moved with the camera), the layer instead; and
        where the frame clipped (its pixels only bound the scene) off the atlas, the layer where
        it is brighter (darker for crushed shadows). ``atlas_fit``: the local correlation of the
        proxy and A_t."""
        assert self.objects is not None
        layer, covered = self.objects.frame(t, self.frame_shape)
        on = covered.astype(np.float32) * np.float32(self.objects.trust[t])
        if not on.any():
            return guide
        layer_fit = cv2.GaussianBlur(local_correlation(proxy, layer), (0, 0), 2.0)
        atlas_fit = cv2.GaussianBlur(atlas_fit, (0, 0), 2.0)
        better = np.clip((layer_fit - atlas_fit) / OBJECT_BETTER, 0.0, 1.0) * on
        guide = guide + (keep * better)[..., None] * (layer - atlas)
        if display:
            high, low = clipped_amount(proxy)
            bound = own + high * (np.maximum(own, layer) - own) + low * (np.minimum(own, layer) - own)
            guide = guide + ((1.0 - keep) * on)[..., None] * (bound - own)
        return guide

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the cache."""
        out: dict[str, np.ndarray] = {"texture": self.texture, "weight": self.weight, "nodes": self.nodes,
                                      "frame_shape": np.array(self.frame_shape, np.int64), "colour": self.colour}
        if self.motion is not None:
            out["motion"] = self.motion
        if self.objects is not None:
            out.update(self.objects.to_arrays(OBJECT_PREFIX))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "FastAtlas":
        """Rebuild from :meth:`to_arrays` output."""
        shape = tuple(int(v) for v in arrays["frame_shape"])
        return cls(arrays["texture"], arrays["weight"], arrays["nodes"], (shape[0], shape[1]), arrays.get("motion"),
                   arrays["colour"], ObjectLayer.from_arrays(arrays, OBJECT_PREFIX))


#: Cache key prefix of the object layer's arrays.
OBJECT_PREFIX = "object_"
#: Local-correlation margin over A_t's at which the object layer fully replaces A_t.
OBJECT_BETTER = 0.1


def _shown(correlation: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Where a texture seen from the frame shows the frame's structure, (h, w) float32 in [0, 1],
    from their local ``correlation``: from AGREE_LOW up (or ``flat``: nothing to disagree on),
    eroded and softened so that it ends before the structure stops matching."""
    agree = np.clip((correlation - AGREE_LOW) / AGREE_LOW, 0.0, 1.0)
    shown = cv2.erode(np.maximum(agree, flat).astype(np.float32), np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(shown, (0, 0), 1.0)  # type: ignore[no-any-return]


def identity_colour(n: int) -> np.ndarray:
    """Per-frame colour transforms (n, 2, 3) that change nothing: gains 1, offsets 0."""
    colour = np.zeros((n, 2, 3), np.float32)
    colour[:, 0] = 1.0
    return colour


def fit_channel_affine(a: np.ndarray, p: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least-squares per-channel gains and offsets (3,) each with p ~ g * a + b;
    (k, 3) samples, (k, 3) weights. A channel of ``a`` with no spread (FLAT_CHANNEL) cannot
    tell a gain from an offset (noise would pick one at random and drift the texture's level):
    a gain alone there."""
    wsum = np.maximum(weight.sum(0), 1e-9)
    am, pm = (weight * a).sum(0) / wsum, (weight * p).sum(0) / wsum
    da, dp = a - am, p - pm
    var = (weight * da ** 2).sum(0)
    g = (weight * da * dp).sum(0) / np.maximum(var, 1e-9)
    g = np.where(g > 1e-3, g, 1.0)
    b = pm - g * am
    flat = np.sqrt(var / wsum) < FLAT_CHANNEL
    return np.where(flat, pm / np.maximum(am, 1e-6), g), np.where(flat, 0.0, b)


def robust_channel_affine(a: np.ndarray, p: np.ndarray, display: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fit_channel_affine` reweighted COLOUR_PASSES times with Tukey's biweight on each
    channel's residuals, scaled by their MAD: moving objects, ghosts and misregistered edges
    drop out instead of pulling the gain. It starts from the median ratio p / a (a gain alone),
    which a third of the pixels off cannot move, where a least-squares start would be.

    ``display``-referred values are censored at the clipping level (CLIPPED): a channel clipped
    in ``p`` says only that g * a + b reaches the clip there (crushed: stays below the floor).
    Each pass, such a sample counts at max(p, prediction) (min for crushed), so it pulls only a
    prediction that contradicts it. Leaving clipped pixels out instead keeps the darker ones
    alone, whose narrow spread of ``a`` (against A_t's own errors) flattened the gain: a frame
    with 40% of its red clipped got a red gain of 0.6 and an offset of 0.4 (truth 1.5 and 0).
    """
    high, low = censored(p) if display else (np.zeros(p.shape, bool), np.zeros(p.shape, bool))
    free = ~(high | low)
    start = free & (a > 0.02)
    g = np.array([np.median(p[start[:, c], c] / a[start[:, c], c]) if start[:, c].any() else 1.0 for c in range(3)])
    b = np.zeros(3)
    for _ in range(COLOUR_PASSES):
        pred = g * a + b
        target = np.where(high, np.maximum(p, pred), np.where(low, np.minimum(p, pred), p))
        res = target - pred
        scale = np.array([1.4826 * np.median(np.abs(res[free[:, c], c])) if free[:, c].any() else 0.0
                          for c in range(3)]) + 1e-4
        weight = np.clip(1.0 - (res / (COLOUR_TUKEY * scale)) ** 2, 0.0, 1.0) ** 2
        g, b = fit_channel_affine(a, target, weight)
    return g, b


def frame_colours(proxies: np.ndarray, atlas: "FastAtlas", display: bool = True,
                  cancel: Optional[CancelCheck] = None) -> np.ndarray:
    """Per-frame, per-channel affine colour (n, 2, 3): gains g_t and offsets b_t with
    P_t ~ g_t * A_t + b_t (:func:`robust_channel_affine`; clipped and crushed values of
    ``display``-referred proxies censored), normalized so that the gains' geometric mean is 1
    and the offsets' mean 0 over the shot (the texture keeps the shot's average look)."""
    colour = identity_colour(len(proxies)).astype(np.float64)
    for t in range(len(proxies)):
        check_cancel(cancel)
        a = atlas.frame(t)[::2, ::2].reshape(-1, 3).astype(np.float64)  # every 4th pixel: 6 unknowns
        p = proxies[t][::2, ::2].reshape(-1, 3).astype(np.float64)
        colour[t] = robust_channel_affine(a, p, display)
    g, b = colour[:, 0], colour[:, 1]
    s = np.exp(np.log(g).mean(0))
    g = g / s
    c = b.mean(0) / g.mean(0)
    return np.stack([g, b - g * c], axis=1).astype(np.float32)


def splat_texture(proxies: np.ndarray, nodes: np.ndarray, canvas: tuple[int, int],
                  colour: Optional[np.ndarray] = None, motion: Optional[np.ndarray] = None,
                  display: bool = True, cancel: Optional[CancelCheck] = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of every frame's pixels (its colour transform undone) splatted bilinearly at their atlas
    positions, independently moving pixels all but left out: (texture (Ha, Wa, 3), weight (Ha, Wa):
    how many frames back each texel).

    A ``display``-referred pixel with a clipped (or crushed) channel says only that the scene is
    at least (at most) its normalized value there: it adds all but no weight to the mean, and a
    texel that no mapped frame saw unclipped (weight under CENSORED_SEEN) takes, in each channel
    that clipped, the tightest such bound over the shot (the highest; the lowest for crushed
    ones), the same for every frame. The mean of the bounds sat under the bound of the frames
    with the lowest gain, and their clipped pixels kept their flicker (the guide only raises a
    clipped pixel to A_t).
    """
    n, h, w, _ = proxies.shape
    ha, wa = canvas
    atlas = FastAtlas(np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32), nodes, (h, w), motion)
    acc = np.zeros((4, ha * wa))
    highest = np.full((3, ha * wa), -np.inf)
    lowest = np.full((3, ha * wa), np.inf)
    for t in range(n):
        check_cancel(cancel)
        mx, my = atlas.mapping(t)
        pixels = proxies[t].reshape(-1, 3).astype(np.float64)
        high, low = censored(pixels)  # of the values as filmed, before the colour is undone
        if colour is not None:
            pixels = (pixels - colour[t, 1]) / colour[t, 0]
        static = atlas.static(t).ravel().astype(np.float64)
        keep = static + 1e-3
        if display:  # next to nothing: the mean of those is the fallback of last resort
            keep *= np.where((high | low).any(-1), 1e-6, 1.0)
            mapped = (static >= MOVING)[:, None]
            bound_texels(highest, mx, my, pixels, high & mapped, canvas, high=True)
            bound_texels(lowest, mx, my, pixels, low & mapped, canvas, high=False)
        splat(acc, mx, my, pixels, keep, canvas)
    seen = acc[3]
    mean = acc[:3] / np.maximum(seen, 1e-9)
    unseen = seen < CENSORED_SEEN
    mean = np.where(unseen & np.isfinite(highest), np.maximum(mean, highest), mean)
    mean = np.where(unseen & np.isfinite(lowest) & ~np.isfinite(highest), np.minimum(mean, lowest), mean)
    weight = seen.reshape(ha, wa)
    texture = mean.T.reshape(ha, wa, 3)
    return fill_holes(texture, weight).astype(np.float32), weight.astype(np.float32)


def register_nodes(proxy: np.ndarray, atlas: "FastAtlas", t: int, flow: FlowSettings,
                   display: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Frame t's mesh nodes moved so that its colour-normalized proxy lands on the texture,
    and the registration residual on the sample grid (atlas pixels; see :func:`motion_maps`).

    DIS flow d from the normalized frame to A_t gives each sample-grid pixel x its atlas
    position M_t(x + d(x)); the nodes are refitted to those (Tukey-weighted: moving objects and
    pixels the texture does not show drop out, and so do ``display``-referred clipped ones)
    while each mesh edge keeps its current vector (REGISTER_STIFFNESS), so the frame moves and
    bends only as far as the texture asks.
    """
    nodes = atlas.nodes[t]
    gh, gw = nodes.shape[0] - 1, nodes.shape[1] - 1
    h, w = atlas.frame_shape
    mx, my = atlas.mapping(t)
    d = estimate_flow(normalize_colour(proxy, atlas.colour[t]), atlas.frame(t), replace(flow, preset=REGISTER_PRESET))
    ys, xs = sample_grid(h, w)
    px = (xs + d[ys, xs, 0]).astype(np.float32).ravel()
    py = (ys + d[ys, xs, 1]).astype(np.float32).ravel()
    inside = (px >= 0) & (px <= w - 1) & (py >= 0) & (py <= h - 1)
    target = np.stack([cv2.remap(m, px[:, None], py[:, None], cv2.INTER_LINEAR)[:, 0] for m in (mx, my)], 1)
    points = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64)
    prior = atlas.static(t)[ys, xs].ravel() * inside
    if display:  # clipped or crushed pixels lost their structure: the flow there is a guess
        prior = prior * unclipped(proxy[ys, xs]).ravel()
    idx, wts = _basis(points, h, w, gh, gw)
    k, m = (gh + 1) * (gw + 1), len(points)
    edges = _edges(gh, gw)
    flat = nodes.reshape(k, 2)
    rows = np.concatenate([np.repeat(np.arange(m), 4), np.repeat(m + np.arange(len(edges)), 2)])
    cols = np.concatenate([idx.ravel(), edges[:, ::-1].ravel()])
    rhs = np.concatenate([target, (flat[edges[:, 1]] - flat[edges[:, 0]]) * np.sqrt(REGISTER_STIFFNESS)])
    weight = prior.astype(np.float64)
    solution = flat
    for i in range(3):
        data = np.concatenate([(wts * np.sqrt(weight)[:, None]).ravel(),
                               np.tile([1.0, -1.0], len(edges)) * np.sqrt(REGISTER_STIFFNESS)])
        a = sp.csr_matrix((data, (rows, cols)), shape=(len(rhs), k))
        weighted = rhs.copy()
        weighted[:m] *= np.sqrt(weight)[:, None]
        normal = (a.T @ a).tocsc() + sp.identity(k, format="csc") * 1e-6
        solution = spla.splu(normal).solve(np.asarray(a.T @ weighted) + 1e-6 * flat)
        res = np.linalg.norm((solution[idx] * wts[..., None]).sum(1) - target, axis=1)
        weight = prior * robust_weights(res, first=i == 0)
    return solution.reshape(nodes.shape), np.where(inside, res, 0.0).reshape(ys.shape)


def fit_fast(proxies: np.ndarray, flows: ShotFlows, settings: AtlasSettings, flow: FlowSettings = FlowSettings(), *,
             display: bool = True, progress: Optional[Progress] = None,
             cancel: Optional[CancelCheck] = None) -> FastAtlas:
    """Fit the fast atlas of one shot from its (n, h, w, 3) proxies and flows (module doc);
    ``display``: the proxies are display-referred [0, 1] values that clip (not scaled HDR)."""
    n, h, w, _ = proxies.shape
    ref = n // 2
    gh, gw = grid_shape(h, w, settings.residual_grid)
    report(progress, 0.0, "atlas: motion")
    sims = chain_similarities(flows, n, ref, h, w, cancel)
    motion = None
    if n > 1 and settings.irls_passes > 0:
        pairs = _sample_pairs(flows, h, w, cancel)
        report(progress, 0.3, "atlas: mapping")
        nodes, residuals = solve_mesh(pairs, sims, ref, h, w, gh, gw, passes=settings.irls_passes,
                                      rigidity=settings.rigidity, cancel=cancel)
        motion = motion_maps(pairs, residuals, n, h, w)
    else:
        nodes = _similarity_nodes(sims, h, w, gh, gw).reshape(n, gh + 1, gw + 1, 2)
    check_cancel(cancel)
    lo, scale, canvas = canvas_box(nodes.reshape(-1, 2), h, w, MAX_CANVAS)
    nodes = (nodes - lo) * scale
    report(progress, 0.7, "atlas: texture")
    colour = identity_colour(n)
    unregistered: Optional[np.ndarray] = None
    texture: np.ndarray  # first splatted in pass 0, registered against from pass GAIN_PASSES on
    weight: np.ndarray
    passes = GAIN_PASSES + REGISTER_PASSES
    for i in range(passes):
        check_cancel(cancel)
        if i >= GAIN_PASSES and n > 1:
            fitted = FastAtlas(texture, weight, nodes, (h, w), motion, colour)
            registered = []
            for t in range(n):
                check_cancel(cancel)
                registered.append(register_nodes(proxies[t], fitted, t, flow, display))
            nodes = np.stack([r[0] for r in registered])
            unregistered = np.stack([r[1] for r in registered])
        texture, weight = splat_texture(proxies, nodes, canvas, colour, motion, display, cancel)
        colour = frame_colours(proxies, FastAtlas(texture, weight, nodes, (h, w), motion), display, cancel)
        report(progress, 0.7 + 0.3 * (i + 1) / passes, "atlas: texture")
    if unregistered is not None:
        # Moving = unlike the mesh by both measures: the flow pairs' residual alone flags whole
        # background regions next to a fast object, the registration's alone flags local flicker.
        motion = unregistered if motion is None else np.minimum(motion, unregistered)
    fitted = FastAtlas(texture, weight, nodes, (h, w), motion, colour)
    if motion is not None:
        unmapped = np.zeros((n, h, w), bool)
        moving = np.zeros((n, h, w), bool)
        for t in range(n):
            check_cancel(cancel)
            unmapped[t] = fitted.static(t) < MOVING
            moving[t] = unmapped[t] & fitted.unlike_texture(t, proxies[t])
        fitted.objects = fit_object_layer(proxies, moving, unmapped, colour, flows, flow, display, cancel)
    return fitted
