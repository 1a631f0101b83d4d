"""Single image files: PNG, TIFF and JPEG through OpenCV, EXR through the OpenEXR package.

``read_image`` returns the stored pixels as RGB(A) uint8 / uint16 / float32; ``write_image``
stores a float frame at a bit depth the format can hold.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io.clip import quantize

log = logging.getLogger(__name__)

IMAGE_EXTS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".exr")
DEPTHS = {".png": (8, 16), ".tif": (8, 16, 32), ".tiff": (8, 16, 32), ".jpg": (8,), ".jpeg": (8,),
          ".exr": (32,)}


def storable_depth(ext: str, bit_depth: int) -> int:
    """The bit depth a format stores for a requested one (the nearest it holds, never less if possible)."""
    depths = DEPTHS[ext.lower()]
    return next((d for d in depths if d >= bit_depth), depths[-1])


def exr_available() -> bool:
    """True when the OpenEXR package is installed."""
    return importlib.util.find_spec("OpenEXR") is not None


def _openexr():
    """The OpenEXR module, or a clear error when it is not installed."""
    try:
        import OpenEXR
    except ImportError:
        raise VideoIOError("EXR files need the OpenEXR package: pip install OpenEXR") from None
    return OpenEXR


def _read_exr(path: Path) -> np.ndarray:
    """RGB(A) float32 pixels of an EXR file."""
    openexr = _openexr()
    try:
        with openexr.File(str(path), separate_channels=True) as exr:
            channels = {name: ch.pixels for name, ch in exr.channels().items()}
    except (RuntimeError, OSError, ValueError) as exc:
        raise VideoIOError(f"cannot read {path}: {exc}") from None
    names = ["R", "G", "B"] + (["A"] if "A" in channels else [])
    if not all(name in channels for name in names):
        raise VideoIOError(f"{path} has channels {sorted(channels)}, expected R, G, B (and A)")
    return np.stack([channels[name].astype(np.float32) for name in names], axis=-1)


def _read_tiff(path: Path) -> Optional[np.ndarray]:
    """(H, W, S) pixels of a TIFF's first page in RGB order, straight alpha kept as stored
    (OpenCV premultiplies 8-bit RGBA); None when tifffile cannot decode it (e.g. LZW)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            pixels = page.asarray()
            axes = page.axes
    except (tifffile.TiffFileError, ValueError, IndexError, OSError) as exc:
        log.debug("tifffile cannot read %s (%s); trying OpenCV", path, exc)
        return None
    if axes.startswith("S"):
        pixels = np.moveaxis(pixels, 0, -1)
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def _read_opencv(path: Path) -> np.ndarray:
    """(H, W, S) pixels of a PNG, TIFF or JPEG file in RGB order."""
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise VideoIOError(f"cannot read image {path} (missing, truncated or not an image)")
    if pixels.ndim == 2:
        return pixels[:, :, None]
    if pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    if pixels.shape[2] == 4:
        return cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    return pixels


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3|4) RGB(A) pixels as stored: uint8, uint16 or float32 (grey is repeated to RGB)."""
    ext = path.suffix.lower()
    if ext == ".exr":
        return _read_exr(path)
    pixels = _read_tiff(path) if ext in (".tif", ".tiff") else None
    if pixels is None:
        pixels = _read_opencv(path)
    channels = pixels.shape[2]
    if channels in (1, 2):  # grey (+ alpha)
        pixels = np.concatenate([np.repeat(pixels[:, :, :1], 3, axis=2), pixels[:, :, 1:]], axis=2)
    elif channels not in (3, 4):
        raise VideoIOError(f"{path} has {channels} channels, expected 1 to 4")
    return pixels


def _write_exr(path: Path, frame: np.ndarray) -> None:
    """Store a float frame as a ZIP-compressed float EXR."""
    openexr = _openexr()
    names = "RGBA"[: frame.shape[2]]
    channels = {name: np.ascontiguousarray(frame[..., i], dtype=np.float32) for i, name in enumerate(names)}
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    try:
        with openexr.File(header, channels) as exr:
            exr.write(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise VideoIOError(f"cannot write {path}: {exc}") from None


def _write_tiff(path: Path, pixels: np.ndarray) -> None:
    """Store RGB(A) pixels as a zlib TIFF, alpha tagged as such (OpenCV's writer leaves it untagged)."""
    import tifffile

    extra = ["unassalpha"] if pixels.shape[2] == 4 else None
    tifffile.imwrite(path, pixels, photometric="rgb", extrasamples=extra, compression="zlib")


def stored_pixels(frame: np.ndarray, depth: int) -> np.ndarray:
    """A float frame as the pixels an image of ``depth`` bits stores: float32 at 32 (the frame
    itself when it is float32), else uint8 / uint16 (:func:`deflicker.io.clip.quantize`)."""
    return frame.astype(np.float32, copy=False) if depth == 32 else quantize(frame, depth)


def write_image(path: Path, frame: np.ndarray, bit_depth: int) -> None:
    """Store an (H, W, 3|4) float frame in the format of ``path``'s suffix (JPEG drops alpha)."""
    ext = path.suffix.lower()
    depth = storable_depth(ext, bit_depth)
    if ext == ".exr":
        _write_exr(path, frame)
        return
    if ext in (".jpg", ".jpeg"):
        frame = frame[..., :3]
    pixels = stored_pixels(frame, depth)
    try:
        if ext in (".tif", ".tiff"):
            _write_tiff(path, pixels)
            return
        code = cv2.COLOR_RGBA2BGRA if pixels.shape[2] == 4 else cv2.COLOR_RGB2BGR
        ok, data = cv2.imencode(ext, cv2.cvtColor(pixels, code))
        if not ok:
            raise VideoIOError(f"cannot encode {path} as {ext}")
        path.write_bytes(data.tobytes())
    except OSError as exc:
        raise VideoIOError(f"cannot write {path}: {exc.strerror or exc}") from None
