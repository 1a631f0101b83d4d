"""Audio carried from an input video into a video output, in sync with the frames kept.

Each audio stream is copied packet by packet (no re-encoding) when the output container can
hold its codec, and otherwise re-encoded to the container's default audio codec with one
warning line. Only the audio of the selected frames' time span goes across, shifted as the
frames are (see :class:`deflicker.io.clip.Timing`); packets are muxed as the video advances
so the output stays interleaved.
"""
from __future__ import annotations

import io
import logging
import math
from pathlib import Path
from typing import Iterator, Optional, cast

import av
from av.audio.frame import AudioFrame
from av.audio.stream import AudioStream

from deflicker.errors import VideoIOError
from deflicker.io.clip import Timing

log = logging.getLogger(__name__)

#: FFmpeg's usual channel layout for a channel count.
DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 6: "5.1", 8: "7.1"}


def can_copy(stream: AudioStream, sample: Optional[av.Packet], container_format: str) -> bool:
    """True when a container of this format takes the stream's packets as they are: its muxer
    lists the codec and writes a file with the stream's first packet ``sample`` (some codec
    parameters fail only in the trailer, e.g. PCM channel layouts in MP4)."""
    probe = av.open(io.BytesIO(), mode="w", format=container_format)
    try:
        copy = probe.add_stream_from_template(stream)
        if sample is not None:
            sample.stream = copy
            probe.mux(sample)
        probe.close()
        return True
    except (ValueError, av.FFmpegError):
        return False


def _first_packet(source: Path, index: int) -> Optional[av.Packet]:
    """The first packet of stream ``index`` of a file (None when it has none)."""
    with av.open(str(source), mode="r") as container:
        return next((p for p in container.demux(container.streams[index]) if p.size), None)


class AudioCarrier:
    """Copies (or re-encodes) the audio streams of ``source`` into ``output``."""

    def __init__(self, source: Path, timing: Optional[Timing], output: av.container.OutputContainer, target: Path):
        self._target = target
        try:
            self._input = av.open(str(source), mode="r")
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot read the audio of {source}: {exc}") from None
        self._pairs: dict[int, tuple[av.stream.Stream, Optional[AudioStream]]] = {}
        try:
            for stream in self._input.streams.audio:  # every audio stream, in order
                self._pairs[stream.index] = self._output_stream(stream, _first_packet(source, stream.index), output)
        except BaseException:
            self._input.close()
            raise
        self._output = output
        # Input seconds [start, end) go across, at shift seconds earlier; for the whole file
        # every packet goes untrimmed (a codec's priming samples may start before the video).
        self._from, self._end, self._shift = -math.inf, math.inf, 0.0
        if timing is not None and not (timing.offset == 0 and timing.end is None):
            self._from, self._shift = timing.seconds(timing.stamps[0]), timing.seconds(timing.offset)
            self._end = math.inf if timing.end is None else timing.seconds(timing.end)
        self._packets: Iterator[av.Packet] = self._input.demux(*self._input.streams.audio)
        self._held: Optional[av.Packet] = None  # read ahead of the video, muxed later

    def _output_stream(self, stream: AudioStream, sample: Optional[av.Packet], output: av.container.OutputContainer
                       ) -> tuple[av.stream.Stream, Optional[AudioStream]]:
        """(output stream, None) to copy into, or (output stream, the same) to encode into."""
        source = stream.codec_context
        if can_copy(stream, sample, output.format.name):
            return output.add_stream_from_template(stream), None
        encoder = output.default_audio_codec
        log.warning("%s cannot hold %s audio: re-encoding it as %s", self._target, source.name, encoder)
        # An unnamed layout ("2 channels") is refused by encoders: the channel count's usual one.
        layout = av.AudioLayout(DEFAULT_LAYOUTS.get(source.layout.nb_channels, source.layout.name))
        encoded = cast(AudioStream, output.add_stream(encoder, rate=source.sample_rate, layout=layout))
        return encoded, encoded

    @staticmethod
    def _start(packet: av.Packet) -> Optional[float]:
        """A packet's input time in seconds (None when it has none)."""
        if packet.pts is None or packet.time_base is None:
            return None
        return float(packet.pts * packet.time_base)

    def mux_until(self, seconds: float) -> None:
        """Mux the audio that plays before output time ``seconds``."""
        while True:
            packet = self._held if self._held is not None else next(self._packets, None)
            self._held = None
            if packet is None:
                return
            start = self._start(packet)
            if start is None:
                self._carry(packet)
                continue
            if start >= self._end:  # past the selected span: nothing later is carried either
                self._packets = iter(())
                return
            if start - self._shift >= seconds:
                self._held = packet
                return
            self._carry(packet)

    def _carry(self, packet: av.Packet) -> None:
        """Copy or re-encode one packet if it plays within the selected span."""
        out, encoder = self._pairs[packet.stream.index]
        start = self._start(packet)
        if start is not None and packet.pts is not None and packet.time_base is not None:
            end = start + float((packet.duration or 0) * packet.time_base)
            if end <= self._from or start >= self._end:
                return
            ticks = round(self._shift / packet.time_base)
            packet.pts -= ticks
            if packet.dts is not None:
                packet.dts -= ticks
        try:
            if encoder is None:
                if packet.size:  # demux's end-of-stream markers carry nothing to copy
                    packet.stream = out
                    self._output.mux(packet)
                return
            for frame in packet.decode():
                frame.pts = None  # the encoder counts samples from the first frame it gets
                self._output.mux(encoder.encode(cast(AudioFrame, frame)))
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot write the audio of {self._target}: {exc}") from None

    def finish(self) -> None:
        """Mux the rest of the selected audio, flush the encoders and close the input."""
        self.mux_until(math.inf)
        try:
            for _, encoder in self._pairs.values():
                if encoder is not None:
                    self._output.mux(encoder.encode(None))
        except av.FFmpegError as exc:
            raise VideoIOError(f"cannot write the audio of {self._target}: {exc}") from None
        self.close()

    def close(self) -> None:
        """Close the input file (idempotent)."""
        self._input.close()
