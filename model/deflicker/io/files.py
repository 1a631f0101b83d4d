"""Clip input and output: video files (mp4, mov, mkv, avi via PyAV) and image sequences
(a folder or a printf pattern; PNG 8/16-bit, TIFF 8/16/32-bit, JPEG, EXR with OpenEXR).

Frames are (H, W, C) float32, C = 3 or 4: integer files normalized to [0, 1], float files as
stored. ``open_clip`` reads lazily with random access; ``ClipWriter`` / ``write_clip`` write
atomically (temp file or folder beside the target, renamed at the end) and keep frame rate,
size, bit depth and alpha where the format can hold them. Image sequences keep their frame
numbers; a video output keeps the input's timestamps and audio
(``carried_over``); no file but the output's own targets is ever replaced, and those only with ``overwrite``.
"""
from __future__ import annotations

import bisect
import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io.atomic import check_output_path, is_pattern
from deflicker.io.clip import Clip, Timing
from deflicker.io.encode import VideoWriter, resolve_codec
from deflicker.io.image_file import IMAGE_EXTS, storable_depth
from deflicker.io.sequence import SequenceClip, SequenceWriter, find_frames
from deflicker.io.target import VIDEO, check_numbers, check_targets, folder_ext, output_kind, output_target, refuse_existing
from deflicker.io.video import VideoClip
from deflicker.io.source import ClipInfo, FrameSource, check_frame, check_shape

log = logging.getLogger(__name__)

PathLike = Union[str, Path]


def open_clip(path: PathLike, *, start: int = 0, end: Optional[int] = None, fps: Optional[float] = None,
              allow_short: bool = False) -> Clip:
    """Open frames ``[start, end)`` (end exclusive, None = last) of a video file, a folder of
    images or a printf pattern as a lazily decoded, random-access clip.

    An existing file is read as itself even when its name looks like a pattern ("Take #3.mkv",
    "100%done.mkv"). ``fps`` overrides the file's rate (image sequences have none and default
    to 24). A video shorter than its header declares, or a pattern with missing numbers, is a
    :class:`VideoIOError` unless ``allow_short`` (then the frames there are, with a warning).
    Raises :class:`VideoIOError` for unreadable inputs, :class:`InvalidSettingsError` for a bad range.
    """
    path = Path(path)
    if _is_sequence(path):
        return SequenceClip(path, start=start, end=end, fps=fps, allow_short=allow_short)
    if not path.exists():
        raise VideoIOError(f"no such file: {path}")
    if path.suffix.lower() in IMAGE_EXTS:
        raise VideoIOError(f"{path} is a single image; pass its folder or a pattern such as name.%04d"
                           f"{path.suffix}")
    return VideoClip(path, start=start, end=end, fps=fps, allow_short=allow_short)


def _is_sequence(path: Path) -> bool:
    """True when ``path`` names an image sequence (a folder or a pattern, never an existing file)."""
    return path.is_dir() or is_pattern(path)


def index_range(path: PathLike, numbers: tuple[int, int], *, allow_short: bool = False) -> tuple[int, int]:
    """The positions ``[start, end)`` of the frames numbered ``[first, stop)`` in the clip ``path``.

    An image sequence's frames are numbered as in their file names (a plate from 1001), a video's
    from 0. InvalidSettingsError (exit 2) naming the clip's numbers when the range leaves them.
    """
    path = Path(path)
    first, stop = numbers
    if not _is_sequence(path):
        return first, stop
    have = [number for number, _ in find_frames(path, allow_short)]
    start, end = bisect.bisect_left(have, first), bisect.bisect_left(have, stop)
    if first < have[0] or stop > have[-1] + 1 or start >= end:
        raise InvalidSettingsError(f"frame range {first}:{stop} is outside {path} (frames {have[0]} to {have[-1]})")
    return start, end


def frame_numbers(clip: Clip) -> list[int]:
    """The number of each frame of an opened clip (an image sequence's from its file names)."""
    return [clip.frame_number(i) for i in range(len(clip))]


class ClipWriter:
    """Context manager writing (H, W, C) float32 frames to a video file, a pattern or a folder.

    The output appears at ``path`` only when the block ends without an exception; otherwise
    the partial output is removed and an existing ``path`` is left untouched. Image frames are
    named by ``numbers`` (default 0, 1, 2, ...). Existing targets are replaced only with
    ``overwrite``; no other file is ever touched. A video output takes the frames' ``timing``
    and an ``audio`` source file (see :func:`carried_over`).
    """

    def __init__(self, path: PathLike, *, fps: float, width: int, height: int, channels: int, bit_depth: int,
                 codec: Optional[str] = None, numbers: Optional[Sequence[int]] = None, overwrite: bool = False,
                 timing: Optional[Timing] = None, audio: Optional[Path] = None):
        self.target = output_target(path, codec=codec)
        self.path = self.target.path
        self.overwrite = overwrite
        if channels not in (3, 4) or bit_depth not in (8, 16, 32) or width < 1 or height < 1:
            raise InvalidSettingsError(f"cannot write {width}x{height}x{channels} frames at {bit_depth} bits "
                                       "(channels 3|4, bit depth 8|16|32)")
        self.info = ClipInfo(width=width, height=height, channels=channels, frame_count=0, fps=fps,
                             bit_depth=bit_depth, path=str(path))
        self.count = 0
        if numbers is not None:
            check_numbers(numbers)
        self._backend = self._open_backend(codec, numbers, timing, audio)

    def _open_backend(self, codec: Optional[str], numbers: Optional[Sequence[int]], timing: Optional[Timing],
                      audio: Optional[Path]) -> Union[VideoWriter, SequenceWriter]:
        """The writer for the path's kind: video container, image pattern or folder."""
        if self.target.kind == VIDEO:
            return VideoWriter(self.path, fps=self.info.fps, width=self.info.width, height=self.info.height,
                               channels=self.info.channels, bit_depth=self.info.bit_depth, codec=codec,
                               timing=timing, audio=audio)
        return SequenceWriter(self.target.frame_names(self.info.bit_depth), bit_depth=self.info.bit_depth,
                              channels=self.info.channels, numbers=numbers, overwrite=self.overwrite)

    @property
    def stored_depth(self) -> Optional[int]:
        """8 or 16 where the output stores integer pixels of that depth, None where it stores floats."""
        depth = self._backend.stored_depth
        return depth if depth in (8, 16) else None

    def prepare(self, frame: np.ndarray, index: int) -> np.ndarray:
        """Output frame ``index``, (H, W, C) float32, checked for shape and NaN/inf and converted to
        the pixels the output stores (uint8 or uint16; float32 for 32-bit images); integer pixels of
        :attr:`stored_depth` (a render made them) are checked for shape and kept. Pure and
        thread-safe: render workers convert their frames before the queue holds them (a 16-bit
        frame is half the bytes of a float one)."""
        if frame.dtype.kind == "u":
            check_shape(frame, self.info, index)
            return self._backend.stored(frame)  # the same pixels, or a one-line error for another depth
        return self._backend.stored(check_frame(frame, self.info, index))

    def write(self, frame: np.ndarray, *, prepared: bool = False) -> None:
        """Append one (H, W, C) float32 frame, or (``prepared``) the pixels :meth:`prepare` made of one."""
        self._backend.write(frame if prepared else self.prepare(frame, self.count))
        self.count += 1

    def close(self) -> None:
        """Finish the output and move it into place."""
        if self.count == 0:
            self._backend.abort()
            raise VideoIOError(f"no frames were written to {self.path}")
        if self.target.kind == VIDEO:
            refuse_existing(self.path, self.overwrite)
        self._backend.commit()

    def abort(self) -> None:
        """Drop the partial output."""
        self._backend.abort()

    def __enter__(self) -> "ClipWriter":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise


def write_clip(path: PathLike, frames: Iterable[np.ndarray], *, fps: float, bit_depth: int = 16,
               codec: Optional[str] = None, numbers: Optional[Sequence[int]] = None, overwrite: bool = False,
               forbid: Iterable[PathLike] = (), timing: Optional[Timing] = None,
               audio: Optional[Path] = None) -> Path:
    """Write frames (an iterable of (H, W, 3|4) float32) atomically; returns the output path.

    Size and alpha come from the first frame. ``codec`` picks ffv1 | h264 | prores for video
    (default by extension: .mkv/.avi ffv1, .mp4 h264, .mov prores). ``numbers`` name an image
    sequence's frames (default 0, 1, 2, ...). Existing targets need ``overwrite``. ``forbid``
    lists inputs the output must not overwrite; the path (kind, pattern, codec, writability, and
    existing targets) is checked before any frame is made. ``timing`` and ``audio``: see
    :class:`ClipWriter` and :func:`carried_over`.
    """
    check_targets(output_target(path, codec=codec, inputs=forbid), bit_depth=bit_depth, numbers=numbers or [],
                  overwrite=overwrite)
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise VideoIOError(f"no frames to write to {path}")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] not in (3, 4):
        raise VideoIOError(f"frames must be (H, W, 3|4), got {first.shape}")
    with ClipWriter(path, fps=fps, width=first.shape[1], height=first.shape[0], channels=first.shape[2],
                    bit_depth=bit_depth, codec=codec, numbers=numbers, overwrite=overwrite,
                    timing=timing, audio=audio) as writer:
        writer.write(first)
        for frame in stream:
            writer.write(frame)
    return writer.path


def carried_over(source: FrameSource, path: PathLike) -> dict:
    """``write_clip`` keyword arguments keeping a file clip's timing at ``path``: a video output
    gets the frames' timestamps (variable rates and gaps kept) and the input's audio; an image
    sequence (whose frames :func:`frame_numbers` names) loses a video's audio and uneven frame
    timing (one warning line each)."""
    if not isinstance(source, Clip):
        return {}
    if output_kind(Path(path)) == VIDEO:
        return {"timing": source.timing, "audio": source.audio}
    if isinstance(source, SequenceClip):
        return {}  # its frames keep their numbers (see frame_numbers), gaps included
    if source.audio is not None:
        log.warning("%s is an image sequence: the audio of %s is not written", path, source.audio)
    steps = {b - a for a, b in zip(source.timing.stamps, source.timing.stamps[1:])}
    if len(steps) > 1:
        log.warning("%s is an image sequence: the uneven frame times of %s are not kept (frames are "
                    "numbered one after another)", path, source.info.path)
    return {}


def output_like(info: ClipInfo, path: PathLike, codec: Optional[str] = None) -> dict:
    """``write_clip`` keyword arguments keeping an input's frame rate and bit depth at ``path``:
    the depth is the nearest the output stores; a lost depth or alpha channel is logged."""
    target = Path(path)
    suffix = target.suffix.lower()
    if output_kind(target) == VIDEO:
        name = resolve_codec(target, codec)
        depth = 8 if name == "h264" or info.bit_depth == 8 else 16
        keeps_alpha = name != "h264"
    else:
        ext = suffix if suffix in IMAGE_EXTS else folder_ext(info.bit_depth)
        depth = storable_depth(ext, info.bit_depth)
        keeps_alpha = ext not in (".jpg", ".jpeg")
    if depth < info.bit_depth:
        log.warning("%s stores %d-bit frames; the input is %d-bit", path, depth, info.bit_depth)
    if info.channels == 4 and not keeps_alpha:
        log.warning("%s cannot keep the input's alpha channel", path)
    kwargs: dict = {"fps": info.fps, "bit_depth": depth}
    if codec is not None:
        kwargs["codec"] = codec
    return kwargs


__all__ = ["Clip", "ClipWriter", "Timing", "open_clip", "write_clip", "output_like", "carried_over",
           "check_output_path", "index_range", "frame_numbers"]
