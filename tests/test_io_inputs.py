"""Damaged and unusual inputs on real files made here: garbage spliced into a video, a sequence
with a missing number, variable frame rate, audio streams, file names that look like patterns."""
from __future__ import annotations

import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import av
import numpy as np
import pytest

from deflicker.cli.main import main
from deflicker.errors import VideoIOError
from deflicker.io.files import carried_over, open_clip, write_clip
from tests._clips import flicker_clip

FAST = ["--analysis-size", "64"]
VFR_MS = (0, 40, 80, 200, 240, 400, 440, 480, 700, 740)  # irregular frame times in ms


def _frames(n: int) -> np.ndarray:
    """n tiny flickering RGB frames as uint8."""
    return np.rint(flicker_clip(n=n)[1].clip(0, 1) * 255).astype(np.uint8)


def make_video(path: Path, pts_ms: Sequence[int], audio: Optional[str] = None, intra_h264: bool = False) -> np.ndarray:
    """An FFV1 (or all-intra H.264) video whose frames show at ``pts_ms``, with an optional
    audio stream (codec ``audio``: a 440 Hz stereo tone as long as the video); returns the frames."""
    frames = _frames(len(pts_ms))
    seconds = (pts_ms[-1] + 40) / 1000
    codec, pix_fmt, options = ("libx264", "yuv420p", {"g": "1"}) if intra_h264 else ("ffv1", "bgr0", {})
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=Fraction(25), options=options)
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        video.codec_context.time_base = Fraction(1, 1000)
        sound = container.add_stream(audio, rate=48000, layout="stereo") if audio else None
        for ms, pixels in zip(pts_ms, frames):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(48000 * seconds)) / 48000)
            for start in range(0, len(tone), 960):
                chunk = np.tile(tone[start:start + 960].astype(np.float32), (2, 1))
                samples = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                samples.sample_rate, samples.pts, samples.time_base = 48000, start, Fraction(1, 48000)
                container.mux(sound.encode(samples))
            container.mux(sound.encode(None))
    return frames


def packets(path: Path, kind: str) -> list[av.Packet]:
    """The non-empty packets of a file's first stream of ``kind`` (video | audio), in file order."""
    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [p for p in container.demux(stream) if p.size]


def video_seconds(path: Path) -> list[float]:
    """Presentation times of a video file's frames, in order."""
    return sorted(round(float(p.pts * p.time_base), 4) for p in packets(path, "video"))


def read_pixels(path: Path, **kwargs) -> np.ndarray:
    with open_clip(path, **kwargs) as clip:
        return np.stack(list(clip))


def as_float(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float32) / np.float32(255.0)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deflicker", *args, *FAST], capture_output=True, text=True)


def error_lines(stderr: str) -> list[str]:
    """stderr without progress-bar redraws."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line]


# ---------------------------------------------------------------- damaged videos


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A 24-frame MKV with 2000 garbage bytes spliced in before frame 12 (the demuxer stops
    there: 12 frames, exit 0 on the old code); returns (path, the 24 frames written)."""
    folder = tmp_path_factory.mktemp("damaged")
    good = folder / "good.mkv"
    frames = make_video(good, [round(1000 * k / 24) for k in range(24)])
    data = good.read_bytes()
    at = packets(good, "video")[12].pos
    garbage = np.random.default_rng(1).integers(0, 256, 2000, dtype=np.uint8).tobytes()
    path = folder / "spliced.mkv"
    path.write_bytes(data[:at] + garbage + data[at:])
    return path, frames


def test_garbage_mid_file_is_refused_unless_allowed_short(damaged, caplog):
    path, frames = damaged
    with pytest.raises(VideoIOError, match=r"spliced.mkv is damaged or truncated: only 12 frames .*--allow-short") as info:
        open_clip(path)
    assert "\n" not in str(info.value)
    with caplog.at_level(logging.WARNING, logger="deflicker"):
        got = read_pixels(path, allow_short=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "using the 12 frames" in warnings[0]
    np.testing.assert_array_equal(got, as_float(frames[:12]))


def test_cli_damaged_video_exit_3_or_warns_with_allow_short(damaged, tmp_path, caplog):
    path, _ = damaged
    out = tmp_path / "o.mkv"
    refused = cli("run", str(path), "-o", str(out))
    assert refused.returncode == 3 and "Traceback" not in refused.stderr
    assert len(error_lines(refused.stderr)) == 1 and not out.exists()
    assert error_lines(refused.stderr)[0].startswith(f"deflicker: error: {path} is damaged or truncated")
    with caplog.at_level(logging.WARNING, logger="deflicker"):
        assert main(["run", str(path), "-o", str(out), "--allow-short", *FAST]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "damaged or truncated" in warnings[0]
    assert len(packets(out, "video")) == 12


def test_damaged_frame_is_skipped_with_allow_short(tmp_path, caplog):
    good = tmp_path / "good.mp4"  # MP4's index keeps every frame listed; one frame's bytes are garbage
    make_video(good, [40 * k for k in range(10)], intra_h264=True)
    with av.open(str(good)) as container:
        reference = {round(f.time, 4): f.to_ndarray(format="rgb24") for f in container.decode(video=0)}
    data = bytearray(good.read_bytes())
    bad = packets(good, "video")[4]
    data[bad.pos + 8: bad.pos + bad.size] = np.random.default_rng(2).integers(0, 256, bad.size - 8, np.uint8).tobytes()
    path = tmp_path / "bad.mp4"
    path.write_bytes(bytes(data))
    with open_clip(path) as clip, pytest.raises(VideoIOError, match=r"cannot decode frame 4 .*--allow-short"):
        list(clip)
    with caplog.at_level(logging.WARNING, logger="deflicker"):
        with open_clip(path, allow_short=True) as clip:
            order = [8, 0, 5, 3, 1, 2, 4, 6, 7]  # random access around the gap
            got = {round(clip.timing.seconds(clip.timing.stamps[i]), 4): clip[i] for i in order}
    assert "using the 9 of its 10 frames" in caplog.text
    assert sorted(got) == sorted(set(reference) - {0.16})  # frame 4 shows at 0.16 s
    for seconds, frame in got.items():
        np.testing.assert_array_equal(frame, as_float(reference[seconds]))


# ---------------------------------------------------------------- sequences with gaps


def test_sequence_gap_is_refused_or_kept_with_its_numbers(tmp_path, caplog):
    src = tmp_path / "in" / "plate.%04d.png"
    src.parent.mkdir()
    frames = flicker_clip(n=7)[1]
    write_clip(src, frames, fps=24.0, bit_depth=8, numbers=range(1001, 1001 + len(frames)))
    for gone in (1003, 1005, 1006):
        (src.parent / f"plate.{gone}.png").unlink()
    for given in (src, src.parent):  # the pattern or its folder
        with pytest.raises(VideoIOError, match=r"frames 1003, 1005-1006 are missing .*--allow-short"):
            open_clip(given)
    with open_clip(src, allow_short=True) as clip:
        assert len(clip) == 4 and clip.timing.stamps == (1001, 1002, 1004, 1007)
    assert "1003, 1005-1006 are missing" in caplog.text

    out = tmp_path / "out" / "o.####.png"
    assert main(["run", str(src), "-o", str(out), "--allow-short", *FAST]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [f"o.{n}.png" for n in (1001, 1002, 1004, 1007)]
    video = tmp_path / "out.mkv"
    assert main(["run", str(src), "-o", str(video), "--allow-short", *FAST]) == 0
    assert video_seconds(video) == pytest.approx([k / 24 for k in (0, 1, 3, 6)], abs=1e-3)  # the gap stays in time


# ---------------------------------------------------------------- variable frame rate and audio


@pytest.mark.parametrize("name", ["vfr.mkv", "vfr.mp4", "vfr.mov"])
def test_video_output_keeps_variable_frame_times(tmp_path, name):
    src = tmp_path / "in.mkv"
    make_video(src, VFR_MS)
    out = tmp_path / name
    assert main(["run", str(src), "-o", str(out), *FAST]) == 0
    assert video_seconds(out) == [ms / 1000 for ms in VFR_MS]
    with open_clip(src, start=3, end=8) as clip:  # a range starts where the file starts
        write_clip(tmp_path / f"part.{name}", list(clip), **carried_over(clip, tmp_path / name), fps=25.0,
                   bit_depth=8)
    assert video_seconds(tmp_path / f"part.{name}") == [(ms - 200) / 1000 for ms in VFR_MS[3:8]]


@pytest.mark.parametrize("name", ["o.mp4", "o.mov"])
def test_constant_rate_in_millisecond_ticks_keeps_its_exact_rate(tmp_path, name):
    fps = 30000 / 1001  # Matroska stores 33/34 ms steps; the output must still say 29.97, not 29.972
    src = write_clip(tmp_path / "in.mkv", flicker_clip(n=12)[1], fps=fps, bit_depth=8)
    with open_clip(src) as clip:
        out = write_clip(tmp_path / name, list(clip), **carried_over(clip, tmp_path / name), fps=fps, bit_depth=8)
    with av.open(str(out)) as container:
        assert container.streams.video[0].average_rate == Fraction(30000, 1001)


def test_audio_is_copied_into_video_outputs_in_sync(tmp_path):
    src = tmp_path / "in.mkv"
    make_video(src, VFR_MS, audio="aac")
    out = tmp_path / "out.mov"
    assert main(["run", str(src), "-o", str(out), *FAST]) == 0
    copied, original = packets(out, "audio"), packets(src, "audio")
    assert [bytes(p) for p in copied] == [bytes(p) for p in original]  # remuxed, not re-encoded
    assert [round(float(p.pts * p.time_base), 3) for p in copied] == \
           [round(float(p.pts * p.time_base), 3) for p in original]
    assert video_seconds(out) == [ms / 1000 for ms in VFR_MS]

    part = tmp_path / "part.mkv"  # frames 3..7 (0.2 s .. 0.7 s): that span's audio, shifted with them
    assert main(["run", str(src), "-o", str(part), "--frames", "3:8", *FAST]) == 0
    kept = [float(p.pts * p.time_base) for p in packets(part, "audio")]
    spans = [(float(p.pts * p.time_base), float((p.pts + p.duration) * p.time_base)) for p in original]
    expected = [start - 0.2 for start, end in spans if end > 0.2 and start < 0.7]
    assert kept == pytest.approx(expected, abs=1e-3) and kept[0] < 0.0 + 1e-3


def test_audio_is_reencoded_only_where_the_container_cannot_hold_it(tmp_path, caplog):
    src = tmp_path / "in.mkv"
    make_video(src, VFR_MS, audio="pcm_s16le")  # MP4 cannot hold this PCM stream as it is
    for name, codec, warned in (("o.mkv", "pcm_s16le", False), ("o.mp4", "aac", True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="deflicker"), open_clip(src) as clip:
            write_clip(tmp_path / name, list(clip), **carried_over(clip, tmp_path / name), fps=25.0, bit_depth=8)
        with av.open(str(tmp_path / name)) as container:
            assert [s.codec_context.name for s in container.streams.audio] == [codec]
        assert ("re-encoding it as aac" in caplog.text) == warned


def test_sequence_output_says_the_audio_and_frame_times_are_dropped(tmp_path, caplog):
    src = tmp_path / "in.mkv"
    make_video(src, VFR_MS, audio="aac")
    out = tmp_path / "seq" / "f.%04d.png"
    out.parent.mkdir()
    with caplog.at_level(logging.WARNING, logger="deflicker"):
        assert main(["run", str(src), "-o", str(out), *FAST]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"{out} is an image sequence: the audio of {src} is not written",
                        f"{out} is an image sequence: the uneven frame times of {src} are not kept "
                        "(frames are numbered one after another)"]
    assert len(list(out.parent.iterdir())) == len(VFR_MS)


# ---------------------------------------------------------------- names that look like patterns


@pytest.mark.parametrize("name", ["Take #3.mkv", "100%done.mkv", "shot.%04d.mkv"])
def test_existing_file_named_like_a_pattern_is_read_as_itself(tmp_path, name):
    src = tmp_path / name
    frames = make_video(src, [40 * k for k in range(6)])
    np.testing.assert_array_equal(read_pixels(src), as_float(frames))
    assert main(["run", str(src), "-o", str(tmp_path / "out.mkv"), *FAST]) == 0
    assert len(packets(tmp_path / "out.mkv", "video")) == 6
