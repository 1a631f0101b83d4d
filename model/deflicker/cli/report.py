"""Before/after report: mean brightness per frame and a strip of frames, as one PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from deflicker.io.atomic import replaced_on_success
from deflicker.method.image import mean_luminance, to_proxy

STRIP_FRAMES = 4
STRIP_SIZE = 160


class ReportCollector:
    """Gathers per-frame brightness and a few thumbnails while a clip is processed. A frame's
    input and its output are recorded apart, each when it is at hand (render workers record
    theirs side by side, each for its own frames). Frames are full resolution, float or the
    integer pixels a file stores, read a band of rows at a time: no float frame is made."""

    def __init__(self, n_frames: int):
        self.before = np.zeros(n_frames, np.float64)
        self.after = np.zeros(n_frames, np.float64)
        picks = np.linspace(0, n_frames - 1, min(STRIP_FRAMES, n_frames)).round().astype(int)
        self.picks = sorted(set(int(p) for p in picks))
        self._thumbs: tuple[dict[int, np.ndarray], dict[int, np.ndarray]] = ({}, {})

    def add_input(self, t: int, frame: np.ndarray) -> None:
        """Record frame t before deflickering."""
        self._record(0, t, frame)

    def add_output(self, t: int, frame: np.ndarray) -> None:
        """Record frame t after deflickering."""
        self._record(1, t, frame)

    def add(self, t: int, before: np.ndarray, after: np.ndarray) -> None:
        """Record frame t before and after deflickering."""
        self.add_input(t, before)
        self.add_output(t, after)

    @property
    def thumbs(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """(before, after) thumbnails of the picked frames recorded both ways, by frame."""
        before, after = self._thumbs
        return {t: (before[t], after[t]) for t in sorted(before.keys() & after.keys())}

    def save(self, path: Union[str, Path], *, title: str = "") -> Path:
        """Write the PNG (atomically) and return its path."""
        return write_report(path, self.before, self.after, self.thumbs, title=title)

    def _record(self, side: int, t: int, frame: np.ndarray) -> None:
        (self.before, self.after)[side][t] = mean_luminance(frame)
        if t in self.picks:
            self._thumbs[side][t] = to_proxy(frame, STRIP_SIZE)


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
