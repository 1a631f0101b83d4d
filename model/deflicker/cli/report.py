"""Before/after report: mean brightness per frame and a strip of frames, as one PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from deflicker.method.image import luminance, rgb, to_proxy
from deflicker.io.atomic import replaced_on_success

STRIP_FRAMES = 4
STRIP_SIZE = 160


class ReportCollector:
    """Gathers per-frame brightness and a few thumbnails while a clip is processed."""

    def __init__(self, n_frames: int):
        self.before = np.zeros(n_frames, np.float64)
        self.after = np.zeros(n_frames, np.float64)
        picks = np.linspace(0, n_frames - 1, min(STRIP_FRAMES, n_frames)).round().astype(int)
        self.picks = sorted(set(int(p) for p in picks))
        self.thumbs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def add(self, t: int, before: np.ndarray, after: np.ndarray) -> None:
        """Record frame t before and after deflickering (full-resolution frames)."""
        self.before[t] = float(luminance(rgb(before)).mean())
        self.after[t] = float(luminance(rgb(after)).mean())
        if t in self.picks:
            self.thumbs[t] = (to_proxy(before, STRIP_SIZE), to_proxy(after, STRIP_SIZE))

    def save(self, path: Union[str, Path], *, title: str = "") -> Path:
        """Write the PNG (atomically) and return its path."""
        return write_report(path, self.before, self.after, self.thumbs, title=title)


def write_report(path: Union[str, Path], before: np.ndarray, after: np.ndarray,
                 thumbs: dict[int, tuple[np.ndarray, np.ndarray]], *, title: str = "") -> Path:
    """Plot brightness curves (top) and before/after thumbnails (bottom rows) into a PNG."""
    plt = agg_pyplot()
    cols = max(1, len(thumbs))
    width = 2.4 * max(cols, 3)
    first = next(iter(thumbs.values()), None)
    aspect = first[0].shape[0] / first[0].shape[1] if first is not None else 0.5625
    thumb_h = width / cols * aspect + 0.35  # rows about as tall as the thumbnails (and their titles)
    fig = plt.figure(figsize=(width, 3.0 + 2 * thumb_h))
    grid = fig.add_gridspec(3, cols, height_ratios=[3.0, thumb_h, thumb_h])
    ax = fig.add_subplot(grid[0, :])
    ax.plot(before, label="input", color="tab:red", lw=1)
    ax.plot(after, label="deflickered", color="tab:blue", lw=1.5)
    ax.set_xlabel("frame")
    ax.set_ylabel("mean brightness")
    ax.set_title(f"Deflicker {title}".strip())
    ax.legend(loc="best")
    for col, t in enumerate(sorted(thumbs)):
        for row, img in enumerate(thumbs[t]):
            sub = fig.add_subplot(grid[row + 1, col])
            sub.imshow(np.clip(img, 0, 1))
            sub.set_xticks([])
            sub.set_yticks([])
            sub.set_title(f"{'before' if row == 0 else 'after'} t={t}", fontsize=8)
    return save_png(fig, path, dpi=90)


def agg_pyplot() -> Any:
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: Union[str, Path], *, dpi: int) -> Path:
    """Lay out a matplotlib figure, write it as a PNG atomically (temp file, then rename) and
    close it, whatever happens; returns the path."""
    plt = agg_pyplot()
    path = Path(path)
    try:
        fig.tight_layout()
        with replaced_on_success(path) as tmp:
            fig.savefig(tmp, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return path
