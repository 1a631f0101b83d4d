"""``deflicker train-filter``: train the neural filter F on still images (the paper's recipe,
scaled to a CPU): clean X, input tau_a(X), guide tau_s(X), loss ||apply(F(input, guide), input) - X||^2.

Deterministic given the seed and thread count. Writes ``filter.pt`` and ``filter.json`` (the
recipe: seed, steps, data, degradations, loss curve, validation PSNRs, wall time, threads).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deflicker.train import degrade
from deflicker.errors import InvalidSettingsError
from deflicker.method.filter import DEFAULT_WEIGHTS, NeuralFilter, apply_coefficients, save_filter
from deflicker.io.atomic import output_folder
from deflicker.progress import CancelCheck, Progress, check_cancel, report
from deflicker.train.data import training_images, validation_images

log = logging.getLogger(__name__)

VAL_SEED = 12345
VAL_SAMPLES = 8


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of one training run (recorded in filter.json)."""

    steps: int = 3000
    seed: int = 0
    threads: int = 2
    batch: int = 8
    crop: int = 112
    lr: float = 2e-3
    width: int = 16
    radius: int = 2
    stride: int = 4
    log_every: int = 50


Sample = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # input, guide, confidence, clean


def random_crop(images: list[np.ndarray], crop: int, rng: np.random.Generator) -> np.ndarray:
    """A random, randomly scaled and flipped (crop, crop, 3) patch of a random image."""
    img = images[int(rng.integers(len(images)))]
    h, w = img.shape[:2]
    s = float(rng.uniform(0.6, 1.0)) * max(1.0, crop / min(h, w))
    s = max(s, crop / min(h, w))
    img = cv2.resize(img, (max(crop, round(w * s)), max(crop, round(h * s))), interpolation=cv2.INTER_AREA)
    y0 = int(rng.integers(0, img.shape[0] - crop + 1))
    x0 = int(rng.integers(0, img.shape[1] - crop + 1))
    out = img[y0:y0 + crop, x0:x0 + crop]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    if rng.random() < 0.5:
        out = out[::-1]
    return np.ascontiguousarray(out, dtype=np.float32)


def make_sample(clean: np.ndarray, rng: np.random.Generator) -> Sample:
    """(tau_a(X), tau_s(X), confidence, X) for one clean image."""
    guide, conf = degrade.structure(clean, rng)
    return degrade.appearance(clean, rng), guide, conf, clean


def to_batch(samples: list[Sample]) -> list[torch.Tensor]:
    """Stack samples into (N,3,H,W), (N,3,H,W), (N,1,H,W), (N,3,H,W) tensors."""
    def stack(i: int) -> torch.Tensor:
        arr = np.stack([s[i] if s[i].ndim == 3 else s[i][..., None] for s in samples])
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(0, 3, 1, 2)))
    return [stack(i) for i in range(4)]


def validation_set() -> list[Sample]:
    """Fixed degradations of the held-out photographs."""
    rng = np.random.default_rng(VAL_SEED)
    images, _ = validation_images()
    return [make_sample(images[i % len(images)], rng) for i in range(VAL_SAMPLES)]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean per-image PSNR in dB (peak 1) of (N,3,H,W) tensors."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def evaluate(model: NeuralFilter, samples: list[Sample]) -> dict[str, float]:
    """Validation loss and PSNRs (input, guide, filter output) against the clean images."""
    inp, guide, conf, clean = to_batch(samples)
    with torch.inference_mode():
        out = apply_coefficients(inp, model(inp, guide, conf))
    return {"loss": float(F.mse_loss(out, clean)), "psnr_input": psnr(inp, clean),
            "psnr_guide": psnr(guide, clean), "psnr_output": psnr(out, clean)}


def train_filter(config: TrainConfig, out_dir: Path, *, progress: Optional[Progress] = None,
                 cancel: Optional[CancelCheck] = None) -> dict[str, Any]:
    """Train F from scratch, write ``filter.pt`` and ``filter.json`` into ``out_dir``; returns the recipe."""
    if config.steps < 1 or config.batch < 1 or config.crop < 32 or config.threads < 1:
        raise InvalidSettingsError("steps, batch and threads must be >= 1 and crop >= 32")
    out_dir = output_folder(out_dir)
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    images, names = training_images(config.seed)
    val = validation_set()
    model = NeuralFilter(width=config.width, radius=config.radius, stride=config.stride)
    untrained = evaluate(model.eval(), val)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    warm = max(1, config.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warm) * 0.5 * (1 + np.cos(np.pi * i / config.steps)))
    curve: list[dict[str, float]] = []
    running, start = 0.0, time.perf_counter()
    for step in range(1, config.steps + 1):
        check_cancel(cancel)
        inp, guide, conf, clean = to_batch([make_sample(random_crop(images, config.crop, rng), rng)
                                            for _ in range(config.batch)])
        model.train()
        loss = F.mse_loss(apply_coefficients(inp, model(inp, guide, conf)), clean)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % config.log_every == 0 or step == config.steps:
            n = (step - 1) % config.log_every + 1
            curve.append({"step": step, "train_loss": running / n, "val_loss": evaluate(model.eval(), val)["loss"]})
            log.info("step %d train %.5f val %.5f", step, curve[-1]["train_loss"], curve[-1]["val_loss"])
            running = 0.0
        report(progress, step / config.steps, f"loss {float(loss.detach()):.4f}")
    final = evaluate(model.eval(), val)
    recipe = {
        "config": asdict(config), "parameters": model.parameter_count(),
        "train_images": names, "validation_images": [n for n in validation_images()[1]],
        "degradations": {"tau_a": degrade.appearance.__doc__, "tau_s": degrade.structure.__doc__},
        "loss": "mean squared error of apply(F(tau_a(X), tau_s(X)), tau_a(X)) to X",
        "loss_curve": curve, "untrained": untrained, "final": final,
        "wall_time_s": round(time.perf_counter() - start, 1), "torch": torch.__version__,
    }
    save_filter(model, out_dir / "filter.pt", {"final_val_loss": final["loss"]})
    tmp = out_dir / "filter.json.tmp"
    tmp.write_text(json.dumps(recipe, indent=1))
    tmp.replace(out_dir / "filter.json")
    return recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deflicker train-filter``."""
    d = TrainConfig()
    parser.add_argument("--steps", type=int, default=d.steps, help=f"optimizer steps (default {d.steps})")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS.parent), help="output folder (default: the package's weights)")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    parser.add_argument("--threads", type=int, default=d.threads, help="CPU threads (default %(default)s)")
    parser.add_argument("--batch", type=int, default=d.batch, help="images per step (default %(default)s)")
    parser.add_argument("--crop", type=int, default=d.crop, help="training crop size, pixels (default %(default)s)")


def run_command(args: argparse.Namespace) -> int:
    """Train, write the weights and the recipe, print the validation PSNRs."""
    from deflicker.cli.main import tqdm_progress

    config = TrainConfig(steps=args.steps, seed=args.seed, threads=args.threads, batch=args.batch, crop=args.crop)
    progress, close = tqdm_progress("train-filter")
    try:
        recipe = train_filter(config, Path(args.out), progress=progress)
    finally:
        close()
    final, before = recipe["final"], recipe["untrained"]
    print(f"validation PSNR: input {final['psnr_input']:.2f} dB, guide {final['psnr_guide']:.2f} dB, "
          f"untrained {before['psnr_output']:.2f} dB, trained {final['psnr_output']:.2f} dB "
          f"({recipe['wall_time_s']:.0f} s, weights in {args.out})")
    return 0
