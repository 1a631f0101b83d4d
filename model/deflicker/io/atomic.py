"""Atomic outputs: temp files and folders beside the target, moving frames into place all or
nothing, and the checks made before any work."""
from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence, Union

from deflicker.errors import VideoIOError
from deflicker.io.image_file import IMAGE_EXTS

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
SEQUENCE_FIELD = re.compile(r"%0?\d*d|#+")


def is_pattern(path: Path) -> bool:
    """True when ``path`` names numbered image files: an image extension, a frame-number field
    (``%04d``, ``%d`` or ``####``) in the file name, and no file or folder of that literal name.
    Anything else is literal: "Take #3.mkv", "100%done.mov", a folder "Take #3"."""
    return (path.suffix.lower() in IMAGE_EXTS and SEQUENCE_FIELD.search(path.name) is not None
            and not os.path.lexists(path))


def split_pattern(path: Path) -> tuple[str, int, str]:
    """(prefix, digits, suffix) of a printf/hash pattern's file name; digits 0 means unpadded.
    VideoIOError in one line unless the name holds exactly one frame-number field."""
    fields = list(SEQUENCE_FIELD.finditer(path.name))
    if not fields:
        raise VideoIOError(f"{path} has no frame-number field (%04d or ####)")
    if len(fields) > 1:
        raise VideoIOError(f"{path} has {len(fields)} frame-number fields "
                           f"({', '.join(f.group() for f in fields)}); a pattern takes one")
    field = fields[0]
    text = field.group()
    digits = len(text) if text.startswith("#") else int(text[1:-1] or 0)
    return path.name[: field.start()], digits, path.name[field.end():]


def _same_frames(a: Path, b: Path) -> bool:
    """True when two paths name the same files: equal paths, or patterns differing only in notation."""
    if a == b:
        return True
    if a.parent != b.parent or not is_pattern(a) or not is_pattern(b):
        return False
    (pa, _, sa), (pb, _, sb) = split_pattern(a), split_pattern(b)
    return (pa, sa) == (pb, sb)


def _make_folder(folder: Path) -> Path:
    """``folder``, created with its parents if missing; VideoIOError in one line when it cannot be."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoIOError(f"cannot create {folder}: {exc.strerror or exc}") from None
    return folder


def _parent(path: Path) -> Path:
    """The folder an output (file, pattern or folder) and its temp files live in, created if missing."""
    return _make_folder(path.parent)


#: The process umask, read once at import (reading it means setting it, which is not thread safe).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def temp_file_for(path: Path) -> Path:
    """A new hidden empty temp file beside ``path`` with the same extension (so muxers see it),
    with the permissions an ordinary new file gets (mkstemp's own are owner-only)."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".part{path.suffix}", dir=_parent(path))
    except OSError as exc:
        raise VideoIOError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(fd)
    os.chmod(name, 0o666 & ~_UMASK)
    return Path(name)


@contextlib.contextmanager
def replaced_on_success(path: Path) -> Iterator[Path]:
    """A temp file beside ``path`` to write; it replaces ``path`` when the block succeeds and is
    removed when it fails, so ``path`` is never half written."""
    tmp = temp_file_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def temp_dir_for(path: Path) -> Path:
    """A new hidden empty temp folder beside ``path``."""
    return temp_dir_in(_parent(path), path.name)


def temp_dir_in(folder: Path, name: str) -> Path:
    """A new hidden empty temp folder inside ``folder``, named after ``name``."""
    try:
        return Path(tempfile.mkdtemp(prefix=f".{name.replace('%', '_')}.", suffix=".part", dir=folder))
    except OSError as exc:
        raise VideoIOError(f"cannot write {folder / name}: {exc.strerror or exc}") from None


def move_in(names: Sequence[str], source: Path, folder: Path) -> None:
    """Move the files ``names`` from ``source`` into ``folder``, all or nothing.

    A file of the same name in ``folder`` is replaced (each rename is atomic, so a reader never
    sees a missing frame); when a move fails, the files moved in are taken back out and the
    replaced ones restored, then the error is raised. Nothing else in ``folder`` is touched.
    """
    backup = temp_dir_in(folder, "replaced")
    saved: list[str] = []
    placed: list[str] = []
    try:
        for name in names:
            if os.path.lexists(folder / name):
                _keep_copy(folder / name, backup / name)
                saved.append(name)
            os.replace(source / name, folder / name)
            placed.append(name)
    except BaseException as exc:  # put everything back; should that fail too, the backup stays for the user
        for name in reversed(placed):
            os.replace(folder / name, source / name)
        for name in saved:
            os.replace(backup / name, folder / name)
            (backup / name).unlink(missing_ok=True)  # still there when both were links to one file
        backup.rmdir()
        if isinstance(exc, OSError) and not isinstance(exc, VideoIOError):
            raise VideoIOError(f"cannot write into {folder}: {exc.strerror or exc} (nothing was replaced)") from None
        raise
    remove_files(backup, saved)


def _keep_copy(path: Path, copy: Path) -> None:
    """Keep ``path``'s file at ``copy`` too: a hard link, or (where links are not possible) the file moved."""
    try:
        os.link(path, copy, follow_symlinks=False)
    except (OSError, NotImplementedError):  # no links there (FAT, some shares), or not to a symlink itself
        os.replace(path, copy)


def remove_files(folder: Path, names: Iterable[str]) -> None:
    """Remove the files ``names`` from a temp ``folder`` this run made, then the folder if that
    leaves it empty: never a file the run did not write."""
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    try:
        folder.rmdir()
    except OSError as exc:
        log.warning("left %s in place: %s", folder, exc.strerror or exc)


def _same_file(a: Path, b: Path) -> bool:
    """True when two paths name the same existing file or folder."""
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def is_folder_target(path: Path) -> bool:
    """True when an output path names a folder of frames (an existing folder, or no extension)."""
    return path.is_dir() or path.suffix == ""


def check_output_path(out: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """Refuse, before any work, an output that would overwrite an input or cannot be created.

    Refused: the same path, file or frames as an input, a frame pattern inside an input folder,
    a folder output that holds an input. Missing parent folders are fine when they can be created.
    """
    path = Path(out)
    resolved = path.resolve()
    for item in inputs:
        source = Path(item).resolve()
        if _same_frames(resolved, source) or _same_file(path, source):
            raise VideoIOError(f"refusing to write over the input {item}")
        if source == resolved.parent and source.is_dir() and is_pattern(path):
            raise VideoIOError(f"refusing to write frames into the input folder {item}")
        if resolved in source.parents and is_folder_target(path):
            raise VideoIOError(f"refusing to write frames into {out}: it holds the input {item}")
    existing = resolved if path.is_dir() else resolved.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise VideoIOError(f"cannot write {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise VideoIOError(f"cannot write {out}: {existing} is not writable")
    _probe(existing, out)
    return path


def output_folder(path: PathLike) -> Path:
    """The folder ``path`` for a command's outputs, checked writable (see :func:`check_output_path`)
    and created, before any work; VideoIOError in one line when it cannot be."""
    return _make_folder(check_output_path(path))


def _probe(folder: Path, out: PathLike) -> None:
    """Create and remove a file in ``folder``: permission bits do not tell everything (a
    read-only mount, /proc, a full quota, root on a folder it may not write)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".deflicker-probe.", dir=folder)
    except OSError as exc:
        raise VideoIOError(f"cannot write {out}: {folder} refuses new files ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(name)
