"""Losses of the neural atlas fit (Neural Layered Atlases, one layer) on a batch of sampled pixels.

Units (see :mod:`deflicker.method.atlas.neural`): colours in proxy units, squared L2 over channels;
flow errors as L2 distances in pixels of the reference's 768-pixel-wide frames
(normalized frame units uv / s times 384, NLA measures them in its frames' pixels); Jacobians of the mapping in
atlas units per normalized frame unit, divided by the atlas scale s so an unmoved frame has J = I.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from deflicker.method.atlas.neural import NeuralAtlas, NeuralConfig

REFERENCE_HALF = 384.0  # half the width of the reference's 768-pixel frames: flow errors are in its pixels
_EPS = 1e-3  # added to J^T J's diagonal, as NLA does, so its inverse exists


def rigidity_loss(uv: torch.Tensor, uv_x: torch.Tensor, uv_y: torch.Tensor, step: float) -> torch.Tensor:
    """Mean ||J^T J||_F^2 + ||(J^T J)^-1||_F^2 - 4 of finite-difference Jacobians (0 for a rotation).

    ``uv_x``/``uv_y`` are the mappings of p + (step, 0) and p + (0, step), ``step`` in the units J
    is measured per (normalized pixels times atlas scale).
    """
    jx = (uv_x - uv) / step
    jy = (uv_y - uv) / step
    a = (jx * jx).sum(dim=1) + _EPS
    c = (jy * jy).sum(dim=1) + _EPS
    b = (jx * jy).sum(dim=1)
    frob = a * a + 2 * b * b + c * c
    det = (a * c - b * b).clamp(min=1e-6)
    return (frob + frob / (det * det) - 4.0).mean()


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weight = mask.to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp(min=1.0)


def _distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(((a - b) ** 2).sum(dim=1) + 1e-12)


def shot_losses(model: "NeuralAtlas", images: torch.Tensor, data: dict[str, torch.Tensor], index: torch.Tensor,
                cfg: "NeuralConfig", use_global: bool) -> dict[str, torch.Tensor]:
    """Unweighted loss terms at sampled pixels ``index`` (flat into (n, h, w)); keys match ``cfg``'s ``*_weight``.

    ``images`` is (n*h*w, 3); ``data`` holds the flows flattened to (max(n-1, 0)*h*w, 2|1).
    """
    n, h, w = model.shape
    hw = h * w
    t = index // hw
    rem = index % hw
    x = (rem % w).to(torch.float32)
    y = (rem // w).to(torch.float32)
    big = max(2.0, cfg.global_rigidity_span * 2.0 * model.half)
    xs, ys, ts = [x, x + 1, x], [y, y, y + 1], [t, t, t]
    if use_global:
        xs += [x + big, x]
        ys += [y, y + big]
        ts += [t, t]
    if n > 1:
        pair_fw = t.clamp(max=n - 2) * hw + rem  # f_{t->t+1} at p (frame t's grid)
        pair_bw = (t - 1).clamp(min=0) * hw + rem  # f_{t->t-1} at p (frame t's grid)
        fw, bw = data["fw"][pair_fw], data["bw"][pair_bw]
        mask_fw = (t < n - 1) & data["valid_fw"][pair_fw, 0]
        mask_bw = (t > 0) & data["valid_bw"][pair_bw, 0]
        xs += [x + fw[:, 0], x + bw[:, 0]]
        ys += [y + fw[:, 1], y + bw[:, 1]]
        ts += [(t + 1).clamp(max=n - 1), (t - 1).clamp(min=0)]
    uvs = model.map(torch.cat(xs), torch.cat(ys), torch.cat(ts)).split(index.shape[0])
    uv, uv_x, uv_y = uvs[:3]
    colours = model.colour(torch.cat([uv, uv_x, uv_y])).split(index.shape[0])
    c0, cx, cy = colours
    i0 = images[index]
    ix = images[torch.where(x < w - 1, index + 1, index)]
    iy = images[torch.where(y < h - 1, index + w, index)]
    unit = model.scale / model.half  # one proxy pixel in atlas units at J = I
    terms = {
        "rgb": ((c0 - i0) ** 2).sum(dim=1).mean(),
        "gradient": _masked_mean((((cx - c0) - (ix - i0)) ** 2).sum(dim=1), x < w - 1)
        + _masked_mean((((cy - c0) - (iy - i0)) ** 2).sum(dim=1), y < h - 1),
        "rigidity": rigidity_loss(uv, uv_x, uv_y, unit),
        "sparsity": (torch.relu(uv.abs() - 1.0) ** 2).sum(dim=1).mean(),
    }
    if use_global:
        terms["global_rigidity"] = rigidity_loss(uv, uvs[3], uvs[4], unit * big)
    if n > 1:
        uv_fw, uv_bw = uvs[-2], uvs[-1]
        err = torch.cat([_distance(uv, uv_fw), _distance(uv, uv_bw)]) * (REFERENCE_HALF / model.scale)
        terms["flow"] = _masked_mean(err, torch.cat([mask_fw, mask_bw]))
    return terms
