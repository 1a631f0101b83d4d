"""What a clip's analysis was made from, the same from any source format: one digest per frame,
and the clip's full-content hash.

Hosts hand the plugin the clip in their own format (float RGBA from Resolve and Nuke, 8- or
16-bit RGB or RGBA), while ``deflicker analyze`` and the pre-analysis scripts read the media
file (8-bit RGB, say). So that an analysis made from one is found by the others, a frame is
identified by its **code values** (:func:`code_values`): its colour (alpha dropped) as 8-bit
code values, ``round(x * 255)``. Every format of 8-bit content gives the same code values, as
does every 8-bit or deeper rendering of 16-bit content (float32 and 16-bit conversions are far
more precise than half a code value). Values beyond [0, 1] (float HDR) are kept, not clipped to
255, up to the int16 range: clips that differ only in their highlights are told apart.

A frame's digest (:func:`content_digest`) hashes its code values area-resized, in integers, to
the analysis proxy's size: the analysis reads nothing of a frame but that proxy (at half
precision), so frames with the same digests get the same analysis up to the last bit of their
proxies. The digests are taken while the analysis reads its proxies
(``analysis.read_proxies``), stored in the cache entry with their hash
(:meth:`ContentDigests.full_hash`), and every frame a render reads is checked against its
digest before the analysis is used for it (:meth:`ContentDigests.check`): an entry made for
another clip (the cache key samples only a few frames) is never rendered with, while the same
media handed over in another format is.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from deflicker.bands import area_downsample
from deflicker.errors import ModelLoadError
from deflicker.io.clip import to_float

#: Bytes of one frame's digest.
DIGEST_SIZE = 16
#: Code values per unit of a frame (8-bit code values).
CODE_SCALE = 255.0


class ContentMismatch(ModelLoadError):
    """A frame of the clip is not the frame the analysis was made from."""


def code_values(frame: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A frame's colour as 8-bit code values: (H, W, C) float in clip units (C = 3 or 4, alpha
    dropped) -> (H, W, 3) int16, ``round(x * 255)`` (half to even) saturated to the int16 range;
    written into ``out`` (H, W, 3) int16 when given."""
    colour = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB) if frame.shape[2] == 4 else frame[..., :3]
    colour = np.asarray(colour, np.float32)
    # one fused pass: saturate_cast<short>(x * 255 + x * 0 + 0), rounded like np.rint
    codes: np.ndarray = cv2.addWeighted(colour, CODE_SCALE, colour, 0.0, 0.0, dst=out, dtype=cv2.CV_16S)
    return codes.reshape(frame.shape[0], frame.shape[1], 3)


def code_thumbnail(frame: np.ndarray, shape: tuple[int, int], unit: Optional[float] = None) -> np.ndarray:
    """A frame's code values area-resized to ``shape`` (h, w): (h, w, 3) int16, resized in
    integers; with ``unit``, float32 ``codes * unit`` resized in floats (the flow proxy).
    ``frame`` is a float frame or the integer pixels a file stores (:func:`~deflicker.io.clip.to_float`
    gives its float frame): the same thumbnail either way.

    A band of rows at a time (:func:`~deflicker.bands.area_downsample`), so no frame-size array
    exists, float or integer."""
    if unit is None:
        return area_downsample(frame, shape, np.int16, lambda rows, out: code_values(to_float(rows), out=out))
    scale = np.float32(unit)
    return area_downsample(frame, shape, np.float32,
                           lambda rows, out: np.multiply(code_values(to_float(rows)), scale, out=out))


def content_digest(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Digest (DIGEST_SIZE,) uint8 of a full-resolution frame (clip units, RGB or RGBA, any
    depth it came in): its :func:`code_thumbnail` at the analysis proxy's ``shape``."""
    thumb = np.ascontiguousarray(code_thumbnail(frame, shape))
    return np.frombuffer(hashlib.blake2b(thumb.tobytes(), digest_size=DIGEST_SIZE).digest(), np.uint8)


@dataclass(frozen=True)
class ContentDigests:
    """Per-frame digests (n, DIGEST_SIZE) uint8 (:func:`content_digest`) at proxy ``shape`` (h, w)."""

    frames: np.ndarray
    shape: tuple[int, int]

    def full_hash(self) -> str:
        """The clip's full-content hash: every frame's digest, in order, with the proxy shape."""
        h = hashlib.blake2b(digest_size=32)
        h.update(np.array([len(self.frames), *self.shape], np.int64).tobytes())
        h.update(np.ascontiguousarray(self.frames, np.uint8).tobytes())
        return h.hexdigest()

    def check(self, t: int, frame: np.ndarray) -> None:
        """Raise :class:`ContentMismatch` unless ``frame`` (full resolution, clip units) is frame
        t of the analysed clip, in whatever format it comes."""
        if not np.array_equal(content_digest(frame, self.shape), self.frames[t]):
            raise ContentMismatch(f"frame {t} is not the frame the cached analysis was made from")
