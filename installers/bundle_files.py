"""File placement shared by build_bundle.py and install.py (standard library only).

Release builds copy; dev and test builds link (``hard`` links, falling back to symbolic links
across file systems, or ``symlink`` outright) so a bundle that carries a 1 GB torch install is
assembled in a second. Trees are swapped into place with renames, so a reader never sees half a
bundle: the work happens in a sibling whose name starts with ``@``, which OFX hosts skip.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence

#: How files get into a bundle: real copies, or links for dev/test builds.
MODES = ("copy", "hard", "symlink")


def place(src: Path, dst: Path, mode: str) -> str:
    """Put ``src`` at ``dst`` (parents created) by ``mode``; returns the mode actually used."""
    if not dst.parent.is_dir():
        dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "hard":
        try:
            os.link(src, dst)
            return "hard"
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EACCES):
                raise
            mode = "symlink"  # another file system (or links not allowed): link by name instead
    if mode == "symlink":
        os.symlink(os.path.abspath(src), dst)
        return "symlink"
    shutil.copy2(src, dst)
    return "copy"


def place_all(pairs: Iterable[tuple[Path, Path]], mode: str) -> dict[str, int]:
    """Place every (src, dst); returns how many files each mode placed."""
    counts = {m: 0 for m in MODES}
    for src, dst in pairs:
        counts[place(src, dst, mode)] += 1
    return counts


@dataclass(frozen=True)
class Group:
    """Files ``rels`` (POSIX, relative) of the folder ``src``, to go under ``dst`` in a bundle."""

    src: Path
    dst: Path
    rels: tuple[str, ...]


def group_pairs(groups: Sequence[Group], root: Path, mode: str) -> Iterator[tuple[Path, Path]]:
    """(src, dst) pairs under ``root``; for ``symlink`` a top-level folder that one group alone
    fills becomes one link to the whole folder (dev builds: thousands of links fewer)."""
    owners: dict[tuple[Path, str], set[Path]] = {}
    for g in groups:
        for rel in g.rels:
            owners.setdefault((g.dst, rel.split("/", 1)[0]), set()).add(g.src)
    linked: set[tuple[Path, str]] = set()
    for g in groups:
        for rel in g.rels:
            top, _, rest = rel.partition("/")
            if mode == "symlink" and rest and len(owners[(g.dst, top)]) == 1 and (g.src / top).is_dir():
                if (g.dst, top) not in linked:
                    linked.add((g.dst, top))
                    yield g.src / top, root / g.dst / top
                continue
            yield g.src / rel, root / g.dst / rel


def staging_dir(final: Path, purpose: str) -> Path:
    """An empty ``@``-prefixed sibling of ``final`` (hosts skip names starting with '@')."""
    path = final.parent / f"@{final.name}.{purpose}-{os.getpid()}"
    remove_tree(path)
    return path


def remove_tree(path: Path) -> None:
    """Remove a file, link or directory tree if it exists (links are removed, never followed)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def swap_in(staged: Path, final: Path) -> None:
    """Replace ``final`` by ``staged`` with renames; the old tree is deleted afterwards."""
    old: Optional[Path] = None
    if final.exists() or final.is_symlink():
        old = staging_dir(final, "old")
        os.replace(final, old)
    os.replace(staged, final)
    if old is not None:
        remove_tree(old)


def tree_files(root: Path) -> list[str]:
    """Every file and link under ``root`` (links not followed), as sorted POSIX relative paths."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            out.append((base / name).relative_to(root).as_posix())
    return sorted(out)
