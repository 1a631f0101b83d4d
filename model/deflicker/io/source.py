"""Frame sources: what the engine reads a clip from.

A :class:`FrameSource` is random access: ``len(source)``, ``source[i] -> (H, W, C) float32``
(C = 3 or 4, the clip's own range) and ``source.info``. ``deflicker.io.files.open_clip`` returns one
for files; :class:`ArraySource` wraps frames in memory (tests, synthetic data),
:class:`CallbackSource` wraps a function (the OFX bridge fetches frames from the host) and
:class:`SubSource` is a range of frames of another source (a segment of a long clip).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence, runtime_checkable

import numpy as np

from deflicker.errors import VideoIOError


@dataclass(frozen=True)
class ClipInfo:
    """What is known about a clip without decoding it all."""

    width: int
    height: int
    channels: int  # 3 (RGB) or 4 (RGBA)
    frame_count: int
    fps: float = 24.0
    bit_depth: int = 8  # 8 or 16 (integer, normalized to [0, 1]) or 32 (float, as stored)
    path: str = ""

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of every frame."""
        return self.height, self.width, self.channels


@runtime_checkable
class FrameSource(Protocol):
    """Random-access clip: ``len``, ``[i]`` and ``info``."""

    info: ClipInfo

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> np.ndarray: ...


def owns_frames(source: FrameSource) -> bool:
    """True when every ``source[i]`` is a new array its caller owns and may overwrite (a decoded
    file, :class:`deflicker.io.clip.Clip`, and ranges of one), not a host's buffer or an array
    kept elsewhere (the ``hands_out_copies`` attribute such sources set)."""
    return bool(getattr(source, "hands_out_copies", False))


def check_shape(frame: np.ndarray, info: ClipInfo, index: int) -> None:
    """:class:`VideoIOError` naming frame ``index`` unless it has the clip's (H, W, C) shape."""
    if frame.ndim != 3 or frame.shape != info.shape:
        raise VideoIOError(f"frame {index} has shape {tuple(frame.shape)}, expected {info.shape}")


def file_pixels(source: FrameSource, index: int) -> np.ndarray:
    """Frame ``index`` of ``source`` as its file stores it where the source reads a file (integer
    pixels, read-only: :meth:`deflicker.io.clip.Clip.file_pixels`), else ``source[index]``. For
    work done a band of rows at a time: a 16-bit 4K frame is 50 MB as stored, 100 MB as float."""
    read = getattr(source, "file_pixels", None)
    return read(index) if read is not None else source[index]


def check_frame(frame: np.ndarray, info: ClipInfo, index: int, *, contiguous: bool = True) -> np.ndarray:
    """Validate one decoded frame against the clip's info: shape and finiteness.

    Returns the frame as float32, contiguous unless ``contiguous`` is False (then a float32
    view, any row stride, stays a view: the OFX path keeps host buffers uncopied); raises
    :class:`VideoIOError` naming the frame.
    """
    arr = np.asarray(frame)
    check_shape(arr, info, index)
    arr = np.ascontiguousarray(arr, dtype=np.float32) if contiguous else arr.astype(np.float32, copy=False)
    # The sum is NaN or infinite when a pixel is (one pass, no frame-size temporary); only then,
    # or when huge finite values overflow it, is every pixel looked at.
    with np.errstate(over="ignore", invalid="ignore"):
        total = arr.sum()
    if not np.isfinite(total) and not np.isfinite(arr).all():
        raise VideoIOError(f"frame {index} contains NaN or infinite pixel values")
    return arr


class ArraySource:
    """Frames held in memory (a list or an (N, H, W, C) array) as a :class:`FrameSource`."""

    def __init__(self, frames: Sequence[np.ndarray] | np.ndarray, fps: float = 24.0, bit_depth: int = 32):
        if len(frames) == 0:
            raise VideoIOError("the clip has no frames")
        first = np.asarray(frames[0])
        if first.ndim != 3 or first.shape[2] not in (3, 4):
            raise VideoIOError(f"frames must be (H, W, 3|4), got {first.shape}")
        self._frames = frames
        self.info = ClipInfo(width=first.shape[1], height=first.shape[0], channels=first.shape[2],
                             frame_count=len(frames), fps=fps, bit_depth=bit_depth)

    def __len__(self) -> int:
        return self.info.frame_count

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return check_frame(self._frames[index], self.info, index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


class CallbackSource:
    """A :class:`FrameSource` whose frames come from ``fetch(index)`` (e.g. an OFX host)."""

    def __init__(self, info: ClipInfo, fetch: Callable[[int], np.ndarray]):
        if info.frame_count <= 0:
            raise VideoIOError("the clip has no frames")
        self.info = info
        self._fetch = fetch

    def __len__(self) -> int:
        return self.info.frame_count

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return check_frame(self._fetch(index), self.info, index)


class SubSource:
    """Frames [start, stop) of another :class:`FrameSource`, as a clip of their own (a segment)."""

    def __init__(self, source: FrameSource, start: int, stop: int):
        if not 0 <= start < stop <= len(source):
            raise VideoIOError(f"frames {start}..{stop} are not inside a clip of {len(source)} frames")
        self.source, self.start = source, start
        self.info = dataclasses.replace(source.info, frame_count=stop - start)

    def __len__(self) -> int:
        return self.info.frame_count

    @property
    def hands_out_copies(self) -> bool:
        """Whether its frames are new arrays the caller owns (:func:`owns_frames`): the clip's."""
        return owns_frames(self.source)

    def __getitem__(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.source[self.start + index]

    def file_pixels(self, index: int) -> np.ndarray:
        """Frame ``index`` as its file stores it (:func:`file_pixels` of the source)."""
        if not 0 <= index < len(self):
            raise IndexError(index)
        return file_pixels(self.source, self.start + index)
