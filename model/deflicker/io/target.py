"""What an output path names (a video file, a pattern of numbered images, a folder of images),
the file names of its frames, and the checks made before any work.

Names are literal wherever a pattern is impossible: a video file ("Take #3.mkv", "100%done.mov")
and a name without an extension (a folder, "Take #3") never hold a frame-number field. An image
name must hold exactly one (``shot.%04d.png``, ``shot.####.exr``). Existing targets are refused
unless ``overwrite`` is given; files that are not targets are never touched.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io.atomic import SEQUENCE_FIELD, check_output_path, split_pattern
from deflicker.io.encode import VIDEO_EXTS, resolve_codec
from deflicker.io.image_file import IMAGE_EXTS, exr_available

PathLike = Union[str, Path]

VIDEO, PATTERN, FOLDER = "video", "pattern", "folder"
FOLDER_STEM = "frame."  # file names in a folder output: frame.001001.png, ...
FOLDER_DIGITS = 6
#: printf conversions that are not a frame-number field (%s, %4x, %.2f), for a clearer refusal
NOT_A_FIELD = re.compile(r"%[-+ #.\d]*[a-ce-zA-Z]")


def folder_ext(bit_depth: int) -> str:
    """Image type of a folder output: PNG for integers, EXR (if installed) or TIFF for float."""
    if bit_depth <= 16:
        return ".png"
    return ".exr" if exr_available() else ".tif"


@dataclass(frozen=True)
class FrameNames:
    """The files of numbered frames: ``folder / f"{prefix}{number:0{digits}d}{suffix}"``."""

    folder: Path
    prefix: str
    digits: int  # 0: unpadded
    suffix: str
    whole_folder: bool = False  # a folder output: the folder must be empty unless overwriting

    @classmethod
    def of_pattern(cls, path: Path) -> "FrameNames":
        """The names a pattern (``shot.%04d.png``, ``shot.####.png``) stands for."""
        prefix, digits, suffix = split_pattern(path)
        return cls(path.parent, prefix, digits, suffix)

    def name(self, number: int) -> str:
        """File name of frame ``number``."""
        return f"{self.prefix}{number:0{self.digits}d}{self.suffix}"

    def existing(self) -> list[tuple[int, Path]]:
        """(frame number, file) of the files of these names that exist, by number."""
        number = r"\d+" if self.digits <= 1 else rf"\d{{{self.digits},}}"
        regex = re.compile(re.escape(self.prefix) + f"({number})" + re.escape(self.suffix) + "$")
        if not self.folder.is_dir():
            raise VideoIOError(f"no such folder: {self.folder}")
        return sorted((int(m.group(1)), self.folder / name) for name in os.listdir(self.folder)
                      if (m := regex.match(name)) is not None)


@dataclass(frozen=True)
class OutputTarget:
    """A checked output path and what it names."""

    path: Path
    kind: str  # VIDEO, PATTERN or FOLDER

    def frame_names(self, bit_depth: int) -> FrameNames:
        """The names of a pattern's or a folder's frames (a folder's image type follows the depth)."""
        if self.kind == PATTERN:
            return FrameNames.of_pattern(self.path)
        if self.kind == FOLDER:
            return FrameNames(self.path, FOLDER_STEM, FOLDER_DIGITS, folder_ext(bit_depth), whole_folder=True)
        raise ValueError(f"{self.path} is a video file, not numbered frames")


def output_kind(path: Path) -> str:
    """VIDEO, PATTERN or FOLDER for an output path; VideoIOError in one line when it is none."""
    if path.is_dir():
        return FOLDER
    ext = path.suffix.lower()
    if ext in VIDEO_EXTS:
        return VIDEO
    if ext == "":
        if os.path.lexists(path):
            raise VideoIOError(f"cannot write frames into {path}: it is a file, not a folder")
        return FOLDER
    if ext not in IMAGE_EXTS:
        kind = "a frame pattern needs an image" if SEQUENCE_FIELD.search(path.name) else "unknown output"
        raise VideoIOError(f"cannot write {path}: {kind} type {path.suffix!r} (video {', '.join(VIDEO_EXTS)} "
                           f"or images {', '.join(IMAGE_EXTS)})")
    if SEQUENCE_FIELD.search(path.name) is None:
        bad = NOT_A_FIELD.search(path.name)
        if bad:
            raise VideoIOError(f"cannot write {path}: {bad.group()} is not a frame-number field (use %04d or ####)")
        raise VideoIOError(f"cannot write {path}: an image sequence output needs a frame-number pattern, "
                           f"e.g. {path.stem}.%04d{path.suffix}")
    split_pattern(path)  # exactly one field
    if ext == ".exr" and not exr_available():
        raise VideoIOError(f"cannot write {path}: EXR files need the OpenEXR package: pip install OpenEXR")
    return PATTERN


def output_target(path: PathLike, *, codec: Optional[str] = None, inputs: Iterable[PathLike] = ()) -> OutputTarget:
    """Check everything the path alone tells, before any work: its kind and pattern, the codec,
    that it is no input and can be written. Raises VideoIOError (InvalidSettingsError for the codec)."""
    checked = check_output_path(path, inputs)
    kind = output_kind(checked)
    if kind == VIDEO:
        resolve_codec(checked, codec)
    elif codec is not None:
        raise InvalidSettingsError(f"codec {codec!r} applies to video outputs ({', '.join(VIDEO_EXTS)})")
    return OutputTarget(checked, kind)


def refuse_existing(path: Path, overwrite: bool) -> None:
    """VideoIOError unless ``path`` is free or ``overwrite`` allows replacing it."""
    if not overwrite and os.path.lexists(path):
        raise VideoIOError(f"refusing to replace the existing {path}; pass --overwrite to replace it")


def check_numbers(numbers: Sequence[int]) -> None:
    """VideoIOError unless the frame numbers are distinct and not negative."""
    if any(n < 0 for n in numbers) or len(set(numbers)) != len(numbers):
        raise VideoIOError("frame numbers must be distinct and not negative")


def check_frames_free(names: FrameNames, numbers: Iterable[int], overwrite: bool, *, ignore: str = "") -> None:
    """Refuse to write frames ``numbers`` of ``names`` over existing files unless ``overwrite``;
    a folder output must also be empty unless ``overwrite`` (``ignore``: this run's temp folder)."""
    taken = [names.folder / names.name(n) for n in numbers if os.path.lexists(names.folder / names.name(n))]
    folders = [path for path in taken if path.is_dir() and not path.is_symlink()]
    if folders:
        raise VideoIOError(f"cannot write frame {folders[0]}: a folder of that name is in the way")
    if overwrite:
        return
    if names.whole_folder and names.folder.is_dir():
        entries = [name for name in os.listdir(names.folder) if name != ignore]
        if entries:
            raise VideoIOError(f"refusing to write into {names.folder}: it is not empty ({len(entries)} entries); "
                               "pass --overwrite to write the frames there (other files are kept)")
    if taken:
        span = taken[0].name if len(taken) == 1 else f"{taken[0].name} to {taken[-1].name}"
        raise VideoIOError(f"refusing to replace {len(taken)} existing frame{'s' if len(taken) > 1 else ''} "
                           f"({span}) in {names.folder}; pass --overwrite to replace them")


def check_targets(target: OutputTarget, *, bit_depth: int, numbers: Sequence[int], overwrite: bool) -> None:
    """Refuse, before any work, to replace existing outputs unless ``overwrite`` is given."""
    if target.kind == VIDEO:
        refuse_existing(target.path, overwrite)
        return
    check_numbers(numbers)
    check_frames_free(target.frame_names(bit_depth), numbers, overwrite)
