"""Files the installer copies, writes or trusts while it may run as root (standard library only).

A system install runs as root in folders that users can reach, so it trusts nothing it finds:

* ``copy_tree`` gives every installed folder, file and executable a fixed mode (0755, 0644, 0755),
  owned by root when run as root; a source's own modes (world-writable, setuid) never land.
* ``replace_text`` writes through a temp file in the same folder and a rename, so a symbolic link
  planted at the target is never written through; one found there beforehand is refused.
* ``read_text`` never follows a link; ``check_trusted`` refuses a file or folder that another user
  owns or could change (what the uninstaller acts on must be as safe as what it installed).

On Windows modes and owners are the ACLs' business: only the link checks apply there.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Collection, Optional

DIR_MODE = 0o755
FILE_MODE = 0o644
EXEC_MODE = 0o755
#: Opening flags that refuse a symbolic link at the path itself, and a FIFO's blocking open.
NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
POSIX = os.name == "posix"


class UnsafeFile(Exception):
    """A file or folder the installer will not trust or write through; the message is one line."""


def as_root() -> bool:
    return POSIX and os.geteuid() == 0


def installed_mode(st_mode: int) -> int:
    """The mode an installed entry gets: 0755 for folders and executables, 0644 for other files."""
    if stat.S_ISDIR(st_mode):
        return DIR_MODE
    return EXEC_MODE if st_mode & 0o111 else FILE_MODE


def _settle_fd(fd: int, mode: int) -> None:
    """Give the open file or folder ``fd`` ``mode`` (whatever the umask), and root's ownership as root."""
    if POSIX:
        os.fchmod(fd, mode)
        if as_root():
            os.fchown(fd, 0, 0)


def _settle(path: Path, mode: int) -> None:
    """_settle_fd for an entry this installer created (opened without following a link put there since)."""
    if not POSIX:
        return
    fd = os.open(path, os.O_RDONLY | NO_FOLLOW)
    try:
        _settle_fd(fd, mode)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> list[str]:
    """Create ``path`` and its missing parents with mode 0755; the ones created, outermost first."""
    missing = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        folder.mkdir()
        _settle(folder, DIR_MODE)
    return [str(p) for p in reversed(missing)]


def _linkable(st: os.stat_result) -> bool:
    """Whether a hard link to this source file is as safe as a copy: ours, and already of the installed mode."""
    return not POSIX or (st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == installed_mode(st.st_mode))


def _copy_file(src: Path, dst: Path, st: os.stat_result, link: bool) -> None:
    if link and _linkable(st):
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system: copy
    with open(os.open(src, os.O_RDONLY | NO_FOLLOW), "rb") as fin, \
            open(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o600), "wb") as fout:
        shutil.copyfileobj(fin, fout)
        _settle_fd(fout.fileno(), installed_mode(st.st_mode))


def _copy_entries(src: Path, dst: Path, link: bool, skip: Collection[str]) -> None:
    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        if entry.name in skip:
            continue
        source, target = Path(entry.path), dst / entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(source), target)
            if as_root():
                os.lchown(target, 0, 0)
        elif stat.S_ISDIR(st.st_mode):
            target.mkdir(mode=0o700)
            _copy_entries(source, target, link, skip)
            _settle(target, DIR_MODE)
        elif stat.S_ISREG(st.st_mode):
            _copy_file(source, target, st, link)
        else:
            raise UnsafeFile(f"{source} is not a file, folder or link: a bundle holds no such thing")


def copy_tree(src: Path, dst: Path, *, link: bool = False, skip: Collection[str] = ()) -> None:
    """Copy the tree ``src`` to the new folder ``dst`` with installed modes (links copied as links).

    ``link`` hard-links files that already have their installed mode and owner (dev/test installs),
    copying the rest; names in ``skip`` are left out at any depth. ``dst`` stays private (0700) until
    the copy is complete."""
    dst.mkdir(mode=0o700)
    _copy_entries(src, dst, link, skip)
    _settle(dst, DIR_MODE)


def existing_file(path: Path) -> Optional[os.stat_result]:
    """``path``'s status if it is a regular file, None if there is nothing; refuses a link or anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFile(f"{path} is a symbolic link: not followed (remove it, then run the installer again)")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFile(f"{path} is not a regular file: left alone (remove it, then run the installer again)")
    return st


def read_text(path: Path, limit: int = 1 << 20) -> Optional[tuple[str, os.stat_result]]:
    """The text (at most ``limit`` bytes) and status of the regular file ``path``, never through a link;
    None if there is nothing."""
    try:
        fd = os.open(path, os.O_RDONLY | NO_FOLLOW)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):  # O_NOFOLLOW's answer on Linux and macOS; the BSDs
            existing_file(path)  # says so in one line
        raise
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path} is not a regular file: left alone")
        if st.st_size > limit:
            raise UnsafeFile(f"{path} is {st.st_size} bytes: too big to be what the installer wrote")
        return f.read().decode(errors="replace"), st


def replace_text(path: Path, text: str, like: Optional[os.stat_result] = None) -> None:
    """Make ``path`` hold ``text`` by an atomic rename of a temp file in its folder: a link at the target
    is refused, and one planted meanwhile is replaced, never written through. The file gets ``like``'s
    mode and owner (a user's own file keeps them) or, new, 0644."""
    existing_file(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            if like is None:
                _settle_fd(fd, FILE_MODE)
            elif POSIX:
                os.fchmod(fd, stat.S_IMODE(like.st_mode) & 0o777)
                if as_root():
                    os.fchown(fd, like.st_uid, like.st_gid)
            os.fsync(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_trusted(path: Path, st: os.stat_result, folder: bool) -> None:
    """Refuse, naming why, unless ``st`` (``path``'s status, not through a link) is a real folder
    (``folder``) or regular file that only root or this user owns and can change."""
    kind = "folder" if folder else "regular file"
    if not (stat.S_ISDIR(st.st_mode) if folder else stat.S_ISREG(st.st_mode)):
        raise UnsafeFile(f"{path} is not a {kind}: not trusted")
    if POSIX and st.st_uid not in (0, os.geteuid()):
        raise UnsafeFile(f"{path} is owned by uid {st.st_uid}, not by root or you: not trusted")
    if POSIX and st.st_mode & 0o022:
        raise UnsafeFile(f"{path} is writable by its group or others (mode {stat.S_IMODE(st.st_mode):04o}): not trusted")
