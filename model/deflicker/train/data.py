"""Still images the neural filter trains on: photographs installed packages ship, plus
procedurally generated images. No downloads.

Every image is (H, W, 3) float32 in [0, 1], its long side at most :data:`LONG_SIDE` (about the
proxy scale the filter runs at). ``coffee`` is held out for validation.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from deflicker.method.image import proxy_shape, resize

log = logging.getLogger(__name__)

LONG_SIDE = 320
#: scikit-image photographs (file names in skimage's data folder) used for training.
SKIMAGE_TRAIN = ("astronaut.png", "chelsea.png", "rocket.jpg", "camera.png", "motorcycle_left.png",
                 "motorcycle_right.png", "hubble_deep_field.jpg", "ihc.png", "retina.jpg", "brick.png",
                 "grass.png", "gravel.png", "coins.png", "moon.png", "page.png", "color.png", "logo.png")
#: matplotlib sample_data images used for training.
MPL_TRAIN = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
#: Held out: never seen in training.
SKIMAGE_VAL = ("coffee.png",)
PROCEDURAL = 24


def _skimage_dir() -> Path:
    import skimage.data

    return Path(skimage.data.__file__).resolve().parent


def _mpl_dir() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data"


def read_image(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) float32 in [0, 1] (grey becomes RGB, alpha dropped), long side <= LONG_SIDE."""
    from PIL import Image

    with Image.open(path) as pil:
        img = np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0
    return resize(img, proxy_shape(img.shape[0], img.shape[1], LONG_SIDE))


def procedural_image(rng: np.random.Generator, size: int = 192) -> np.ndarray:
    """Gradient background, random shapes and a noise texture, (size, size, 3) float32 in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    c0, c1, c2 = rng.random((3, 3)).astype(np.float32)
    img = c0 + (c1 - c0) * xx[..., None] + (c2 - c0) * yy[..., None]
    for _ in range(int(rng.integers(3, 12))):
        colour = tuple(float(v) for v in rng.random(3))
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(6, size // 3))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), r, colour, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(img, (x - r, y - r // 2), (x + r, y + r // 2), colour, -1, lineType=cv2.LINE_AA)
    octave = int(rng.integers(4, 32))
    noise = cv2.resize(rng.random((octave, octave, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    img = img + float(rng.uniform(0.0, 0.3)) * (noise - 0.5)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def training_images(seed: int) -> tuple[list[np.ndarray], list[str]]:
    """The training set (images and their names); procedural images depend on ``seed``."""
    sk, mpl = _skimage_dir(), _mpl_dir()
    images, names = [], []
    for folder, files in ((sk, SKIMAGE_TRAIN), (mpl, MPL_TRAIN)):
        for name in files:
            path = folder / name
            if not path.exists():
                log.warning("training image %s is missing; skipped", path)
                continue
            images.append(read_image(path))
            names.append(name)
    rng = np.random.default_rng(seed)
    for i in range(PROCEDURAL):
        images.append(procedural_image(rng))
        names.append(f"procedural-{i}")
    return images, names


def validation_images() -> tuple[list[np.ndarray], list[str]]:
    """Held-out photographs (never used in training) and their names."""
    sk = _skimage_dir()
    return [read_image(sk / name) for name in SKIMAGE_VAL], list(SKIMAGE_VAL)
