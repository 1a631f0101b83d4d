"""Reading video files through PyAV with exact random access.

On open the video stream's packets are demuxed once (no decoding) to count frames exactly and
to list presentation timestamps and keyframes. ``clip[i]`` then decodes forward when frame i
is ahead of the decoder and before the next keyframe, and otherwise seeks to the last
keyframe at or before i and decodes forward to the frame whose timestamp is i's.

A file that yields fewer frames than its header declares (damaged mid-file, truncated) is an
error unless ``allow_short``: then the frames that decode are used, with one warning line.
"""
from __future__ import annotations

import bisect
import logging
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io.clip import Clip, frame_rate
from deflicker.io.source import ClipInfo

log = logging.getLogger(__name__)


def _pixel_layout(stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    """(bit depth 8 | 16, has alpha) of a video stream's pixel format."""
    fmt = stream.codec_context.format
    if fmt is None:
        raise VideoIOError("the video stream has no pixel format")
    bits = max(component.bits for component in fmt.components)
    return (8 if bits <= 8 else 16), any(component.is_alpha for component in fmt.components)


def _duration_seconds(text: str) -> Optional[float]:
    """Seconds of a Matroska ``DURATION`` tag (``HH:MM:SS.fraction``); None if malformed."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        return None


def _declared(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> tuple[int, float]:
    """(frame count, duration in seconds) the file's header declares for the video stream;
    0 where it declares none. The container's duration stands in for a lone stream's."""
    frames = stream.frames or int(stream.metadata.get("NUMBER_OF_FRAMES", "0") or 0)
    if stream.duration and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif "DURATION" in stream.metadata:
        seconds = _duration_seconds(stream.metadata["DURATION"]) or 0.0
    elif container.duration and len(container.streams) == 1:
        seconds = container.duration / av.time_base
    else:
        seconds = 0.0
    return frames, seconds


def shortfall(stamps: list[int], time_base: Fraction, fps: float, frames: int, seconds: float) -> Optional[str]:
    """What is missing when ``stamps`` (the frames read) fall short of a declared frame count
    or duration, else None. A duration is short by more than 1.5 frame intervals (the mean
    one of the frames read, 1/fps for a single frame), so variable frame rates pass."""
    if frames:
        return f"{len(stamps)} of its {frames} frames" if len(stamps) < frames else None
    if not seconds:
        return None
    span = float((stamps[-1] - stamps[0]) * time_base)
    interval = span / (len(stamps) - 1) if len(stamps) > 1 else 1.0 / fps
    if span + interval < seconds - 1.5 * interval:
        return f"{len(stamps)} frames ({span + interval:.3f} s of its {seconds:.3f} s)"
    return None


def on_rate_grid(stamps: list[int], time_base: Fraction, rate: Fraction) -> Optional[list[int]]:
    """The stamps as whole frame periods of ``rate`` when each is within half a tick of one
    (a constant rate stored in coarse ticks: Matroska's milliseconds), else None. Outputs
    written on that grid keep the exact rate (29.97, not 29.972) and any gaps."""
    periods = [round(stamp * time_base * rate) for stamp in stamps]
    exact = all(abs(stamp * time_base - k / rate) <= time_base / 2 for stamp, k in zip(stamps, periods))
    return periods if exact and len(set(periods)) == len(periods) else None


class VideoClip(Clip):
    """Frames ``[start, end)`` of a video file (mp4, mov, mkv, avi, ...), shown at the file's
    own timestamps; ``audio`` is the file when it has audio streams."""

    def __init__(self, path: Path, *, start: int = 0, end: Optional[int] = None, fps: Optional[float] = None,
                 allow_short: bool = False):
        self.path = path
        self._tolerant = allow_short  # decode around damaged packets instead of failing on them
        self._container = self._open()
        self._stream = self._container.streams.video[0]
        try:
            if self._stream.time_base is None:
                raise VideoIOError(f"{path}: the video stream has no time base")
            self._time_base: Fraction = self._stream.time_base
            self._timestamps, keyframes = self._index()
            self._check_complete(allow_short)
        except VideoIOError:
            self._container.close()
            raise
        self._position = {pts: i for i, pts in enumerate(self._timestamps)}
        self._keyframes = sorted(self._position[pts] for pts in keyframes if pts in self._position) or [0]
        depth, alpha = _pixel_layout(self._stream)
        self._format = {(8, False): "rgb24", (8, True): "rgba", (16, False): "rgb48le",
                        (16, True): "rgba64le"}[(depth, alpha)]
        info = ClipInfo(width=self._stream.codec_context.width, height=self._stream.codec_context.height,
                        channels=4 if alpha else 3, frame_count=len(self._timestamps),
                        fps=float(fps or self._rate()), bit_depth=depth, path=str(path))
        self._frames: Optional[Iterator[av.VideoFrame]] = None
        self._next = 0  # file index the decoder yields next (when self._frames is not None)
        grid = on_rate_grid(self._timestamps, self._time_base, frame_rate(info.fps))
        super().__init__(info, start, end, stamps=grid or self._timestamps,
                         time_base=self._time_base if grid is None else 1 / frame_rate(info.fps))
        self.audio = path if self._container.streams.audio else None

    def _open(self) -> av.container.InputContainer:
        """Open the file; one-line :class:`VideoIOError` if it is not a readable video."""
        try:
            container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoIOError(f"cannot read video {self.path}: {exc}") from None
        if not container.streams.video:
            container.close()
            raise VideoIOError(f"{self.path} has no video stream")
        stream = container.streams.video[0]
        # FFV1 decodes its slices in parallel; frame threads would each hold a whole frame (130 MB
        # more at 16-bit 4K) and decode it no faster. Other codecs thread as FFmpeg sees fit.
        stream.thread_type = "SLICE" if stream.codec_context.name == "ffv1" else "AUTO"
        return container

    def _index(self) -> tuple[list[int], list[int]]:
        """Sorted presentation timestamps of every frame, and those of keyframes."""
        stamps, keys = [], []
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    raise VideoIOError(f"{self.path}: frames without timestamps are not supported")
                stamps.append(pts)
                if packet.is_keyframe:
                    keys.append(pts)
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot read video {self.path}: {exc}") from None
        if not stamps:
            raise VideoIOError(f"{self.path} has no frames")
        if len(set(stamps)) != len(stamps):
            raise VideoIOError(f"{self.path}: duplicate frame timestamps; remux the file first")
        return sorted(stamps), keys

    def _rate(self) -> Fraction:
        """The stream's frame rate (its average, else FFmpeg's guess; 24 when it has none)."""
        return self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate or Fraction(24)

    def _check_complete(self, allow_short: bool) -> None:
        """Refuse a file that yields fewer frames than its header declares; with ``allow_short``
        keep the frames that decode and say once what is missing."""
        frames, seconds = _declared(self._container, self._stream)
        time_base, fps = self._time_base, float(self._rate())
        if allow_short:
            indexed = len(self._timestamps)
            self._timestamps = self._decodable()
            missing = (shortfall(self._timestamps, time_base, fps, frames, seconds)
                       or shortfall(self._timestamps, time_base, fps, indexed, 0.0))
        else:
            missing = shortfall(self._timestamps, time_base, fps, frames, seconds)
        if missing is None:
            return
        if not allow_short:
            raise VideoIOError(f"{self.path} is damaged or truncated: only {missing} can be read "
                               "(--allow-short uses them)")
        log.warning("%s is damaged or truncated: using the %s that can be read", self.path, missing)

    def _decodable(self) -> list[int]:
        """Timestamps of the frames that decode (one pass over the file, damaged packets skipped)."""
        self._container.seek(self._timestamps[0], stream=self._stream, backward=True)
        indexed = set(self._timestamps)
        stamps = sorted(frame.pts for frame in self._decoded() if frame.pts in indexed)
        if not stamps:
            raise VideoIOError(f"{self.path}: no frame can be decoded")
        return stamps

    def _decoded(self) -> Iterator[av.VideoFrame]:
        """The decoder's frames from its position on; a damaged packet raises its FFmpegError or,
        when tolerant, is skipped."""
        for packet in self._container.demux(self._stream):
            try:
                yield from packet.decode()
            except av.FFmpegError as exc:
                if not self._tolerant:
                    raise
                log.debug("%s: skipping a damaged packet at %s: %s", self.path, packet.pts, exc)

    def _seek(self, index: int) -> None:
        """Position the decoder at a keyframe at or before file frame ``index``."""
        key = self._keyframes[max(0, bisect.bisect_right(self._keyframes, index) - 1)]
        self._container.seek(self._timestamps[key], stream=self._stream, backward=True)
        self._frames = self._decoded()
        self._next = key

    def _must_seek(self, index: int) -> bool:
        """True when decoding forward from the decoder's position to ``index`` would be slower
        than seeking (or impossible)."""
        if index < self._next:
            return True
        later = bisect.bisect_right(self._keyframes, self._next)
        return later < len(self._keyframes) and self._keyframes[later] <= index

    def _read(self, index: int) -> np.ndarray:
        """Decode file frame ``index`` exactly, as uint8 or uint16 pixels."""
        try:
            return self._decode(index)
        except av.FFmpegError as exc:
            self._frames = None
            raise VideoIOError(f"{self.path}: cannot decode frame {index} ({exc}); the file is damaged "
                               "(--allow-short skips damaged frames)") from None
        except VideoIOError:
            self._frames = None
            raise

    def _decode(self, index: int) -> np.ndarray:
        """Pixels of file frame ``index``: decode forward from the decoder's position or a keyframe."""
        if self._frames is None or self._must_seek(index):
            self._seek(index)
        retried = False
        while True:
            frame = next(self._frames, None) if self._frames is not None else None
            if frame is None:
                raise VideoIOError(f"{self.path}: frame {index} could not be decoded")
            position = self._position.get(frame.pts) if frame.pts is not None else None
            if position is None:
                continue
            if position > index:  # the seek landed late: decode once more from the start
                if retried:
                    raise VideoIOError(f"{self.path}: frame {index} could not be decoded")
                log.debug("%s: seek overshot frame %d, decoding from frame 0", self.path, index)
                self._container.seek(self._timestamps[0], stream=self._stream, backward=True)
                self._frames = self._decoded()
                retried = True
                continue
            self._next = position + 1
            if position == index:
                return frame.to_ndarray(format=self._format, src_color_range=frame.color_range or None)

    def close(self) -> None:
        """Close the container (idempotent)."""
        super().close()
        self._frames = None
        self._container.close()
