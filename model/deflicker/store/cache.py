"""The on-disk analysis cache, shared by every process on the machine or the farm.

An entry is ``<root>/<digest>.npz`` where the digest is a :class:`ClipKey`: a cheap fingerprint
of the clip's content (sampled frames' code values, not a path: the same for the media file and
for the float RGBA or 8/16-bit frames a host hands the plugin, :mod:`deflicker.method.content`),
its frame count and size, the hash of the analysis settings and the format version. The entry
itself holds every frame's digest and is checked before use (:mod:`deflicker.store.entry`): an
entry made for another clip that shares the key, edited by hand, damaged or oversized is never
used; the clip is analysed again and the entry replaced. Entries are written to a temp file and renamed, so
readers never see half an entry; a per-key lock (:mod:`deflicker.store.lock`) serializes the
analysis of one clip across processes (the second process waits, then reads).

The cache only ever saves work: a folder that cannot be created, read, locked or written (no
permission, another user's files, a sticky folder, a full disk) costs a one-line warning and
the run goes on with the analysis in memory. Nothing is deleted because it could not be read.
In a group-writable folder (a farm's shared cache, setgid to the users' group) entries and
lock files are made group-writable, so every member of the group reads and replaces them.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import numpy as np

from deflicker.method.analysis import FORMAT_VERSION, ClipAnalysis, analyze_clip
from deflicker.method.content import code_thumbnail
from deflicker.store.entry import EntryRefused, analysis_from_entry, entry_arrays, entry_limit, read_entry
from deflicker.store.lock import file_mode, key_lock
from deflicker.method.image import proxy_shape
from deflicker.io.atomic import replaced_on_success
from deflicker.progress import CancelCheck, Progress
from deflicker.settings import Settings
from deflicker.io.source import FrameSource
from deflicker.method.tuning import analysis_signature

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
    """Hash of evenly sampled frames' code-value thumbnails: the cache key's cheap sample of the
    clip's content, the same from any source format (the entry's frame digests check the rest,
    :mod:`deflicker.method.content`)."""
    n = len(source)
    picks = sorted(set(np.linspace(0, n - 1, min(FINGERPRINT_FRAMES, n)).round().astype(int).tolist()))
    h = hashlib.sha256()
    for i in picks:
        frame = source[i]
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


class CachedAnalysis(NamedTuple):
    """A clip's analysis (its ``content``: the digests of the frames it was made from) and its entry's path."""

    analysis: ClipAnalysis
    path: Path


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc)


class AnalysisCache:
    """Analyses on disk under ``root`` (default: :func:`default_root`)."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_root()

    def path_for(self, key: ClipKey) -> Path:
        """Where the entry for ``key`` lives."""
        return self.root / f"{key.digest()}.npz"

    def load(self, key: ClipKey, settings: Settings, *, quiet: bool = False) -> Optional[CachedAnalysis]:
        """The stored analysis, or None when absent or unusable (then warned, unless ``quiet``:
        refused entries are replaced by the next store, unreadable ones are left alone)."""
        path = self.path_for(key)
        shape = proxy_shape(key.height, key.width, settings.analysis_size)
        try:
            arrays = read_entry(path, entry_limit(key.frame_count, shape, settings))
            analysis = analysis_from_entry(arrays, key.digest(), key.frame_count, (key.height, key.width), settings)
        except FileNotFoundError:
            return None
        except EntryRefused as exc:
            if not quiet:
                log.warning("not using the cache entry %s: %s; analysing again", path, exc)
            return None
        except OSError as exc:
            if not quiet:
                log.warning("cannot read the cache entry %s (%s); analysing again", path, _reason(exc))
            return None
        log.info("analysis of clip %s loaded from %s", key.digest(), path)
        return CachedAnalysis(analysis, path)

    def store(self, key: ClipKey, analysis: ClipAnalysis) -> bool:
        """Write the entry atomically (temp file in the same folder, then rename); False, with a
        warning, when the cache cannot take it (the caller goes on from memory)."""
        path = self.path_for(key)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with replaced_on_success(path) as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, **entry_arrays(key.digest(), analysis))  # type: ignore[arg-type]
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, file_mode(self.root))
        except OSError as exc:
            log.warning("cannot write the analysis cache %s (%s): this run uses its analysis from memory",
                        self.root, _reason(exc))
            return False
        return True

    def invalidate(self, key: ClipKey) -> None:
        """Remove the entry (if any); a cache that refuses is warned about, not an error."""
        try:
            self.path_for(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the cache entry %s (%s)", self.path_for(key), _reason(exc))

    @contextlib.contextmanager
    def lock(self, key: ClipKey, progress: Optional[Progress] = None,
             cancel: Optional[CancelCheck] = None) -> Iterator[None]:
        """Exclusive inter-process lock for one key (:mod:`deflicker.store.lock`), waited for with
        ``cancel`` polled; where the cache cannot hold one the block runs unlocked (warned: at
        worst two processes analyse the same clip)."""
        with contextlib.ExitStack() as held:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                held.enter_context(key_lock(self.root / f"{key.digest()}.lock", f"clip {key.digest()}", progress, cancel))
            except OSError as exc:
                log.warning("cannot lock the analysis cache %s (%s): analysing without the lock", self.root, _reason(exc))
            yield


def load_or_analyze(source: FrameSource, settings: Settings, *, cache: AnalysisCache, key: Optional[ClipKey] = None,
                    force: bool = False, progress: Optional[Progress] = None,
                    cancel: Optional[CancelCheck] = None) -> CachedAnalysis:
    """The clip's analysis from the cache, or computed, stored and returned.

    ``force`` recomputes (Reanalyze). Another process analysing the same clip is waited for.
    A cancelled analysis leaves no entry. A cache that fails costs a warning, never the run.
    """
    key = key or ClipKey.for_source(source, settings)
    if not force:
        hit = cache.load(key, settings, quiet=True)
        if hit is not None:
            return hit
    with cache.lock(key, progress, cancel):
        if not force:
            hit = cache.load(key, settings)  # someone else finished while we waited
            if hit is not None:
                return hit
        else:
            cache.invalidate(key)
        analysis = analyze_clip(source, settings, progress, cancel)
        cache.store(key, analysis)
    return CachedAnalysis(analysis, cache.path_for(key))
