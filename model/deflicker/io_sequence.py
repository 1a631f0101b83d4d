"""Image sequences: a folder of numbered images or a printf pattern (``shot.%04d.png``, ``shot.####.png``)."""
from __future__ import annotations

import logging
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io_atomic import SEQUENCE_FIELD, split_pattern, temp_dir_for
from deflicker.io_clip import Clip, bit_depth_of, to_float
from deflicker.io_image import IMAGE_EXTS, exr_available, read_image, storable_depth, write_image
from deflicker.source import ClipInfo

log = logging.getLogger(__name__)

FOLDER_STEM = "frame."  # file names in a folder output: frame.000000.png, ...
FOLDER_DIGITS = 6


def is_pattern(path: Path) -> bool:
    """True when the file name holds a frame-number field (``%04d``, ``%d`` or ``####``)."""
    return SEQUENCE_FIELD.search(path.name) is not None


def _natural_key(path: Path) -> list:
    """Sort key that orders ``f2`` before ``f10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _numbered(path: Path) -> list[tuple[int, Path]]:
    """(frame number, file) of a pattern's existing files, by number."""
    prefix, digits, suffix = split_pattern(path)
    number = r"\d+" if digits <= 1 else rf"\d{{{digits},}}"
    regex = re.compile(re.escape(prefix) + f"({number})" + re.escape(suffix) + "$")
    folder = path.parent
    if not folder.is_dir():
        raise VideoIOError(f"no such folder: {folder}")
    return sorted((int(m.group(1)), folder / name) for name in os.listdir(folder)
                  if (m := regex.match(name)) is not None)


def missing_numbers(numbers: list[int], shown: int = 8) -> str:
    """The gaps of sorted frame numbers as text ("3, 7-9"), the first ``shown`` gaps only."""
    gaps = [(a + 1, b - 1) for a, b in zip(numbers, numbers[1:]) if b > a + 1]
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in gaps[:shown])
    return text + (f" and {len(gaps) - shown} more gaps" if len(gaps) > shown else "")


def _gaps_checked(found: list[tuple[int, Path]], what: Path, allow_short: bool) -> list[tuple[int, Path]]:
    """``found`` (frame number, file) pairs by number; a gap in the numbers is an error naming
    the missing frames unless ``allow_short`` (then a warning)."""
    missing = missing_numbers([number for number, _ in found])
    if missing and not allow_short:
        raise VideoIOError(f"{what}: frames {missing} are missing (--allow-short renders the others, "
                           "keeping their numbers)")
    if missing:
        log.warning("%s: frames %s are missing; the others keep their numbers", what, missing)
    return found


def _folder_frames(folder: Path) -> list[Path]:
    """The image files of one extension in a folder, in natural order (hidden files ignored)."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
             and p.suffix.lower() in IMAGE_EXTS]
    if not files:
        raise VideoIOError(f"{folder} holds no image frames ({', '.join(IMAGE_EXTS)})")
    kinds = Counter(p.suffix.lower() for p in files)
    if len(kinds) > 1:
        raise VideoIOError(f"{folder} mixes image types ({', '.join(sorted(kinds))}); pass a pattern instead")
    return sorted(files, key=_natural_key)


def _folder_numbers(files: list[Path]) -> list[tuple[int, Path]]:
    """(frame number, file) of a folder's frames: the number in their names when they all
    share one name around it (``plate.1001.png``, ...), else 0, 1, ... in natural order."""
    parts = [re.fullmatch(r"(.*?)(\d+)(\D*)", file.name) for file in files]
    if all(parts) and len({(m.group(1), m.group(3)) for m in parts if m}) == 1:
        numbered = sorted((int(m.group(2)), file) for m, file in zip(parts, files) if m)
        if len({number for number, _ in numbered}) == len(numbered):
            return numbered
    return list(enumerate(files))


def find_frames(path: Path, allow_short: bool = False) -> list[tuple[int, Path]]:
    """(frame number, file) of a folder's frames or a printf pattern's, by number; a gap in the
    numbers is an error naming the missing frames unless ``allow_short`` (then a warning)."""
    if path.is_dir():
        return _gaps_checked(_folder_numbers(_folder_frames(path)), path, allow_short)
    if is_pattern(path):
        found = _numbered(path)
        if not found:
            raise VideoIOError(f"no frames match {path}")
        return _gaps_checked(found, path, allow_short)
    raise VideoIOError(f"no such file or folder: {path}")


class SequenceClip(Clip):
    """Frames ``[start, end)`` of an image sequence; size, channels and depth come from its first frame.

    ``timing.stamps`` are the frames' numbers (at 1/fps); the first selected frame is shown at 0.
    """

    def __init__(self, path: Path, *, start: int = 0, end: Optional[int] = None, fps: Optional[float] = None,
                 allow_short: bool = False):
        self.path = path
        numbered = find_frames(path, allow_short)
        self.files = [file for _, file in numbered]
        first = read_image(self.files[0])
        info = ClipInfo(width=first.shape[1], height=first.shape[0], channels=first.shape[2],
                        frame_count=len(self.files), fps=float(fps or 24.0), bit_depth=bit_depth_of(first),
                        path=str(path))
        super().__init__(info, start, end, stamps=[number for number, _ in numbered], origin=0)

    def _read(self, index: int) -> np.ndarray:
        """Frame ``index`` as float32; a frame of another size is a :class:`VideoIOError` naming it."""
        file = self.files[index]
        pixels = read_image(file)
        if pixels.shape != (self.info.height, self.info.width, self.info.channels):
            raise VideoIOError(f"{file} is {pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]}, the sequence "
                               f"is {self.info.width}x{self.info.height}x{self.info.channels} (mixed sizes)")
        return to_float(pixels)


def folder_ext(bit_depth: int) -> str:
    """Image type of a folder output: PNG for integers, EXR (if installed) or TIFF for float."""
    if bit_depth <= 16:
        return ".png"
    return ".exr" if exr_available() else ".tif"


class SequenceWriter:
    """Writes numbered images into a temp folder beside the target; ``commit`` moves them into place.

    For a pattern, stale files of the same pattern beyond the new frames are removed so the
    sequence reads back at its new length; a folder target is replaced as a whole.
    """

    def __init__(self, path: Path, *, bit_depth: int, channels: int, start_number: int = 0,
                 numbers: Optional[Sequence[int]] = None):
        self.path = path
        self._folder_target = not is_pattern(path)
        if self._folder_target:
            self._prefix, self._digits, self._suffix = FOLDER_STEM, FOLDER_DIGITS, folder_ext(bit_depth)
        else:
            self._prefix, self._digits, self._suffix = split_pattern(path)
        ext = Path("frame" + self._suffix).suffix.lower()
        if ext not in IMAGE_EXTS:
            raise VideoIOError(f"cannot write {path}: unknown image type {ext!r} ({', '.join(IMAGE_EXTS)})")
        if channels == 4 and ext in (".jpg", ".jpeg"):
            log.warning("JPEG has no alpha channel; alpha is dropped")
        self.bit_depth = storable_depth(ext, bit_depth)
        self._start = start_number
        self._numbers = numbers  # frame k's number (an input sequence's own, gaps kept); else start + k
        self._count = 0
        self._temp = temp_dir_for(path)

    def _name(self, k: int) -> str:
        """File name of the k-th frame written."""
        number = self._start + k if self._numbers is None else self._numbers[k]
        return f"{self._prefix}{number:0{self._digits}d}{self._suffix}"

    def write(self, frame: np.ndarray) -> None:
        """Store one validated (H, W, C) float32 frame."""
        write_image(self._temp / self._name(self._count), frame, self.bit_depth)
        self._count += 1

    def commit(self) -> None:
        """Move the frames into place (replacing a folder target, pruning a pattern's stale frames)."""
        if self._folder_target:
            self._replace_folder()
            return
        written = {self._name(k) for k in range(self._count)}
        for name in sorted(written):
            os.replace(self._temp / name, self.path.parent / name)
        self._temp.rmdir()
        stale = [file for _, file in _numbered(self.path) if file.name not in written]
        for file in stale:
            file.unlink()
        if stale:
            log.info("removed %d stale frames of %s", len(stale), self.path)

    def _replace_folder(self) -> None:
        """Swap the temp folder in for the target folder."""
        if not self.path.exists():
            os.replace(self._temp, self.path)
            return
        backup = temp_dir_for(self.path)
        os.replace(self.path, backup / self.path.name)
        os.replace(self._temp, self.path)
        shutil.rmtree(backup)

    def abort(self) -> None:
        """Drop the partial frames; the target is left as it was."""
        shutil.rmtree(self._temp, ignore_errors=True)
