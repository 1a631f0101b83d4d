"""Neural filter F: structure from the input frame, appearance from the (flawed) atlas frame.

F never paints pixels. It predicts a smooth per-pixel affine colour transform (3x3 matrix and
offset, see :mod:`deflicker.method.correction`) that maps the input toward the guide's appearance,
so it can be applied at full resolution. The transform is a differentiable closed-form
*weighted* local affine fit of the guide from the input (guided-filter statistics over a
(2r+1)^2 window, regularized toward a global per-frame fit, blended into the global fit where
the window holds little weight). A small UNet predicts the per-pixel weights (where the
guide's structure can be trusted) and a residual on the coefficients. With the UNet's last
layer at zero the model is already a plain confidence-weighted local colour transfer.
"""
from __future__ import annotations

import logging
import math
import pickle
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deflicker.errors import DeviceError, ModelLoadError
from deflicker.settings import FilterSettings

log = logging.getLogger(__name__)

#: The committed weights, shipped inside the package.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "filter.pt"
#: Channels of the UNet input: inp, guide, confidence, |inp - guide|, |global fit - guide|.
FEATURES = 13
_TINY = 1e-6


def box_mean(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window clipped at the borders, (N,C,H,W) -> (N,C,H,W)."""
    k = 2 * r + 1
    x = F.avg_pool2d(x, (1, k), stride=1, padding=(0, r), count_include_pad=False)
    return F.avg_pool2d(x, (k, 1), stride=1, padding=(r, 0), count_include_pad=False)


def _solve_right(lhs: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """rhs @ inverse(lhs) per pixel for symmetric positive definite 3x3 lhs, (N,3,3,h,w) each.

    Closed form (adjugate / determinant): several times faster than batched linalg.solve.
    """
    l = lhs
    adj: list[list[Any]] = [[l[:, 1, 1] * l[:, 2, 2] - l[:, 1, 2] * l[:, 2, 1], l[:, 0, 2] * l[:, 2, 1] - l[:, 0, 1] * l[:, 2, 2],
            l[:, 0, 1] * l[:, 1, 2] - l[:, 0, 2] * l[:, 1, 1]],
           [None, l[:, 0, 0] * l[:, 2, 2] - l[:, 0, 2] * l[:, 2, 0], l[:, 0, 2] * l[:, 1, 0] - l[:, 0, 0] * l[:, 1, 2]],
           [None, None, l[:, 0, 0] * l[:, 1, 1] - l[:, 0, 1] * l[:, 1, 0]]]
    for i in range(3):
        for j in range(i):
            adj[i][j] = adj[j][i]  # symmetric
    det = l[:, 0, 0] * adj[0][0] + l[:, 0, 1] * adj[1][0] + l[:, 0, 2] * adj[2][0]
    inv = torch.stack([torch.stack(row, 1) for row in adj], 1) / det[:, None, None]
    return torch.einsum("nckhw,nkjhw->ncjhw", rhs, inv)


def matmul(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-pixel matrix times colour: (N,3,3,h,w) or (N,3,3,1,1) with (N,3,H,W) -> (N,3,H,W)."""
    return (a * x.unsqueeze(1)).sum(2)


def affine_fit(inp: torch.Tensor, guide: torch.Tensor, weight: torch.Tensor, prior: torch.Tensor,
               eps: torch.Tensor | float, r: Optional[int], stride: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted ridge fit guide ~ A inp + b over windows of radius r (None: the whole image).

    inp, guide (N,3,H,W); weight (N,1,H,W) >= 0; prior A0 broadcastable to (N,3,3,h,w).
    Minimizes the weighted mean of |A x + b - g|^2 plus eps |A - A0|^2. Windows are (2r+1)^2
    cells of stride x stride pixels (H, W divisible by stride), so h = H / stride. Returns
    A (N,3,3,h,w) ([c, k]: output c from input k), b (N,3,h,w), each window's mean weight (N,1,h,w).
    """
    def mean(t: torch.Tensor) -> torch.Tensor:
        if r is None:
            return t.mean(dim=(2, 3), keepdim=True)
        return box_mean(F.avg_pool2d(t, stride) if stride > 1 else t, r)

    # Moments about each image's mean (a constant) keep float32 covariances accurate.
    cx = inp.mean(dim=(2, 3), keepdim=True).detach()
    cg = guide.mean(dim=(2, 3), keepdim=True).detach()
    xc, gc = inp - cx, guide - cg
    sw = mean(weight)
    norm = sw + _TINY
    wx, wg = weight * xc, weight * gc
    mx, mg = mean(wx) / norm, mean(wg) / norm
    second = mean(torch.cat([wx[:, k:k + 1] * xc for k in range(3)] + [wg[:, c:c + 1] * xc for c in range(3)], 1))
    n, _, h, w = second.shape
    second = second.view(n, 6, 3, h, w) / norm.unsqueeze(1)
    cxx = second[:, :3] - mx.unsqueeze(2) * mx.unsqueeze(1)  # [k, j]
    cgx = second[:, 3:] - mg.unsqueeze(2) * mx.unsqueeze(1)  # [c, j]
    eye = torch.eye(3, dtype=inp.dtype, device=inp.device).view(1, 3, 3, 1, 1)
    a = _solve_right(cxx + eps * eye, (cgx + eps * prior).expand(n, 3, 3, h, w))
    b = (mg + cg) - matmul(a, mx + cx)
    return a, b, sw


def apply_coefficients(inp: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
    """out_c = sum_k M_ck inp_k + b_c, (N,3,H,W) and (N,12,H,W) -> (N,3,H,W)."""
    n, _, h, w = inp.shape
    return matmul(coeffs[:, :9].view(n, 3, 3, h, w), inp) + coeffs[:, 9:]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1))


class UNet(nn.Module):
    """Four-level UNet, (N,cin,H,W) -> (N,cout,H,W); H, W divisible by 8."""

    def __init__(self, cin: int, cout: int, width: int) -> None:
        super().__init__()
        w = width
        self.enc = nn.ModuleList([_block(cin, w), _block(w, 2 * w), _block(2 * w, 4 * w), _block(4 * w, 4 * w)])
        self.dec = nn.ModuleList([_block(8 * w, 2 * w), _block(4 * w, w), _block(2 * w, w)])
        self.head = nn.Conv2d(w, cout, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)  # type: ignore[arg-type]  # Conv2d has a bias here

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.enc):
            x = block(x if i == 0 else F.avg_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.dec, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        return self.head(x)


class NeuralFilter(nn.Module):
    """F(inp, guide, confidence) -> smooth affine coefficients (N,12,H,W), see the module doc.

    inp, guide (N,3,H,W) float32 in proxy units (~[0,1]); confidence (N,1,H,W) in [0,1].
    The UNet runs at H/2; the local fit and its coefficients live on a grid of ``stride``-pixel
    cells (windows of 2 * radius + 1 cells) and are upsampled bilinearly to (H, W).
    """

    def __init__(self, width: int = 16, radius: int = 2, stride: int = 4) -> None:
        super().__init__()
        self.config = {"width": width, "radius": radius, "stride": stride}
        self.radius, self.stride = radius, stride
        self.unet = UNet(FEATURES, 13, width)
        self.log_eps = nn.Parameter(torch.tensor(math.log(1e-3)))  # local ridge toward the global fit
        self.log_tau = nn.Parameter(torch.tensor(math.log(0.05)))  # window weight where local = global / 2

    def forward(self, inp: torch.Tensor, guide: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W), (N,3,H,W), (N,1,H,W) -> coefficients (N,12,H,W)."""
        n, _, h, w = inp.shape
        multiple = max(16, 2 * self.stride)
        pad = (0, (-w) % multiple, 0, (-h) % multiple)
        x, g = F.pad(inp, pad, mode="replicate"), F.pad(guide, pad, mode="replicate")
        conf = F.pad(confidence.clamp(0.0, 1.0), pad, mode="replicate")
        eye = torch.eye(3, dtype=inp.dtype, device=inp.device).view(1, 3, 3, 1, 1)
        a0, b0, _ = affine_fit(x, g, conf, eye, 1e-4, None)
        fitted = matmul(a0, x) + b0
        feats = torch.cat([x, g, conf, (x - g).abs(), (fitted - g).abs()], 1)
        out = self.unet(F.avg_pool2d(feats, 2))
        logit = F.interpolate(out[:, :1], scale_factor=2, mode="bilinear", align_corners=False)
        weight = conf * torch.sigmoid(logit + 3.0)
        a, b, sw = affine_fit(x, g, weight, a0, self.log_eps.exp(), self.radius, self.stride)
        alpha = sw / (sw + self.log_tau.exp())
        a = alpha.unsqueeze(1) * a + (1 - alpha.unsqueeze(1)) * a0
        b = alpha * b + (1 - alpha) * b0
        residual = F.avg_pool2d(out[:, 1:], self.stride // 2)
        coeffs = box_mean(torch.cat([a.flatten(1, 2), b], 1) + 0.1 * residual, self.radius)
        coeffs = F.interpolate(coeffs, scale_factor=self.stride, mode="bilinear", align_corners=False)
        return coeffs[..., :h, :w]

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())


def resolve_device(device: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' -> a torch device; DeviceError when CUDA is asked for but absent."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("CUDA was requested but is not available")
    return torch.device(device)


def save_filter(model: NeuralFilter, path: Path, extra: Optional[dict[str, Any]] = None) -> None:
    """Write the model's config and weights to ``path`` atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"config": dict(model.config), "state_dict": state, "extra": extra or {}}, tmp)
    tmp.replace(path)


def load_filter(settings: FilterSettings = FilterSettings(), device: str = "cpu") -> NeuralFilter:
    """The filter with weights from ``settings.weights`` ('' = the committed ones), in eval mode."""
    path = Path(settings.weights) if settings.weights else DEFAULT_WEIGHTS
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = NeuralFilter(**blob["config"])
        model.load_state_dict(blob["state_dict"])
    except FileNotFoundError:
        raise ModelLoadError(f"filter weights not found: {path}") from None
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
        raise ModelLoadError(f"cannot load filter weights {path}: {str(exc).splitlines()[0]}") from None
    log.debug("loaded filter %s (%d parameters)", path, model.parameter_count())
    return model.to(resolve_device(device)).eval()


def anchor_to_guide(coeffs: np.ndarray, inp: np.ndarray, guide: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Coefficients rescaled per channel so the output's confidence-weighted mean equals the guide's.

    F was trained against guides whose appearance is itself slightly distorted, so it keeps a
    small global bias of its own; the atlas is the appearance reference, so its mean wins.
    (h,w,12) coefficients, (h,w,3) input and guide, (h,w) confidence -> (h,w,12) float32.
    """
    from deflicker.method.correction import apply_to_proxy

    out = apply_to_proxy(inp, coeffs).astype(np.float64)
    w = np.asarray(confidence, np.float64)[..., None]
    num, den = (w * guide).sum((0, 1)), (w * out).sum((0, 1))
    ok = (np.abs(den) > 1e-6) & (num * den > 0)
    gain = np.where(ok, num / np.where(ok, den, 1.0), 1.0).astype(np.float32)
    scaled = coeffs.copy()
    for c in range(3):
        scaled[..., 3 * c:3 * c + 3] *= gain[c]
        scaled[..., 9 + c] *= gain[c]
    return scaled


def global_fit(inp: np.ndarray, guide: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """G: the confidence-weighted least-squares affine fit (3x3 + offset) of the guide from the
    input over the whole frame, as a 12-vector of :mod:`deflicker.method.correction`."""
    w = np.sqrt(np.asarray(confidence, np.float64).reshape(-1, 1)) + 1e-6
    x = np.hstack([inp.reshape(-1, 3).astype(np.float64), np.ones((w.size, 1))])
    fit = np.linalg.lstsq(x * w, guide.reshape(-1, 3).astype(np.float64) * w, rcond=None)[0]  # (4, 3)
    return np.concatenate([fit[:3].T.ravel(), fit[3]]).astype(np.float32)


def toward_global(coeffs: np.ndarray, glob: np.ndarray, locality: float) -> np.ndarray:
    """Coefficients shrunk toward a global colour transform: G + locality * (C - G).

    Local deviations from the frame's global transform are where per-frame fitting noise
    lives (the atlas's flaws vary from frame to frame), so shrinking them makes the output
    more consistent and keeps more of the input's local contrast; the stateless refinement
    then removes what is left of local flicker. (h,w,12), (12,) -> (h,w,12) float32.
    """
    if locality >= 1.0:
        return coeffs
    return (glob + np.float32(locality) * (coeffs - glob)).astype(np.float32)


def predict_coefficients(model: NeuralFilter, inp: np.ndarray, guide: np.ndarray,
                         confidence: Optional[np.ndarray] = None, *, anchor: bool = True,
                         locality: float = 1.0, reference: Optional[np.ndarray] = None,
                         local_level: float = 1.0) -> np.ndarray:
    """Coefficients for one frame: (h,w,3) input and guide, (h,w) confidence -> (h,w,12) float32.

    With ``anchor`` the result goes through :func:`anchor_to_guide`, then through
    :func:`toward_global` with ``locality`` (1 = the network's own local correction) times
    ``local_level``. The global transform is :func:`global_fit`, or where the atlas fitted
    the frame's colour (``reference``, 12-vector) a blend: the reference alone at
    ``local_level`` 0 (a shot whose flicker the per-frame colour explains: the atlas's fit is
    robust, a per-frame lstsq is not), G alone at 1 (local flicker: G absorbs its mean).
    """
    device = next(model.parameters()).device
    if confidence is None:
        confidence = np.ones(inp.shape[:2], dtype=np.float32)

    def tensor(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a, dtype=np.float32)
        a = a[..., None] if a.ndim == 2 else a
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None].to(device)

    with torch.inference_mode():
        out = model(tensor(inp), tensor(guide), tensor(confidence))
    coeffs = np.ascontiguousarray(out[0].permute(1, 2, 0).cpu().numpy(), dtype=np.float32)
    if anchor:
        coeffs = anchor_to_guide(coeffs, inp, guide, confidence)
    level = float(np.clip(local_level, 0.0, 1.0)) if reference is not None else 1.0
    glob = global_fit(inp, guide, confidence) if level > 0.0 or reference is None else reference
    if reference is not None and 0.0 < level < 1.0:
        glob = (level * glob + (1.0 - level) * reference).astype(np.float32)
    return toward_global(coeffs, glob, locality * level)
