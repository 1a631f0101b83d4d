"""The on-disk analysis cache, shared by every process on the machine.

An entry is ``<root>/<digest>.npz`` where the digest is a :class:`ClipKey`: a fingerprint of
the clip's content (sampled frames, not a path), its frame count, size, channels and bit
depth, the hash of the analysis settings and the format version. Entries are written to a
temp file and renamed, so readers never see half an entry; a per-key lock file serializes
the analysis of one clip across processes (the second process waits, then reads). A corrupt
or old-format entry is logged, removed and recomputed, never a crash.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Optional

import numpy as np

from deflicker.analysis import FORMAT_VERSION, ClipAnalysis, analyze_clip
from deflicker.errors import ModelLoadError, VideoIOError
from deflicker.image import resize
from deflicker.io_atomic import replaced_on_success
from deflicker.progress import CancelCheck, Progress
from deflicker.settings import Settings
from deflicker.source import FrameSource

log = logging.getLogger(__name__)

#: Frames sampled (evenly, first and last included) for the content fingerprint.
FINGERPRINT_FRAMES = 8
#: Side of the thumbnails hashed for the fingerprint.
FINGERPRINT_SIZE = 64


def default_root() -> Path:
    """$DEFLICKER_CACHE_DIR, else $XDG_CACHE_HOME/deflicker, else ~/.cache/deflicker."""
    env = os.environ.get("DEFLICKER_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deflicker"


def fingerprint(source: FrameSource) -> str:
    """Hash of evenly sampled frames' thumbnails (exact bytes): the clip's content identity."""
    n = len(source)
    picks = sorted(set(np.linspace(0, n - 1, min(FINGERPRINT_FRAMES, n)).round().astype(int).tolist()))
    h = hashlib.sha256()
    for i in picks:
        frame = source[i]
        thumb = resize(frame, (min(FINGERPRINT_SIZE, frame.shape[0]), min(FINGERPRINT_SIZE, frame.shape[1])))
        h.update(np.int64(i).tobytes())
        h.update(np.ascontiguousarray(thumb, np.float32).tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class ClipKey:
    """What identifies an analysis: content, range, size, depth, analysis settings, version."""

    content: str
    frame_count: int
    width: int
    height: int
    channels: int
    bit_depth: int
    settings: str
    version: int = FORMAT_VERSION

    @classmethod
    def for_source(cls, source: FrameSource, settings: Settings) -> "ClipKey":
        """The key of a clip (reads the fingerprint frames) under these settings."""
        info = source.info
        return cls(content=fingerprint(source), frame_count=len(source), width=info.width, height=info.height,
                   channels=info.channels, bit_depth=info.bit_depth, settings=settings.analysis_key())

    def digest(self) -> str:
        """A short stable string for file names and the plugin's hidden parameter."""
        blob = repr(sorted(asdict(self).items())).encode()
        return hashlib.sha256(blob).hexdigest()[:24]


class AnalysisCache:
    """Analyses on disk under ``root`` (default: :func:`default_root`)."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_root()

    def path_for(self, key: ClipKey) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / f"{key.digest()}.npz"

    def load(self, key: ClipKey) -> Optional[ClipAnalysis]:
        """The stored analysis, or None when absent; corrupt or old entries are removed."""
        path = self.path_for(key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return ClipAnalysis.from_arrays({k: data[k] for k in data.files})
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, ModelLoadError) as exc:
            log.warning("dropping unusable cache entry %s: %s", path, exc)
            self.invalidate(key)
            return None

    def store(self, key: ClipKey, analysis: ClipAnalysis) -> Path:
        """Write the entry atomically (temp file in the same folder, then rename)."""
        path = self.path_for(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with replaced_on_success(path) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, **analysis.to_arrays())  # type: ignore[arg-type]
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise VideoIOError(f"cannot write the analysis cache {self.root}: {exc.strerror or exc}") from None
        return path

    def invalidate(self, key: ClipKey) -> None:
        """Remove the entry (if any)."""
        with contextlib.suppress(FileNotFoundError):
            self.path_for(key).unlink()

    @contextlib.contextmanager
    def lock(self, key: ClipKey) -> Iterator[None]:
        """Exclusive inter-process lock for one key (a ``.lock`` file beside the entry)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fh = open(self.root / f"{key.digest()}.lock", "a+b")
        except OSError as exc:
            raise VideoIOError(f"cannot use the analysis cache {self.root}: {exc.strerror or exc}") from None
        with fh:
            _flock(fh, True)
            try:
                yield
            finally:
                _flock(fh, False)


def _flock(fh: BinaryIO, lock: bool) -> None:
    """Take (``lock``) or release an exclusive lock on an open file, blocking."""
    if sys.platform == "win32":  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fh.fileno(), msvcrt.LK_LOCK if lock else msvcrt.LK_UNLCK, 1)
    else:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if lock else fcntl.LOCK_UN)


def load_or_analyze(source: FrameSource, settings: Settings, *, cache: AnalysisCache, key: Optional[ClipKey] = None,
                    force: bool = False, progress: Optional[Progress] = None,
                    cancel: Optional[CancelCheck] = None) -> tuple[ClipAnalysis, Path]:
    """The clip's analysis from the cache, or computed, stored and returned.

    ``force`` recomputes (Reanalyze). Another process analysing the same clip is waited for.
    A cancelled analysis leaves no entry.
    """
    key = key or ClipKey.for_source(source, settings)
    path = cache.path_for(key)
    if not force:
        hit = cache.load(key)
        if hit is not None:
            return hit, path
    with cache.lock(key):
        if not force:
            hit = cache.load(key)  # someone else finished while we waited
            if hit is not None:
                return hit, path
        else:
            cache.invalidate(key)
        analysis = analyze_clip(source, settings, progress, cancel)
        cache.store(key, analysis)
    return analysis, path
