"""The on-disk cache: a plain store of named byte blobs, shared by every process on the machine or the farm.

It knows nothing of what it holds: ``read(name)`` gives back the bytes ``write(name, data)``
put there, under ``<root>/<name>.npz``; names are the callers' (the analysis names its
entries after a clip key and a segment, :mod:`deflicker.method.segment_analysis`, and checks
every entry before use, :mod:`deflicker.method.analysis_entry`). Entries are written to a temp
file and renamed, so readers never see half an entry; a per-name lock
(:mod:`deflicker.store.lock`) lets one process make an entry while the others wait.

The cache only ever saves work: a folder that cannot be created, read, locked or written (no
permission, another user's files, a sticky folder, a full disk) costs a one-line warning and
the run goes on without it. Nothing is deleted because it could not be read. In a
group-writable folder (a farm's shared cache, setgid to the users' group) entries and lock
files are made group-writable, so every member of the group reads and replaces them.
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, Optional

from deflicker.io.atomic import replaced_on_success
from deflicker.progress import CancelCheck, Progress
from deflicker.store.lock import file_mode, key_lock

log = logging.getLogger(__name__)


def default_root() -> Path:
    """$DEFLICKER_CACHE_DIR, else $XDG_CACHE_HOME/deflicker, else ~/.cache/deflicker."""
    env = os.environ.get("DEFLICKER_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deflicker"


def _reason(exc: OSError) -> str:
    return str(exc.strerror or exc)


class AnalysisCache:
    """Named byte entries on disk under ``root`` (default: :func:`default_root`)."""

    def __init__(self, root: Optional[Path] = None):
        self.root = Path(root) if root is not None else default_root()

    def path_for(self, name: str) -> Path:
        """Where the entry ``name`` lives."""
        return self.root / f"{name}.npz"

    def has(self, name: str) -> bool:
        """Whether an entry ``name`` is there (not whether it is usable)."""
        return self.path_for(name).is_file()

    def read(self, name: str, limit: int, *, quiet: bool = False) -> Optional[bytes]:
        """The entry's bytes; None when absent, larger than ``limit`` bytes or unreadable (warned:
        the entry is left alone, the next write replaces it; unwarned with ``quiet``)."""
        path = self.path_for(name)
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > limit:
                    if not quiet:
                        log.warning("not using the cache entry %s: it holds %d bytes, more than the %d it may",
                                    path, size, limit)
                    return None
                return fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not quiet:
                log.warning("cannot read the cache entry %s (%s)", path, _reason(exc))
            return None

    def write(self, name: str, data: bytes) -> bool:
        """Write the entry atomically (temp file in the same folder, then rename); False, with a
        warning, when the cache cannot take it (the caller goes on without it)."""
        path = self.path_for(name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with replaced_on_success(path) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.chmod(tmp, file_mode(self.root))
        except OSError as exc:
            log.warning("cannot write the analysis cache %s (%s): this run uses its analysis from memory",
                        self.root, _reason(exc))
            return False
        return True

    def remove(self, name: str) -> None:
        """Remove the entry (if any); a cache that refuses is warned about, not an error."""
        try:
            self.path_for(name).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("cannot remove the cache entry %s (%s)", self.path_for(name), _reason(exc))

    @contextlib.contextmanager
    def lock(self, name: str, progress: Optional[Progress] = None,
             cancel: Optional[CancelCheck] = None) -> Iterator[None]:
        """Exclusive inter-process lock for one name (:mod:`deflicker.store.lock`), waited for with
        ``cancel`` polled; where the cache cannot hold one the block runs unlocked (warned: at
        worst two processes make the same entry)."""
        with contextlib.ExitStack() as held:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                held.enter_context(key_lock(self.root / f"{name}.lock", f"clip {name}", progress, cancel))
            except OSError as exc:
                log.warning("cannot lock the analysis cache %s (%s): analysing without the lock", self.root, _reason(exc))
            yield
