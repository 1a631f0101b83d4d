"""Clip input and output: video files (mp4, mov, mkv, avi via PyAV) and image sequences
(a folder or a printf pattern; PNG 8/16-bit, TIFF 8/16/32-bit, JPEG, EXR with OpenEXR).

Frames are (H, W, C) float32, C = 3 or 4: integer files normalized to [0, 1], float files as
stored. ``open_clip`` reads lazily with random access; ``ClipWriter`` / ``write_clip`` write
atomically (temp file or folder beside the target, renamed at the end) and keep frame rate,
size, bit depth and alpha where the format can hold them; ``output_like`` and ``carried_over``
give the keyword arguments that keep an input's rate, depth, timestamps, audio and numbering.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io_atomic import check_output_path, is_folder_target
from deflicker.io_clip import Clip, Timing
from deflicker.io_encode import VIDEO_EXTS, VideoWriter, resolve_codec
from deflicker.io_image import IMAGE_EXTS, storable_depth
from deflicker.io_sequence import SequenceClip, SequenceWriter, folder_ext, is_pattern
from deflicker.io_video import VideoClip
from deflicker.source import ClipInfo, FrameSource, check_frame

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
    if path.is_dir() or (is_pattern(path) and not path.is_file()):
        return SequenceClip(path, start=start, end=end, fps=fps, allow_short=allow_short)
    if not path.exists():
        raise VideoIOError(f"no such file: {path}")
    if path.suffix.lower() in IMAGE_EXTS:
        raise VideoIOError(f"{path} is a single image; pass its folder or a pattern such as name.%04d"
                           f"{path.suffix}")
    return VideoClip(path, start=start, end=end, fps=fps, allow_short=allow_short)


class ClipWriter:
    """Context manager writing (H, W, C) float32 frames to a video file, a pattern or a folder.

    The output appears at ``path`` only when the block ends without an exception; otherwise
    the partial output is removed and an existing ``path`` is left untouched. A video output
    takes the frames' ``timing`` and an ``audio`` source file; a sequence takes the frames'
    ``numbers`` (see :func:`carried_over`).
    """

    def __init__(self, path: PathLike, *, fps: float, width: int, height: int, channels: int, bit_depth: int,
                 codec: Optional[str] = None, start_number: int = 0, timing: Optional[Timing] = None,
                 audio: Optional[Path] = None, numbers: Optional[Sequence[int]] = None):
        self.path = check_output_path(path)
        if channels not in (3, 4) or bit_depth not in (8, 16, 32) or width < 1 or height < 1:
            raise InvalidSettingsError(f"cannot write {width}x{height}x{channels} frames at {bit_depth} bits "
                                       "(channels 3|4, bit depth 8|16|32)")
        self.info = ClipInfo(width=width, height=height, channels=channels, frame_count=0, fps=fps,
                             bit_depth=bit_depth, path=str(path))
        self.count = 0
        self._backend = self._open_backend(codec, start_number, timing, audio, numbers)

    def _open_backend(self, codec: Optional[str], start_number: int, timing: Optional[Timing],
                      audio: Optional[Path], numbers: Optional[Sequence[int]]) -> Union[VideoWriter, SequenceWriter]:
        """The writer for the path's kind: video container, image pattern or folder."""
        suffix = self.path.suffix.lower()
        if is_video_output(self.path):
            return VideoWriter(self.path, fps=self.info.fps, width=self.info.width, height=self.info.height,
                               channels=self.info.channels, bit_depth=self.info.bit_depth, codec=codec,
                               timing=timing, audio=audio)
        if codec is not None:
            raise InvalidSettingsError(f"codec {codec!r} applies to video outputs ({', '.join(VIDEO_EXTS)})")
        if is_pattern(self.path) or is_folder_target(self.path):
            return SequenceWriter(self.path, bit_depth=self.info.bit_depth, channels=self.info.channels,
                                  start_number=start_number, numbers=numbers)
        if suffix in IMAGE_EXTS:
            raise InvalidSettingsError(f"an image sequence output needs a frame-number pattern, e.g. "
                                       f"{self.path.stem}.%04d{self.path.suffix}")
        raise InvalidSettingsError(f"cannot write {self.path}: unknown output type {suffix!r} "
                                   f"(video {', '.join(VIDEO_EXTS)} or images {', '.join(IMAGE_EXTS)})")

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, C) float32 frame (checked for shape and NaN/inf)."""
        self._backend.write(check_frame(frame, self.info, self.count))
        self.count += 1

    def close(self) -> None:
        """Finish the output and move it into place."""
        if self.count == 0:
            self._backend.abort()
            raise VideoIOError(f"no frames were written to {self.path}")
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
               codec: Optional[str] = None, start_number: int = 0, forbid: Iterable[PathLike] = (),
               timing: Optional[Timing] = None, audio: Optional[Path] = None,
               numbers: Optional[Sequence[int]] = None) -> Path:
    """Write frames (an iterable of (H, W, 3|4) float32) atomically; returns the output path.

    Size and alpha come from the first frame. ``codec`` picks ffv1 | h264 | prores for video
    (default by extension: .mkv/.avi ffv1, .mp4 h264, .mov prores). ``forbid`` lists inputs
    the output must not overwrite; that and writability are checked before any frame is made.
    ``timing``, ``audio`` and ``numbers``: see :class:`ClipWriter` and :func:`carried_over`.
    """
    check_output_path(path, forbid)
    stream = iter(frames)
    first = next(stream, None)
    if first is None:
        raise VideoIOError(f"no frames to write to {path}")
    first = np.asarray(first)
    if first.ndim != 3 or first.shape[2] not in (3, 4):
        raise VideoIOError(f"frames must be (H, W, 3|4), got {first.shape}")
    with ClipWriter(path, fps=fps, width=first.shape[1], height=first.shape[0], channels=first.shape[2],
                    bit_depth=bit_depth, codec=codec, start_number=start_number, timing=timing, audio=audio,
                    numbers=numbers) as writer:
        writer.write(first)
        for frame in stream:
            writer.write(frame)
    return writer.path


def is_video_output(path: Path) -> bool:
    """True when an output path names a video file (not a frame pattern)."""
    return path.suffix.lower() in VIDEO_EXTS and not is_pattern(path)


def carried_over(source: FrameSource, path: PathLike) -> dict:
    """``write_clip`` keyword arguments keeping a file clip's timing at ``path``: a video output
    gets the frames' timestamps (variable rates and gaps kept) and the input's audio; an image
    sequence gets a sequence input's own frame numbers, and loses a video's audio and uneven
    frame timing (one warning line each)."""
    if not isinstance(source, Clip):
        return {}
    if is_video_output(Path(path)):
        return {"timing": source.timing, "audio": source.audio}
    if isinstance(source, SequenceClip):
        return {"numbers": source.timing.stamps}
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
    if is_video_output(target):
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
           "check_output_path"]
