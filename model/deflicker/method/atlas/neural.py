"""The paper's single-layer neural atlas (``Settings(method="neural")``), fitted one shot at a time.

A mapping MLP ``M(x, y, t) -> (u, v)`` and an atlas MLP ``A(phi(u), phi(v)) -> rgb`` with a
positional encoding ``phi`` (Neural Layered Atlases, one layer, no segmentation) are fitted
jointly on random pixels of the shot with the NLA losses: RGB reconstruction, optical-flow
consistency (p and p + f in neighbouring frames map to the same (u, v)), rigidity (the Jacobian
of M stays a rotation at the atlas scale; a "global" version over a larger span for the first
half of the fit), gradient (atlas-frame gradients match the input's) and an atlas-domain
regulariser. Every frame reads its colour from the one shared atlas, so ``A_t`` does not carry
the per-frame flicker. Conventions:

- Pixels are normalized by half the long side (``x_n = (x - (w-1)/2) / (L/2)``), so the grid is
  isotropic; ``t_n`` spans [-1, 1] over the shot.
- ``uv = s * (x_n + o_t, y_n + o_t') + M_res(x_n, y_n, t_n)``: ``o_t`` is the shot's global
  translation (cumulated median flow), ``s`` the atlas scale (0.8, smaller when the pan would
  leave the atlas), and ``M_res``'s last layer starts at zero. This replaces NLA's pretraining of
  the mapping towards the identity; the MLP learns everything beyond a global translation.
- Flow errors are measured in pixels of the reference's 768-pixel-wide frames and Jacobians per
  normalized frame unit at the atlas scale, so the loss weights of the reference
  (``../shared/method.md``) keep their meaning at any proxy size.
- NLA's sparsity term acts on the foreground layer's alpha, which a single layer has not; its
  weight goes to a regulariser keeping (u, v) inside the atlas domain [-1, 1]^2.

The default :class:`NeuralConfig` is the paper's architecture (mapping 6x256, atlas 8x256 with
10 frequencies, 10,000 pixels per step; learning rate 5e-4 as our default runs 2000 steps, not
10,001), sized for a GPU. On 2 CPU cores a step of it takes seconds and rendering a 256x144
frame about 1.5 s; :meth:`NeuralConfig.small` is about 20x cheaper. The fit holds the shot's
proxies and flows in memory (about 30 bytes per proxy pixel); rendering needs only the weights.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Optional, cast

import numpy as np
import torch
from torch import nn

from deflicker.method.atlas.neural_loss import shot_losses
from deflicker.errors import DeviceError, InvalidSettingsError, ModelLoadError
from deflicker.progress import CancelCheck, Progress, check_cancel, report
from deflicker.settings import AtlasSettings

if TYPE_CHECKING:
    from deflicker.method.atlas.fast import ShotFlows

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RENDER_CHUNK = 8192  # pixels per render pass; fixed (padded) so every pass has the same shape
REPORT_EVERY = 10  # iterations between progress reports


@dataclass(frozen=True)
class NeuralConfig:
    """Architecture, sampling and loss weights of the neural atlas (paper defaults)."""

    mapping_layers: int = 6
    mapping_width: int = 256
    atlas_layers: int = 8
    atlas_width: int = 256
    frequencies: int = 10  # positional encoding frequencies of the atlas MLP
    batch: int = 10000  # pixels sampled per iteration
    learning_rate: float = 5e-4  # the reference: 1e-4 over 10,001 steps; ours default to 2000 (AtlasSettings)
    uv_scale: float = 0.8  # atlas scale of a still shot (NLA's uv_mapping_scale)
    rgb_weight: float = 5000.0
    flow_weight: float = 500.0  # 5 for mild flicker in the reference
    rigidity_weight: float = 1.0
    gradient_weight: float = 1000.0
    sparsity_weight: float = 1000.0
    global_rigidity_weight: float = 50.0
    global_rigidity_until: float = 0.5  # fraction of the iterations with the global rigidity term
    global_rigidity_span: float = 0.13  # its finite-difference step, fraction of the long side

    def __post_init__(self) -> None:
        if min(self.mapping_layers, self.atlas_layers) < 2 or min(self.mapping_width, self.atlas_width) < 1:
            raise InvalidSettingsError("neural atlas MLPs need at least 2 layers of width >= 1")
        if self.frequencies < 0 or self.batch < 1 or self.learning_rate <= 0 or self.uv_scale <= 0:
            raise InvalidSettingsError("neural atlas frequencies, batch, learning_rate and uv_scale out of range")

    @classmethod
    def from_settings(cls, settings: AtlasSettings) -> "NeuralConfig":
        """The paper's config, with ``neural_width`` (both MLPs), ``neural_batch`` and
        ``neural_learning_rate`` taken from ``settings`` where it has those fields."""
        base = cls()
        width = int(getattr(settings, "neural_width", base.atlas_width))
        return cls(mapping_width=width, atlas_width=width, batch=int(getattr(settings, "neural_batch", base.batch)),
                   learning_rate=float(getattr(settings, "neural_learning_rate", base.learning_rate)))

    @classmethod
    def small(cls) -> "NeuralConfig":
        """A CPU-sized variant: mapping 4x64, atlas 4x128, 8 frequencies, 2048 pixels per step."""
        return cls(mapping_layers=4, mapping_width=64, atlas_layers=4, atlas_width=128, frequencies=8,
                   batch=2048, learning_rate=2e-3)


class _MLP(nn.Module):
    """(N, d_in) -> (N, d_out): ReLU MLP of ``layers`` linear layers, the input re-fed at ``skips``."""

    def __init__(self, d_in: int, d_out: int, width: int, layers: int, skips: tuple[int, ...] = ()) -> None:
        super().__init__()
        self.skips = tuple(i for i in skips if 0 < i < layers)
        self.linears = nn.ModuleList(
            nn.Linear(d_in if i == 0 else width + (d_in if i in self.skips else 0), d_out if i == layers - 1 else width)
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, linear in enumerate(self.linears):
            if i in self.skips:
                h = torch.cat([h, x], dim=1)
            h = linear(h)
            if i < len(self.linears) - 1:
                h = torch.relu(h)
        return h

    def initialize(self, generator: torch.Generator, *, zero_last: bool = False) -> None:
        """He-uniform weights from ``generator``, zero biases (deterministic on any device)."""
        with torch.no_grad():
            for i, module in enumerate(self.linears):
                linear = cast(nn.Linear, module)
                last = i == len(self.linears) - 1
                bound = (1.0 if last else 6.0) ** 0.5 / linear.in_features ** 0.5
                values = (torch.rand(linear.weight.shape, generator=generator) * 2 - 1) * bound
                linear.weight.copy_(torch.zeros_like(values) if last and zero_last else values)
                linear.bias.zero_()


def _encode(uv: torch.Tensor, frequencies: int) -> torch.Tensor:
    """NLA positional encoding of (N, 2) uv in [-1, 1]: [w, sin(2^k pi w), cos(2^k pi w)], w = (uv+1)/2."""
    w = uv * 0.5 + 0.5
    if frequencies == 0:
        return w
    bands = (2.0 ** torch.arange(frequencies, device=uv.device, dtype=uv.dtype)) * np.pi
    angles = (w[:, :, None] * bands).reshape(w.shape[0], -1)
    return torch.cat([w, torch.sin(angles), torch.cos(angles)], dim=1)


_ARCH = ("mapping_layers", "mapping_width", "atlas_layers", "atlas_width", "frequencies")


class NeuralAtlas:
    """A fitted neural atlas of one shot; ``frame(t)`` renders its consistent frame A_t."""

    method = "neural"

    def __init__(self, arch: dict[str, int], shape: tuple[int, int, int], offsets: np.ndarray, scale: float,
                 *, device: str = "cpu") -> None:
        self.arch = {k: int(arch[k]) for k in _ARCH}
        self.shape = tuple(int(v) for v in shape)
        n, h, w = self.shape
        self.device = torch.device(device)
        self.scale = float(scale)
        self.offsets = torch.as_tensor(np.asarray(offsets, np.float32).reshape(n, 2), device=self.device)
        a = self.arch
        self.mapping = _MLP(3, 2, a["mapping_width"], a["mapping_layers"]).to(self.device)
        enc = 2 + 4 * a["frequencies"]
        self.atlas = _MLP(enc, 3, a["atlas_width"], a["atlas_layers"],
                          skips=(a["atlas_layers"] // 2, a["atlas_layers"] - 1)).to(self.device)
        self.half = max(h, w) / 2.0

    def map(self, x: torch.Tensor, y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Atlas coordinates (N, 2) of pixels (x, y) (proxy pixels, float) in frames t (long)."""
        n, h, w = self.shape
        xn = (x - (w - 1) / 2.0) / self.half
        yn = (y - (h - 1) / 2.0) / self.half
        tn = t.to(x.dtype) * (2.0 / (n - 1)) - 1.0 if n > 1 else torch.zeros_like(x)
        base = torch.stack([xn, yn], dim=1) + self.offsets[t]
        return self.scale * base + self.mapping(torch.stack([xn, yn, tn], dim=1))

    def colour(self, uv: torch.Tensor) -> torch.Tensor:
        """Atlas colour (N, 3) at atlas coordinates (N, 2)."""
        return self.atlas(_encode(uv, self.arch["frequencies"]))

    def frame(self, t: int) -> np.ndarray:
        """A_t of shot-local frame ``t``: (h, w, 3) float32 in proxy units, deterministic."""
        n, h, w = self.shape
        if not 0 <= int(t) < n:
            raise IndexError(f"frame {t} outside the shot's {n} frames")
        count = h * w
        padded = -(-count // RENDER_CHUNK) * RENDER_CHUNK
        index = torch.arange(padded, device=self.device) % count
        xs = (index % w).to(torch.float32)
        ys = (index // w).to(torch.float32)
        ts = torch.full((RENDER_CHUNK,), int(t), dtype=torch.long, device=self.device)
        out = []
        with torch.inference_mode():
            for start in range(0, padded, RENDER_CHUNK):
                sl = slice(start, start + RENDER_CHUNK)
                out.append(self.colour(self.map(xs[sl], ys[sl], ts)))
        rgb = torch.cat(out)[:count].reshape(h, w, 3)
        return rgb.cpu().numpy().astype(np.float32, copy=False)

    def parameters(self) -> list[nn.Parameter]:
        """Trainable parameters of both MLPs."""
        return list(self.mapping.parameters()) + list(self.atlas.parameters())

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Weights (float32) and configuration (small int/float arrays) to rebuild the atlas."""
        arrays: dict[str, np.ndarray] = {"neural.version": np.array([FORMAT_VERSION], np.int64),
                  "neural.arch": np.array([self.arch[k] for k in _ARCH], np.int64),
                  "neural.shape": np.array(self.shape, np.int64),
                  "neural.scale": np.array([self.scale], np.float64),
                  "neural.offsets": self.offsets.detach().cpu().numpy().astype(np.float32)}
        for prefix, module in (("mapping", self.mapping), ("atlas", self.atlas)):
            for name, value in module.state_dict().items():
                arrays[f"neural.{prefix}.{name}"] = value.detach().cpu().numpy().astype(np.float32)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], *, device: str = "cpu") -> "NeuralAtlas":
        """Rebuild an atlas saved by :meth:`to_arrays`; renders on ``device`` (same device, same bytes)."""
        try:
            version = int(np.asarray(arrays["neural.version"]).ravel()[0])
            if version != FORMAT_VERSION:
                raise ModelLoadError(f"neural atlas format {version}, expected {FORMAT_VERSION}")
            arch = dict(zip(_ARCH, (int(v) for v in np.asarray(arrays["neural.arch"]).ravel())))
            n, h, w = (int(v) for v in np.asarray(arrays["neural.shape"]).ravel())
            atlas = cls(arch, (n, h, w), arrays["neural.offsets"], float(np.asarray(arrays["neural.scale"]).ravel()[0]),
                        device=device)
            for prefix, module in (("mapping", atlas.mapping), ("atlas", atlas.atlas)):
                state = {name: torch.as_tensor(np.asarray(arrays[f"neural.{prefix}.{name}"], np.float32))
                         for name in module.state_dict()}
                module.load_state_dict(state, strict=True)
        except ModelLoadError:
            raise
        except (KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:
            raise ModelLoadError(f"corrupt neural atlas arrays: {exc}") from None
        atlas.mapping.eval()
        atlas.atlas.eval()
        return atlas


def _torch_device(device: str) -> str:
    """'cuda' (DeviceError when torch sees none) or 'cpu' for anything else (callers resolve 'auto')."""
    if device != "cuda":
        return "cpu"
    if not torch.cuda.is_available():
        raise DeviceError("device 'cuda' requested but torch sees no CUDA device")
    return "cuda"


def global_offsets(flows: "ShotFlows", shape: tuple[int, int, int], uv_scale: float) -> tuple[np.ndarray, float]:
    """Per-frame offsets (n, 2), normalized units, undoing the shot's global translation (cumulated
    median of the valid forward flow), and the atlas scale that keeps every frame inside the atlas."""
    n, h, w = shape
    half = max(h, w) / 2.0
    cum = np.zeros((n, 2), np.float64)
    for k in range(n - 1):
        valid = flows.valid_fw[k]
        step = np.median(flows.fw[k][valid], axis=0) if valid.any() else np.zeros(2)
        cum[k + 1] = cum[k] + step
    offsets = -(cum - cum.mean(axis=0)) / half
    reach = np.array([(w - 1) / 2.0, (h - 1) / 2.0]) / half + np.abs(offsets).max(axis=0)
    return offsets.astype(np.float32), uv_scale / max(1.0, float(reach.max()))


def _check_inputs(proxies: np.ndarray, flows: "ShotFlows") -> tuple[int, int, int]:
    if proxies.ndim != 4 or proxies.shape[-1] != 3 or proxies.shape[0] < 1:
        raise InvalidSettingsError(f"proxies must be (n, h, w, 3), not {proxies.shape}")
    n, h, w = proxies.shape[:3]
    for name, shape in (("fw", (n - 1, h, w, 2)), ("bw", (n - 1, h, w, 2)), ("valid_fw", (n - 1, h, w)),
                        ("valid_bw", (n - 1, h, w))):
        if tuple(np.shape(getattr(flows, name))) != shape:
            raise InvalidSettingsError(f"flows.{name} must be {shape}, not {np.shape(getattr(flows, name))}")
    return n, h, w


def fit_neural(proxies: np.ndarray, flows: "ShotFlows", settings: AtlasSettings, *, device: str = "cpu",
               progress: Optional[Progress] = None, cancel: Optional[CancelCheck] = None,
               config: Optional[NeuralConfig] = None) -> NeuralAtlas:
    """Fit the neural atlas of one shot: proxies (n, h, w, 3) float32, flows between neighbours.

    Runs ``settings.neural_iterations`` Adam steps seeded by ``settings.seed`` (bitwise
    deterministic on the CPU); reports progress and checks ``cancel`` every few steps.
    """
    cfg = config or NeuralConfig.from_settings(settings)
    dev = _torch_device(device)
    n, h, w = _check_inputs(proxies, flows)
    offsets, scale = global_offsets(flows, (n, h, w), cfg.uv_scale)
    arch = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name in _ARCH}
    model = NeuralAtlas(arch, (n, h, w), offsets, scale, device=dev)
    generator = torch.Generator().manual_seed(int(settings.seed))
    model.mapping.initialize(generator, zero_last=True)
    model.atlas.initialize(generator)
    images = torch.from_numpy(np.ascontiguousarray(proxies, np.float32).reshape(-1, 3)).to(dev)
    with torch.no_grad():
        cast(nn.Linear, model.atlas.linears[-1]).bias.copy_(images.mean(dim=0))
    data = {name: torch.from_numpy(np.ascontiguousarray(getattr(flows, name)).reshape((n - 1) * h * w, dim)).to(dev)
            for name, dim in (("fw", 2), ("bw", 2), ("valid_fw", 1), ("valid_bw", 1))}
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    iterations = int(settings.neural_iterations)
    log.info("neural atlas: %d frames of %dx%d, %d iterations on %s", n, w, h, iterations, dev)
    check_cancel(cancel)
    for it in range(iterations):
        check_cancel(cancel)  # every step: on a CPU one takes up to seconds
        if it % REPORT_EVERY == 0:
            report(progress, it / max(iterations, 1), "neural atlas")
        index = torch.randint(0, n * h * w, (cfg.batch,), generator=generator).to(dev)
        use_global = it < cfg.global_rigidity_until * iterations
        terms = shot_losses(model, images, data, index, cfg, use_global)
        total = sum(getattr(cfg, f"{name}_weight") * value for name, value in terms.items())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if it % 500 == 0:
            log.debug("neural atlas it %d: %s", it, {k: round(float(v.detach()), 6) for k, v in terms.items()})
    model.mapping.eval()
    model.atlas.eval()
    report(progress, 1.0, "neural atlas")
    return model
