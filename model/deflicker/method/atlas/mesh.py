"""The fast atlas's mesh: a bilinear mesh per frame whose node positions map the frame's pixels
into the atlas, and the joint solve of every frame's nodes.

A :class:`Mesh` is the value the fit passes around: ``gh x gw`` cells spanning an ``(h, w)``
frame (``residual_grid`` cells on the long side). :func:`solve_mesh` fits the node positions of
all frames of a shot to the paper's losses, restricted so that they are quadratic in the nodes
and solved exactly (sparse least squares, a few iteratively reweighted passes): flow
consistency (a pixel and its flow partner map to the same atlas point, for neighbours and for
keyframe pairs further apart), rigidity (each mesh edge keeps the length and orientation given
by the frame's global similarity motion) and an anchor (the shot's middle frame defines atlas
coordinates).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from deflicker.method.atlas.geometry import grid_matches, robust_weights, sample_grid, sample_stride
from deflicker.progress import CancelCheck, check_cancel

if TYPE_CHECKING:
    from deflicker.method.atlas.fast import ShotFlows

#: Frames solved together by the mesh fit, and the overlap that chains the windows: memory
#: and time stay linear in the shot length.
MESH_WINDOW = 96
MESH_OVERLAP = 12
#: Weight of an anchored node (the reference frame, or a frame solved by the previous window).
ANCHOR = 10.0


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
class Mesh:
    """A bilinear mesh of ``gh x gw`` cells spanning an ``(h, w)`` frame: where its nodes rest,
    which nodes carry a pixel and with what weights, and its edges. Node positions themselves
    (per frame, in atlas pixels) are arrays ``(n, gh + 1, gw + 1, 2)`` beside it."""

    h: int
    w: int
    gh: int
    gw: int

    @classmethod
    def over(cls, h: int, w: int, cells: int) -> "Mesh":
        """The mesh of an (h, w) frame with ``cells`` cells on its long side (:func:`grid_shape`)."""
        gh, gw = grid_shape(h, w, cells)
        return cls(h, w, gh, gw)

    @property
    def size(self) -> int:
        """Number of nodes."""
        return (self.gh + 1) * (self.gw + 1)

    def basis(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node indices (k, 4) and bilinear weights (k, 4) of pixel positions (k, 2)."""
        h, w, gh, gw = self.h, self.w, self.gh, self.gw
        u = np.clip(points[:, 0] * (gw / max(1, w - 1)), 0, gw - 1e-9)
        v = np.clip(points[:, 1] * (gh / max(1, h - 1)), 0, gh - 1e-9)
        x0, y0 = np.floor(u).astype(int), np.floor(v).astype(int)
        fx, fy = u - x0, v - y0
        stride = gw + 1
        idx = np.stack([y0 * stride + x0, y0 * stride + x0 + 1, (y0 + 1) * stride + x0, (y0 + 1) * stride + x0 + 1], 1)
        wts = np.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy], 1)
        return idx, wts

    def edges(self) -> np.ndarray:
        """Edges (e, 2) as node index pairs (horizontal and vertical)."""
        gh, gw = self.gh, self.gw
        ids = np.arange((gh + 1) * (gw + 1)).reshape(gh + 1, gw + 1)
        return np.concatenate([np.stack([ids[:, :-1].ravel(), ids[:, 1:].ravel()], 1),
                               np.stack([ids[:-1, :].ravel(), ids[1:, :].ravel()], 1)])

    def rest_nodes(self) -> np.ndarray:
        """Node positions (k, 2) on the frame."""
        h, w, gh, gw = self.h, self.w, self.gh, self.gw
        grid = np.meshgrid(np.linspace(0, w - 1, gw + 1), np.linspace(0, h - 1, gh + 1))
        return np.stack(grid, -1).reshape(-1, 2)

    def moved_by(self, sims: np.ndarray) -> np.ndarray:
        """Every frame's rest mesh moved by its global similarity (n, 2, 3), (n, k, 2): the mesh fit's start."""
        return np.einsum("nij,kj->nki", sims[:, :, :2], self.rest_nodes()) + sims[:, None, :, 2]


@dataclass(frozen=True)
class Pairs:
    """Flow correspondences: frame indices and pixel positions of both ends."""

    t: np.ndarray
    s: np.ndarray
    xt: np.ndarray  # (k, 2)
    xs: np.ndarray  # (k, 2)


def sample_pairs(flows: ShotFlows, h: int, w: int, cancel: Optional[CancelCheck] = None) -> Pairs:
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
        return Pairs(np.zeros(0, int), np.zeros(0, int), empty, empty)
    return Pairs(np.concatenate(ts), np.concatenate(ss), np.concatenate(pt), np.concatenate(ps))


def _solve_window(pairs: Pairs, sims: np.ndarray, init: np.ndarray, frames: range, anchors: dict[int, np.ndarray],
                  mesh: Mesh, passes: int, rigidity: float) -> np.ndarray:
    """Node positions (len(frames), k, 2) of one window of frames, its anchored frames held."""
    n, k = len(frames), mesh.size
    a0 = frames.start
    inside = (pairs.t >= a0) & (pairs.t < frames.stop) & (pairs.s >= a0) & (pairs.s < frames.stop)
    nodes = mesh.rest_nodes()
    edges = mesh.edges()
    rest = nodes[edges[:, 1]] - nodes[edges[:, 0]]  # (e, 2)
    it, wt = mesh.basis(pairs.xt[inside])
    is_, ws = mesh.basis(pairs.xs[inside])
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


def solve_mesh(pairs: Pairs, sims: np.ndarray, ref: int, mesh: Mesh, *,
               passes: int = 3, rigidity: float = 4.0, cancel: Optional[CancelCheck] = None) -> tuple[np.ndarray, np.ndarray]:
    """Node positions (n, gh+1, gw+1, 2) minimizing flow consistency + rigidity + anchor, and
    each correspondence's final residual (atlas pixels): large where the scene moves unlike
    the mesh (independently moving objects, flow errors).

    Long shots are solved in windows of MESH_WINDOW frames, outward from the reference frame,
    each anchored on the frames it shares with the window solved before it.
    """
    n = len(sims)
    k = mesh.size
    init = mesh.moved_by(sims)
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
        out[frames.start:frames.stop] = _solve_window(pairs, sims, out, frames, held, mesh, passes, rigidity)
    it, wt = mesh.basis(pairs.xt)
    is_, ws = mesh.basis(pairs.xs)
    flat = out.reshape(n * k, 2)
    mapped = (flat[pairs.t[:, None] * k + it] * wt[..., None]).sum(1) - (flat[pairs.s[:, None] * k + is_] * ws[..., None]).sum(1)
    return out.reshape(n, mesh.gh + 1, mesh.gw + 1, 2), np.linalg.norm(mapped, axis=1)


def motion_maps(pairs: Pairs, residuals: np.ndarray, n: int, h: int, w: int) -> np.ndarray:
    """Per-frame maps (n, gh, gw) on the sample grid of the largest mesh residual of the
    correspondences starting at each grid pixel: where a frame moves unlike its atlas mapping."""
    step = sample_stride(h, w)
    sh, sw = sample_grid(h, w)[0].shape
    out = np.zeros(n * sh * sw)
    gx = np.clip(((pairs.xt[:, 0] - step // 2) / step).round().astype(int), 0, sw - 1)
    gy = np.clip(((pairs.xt[:, 1] - step // 2) / step).round().astype(int), 0, sh - 1)
    np.maximum.at(out, (pairs.t * sh + gy) * sw + gx, residuals)
    return out.reshape(n, sh, sw)
