"""What a clip's analysis was made from: one digest per frame, and the clip's full-content hash.

The analysis reads nothing of a frame but its proxy (``resize(rgb(frame))`` at the analysis
size, stored at half precision), so a digest of that proxy is exactly what the analysis depends
on: two clips whose frames all have the same digests get the same analysis. The digests are
computed while the analysis reads the clip (:class:`DigestingSource`), stored in the cache entry
with their hash (:meth:`ContentDigests.full_hash`), and every frame a render reads is checked
against its digest before the analysis is used for it (:meth:`ContentDigests.check`): an entry
made for another clip (the cache key samples only a few frames) is never rendered with.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from deflicker.errors import ModelLoadError
from deflicker.image import resize, rgb
from deflicker.source import ClipInfo, FrameSource

#: Bytes of one frame's digest.
DIGEST_SIZE = 16


class ContentMismatch(ModelLoadError):
    """A frame of the clip is not the frame the analysis was made from."""


def frame_digest(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Digest (DIGEST_SIZE,) uint8 of a full-resolution frame's half-precision analysis proxy of ``shape``."""
    proxy = resize(rgb(frame), shape).astype(np.float16)
    return np.frombuffer(hashlib.blake2b(proxy.tobytes(), digest_size=DIGEST_SIZE).digest(), np.uint8)


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

    def check(self, t: int, frame: np.ndarray) -> None:
        """Raise :class:`ContentMismatch` unless ``frame`` is frame t of the analysed clip."""
        if not np.array_equal(frame_digest(frame, self.shape), self.frames[t]):
            raise ContentMismatch(f"frame {t} is not the frame the cached analysis was made from")


class DigestingSource:
    """A FrameSource passing ``source``'s frames through and recording each one's digest."""

    def __init__(self, source: FrameSource, shape: tuple[int, int]):
        self.source = source
        self.info: ClipInfo = source.info
        self.shape = shape
        self._frames = np.zeros((len(source), DIGEST_SIZE), np.uint8)
        self._read = np.zeros(len(source), bool)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> np.ndarray:
        frame = self.source[index]
        self._frames[index] = frame_digest(frame, self.shape)
        self._read[index] = True
        return frame

    def digests(self) -> ContentDigests:
        """Every frame's digest (frames the analysis skipped are read now)."""
        for t in np.flatnonzero(~self._read):
            self[int(t)]
        return ContentDigests(self._frames.copy(), self.shape)
