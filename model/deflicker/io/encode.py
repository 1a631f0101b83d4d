"""Writing video files through PyAV: FFV1 (lossless), H.264 (delivery) and ProRes, atomically,
at the input's own frame timestamps and with its audio when given them."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional, cast

import av
import numpy as np

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io.atomic import temp_file_for
from deflicker.io.audio import AudioCarrier
from deflicker.io.clip import Timing, frame_rate, quantize

log = logging.getLogger(__name__)

VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".avi")
DEFAULT_CODEC = {".mp4": "h264", ".mov": "prores", ".mkv": "ffv1", ".avi": "ffv1"}
ENCODERS = {"ffv1": "ffv1", "h264": "libx264", "prores": "prores_ks"}
H264_CRF = 16
#: Slices of a large FFV1 frame. FFmpeg's default cuts a frame into slices of at most 360x288
#: pixels (84 at 4K, over 300 at 8K), and its encoder reserves and zeroes a worst-case margin per
#: slice in the packet buffer it keeps (37 MB of it at 16-bit 4K); 16 slices still code and
#: decode on 16 threads at once.
FFV1_SLICES = 16


def _encoding(codec: str, channels: int, bit_depth: int, width: int, height: int) -> tuple[str, str, dict]:
    """(input ndarray format, stream pix_fmt, encoder options) for one codec and frame layout; the
    input format names how ``av.VideoFrame.from_ndarray`` takes an (H, W, C) RGB(A) array."""
    alpha = channels == 4
    deep = bit_depth > 8
    if codec == "ffv1":
        # 16-bit RGB(A) arrays are what the encoder takes (packed RGB48 / RGBA64, stored as the same
        # planar FFV1 stream, packet for packet, as gbrp16le gives): it reads the array itself, no
        # copy or conversion of a whole frame (50 MB each at 4K) on the way in.
        fmt = _ndarray_format(alpha, deep)
        # Every frame a keyframe (GOP 1, as archives write FFV1): a host scrubbing or rendering
        # the output out of order decodes one frame, not the run from the last keyframe (0.9 s a
        # frame at 16-bit 4K); it costs 0.04% in size at 4K, 4% at 256x144.
        options = {"level": "3", "slicecrc": "1", "g": "1"}
        slices = ffv1_slices(width, height, channels, 16 if deep else 8)
        if slices is not None:
            options["slices"] = str(slices)
        return fmt, fmt if deep else ("bgra" if alpha else "bgr0"), options
    if codec == "prores":
        if alpha:
            return _ndarray_format(True, deep), "yuva444p10le", {"profile": "4", "vendor": "apl0"}
        return _ndarray_format(False, deep), "yuv422p10le", {"profile": "3", "vendor": "apl0"}
    if alpha:
        log.warning("H.264 has no alpha channel; alpha is dropped (use ffv1 or prores to keep it)")
    if width % 2 or height % 2:
        log.warning("odd frame size %dx%d: writing H.264 as yuv444p (less widely playable)", width, height)
        return "rgb24", "yuv444p", {"crf": str(H264_CRF)}
    return "rgb24", "yuv420p", {"crf": str(H264_CRF)}


def ffv1_slices(width: int, height: int, planes: int, bits: int) -> Optional[int]:
    """The FFV1 slice count for a frame: the fewest, at least :data:`FFV1_SLICES`, of a grid FFmpeg
    accepts (r rows of r..2r slices, each under 2^27 bits of samples for its version 3 coder);
    None where FFmpeg's own choice has fewer (frames of up to 16 x 360x288 pixels)."""
    if width * height <= FFV1_SLICES * 360 * 288:
        return None
    grids = sorted((rows * columns, rows, columns) for rows in range(1, 33) for columns in range(rows, 2 * rows + 1))
    for count, rows, columns in grids:
        if count >= FFV1_SLICES and -(-width // columns) * -(-height // rows) * (bits + 1) * planes <= 8 << 24:
            return count
    return None


def _ndarray_format(alpha: bool, deep: bool) -> str:
    """PyAV ndarray format for uint8/uint16 RGB(A) frames."""
    return {(False, False): "rgb24", (True, False): "rgba",
            (False, True): "rgb48le", (True, True): "rgba64le"}[(alpha, deep)]


def resolve_codec(path: Path, codec: Optional[str]) -> str:
    """The codec name (ffv1 | h264 | prores) for a video path; checks PyAV's ffmpeg has it."""
    name = (codec or DEFAULT_CODEC[path.suffix.lower()]).lower()
    if name not in ENCODERS:
        raise InvalidSettingsError(f"unknown codec {name!r}; choose one of {', '.join(ENCODERS)}")
    if ENCODERS[name] not in av.codecs_available:
        raise VideoIOError(f"codec {name} ({ENCODERS[name]}) is not available in this PyAV build")
    return name


class VideoWriter:
    """Encodes frames into a temp file beside ``path``; ``commit`` renames it into place.

    With ``timing`` frame k is shown at ``timing.stamps[k] - timing.offset`` (variable frame
    rates and gaps kept), else every 1/fps; ``audio`` names a file whose audio streams are
    carried across for the same time span (see :class:`deflicker.io.audio.AudioCarrier`).
    """

    def __init__(self, path: Path, *, fps: float, width: int, height: int, channels: int, bit_depth: int,
                 codec: Optional[str] = None, timing: Optional[Timing] = None, audio: Optional[Path] = None):
        self.path = path
        self.codec = resolve_codec(path, codec)
        self._channels = channels
        self.stored_depth = 8 if bit_depth == 8 or self.codec == "h264" else 16
        self._format, pix_fmt, options = _encoding(self.codec, channels, bit_depth, width, height)
        self._timing = timing
        self._rate = frame_rate(fps)
        self._count = 0
        self._audio: Optional[AudioCarrier] = None
        self._temp = temp_file_for(path)
        try:
            self._container = av.open(str(self._temp), mode="w")
            stream = self._container.add_stream(ENCODERS[self.codec], rate=self._rate, options=options)
            self._stream = cast(av.video.stream.VideoStream, stream)
            self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt
            if timing is not None:
                self._stream.codec_context.time_base = self._stream.time_base = timing.time_base
            if audio is not None:
                self._audio = AudioCarrier(audio, timing, self._container, path)
        except av.FFmpegError as exc:
            self.abort()
            raise VideoIOError(f"cannot write {path}: {exc}") from None
        except VideoIOError:
            self.abort()
            raise

    def stored(self, frame: np.ndarray) -> np.ndarray:
        """A validated (H, W, C) float32 frame as the integer pixels this writer encodes."""
        return quantize(frame, self.stored_depth)

    def write(self, frame: np.ndarray) -> None:
        """Encode one validated (H, W, C) float32 frame, or its :meth:`stored` pixels (at its
        input timestamp, if timed)."""
        pixels = self.stored(frame)
        if self._format in ("rgb24", "rgb48le") and self._channels == 4:
            pixels = pixels[..., :3]
        pixels = np.ascontiguousarray(pixels)
        if self._format == self._stream.pix_fmt:  # the encoder's own format: it reads the array, uncopied
            video_frame = av.VideoFrame.from_numpy_buffer(pixels, format=self._format)
        else:
            video_frame = av.VideoFrame.from_ndarray(pixels, format=self._format)
        shown = self._count / self._rate  # seconds
        if self._timing is not None:
            if self._count >= len(self._timing.stamps):
                raise VideoIOError(f"cannot write {self.path}: more frames than the input has timestamps")
            video_frame.pts = self._timing.stamps[self._count] - self._timing.offset
            video_frame.time_base = self._timing.time_base
            shown = video_frame.pts * self._timing.time_base
        if self._audio is not None:
            self._audio.mux_until(float(shown))
        self._count += 1
        self._mux(self._stream.encode(video_frame))

    def _mux(self, packets: list) -> None:
        """Write encoded packets, turning FFmpeg failures into :class:`VideoIOError`."""
        try:
            self._container.mux(packets)
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot write {self.path}: {exc}") from None

    def commit(self) -> None:
        """Flush the encoder and the audio, close the file and move it onto ``path``."""
        self._mux(self._stream.encode(None))
        if self._audio is not None:
            self._audio.finish()
        try:
            self._container.close()
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot write {self.path}: {exc}") from None
        os.replace(self._temp, self.path)

    def abort(self) -> None:
        """Drop the partial output; ``path`` is left as it was."""
        if self._audio is not None:
            self._audio.close()
        container = getattr(self, "_container", None)
        if container is not None:
            try:
                container.close()
            except av.FFmpegError as exc:
                log.debug("closing a failed output: %s", exc)
        self._temp.unlink(missing_ok=True)
