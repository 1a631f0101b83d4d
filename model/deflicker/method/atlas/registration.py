"""Registration of the fast atlas's frames: the global similarity motion chained from the flows
(the mesh fit's start and rigidity), and every frame registered directly to the fitted texture.

Chained flows drift (a small bias per frame adds up over a shot), so the fit ends with passes
that register every frame to the texture (the role of the paper's reconstruction loss for the
mapping): DIS flow from the colour-normalized frame to A_t, nodes refitted to it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from deflicker.method.atlas.geometry import (IDENTITY, compose, grid_matches, robust_similarity, robust_weights,
                                             sample_grid)
from deflicker.method.atlas.mesh import Mesh
from deflicker.method.atlas.texture import normalize_colour, unclipped
from deflicker.method.flow import estimate_flow
from deflicker.progress import CancelCheck, check_cancel
from deflicker.settings import FlowSettings

if TYPE_CHECKING:
    from deflicker.method.atlas.fast import FastAtlas, ShotFlows

#: DIS preset of the registration flows: their displacements are fractions of a pixel, and
#: "fast" registers as well as "medium" on the synthetic clips in a fraction of the time.
REGISTER_PRESET = "fast"
#: Weight of the mesh-shape term of a frame's registration, relative to one flow point.
REGISTER_STIFFNESS = 2.0


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


def register_nodes(proxy: np.ndarray, atlas: "FastAtlas", t: int, flow: FlowSettings,
                   display: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Frame t's mesh nodes moved so that its colour-normalized proxy lands on the texture,
    and the registration residual on the sample grid (atlas pixels; see
    :func:`~deflicker.method.atlas.mesh.motion_maps`).

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
    mesh = Mesh(h, w, gh, gw)
    idx, wts = mesh.basis(points)
    k, m = mesh.size, len(points)
    edges = mesh.edges()
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
