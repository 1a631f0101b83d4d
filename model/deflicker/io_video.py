"""Reading video files through PyAV with exact random access.

On open the video stream's packets are demuxed once (no decoding) to count frames exactly and
to list presentation timestamps and keyframes. ``clip[i]`` then decodes forward when frame i
is ahead of the decoder and before the next keyframe, and otherwise seeks to the last
keyframe at or before i and decodes forward to the frame whose timestamp is i's.
"""
from __future__ import annotations

import bisect
import logging
from pathlib import Path
from typing import Iterator, Optional

import av
import numpy as np

from deflicker.errors import VideoIOError
from deflicker.io_clip import Clip, to_float
from deflicker.source import ClipInfo

log = logging.getLogger(__name__)


def _pixel_layout(stream: av.video.stream.VideoStream) -> tuple[int, bool]:
    """(bit depth 8 | 16, has alpha) of a video stream's pixel format."""
    fmt = stream.codec_context.format
    if fmt is None:
        raise VideoIOError("the video stream has no pixel format")
    bits = max(component.bits for component in fmt.components)
    return (8 if bits <= 8 else 16), any(component.is_alpha for component in fmt.components)


class VideoClip(Clip):
    """Frames ``[start, end)`` of a video file (mp4, mov, mkv, avi, ...)."""

    def __init__(self, path: Path, *, start: int = 0, end: Optional[int] = None, fps: Optional[float] = None):
        self.path = path
        self._container = self._open()
        self._stream = self._container.streams.video[0]
        self._timestamps, keyframes = self._index()
        self._position = {pts: i for i, pts in enumerate(self._timestamps)}
        self._keyframes = sorted(self._position[pts] for pts in keyframes) or [0]
        depth, alpha = _pixel_layout(self._stream)
        self._format = {(8, False): "rgb24", (8, True): "rgba", (16, False): "rgb48le",
                        (16, True): "rgba64le"}[(depth, alpha)]
        rate = self._stream.average_rate or self._stream.guessed_rate or self._stream.base_rate
        info = ClipInfo(width=self._stream.codec_context.width, height=self._stream.codec_context.height,
                        channels=4 if alpha else 3, frame_count=len(self._timestamps),
                        fps=float(fps or rate or 24.0), bit_depth=depth, path=str(path))
        self._frames: Optional[Iterator[av.VideoFrame]] = None
        self._next = 0  # file index the decoder yields next (when self._frames is not None)
        super().__init__(info, start, end)

    def _open(self) -> av.container.InputContainer:
        """Open the file; one-line :class:`VideoIOError` if it is not a readable video."""
        try:
            container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoIOError(f"cannot read video {self.path}: {exc}") from None
        if not container.streams.video:
            container.close()
            raise VideoIOError(f"{self.path} has no video stream")
        container.streams.video[0].thread_type = "AUTO"
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

    def _seek(self, index: int) -> None:
        """Position the decoder at a keyframe at or before file frame ``index``."""
        key = self._keyframes[max(0, bisect.bisect_right(self._keyframes, index) - 1)]
        self._container.seek(self._timestamps[key], stream=self._stream, backward=True)
        self._frames = self._container.decode(self._stream)
        self._next = key

    def _must_seek(self, index: int) -> bool:
        """True when decoding forward from the decoder's position to ``index`` would be slower
        than seeking (or impossible)."""
        if index < self._next:
            return True
        later = bisect.bisect_right(self._keyframes, self._next)
        return later < len(self._keyframes) and self._keyframes[later] <= index

    def _read(self, index: int) -> np.ndarray:
        """Decode file frame ``index`` exactly, as float32 in [0, 1]."""
        try:
            return to_float(self._decode(index))
        except av.FFmpegError as exc:
            self._frames = None
            raise VideoIOError(f"{self.path}: cannot decode frame {index}: {exc}") from None
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
                self._frames = self._container.decode(self._stream)
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
