"""What identifies a clip's analysis: :class:`ClipKey`, a cheap fingerprint of the clip's
content (sampled frames' 8-bit code values, not a path: the same for the media file and for the
float RGBA or 8/16-bit frames a host hands the plugin, :mod:`deflicker.method.content`), its
frame count and size, the hash of the analysis settings and the format version. Its digest names
the clip's cache entries."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import numpy as np

from deflicker.io.source import FrameSource, file_pixels
from deflicker.method.analysis import FORMAT_VERSION
from deflicker.method.content import code_thumbnail
from deflicker.method.tuning import analysis_signature
from deflicker.settings import Settings

#: Frames sampled (evenly, first and last included) for the content fingerprint.
FINGERPRINT_FRAMES = 8
#: Side of the thumbnails hashed for the fingerprint.
FINGERPRINT_SIZE = 64


def fingerprint_frames(frame_count: int) -> list[int]:
    """The frames the fingerprint of a clip of ``frame_count`` frames reads, in order."""
    n = frame_count
    return sorted(set(np.linspace(0, n - 1, min(FINGERPRINT_FRAMES, n)).round().astype(int).tolist()))


def fingerprint(source: FrameSource) -> str:
    """Hash of evenly sampled frames' code-value thumbnails: the cache key's cheap sample of the
    clip's content, the same from any source format (the entry's frame digests check the rest,
    :mod:`deflicker.method.content`)."""
    h = hashlib.sha256()
    for i in fingerprint_frames(len(source)):
        frame = file_pixels(source, i)
        thumb = code_thumbnail(frame, (min(FINGERPRINT_SIZE, frame.shape[0]), min(FINGERPRINT_SIZE, frame.shape[1])))
        h.update(np.int64(i).tobytes())
        h.update(np.ascontiguousarray(thumb).tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class ClipKey:
    """What identifies an analysis: content (in any source format), range, size, analysis settings, version."""

    content: str
    frame_count: int
    width: int
    height: int
    settings: str
    version: int = FORMAT_VERSION

    @classmethod
    def for_source(cls, source: FrameSource, settings: Settings) -> "ClipKey":
        """The key of a clip (reads the fingerprint frames) under these settings."""
        info = source.info
        return cls(content=fingerprint(source), frame_count=len(source), width=info.width, height=info.height,
                   settings=analysis_signature(settings.analysis))

    def digest(self) -> str:
        """A short stable string for file names and the plugin's hidden parameter."""
        blob = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha256(blob).hexdigest()[:24]
