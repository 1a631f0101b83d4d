"""deflicker.io.files on real files: round trips, random access, frame ranges, atomic writes, bad input."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.io.clip import to_float
from deflicker.io.image_file import read_image
from deflicker.io.files import ClipWriter, check_output_path, frame_numbers, index_range, open_clip, output_like, write_clip
from deflicker.io.source import FrameSource, file_pixels


def smooth_clip(n: int = 8, h: int = 48, w: int = 64, alpha: bool = False, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3|4) float32 in [0, 1]: moving smooth gradients, different in every frame."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    frames = []
    for t in range(n):
        phase = rng.uniform(0, 6.28, size=3)
        rgb = [0.5 + 0.4 * np.sin(x / 11.0 + y / (15.0 + 6 * c) + 0.4 * t + phase[c]) for c in range(3)]
        if alpha:
            rgb.append(np.clip((x + 2 * t) / w, 0, 1))
        frames.append(np.stack(rgb, axis=-1))
    return np.stack(frames).astype(np.float32)


def quantized(frames: np.ndarray, bit_depth: int) -> np.ndarray:
    """What an integer file stores for float frames."""
    maxval = 2 ** bit_depth - 1
    return (np.rint(np.clip(frames, 0, 1) * maxval) / maxval).astype(np.float32)


def read_all(path: Path, **kwargs) -> np.ndarray:
    with open_clip(path, **kwargs) as clip:
        return np.stack(list(clip))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


# ---------------------------------------------------------------- image sequences


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("alpha", [False, True])
def test_png_sequence_round_trip_is_exact(tmp_path, bit_depth, alpha):
    frames = smooth_clip(alpha=alpha)
    out = write_clip(tmp_path / "shot.%04d.png", frames, fps=24.0, bit_depth=bit_depth)
    assert sorted(p.name for p in tmp_path.iterdir())[0] == "shot.0000.png"
    with open_clip(out) as clip:
        assert isinstance(clip, FrameSource)
        assert (clip.info.channels, clip.info.bit_depth, len(clip)) == (4 if alpha else 3, bit_depth, 8)
        assert (clip.info.width, clip.info.height) == (64, 48)
        got = np.stack(list(clip))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, quantized(frames, bit_depth))
    np.testing.assert_array_equal(read_all(tmp_path), got)  # the folder reads the same frames


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("alpha", [False, True])
def test_tiff_and_hash_pattern_round_trip(tmp_path, bit_depth, alpha):
    frames = smooth_clip(n=4, alpha=alpha)
    write_clip(tmp_path / "t.####.tif", frames, fps=24.0, bit_depth=bit_depth)
    with open_clip(tmp_path / "t.%04d.tif") as clip:
        assert (clip.info.bit_depth, clip.info.channels) == (bit_depth, 4 if alpha else 3)
        np.testing.assert_array_equal(np.stack(list(clip)), quantized(frames, bit_depth))


def test_float_tiff_keeps_values_above_one(tmp_path):
    frames = smooth_clip(n=3) * np.float32(4.0)
    write_clip(tmp_path / "f.%03d.tif", frames, fps=24.0, bit_depth=32)
    with open_clip(tmp_path / "f.%03d.tif") as clip:
        assert clip.info.bit_depth == 32
        np.testing.assert_array_equal(np.stack(list(clip)), frames)


def test_exr_round_trip_keeps_float_and_alpha(tmp_path):
    pytest.importorskip("OpenEXR")
    frames = smooth_clip(n=3, alpha=True) * np.float32(3.0)
    write_clip(tmp_path / "e.%04d.exr", frames, fps=24.0, bit_depth=32)
    with open_clip(tmp_path / "e.%04d.exr") as clip:
        assert (clip.info.bit_depth, clip.info.channels) == (32, 4)
        np.testing.assert_array_equal(np.stack(list(clip)), frames)


def test_exr_without_openexr_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # import OpenEXR now raises ImportError
    (tmp_path / "e.0000.exr").write_bytes(b"not really")
    with pytest.raises(VideoIOError, match="pip install OpenEXR"):
        open_clip(tmp_path / "e.%04d.exr")


def test_images_are_read_as_rgb_not_bgr(tmp_path):
    red_bgr = np.zeros((16, 16, 3), np.uint8)
    red_bgr[..., 2] = 255
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"r{i}.jpg"), red_bgr)
    with open_clip(tmp_path) as clip:
        frame = clip[0]
    assert frame[..., 0].mean() > 0.9 and frame[..., 2].mean() < 0.1


def test_folder_is_read_in_natural_order(tmp_path):
    frames = smooth_clip(n=11)
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(np.rint(frame * 255).astype(np.uint8),
                                                              cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(read_all(tmp_path), quantized(frames, 8))


def test_sequences_keep_their_frame_numbers(tmp_path):
    frames = smooth_clip(n=4)
    plate = write_clip(tmp_path / "plate" / "p.%04d.png", frames, fps=24.0, bit_depth=8, numbers=range(1001, 1005))
    assert sorted(p.name for p in plate.parent.iterdir()) == [f"p.{n}.png" for n in range(1001, 1005)]
    with open_clip(plate) as clip, open_clip(plate.parent) as folder, open_clip(plate, start=1, end=3) as part:
        assert frame_numbers(clip) == frame_numbers(folder) == [1001, 1002, 1003, 1004]
        assert frame_numbers(part) == [1002, 1003]
        out = write_clip(tmp_path / "out", list(part), fps=24.0, bit_depth=8, numbers=frame_numbers(part))
    assert sorted(p.name for p in out.iterdir()) == ["frame.001002.png", "frame.001003.png"]
    video = write_clip(tmp_path / "c.mkv", frames, fps=24.0)
    with open_clip(video, start=2) as clip:
        assert frame_numbers(clip) == [2, 3]
    assert index_range(plate, (1002, 1004)) == (1, 3)
    assert index_range(video, (1, 3)) == (1, 3)
    with pytest.raises(InvalidSettingsError, match=r"outside .* \(frames 1001 to 1004\)"):
        index_range(plate, (0, 2))
    with pytest.raises(VideoIOError, match="distinct"):
        write_clip(tmp_path / "d.%04d.png", frames[:2], fps=24.0, numbers=[5, 5])


# ---------------------------------------------------------------- video files


@pytest.mark.parametrize("bit_depth", [8, 16])
@pytest.mark.parametrize("alpha", [False, True])
def test_ffv1_mkv_round_trip_is_exact(tmp_path, bit_depth, alpha):
    frames = smooth_clip(alpha=alpha)
    out = write_clip(tmp_path / "clip.mkv", frames, fps=25.0, bit_depth=bit_depth)
    with open_clip(out) as clip:
        assert (clip.info.channels, clip.info.bit_depth, len(clip)) == (4 if alpha else 3, bit_depth, 8)
        got = np.stack(list(clip))
    np.testing.assert_array_equal(got, quantized(frames, bit_depth))


def _ffv1_header(path: Path) -> str:
    """The global header line FFmpeg's FFV1 decoder reports for a file (version, slices, intra, ...)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.skip("no ffmpeg")
    log = subprocess.run([ffmpeg, "-hide_banner", "-debug", "pict", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    return re.search(r"global: .*", log).group(0)


def _ffv1_slice_grid(path: Path) -> tuple[int, int]:
    """(columns, rows) of the slices an FFV1 file's frames are cut into."""
    columns, rows = re.search(r"slices:(\d+)x(\d+)", _ffv1_header(path)).groups()
    return int(columns), int(rows)


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_every_ffv1_frame_is_a_keyframe(tmp_path, bit_depth):
    # GOP 1: a host reading the output out of order decodes one frame, not a run from a keyframe.
    out = write_clip(tmp_path / "intra.mkv", smooth_clip(n=14), fps=24.0, bit_depth=bit_depth)
    with av.open(str(out)) as container:
        keys = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert keys == [True] * 14
    assert " intra:1 " in _ffv1_header(out)


@pytest.mark.parametrize("h, w, alpha, slices", [(1080, 1920, False, 16), (1080, 1920, True, 16), (540, 960, False, None)])
def test_large_ffv1_frames_are_cut_into_sixteen_slices(tmp_path, h, w, alpha, slices):
    # FFmpeg's default cuts a 1080p frame into 20 or more slices, a 4K one into 84, each with its
    # margin in the packet buffer the encoder keeps; smaller frames keep FFmpeg's fewer slices.
    frames = smooth_clip(n=2, h=h, w=w, alpha=alpha)
    out = write_clip(tmp_path / "big.mkv", frames, fps=24.0, bit_depth=16)
    columns, rows = _ffv1_slice_grid(out)
    if slices is None:
        assert columns * rows < 16
    else:
        assert (columns, rows) == (4, 4)
    np.testing.assert_array_equal(read_all(out), quantized(frames, 16))


@pytest.mark.parametrize("name", ["a.mkv", "a.mp4", "a.mov", "a.avi"])
def test_fractional_frame_rate_is_kept(tmp_path, name):
    fps = 30000 / 1001
    out = write_clip(tmp_path / name, smooth_clip(n=4), fps=fps, bit_depth=8)
    with open_clip(out) as clip:
        assert abs(clip.info.fps - fps) < 1e-6
        assert len(clip) == 4


def test_h264_mp4_is_close(tmp_path):
    frames = smooth_clip(n=6)
    out = write_clip(tmp_path / "d.mp4", frames, fps=24.0)
    got = read_all(out)
    assert got.shape == frames.shape
    assert psnr(got, frames) > 35.0


def test_prores_keeps_alpha(tmp_path):
    if "prores_ks" not in av.codecs_available:
        pytest.skip("no prores_ks encoder")
    frames = smooth_clip(n=3, alpha=True)
    out = write_clip(tmp_path / "p.mov", frames, fps=24.0, bit_depth=16)
    with open_clip(out) as clip:
        assert (clip.info.channels, clip.info.bit_depth) == (4, 16)
        got = np.stack(list(clip))
    assert psnr(got[..., :3], frames[..., :3]) > 35.0
    assert np.abs(got[..., 3] - frames[..., 3]).max() < 0.01


def _gop_video(path: Path, n: int = 40) -> np.ndarray:
    """An H.264 file with short GOPs and B-frames (so seeking matters); returns a plain decode."""
    frames = smooth_clip(n=n, h=32, w=48)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(25), options={"g": "7", "bf": "2", "crf": "20"})
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.rint(frame * 255).astype(np.uint8),
                                                                   format="rgb24")))
        container.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float32) / 255


def test_random_access_equals_sequential_decode(tmp_path):
    path = tmp_path / "gop.mp4"
    reference = _gop_video(path)
    assert len(reference) == 40 and not np.array_equal(reference[3], reference[4])
    with open_clip(path) as clip:
        assert len(clip) == 40
        for i in np.random.default_rng(3).permutation(40):
            np.testing.assert_array_equal(clip[int(i)], reference[i], err_msg=f"frame {i}")
        for i in (39, 0, 38, 1, 20, 21, 5):  # far jumps both ways, cached and not
            np.testing.assert_array_equal(clip[i], reference[i], err_msg=f"frame {i}")
    with open_clip(path, start=9, end=31) as clip:
        assert len(clip) == 22
        np.testing.assert_array_equal(np.stack(list(clip)), reference[9:31])
    clip.close()  # closing twice is harmless


# ---------------------------------------------------------------- ranges and bad input


def test_frame_range_selects_frames(tmp_path):
    frames = smooth_clip(n=10)
    out = write_clip(tmp_path / "r.%02d.png", frames, fps=24.0, bit_depth=16)
    np.testing.assert_array_equal(read_all(out, start=3, end=7), quantized(frames[3:7], 16))
    assert len(read_all(out, start=8)) == 2
    with open_clip(out, start=2, end=4) as clip:
        assert clip.info.frame_count == 2
        with pytest.raises(IndexError):
            clip[2]


@pytest.mark.parametrize("start, end", [(5, 5), (6, 4), (-1, None), (0, 11), (10, None)])
def test_bad_frame_ranges(tmp_path, start, end):
    out = write_clip(tmp_path / "c.mkv", smooth_clip(n=10), fps=24.0, bit_depth=8)
    with pytest.raises(InvalidSettingsError, match="frame range"):
        open_clip(out, start=start, end=end)


def test_unreadable_inputs_are_one_line_video_errors(tmp_path):
    garbage = tmp_path / "x.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no frames here")
    cases = {tmp_path / "nope.mp4": "no such file", tmp_path / "empty": "no image frames",
             tmp_path / "notes": "no image frames", garbage: "x.mp4", tmp_path / "none.%04d.png": "no frames match"}
    for path, message in cases.items():
        with pytest.raises(VideoIOError, match=message) as info:
            open_clip(path)
        assert "\n" not in str(info.value)


def test_truncated_and_mismatched_frames_name_the_file(tmp_path):
    write_clip(tmp_path / "f.%04d.png", smooth_clip(n=4), fps=24.0, bit_depth=8)
    data = (tmp_path / "f.0002.png").read_bytes()
    (tmp_path / "f.0002.png").write_bytes(data[: len(data) // 2])
    cv2.imwrite(str(tmp_path / "f.0003.png"), np.zeros((20, 20, 3), np.uint8))
    with open_clip(tmp_path / "f.%04d.png") as clip:
        assert clip[1].shape == (48, 64, 3)
        with pytest.raises(VideoIOError, match="f.0002.png"):
            clip[2]
        with pytest.raises(VideoIOError, match=r"f.0003.png.*mixed sizes"):
            clip[3]
        with pytest.raises(VideoIOError, match=r"f.0003.png.*mixed sizes"):
            file_pixels(clip, 3)  # what a render reads of a neighbour


def test_mixed_image_types_and_single_image_are_refused(tmp_path):
    write_clip(tmp_path / "a.%02d.png", smooth_clip(n=2), fps=24.0, bit_depth=8)
    cv2.imwrite(str(tmp_path / "b.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(VideoIOError, match="mixes image types"):
        open_clip(tmp_path)
    with pytest.raises(VideoIOError, match="single image"):
        open_clip(tmp_path / "b.jpg")


def test_nan_frames_are_refused_on_read_and_write(tmp_path):
    frames = smooth_clip(n=3)
    frames[1, 5, 5, 0] = np.nan
    with pytest.raises(VideoIOError, match="frame 1 contains NaN"):
        write_clip(tmp_path / "n.mkv", frames, fps=24.0)
    assert not list(tmp_path.iterdir())
    for i, frame in enumerate(frames):  # a float TIFF stores the NaN as is
        cv2.imwrite(str(tmp_path / f"n.{i}.tif"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    with open_clip(tmp_path / "n.%d.tif") as clip:
        clip[0]
        with pytest.raises(VideoIOError, match="frame 1 contains NaN"):
            clip[1]


def test_frame_check_refuses_nan_and_inf_and_accepts_huge_finite_values():
    from deflicker.io.source import ClipInfo, check_frame

    info = ClipInfo(width=64, height=48, channels=3, frame_count=1, fps=24.0, bit_depth=32)
    huge = np.full((48, 64, 3), 3e38, np.float32)  # finite, but its sum overflows to inf
    with np.errstate(over="ignore"):
        assert not np.isfinite(huge.sum())
    assert check_frame(huge, info, 0) is huge
    for bad in (np.inf, -np.inf, np.nan):
        frame = np.zeros((48, 64, 3), np.float32)
        frame[47, 63, 2] = bad
        with pytest.raises(VideoIOError, match="frame 4 contains NaN or infinite"):
            check_frame(frame, info, 4)
        view = np.zeros((48, 80, 3), np.float32)[:, 8:72]  # a host buffer's strided rows
        view[0, 0, 0] = bad
        with pytest.raises(VideoIOError, match="frame 4 contains NaN or infinite"):
            check_frame(view, info, 4, contiguous=False)


# ---------------------------------------------------------------- output safety


def _frames_then_fail(frames: np.ndarray, error: BaseException):
    yield from frames
    raise error


@pytest.mark.parametrize("name", ["out.mkv", "out.mp4", "seq.%04d.png", "folder"])
@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failed_write_keeps_existing_output(tmp_path, name, error):
    target = tmp_path / name
    old = smooth_clip(n=2, seed=7)
    write_clip(target, old, fps=24.0, bit_depth=8)
    before = sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*"))
    with pytest.raises(type(error)):
        write_clip(target, _frames_then_fail(smooth_clip(n=4), error), fps=24.0, bit_depth=8, overwrite=True)
    assert sorted((p.name, p.stat().st_size) for p in tmp_path.rglob("*")) == before
    np.testing.assert_allclose(read_all(target), old, atol=0.2)


def test_failed_first_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        write_clip(tmp_path / "new.mkv", _frames_then_fail(smooth_clip(n=2), RuntimeError("x")), fps=24.0)
    with pytest.raises(VideoIOError, match="no frames"):
        write_clip(tmp_path / "empty.mkv", [], fps=24.0)
    assert not list(tmp_path.iterdir())


def _never():
    raise AssertionError("frames were made before the output was checked")
    yield


def test_unwritable_and_input_outputs_are_refused_before_work(tmp_path):
    source = write_clip(tmp_path / "in.mkv", smooth_clip(n=2), fps=24.0, bit_depth=8)
    size = source.stat().st_size
    with pytest.raises(VideoIOError, match="not a folder"):
        write_clip(tmp_path / "in.mkv" / "sub" / "o.mkv", _never(), fps=24.0)
    with pytest.raises(VideoIOError, match="over the input"):
        write_clip(tmp_path / "." / "in.mkv", _never(), fps=24.0, forbid=[source])
    with pytest.raises(VideoIOError, match="holds the input"):
        check_output_path(tmp_path, [source])
    with pytest.raises(VideoIOError, match="over the input"):
        check_output_path(tmp_path / "s.####.png", [tmp_path / "s.%04d.png"])
    with pytest.raises(VideoIOError, match="into the input folder"):
        check_output_path(tmp_path / "o.%04d.png", [tmp_path])
    assert check_output_path(tmp_path / "o.mkv", [tmp_path]) == tmp_path / "o.mkv"
    assert source.stat().st_size == size


def test_writer_validates_kind_codec_and_frames(tmp_path):
    with pytest.raises(InvalidSettingsError, match="unknown codec"):
        ClipWriter(tmp_path / "a.mkv", fps=24, width=8, height=8, channels=3, bit_depth=8, codec="divx")
    with pytest.raises(VideoIOError, match="pattern"):
        ClipWriter(tmp_path / "a.png", fps=24, width=8, height=8, channels=3, bit_depth=8)
    with pytest.raises(InvalidSettingsError, match="applies to video"):
        ClipWriter(tmp_path / "a.%02d.png", fps=24, width=8, height=8, channels=3, bit_depth=8, codec="ffv1")
    with pytest.raises(VideoIOError, match="shape"):
        with ClipWriter(tmp_path / "a.mkv", fps=24, width=8, height=8, channels=3, bit_depth=8) as writer:
            writer.write(np.zeros((8, 9, 3), np.float32))
    assert not list(tmp_path.iterdir())


def test_output_like_keeps_rate_and_depth(tmp_path):
    source = write_clip(tmp_path / "in.mov", smooth_clip(n=2, alpha=True), fps=30000 / 1001, bit_depth=16)
    with open_clip(source) as clip:
        info = clip.info
    assert output_like(info, tmp_path / "o.mkv") == {"fps": info.fps, "bit_depth": 16}
    assert output_like(info, tmp_path / "o.mp4")["bit_depth"] == 8
    assert output_like(info, tmp_path / "o.%04d.jpg")["bit_depth"] == 8
    out = write_clip(tmp_path / "o.mkv", read_all(source), **output_like(info, tmp_path / "o.mkv"))
    with open_clip(out) as clip:
        assert (clip.info.fps, clip.info.bit_depth, clip.info.channels) == (info.fps, 16, 4)


def test_outputs_get_ordinary_file_permissions(tmp_path):
    from deflicker.io.atomic import replaced_on_success

    umask = os.umask(0o022)
    os.umask(umask)
    target = tmp_path / "report.png"
    with replaced_on_success(target) as tmp:
        tmp.write_bytes(b"png")
    assert target.read_bytes() == b"png"
    assert (target.stat().st_mode & 0o777) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["report.png"]


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under ``folder``: its bytes (files) and mode, by relative path."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
            for p in folder.rglob("*")}


def test_outputs_replace_only_their_own_targets_and_only_with_overwrite(tmp_path):
    folder = tmp_path / "renders"
    (folder / "sub").mkdir(parents=True)
    folder.chmod(0o750)
    (folder / "notes.txt").write_text("keep me")
    (folder / "sub" / "a.txt").write_text("me too")
    for n in (1001, 1002, 1003):
        (folder / f"shot.{n}.png").write_bytes(b"user frame %d" % n)
    movie = write_clip(tmp_path / "movie.mkv", smooth_clip(n=2), fps=24.0)
    before, movie_bytes = _snapshot(folder), movie.read_bytes()
    with pytest.raises(VideoIOError, match=r"renders: it is not empty \(5 entries\); pass --overwrite"):
        write_clip(folder, _never(), fps=24.0, bit_depth=8)
    with pytest.raises(VideoIOError, match=r"replace 2 existing frames \(shot.1002.png to shot.1003.png\)"):
        write_clip(folder / "shot.%04d.png", _never(), fps=24.0, bit_depth=8, numbers=[1002, 1003, 1004])
    with pytest.raises(VideoIOError, match="existing .*movie.mkv; pass --overwrite"):
        write_clip(movie, _never(), fps=24.0)
    assert _snapshot(folder) == before and movie.read_bytes() == movie_bytes

    frames = smooth_clip(n=3)
    write_clip(folder, frames, fps=24.0, bit_depth=8, numbers=[1001, 1002, 1003], overwrite=True)
    write_clip(folder / "shot.%04d.png", frames[:2], fps=24.0, bit_depth=8, numbers=[1003, 1004], overwrite=True)
    write_clip(movie, frames, fps=24.0, overwrite=True)
    after = _snapshot(folder)
    assert {name for name in after if after[name] != before.get(name)} == {
        "frame.001001.png", "frame.001002.png", "frame.001003.png", "shot.1003.png", "shot.1004.png"}
    assert (folder.stat().st_mode & 0o777) == 0o750
    np.testing.assert_array_equal(read_all(folder / "frame.%06d.png"), quantized(frames, 8))
    for number, frame in zip((1003, 1004), frames):
        np.testing.assert_array_equal(to_float(read_image(folder / f"shot.{number}.png")), quantized(frame, 8))
    assert len(read_all(movie)) == 3
    assert not [p for p in tmp_path.rglob(".*")]  # no temp left behind


def test_a_failed_move_into_place_restores_every_old_frame(tmp_path, monkeypatch):
    pattern = tmp_path / "s.%04d.png"
    write_clip(pattern, smooth_clip(n=4, seed=7), fps=24.0, bit_depth=8, numbers=range(1001, 1005))
    (tmp_path / "other.txt").write_text("mine")
    before = _snapshot(tmp_path)
    real_replace, moves = os.replace, []

    def disk_full_on_third_frame(src, dst):
        moves.append(Path(dst).name)
        if moves.count("s.1003.png") == 1 and Path(dst).name == "s.1003.png":
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full_on_third_frame)
    with pytest.raises(VideoIOError, match=r"No space left on device \(nothing was replaced\)"):
        write_clip(pattern, smooth_clip(n=4), fps=24.0, bit_depth=8, numbers=range(1001, 1005), overwrite=True)
    assert _snapshot(tmp_path) == before  # no mix of old and new frames, no temp left


def test_names_with_hash_or_percent_are_literal_where_no_pattern_is_possible(tmp_path):
    frames = smooth_clip(n=2)
    for name in ("Take #3.mkv", "100%done.mkv", "Take #4"):
        out = write_clip(tmp_path / name, frames, fps=24.0, bit_depth=8)
        assert out.name == name and out.exists()
        np.testing.assert_allclose(read_all(out), frames, atol=0.01)
    with pytest.raises(VideoIOError, match="existing"):
        write_clip(tmp_path / "Take #3.mkv", _never(), fps=24.0)


@pytest.mark.parametrize("name, error, message", [
    ("o.xyz", VideoIOError, "unknown output type '.xyz'"),
    ("o.png", VideoIOError, r"needs a frame-number pattern, e.g. o.%04d.png"),
    ("o.%04d.%d.png", VideoIOError, r"2 frame-number fields \(%04d, %d\)"),
    ("Take #3.%04d.png", VideoIOError, "2 frame-number fields"),
    ("100%done.%04d.png", VideoIOError, "2 frame-number fields"),
    ("o.%4x.png", VideoIOError, "%4x is not a frame-number field"),
    ("o.%04d", VideoIOError, "a frame pattern needs an image type"),
    ("o.%04d.png --codec", InvalidSettingsError, "applies to video outputs"),
    ("o.mkv --codec", InvalidSettingsError, "unknown codec 'divx'"),
])
def test_every_output_error_is_found_before_any_frame(tmp_path, name, error, message):
    path, _, flag = name.partition(" --")
    codec = {"codec": "ffv1" if path.endswith(".png") else "divx"} if flag else {}
    with pytest.raises(error, match=message) as info:
        write_clip(tmp_path / path, _never(), fps=24.0, **codec)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_frame_cache_is_bounded_in_bytes_and_keeps_frames_as_stored(tmp_path, monkeypatch):
    from deflicker.io import clip as clip_module

    frames = smooth_clip(8, 16, 24)
    write_clip(tmp_path / "c.mkv", frames, fps=24.0, bit_depth=16)
    frame_bytes = 16 * 24 * 3 * 2  # uint16, as decoded
    monkeypatch.setattr(clip_module, "CACHE_BYTES", 3 * frame_bytes)
    with open_clip(tmp_path / "c.mkv") as clip:
        first = [clip[i] for i in range(len(clip))]
        assert list(clip._cache) == [5, 6, 7]  # the least recently used went first, by bytes
        assert all(p.dtype == np.uint16 for p in clip._cache.values())
        assert clip._cached_bytes == 3 * frame_bytes
        again = clip[6]  # from the cache: the same pixels as decoded, float32, a private copy
        assert again.dtype == np.float32
        np.testing.assert_array_equal(again, first[6])
        np.testing.assert_array_equal(again, quantized(frames[6], 16))
        again[:] = 0
        np.testing.assert_array_equal(clip[6], first[6])
        np.testing.assert_array_equal(clip[0], first[0])  # evicted, decoded again: the same
        assert list(clip._cache) == [7, 6, 0]


def test_threads_asking_for_one_frame_at_once_decode_it_once(tmp_path):
    """Render workers read the same neighbour at the same moment: the second finds the first's
    decoded pixels (kept before their float conversion), not the decoder again (a 4K frame is
    seconds of decoding, and a second decode seeks the decoder back)."""
    import threading

    frames = smooth_clip(6, 16, 24)
    write_clip(tmp_path / "c.mkv", frames, fps=24.0, bit_depth=16)
    with open_clip(tmp_path / "c.mkv") as clip:
        decoded: list[int] = []
        read, barrier = clip._read, threading.Barrier(4)

        def counted(index: int) -> np.ndarray:
            decoded.append(index)
            return read(index)

        clip._read = counted  # type: ignore[method-assign]
        results: dict[int, list[np.ndarray]] = {}

        def reader(k: int) -> None:
            barrier.wait()
            results[k] = [clip[i] for i in (2, 3, 2)]

        threads = [threading.Thread(target=reader, args=(k,)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(decoded) == [2, 3]
    for got in results.values():
        for frame, i in zip(got, (2, 3, 2)):
            np.testing.assert_array_equal(frame, quantized(frames[i], 16))
    assert len({id(frame) for got in results.values() for frame in got}) == 12  # each caller's own copy


@pytest.mark.parametrize("name,bit_depth", [("c.mkv", 16), ("c.mkv", 8), ("seq/f.%04d.exr", 32), ("seq/f.%04d.tif", 32)])
def test_file_pixels_are_the_stored_frame_shared_with_the_cache_and_read_only(tmp_path, name, bit_depth):
    """What a render reads of a neighbour: the pixels as the file stores them (half a float
    frame's bytes at 16 bits), the cache's own array, which no caller can change; float files
    give their float frame. A range of the clip gives its own frames' pixels."""
    from deflicker.io.image_file import exr_available
    from deflicker.io.source import SubSource

    if name.endswith(".exr") and not exr_available():
        pytest.skip("no EXR support")
    frames = smooth_clip(4, 16, 24)
    write_clip(tmp_path / name, frames, fps=24.0, bit_depth=bit_depth)
    with open_clip(tmp_path / name) as clip:
        decoded: list[int] = []
        read = clip._read

        def counted(index: int) -> np.ndarray:
            decoded.append(index)
            return read(index)

        clip._read = counted  # type: ignore[method-assign]
        pixels = file_pixels(clip, 2)
        again = file_pixels(SubSource(clip, 1, 4), 1)
        np.testing.assert_array_equal(to_float(pixels), clip[2])
        np.testing.assert_array_equal(again, pixels)
        assert decoded == [2]  # one decode: both reads and the float frame found it in the cache
        if bit_depth == 32:
            assert pixels.dtype == np.float32 and pixels is not again
            return
        assert pixels.dtype == (np.uint16 if bit_depth == 16 else np.uint8)
        np.testing.assert_array_equal(pixels, np.rint(np.clip(frames[2], 0, 1) * (2 ** bit_depth - 1)))
        with pytest.raises(ValueError):
            pixels[0, 0, 0] = 0
        assert not again.flags.writeable


@pytest.mark.parametrize("name,bit_depth", [("out.mkv", 16), ("out.mkv", 8), ("seq/f.%04d.tif", 16), ("seq/f.%04d.exr", 32)])
def test_prepared_frames_write_what_float_frames_write(tmp_path, name, bit_depth):
    from deflicker.io.image_file import exr_available

    if name.endswith(".exr") and not exr_available():
        pytest.skip("no EXR support")
    frames = smooth_clip(4, alpha=True) * np.float32(1.1) - np.float32(0.05)  # some out of [0, 1]
    outputs = []
    for kind in ("float", "prepared"):
        path = tmp_path / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with ClipWriter(path, fps=24, width=64, height=48, channels=4, bit_depth=bit_depth) as writer:
            for t, frame in enumerate(frames):
                if kind == "float":
                    writer.write(frame)
                else:
                    pixels = writer.prepare(frame, t)
                    assert pixels.dtype == {8: np.uint8, 16: np.uint16, 32: np.float32}[bit_depth]
                    writer.write(pixels, prepared=True)
        with open_clip(path) as clip:
            outputs.append(np.stack(list(clip)))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_prepare_refuses_a_bad_frame_by_its_index(tmp_path):
    frame = smooth_clip(1)[0]
    frame[3, 4, 1] = np.nan
    with ClipWriter(tmp_path / "a.mkv", fps=24, width=64, height=48, channels=3, bit_depth=16) as writer:
        with pytest.raises(VideoIOError, match="frame 7 contains NaN"):
            writer.prepare(frame, 7)
        writer.write(smooth_clip(1)[0])


def test_quantize_keeps_stored_pixels_and_refuses_other_integers():
    from deflicker.io.clip import quantize

    pixels = np.arange(12, dtype=np.uint16).reshape(1, 4, 3)
    assert quantize(pixels, 16) is pixels
    with pytest.raises(VideoIOError, match="uint16"):
        quantize(pixels, 8)
