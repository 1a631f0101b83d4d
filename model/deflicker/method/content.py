"""What a clip's analysis was made from: one digest per frame, and the clip's full-content hash.

The analysis reads nothing of a frame but its proxy (``resize(rgb(frame))`` at the analysis
size, stored at half precision), so a digest of that proxy is exactly what the analysis depends
on: two clips whose frames all have the same digests get the same analysis. The digests are
taken from the proxies the analysis reads anyway (``analysis.read_proxies``, which finds exact
repeats by the same digests), stored in the cache entry with their hash (:meth:`ContentDigests.full_hash`), and every frame a render
reads is checked against its digest, from the proxy the render makes anyway, before the analysis
is used for it (:meth:`ContentDigests.check`): an entry made for another clip (the cache key
samples only a few frames) is never rendered with.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from deflicker.errors import ModelLoadError

#: Bytes of one frame's digest.
DIGEST_SIZE = 16


class ContentMismatch(ModelLoadError):
    """A frame of the clip is not the frame the analysis was made from."""


def proxy_digest(proxy: np.ndarray) -> np.ndarray:
    """Digest (DIGEST_SIZE,) uint8 of a frame's analysis proxy in clip units (``resize(rgb(frame))``),
    taken at the half precision the analysis stores it in."""
    half = np.ascontiguousarray(proxy, np.float16)
    return np.frombuffer(hashlib.blake2b(half.tobytes(), digest_size=DIGEST_SIZE).digest(), np.uint8)


@dataclass(frozen=True)
class ContentDigests:
    """Per-frame digests (n, DIGEST_SIZE) uint8 of a clip's proxies of ``shape`` (h, w)."""

    frames: np.ndarray
    shape: tuple[int, int]

    def full_hash(self) -> str:
        """The clip's full-content hash: every frame's digest, in order, with the proxy shape."""
        h = hashlib.blake2b(digest_size=32)
        h.update(np.array([len(self.frames), *self.shape], np.int64).tobytes())
        h.update(np.ascontiguousarray(self.frames, np.uint8).tobytes())
        return h.hexdigest()

    def check(self, t: int, proxy: np.ndarray) -> None:
        """Raise :class:`ContentMismatch` unless ``proxy`` (clip units) is frame t's of the analysed clip."""
        if not np.array_equal(proxy_digest(proxy), self.frames[t]):
            raise ContentMismatch(f"frame {t} is not the frame the cached analysis was made from")
