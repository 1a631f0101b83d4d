"""Image sequences: a folder of numbered images or a printf pattern (``shot.%04d.png``, ``shot.####.png``).

Every frame keeps its number (the one in its file name: VFX plates start at 1001), and an output
sequence is written under the numbers it is given.
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io.atomic import is_pattern, move_in, remove_files, temp_dir_in
from deflicker.io.clip import Clip, bit_depth_of
from deflicker.io.image_file import IMAGE_EXTS, read_image, storable_depth, stored_pixels, write_image
from deflicker.io.target import FrameNames, check_frames_free
from deflicker.io.source import ClipInfo

log = logging.getLogger(__name__)


def _natural_key(path: Path) -> list:
    """Sort key that orders ``f2`` before ``f10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _pattern_frames(path: Path) -> list[tuple[int, Path]]:
    """(frame number, file) of a pattern's existing files, by number."""
    found = FrameNames.of_pattern(path).existing()
    if not found:
        raise VideoIOError(f"no frames match {path}")
    return found


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
        return _gaps_checked(_pattern_frames(path), path, allow_short)
    raise VideoIOError(f"no such file or folder: {path}")


class SequenceClip(Clip):
    """Frames ``[start, end)`` (by position) of an image sequence; size, channels and depth come
    from its first frame, each frame's number from its file name.

    ``timing.stamps`` are the frames' numbers (at 1/fps); the first selected frame is shown at 0.
    """

    def __init__(self, path: Path, *, start: int = 0, end: Optional[int] = None, fps: Optional[float] = None,
                 allow_short: bool = False):
        self.path = path
        found = find_frames(path, allow_short)
        self.numbers = [number for number, _ in found]
        self.files = [file for _, file in found]
        first = read_image(self.files[0])
        info = ClipInfo(width=first.shape[1], height=first.shape[0], channels=first.shape[2],
                        frame_count=len(self.files), fps=float(fps or 24.0), bit_depth=bit_depth_of(first),
                        path=str(path))
        super().__init__(info, start, end, stamps=self.numbers, origin=0)

    def frame_number(self, index: int) -> int:
        """The number in the file name of frame ``index``."""
        return self.numbers[super().frame_number(index)]

    def _read(self, index: int) -> np.ndarray:
        """Frame ``index`` as stored (uint8, uint16 or float); a frame of another size is a
        :class:`VideoIOError` naming it."""
        file = self.files[index]
        pixels = read_image(file)
        if pixels.shape != (self.info.height, self.info.width, self.info.channels):
            raise VideoIOError(f"{file} is {pixels.shape[1]}x{pixels.shape[0]}x{pixels.shape[2]}, the sequence "
                               f"is {self.info.width}x{self.info.height}x{self.info.channels} (mixed sizes)")
        return pixels


class SequenceWriter:
    """Writes numbered images into a hidden temp folder inside the target's folder; ``commit``
    moves them into place all or nothing.

    Only the files named by the frames written are created or (with ``overwrite``) replaced;
    every other file in the folder is left as it was. A folder output that is not empty needs
    ``overwrite`` too. Frames are numbered by ``numbers`` (default 0, 1, 2, ...).
    """

    def __init__(self, names: FrameNames, *, bit_depth: int, channels: int,
                 numbers: Optional[Sequence[int]] = None, overwrite: bool = False):
        self.names = names
        ext = Path("frame" + names.suffix).suffix.lower()  # checked by io_target.output_kind
        if channels == 4 and ext in (".jpg", ".jpeg"):
            log.warning("JPEG has no alpha channel; alpha is dropped")
        self.stored_depth = storable_depth(ext, bit_depth)  # 8, 16 or 32 (float)
        self._numbers = numbers
        self._overwrite = overwrite
        self._written: list[str] = []
        self._created = not names.folder.exists()
        try:
            names.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VideoIOError(f"cannot create {names.folder}: {exc.strerror or exc}") from None
        self._temp = temp_dir_in(names.folder, names.name(0))

    def stored(self, frame: np.ndarray) -> np.ndarray:
        """A validated (H, W, C) float32 frame as the pixels the images store (uint8, uint16 or float32)."""
        return stored_pixels(frame, self.stored_depth)

    def write(self, frame: np.ndarray) -> None:
        """Store one validated (H, W, C) float32 frame, or its :meth:`stored` pixels, under its number."""
        count = len(self._written)
        if self._numbers is not None and count >= len(self._numbers):
            raise VideoIOError(f"more frames than the {len(self._numbers)} frame numbers given")
        name = self.names.name(count if self._numbers is None else self._numbers[count])
        write_image(self._temp / name, frame, self.stored_depth)
        self._written.append(name)

    def commit(self) -> None:
        """Move the frames into place (refused, and nothing moved, where they would replace files
        without ``overwrite``); files of the same naming the run did not write are reported."""
        numbers = self._numbers[:len(self._written)] if self._numbers is not None else range(len(self._written))
        check_frames_free(self.names, numbers, self._overwrite, ignore=self._temp.name)
        move_in(self._written, self._temp, self.names.folder)
        self._temp.rmdir()
        written = set(self._written)
        others = [file.name for _, file in self.names.existing() if file.name not in written]
        if others:
            log.warning("%s also holds %d frames this run did not write (%s ...); they are left as they were",
                        self.names.folder, len(others), others[0])

    def abort(self) -> None:
        """Drop the partial frames; the target is left as it was (a folder this run made is removed)."""
        remove_files(self._temp, self._written)
        if self._created:
            try:
                self.names.folder.rmdir()
            except OSError:
                log.debug("kept %s: not empty", self.names.folder)
