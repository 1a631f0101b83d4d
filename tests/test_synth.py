"""The synthetic benchmark clips: exact flow and occlusion, flicker kinds, files, CLI."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from deflicker.cli.main import main
from deflicker.errors import InvalidSettingsError
from deflicker.method.image import luminance
from deflicker.bench.metrics import floor, psnr, score
from deflicker.synth.clips import (FAMILIES, clip_names, flicker_free_look, load_clip, make_clip, make_set, parse_name,
                                   save_clip)
from deflicker.synth.film import KINDS as FILM_KINDS
from deflicker.synth.flicker import KINDS, PROCESSING
from deflicker.synth.motion import exact_flow, make_scene, render
from deflicker.method.warp import inside_mask, sample_grid, warp

SMALL = (48, 64)


def _errors(clean: np.ndarray, flow: np.ndarray, t: int, s: int) -> np.ndarray:
    """Per-pixel mean abs error of warping clean frame s onto frame t with f_{t->s}."""
    return np.abs(warp(clean[s], flow) - clean[t]).mean(axis=-1)


def test_exact_flow_warps_clean_frame_onto_the_other_inside_the_mask():
    clip = make_clip("global_w1_astronaut", size=(96, 128), frames=10)
    for t in range(1, 10):
        for flow, valid, s in ((clip.flow_prev[t], clip.valid_prev[t], t - 1), (clip.flow_first[t], clip.valid_first[t], 0)):
            err = _errors(clip.clean, flow, t, s)
            assert valid.mean() > 0.3
            assert err[valid].mean() < 0.012, (t, s)
            outside = ~valid & inside_mask(flow)  # occluded or on the object's edge
            assert err[outside].mean() > 4 * err[valid].mean(), (t, s)


def test_the_object_occludes_the_background():
    rng = np.random.default_rng(3)
    scene = make_scene("coffee", "astronaut", (96, 128), 12, rng)
    layers = [render(scene, t) for t in range(12)]
    clean = np.stack([layer.image for layer in layers])
    for t, s in ((11, 0), (11, 4), (7, 0)):
        flow, valid = exact_flow(scene, layers, t, s)
        # background pixels of t whose point is covered by the object in s
        mx, my = sample_grid(flow)
        covered = cv2.remap(layers[s].coverage, mx, my, cv2.INTER_LINEAR) > 0.99
        hidden = (layers[t].pure_background > 0) & inside_mask(flow) & covered
        assert hidden[10:-10, 10:-10].sum() > 20
        assert not valid[hidden].any()
        assert _errors(clean, flow, t, s)[hidden].mean() > 0.05
        assert _errors(clean, flow, t, s)[valid].mean() < 0.012
    # every stored pair of a clip has invalid pixels away from the borders
    clip = make_clip("local_rocket", size=SMALL, frames=8)
    assert not clip.valid_prev[1:, 8:-8, 8:-8].all(axis=(1, 2)).any()
    assert not clip.valid_first[1:, 8:-8, 8:-8].all(axis=(1, 2)).any()


def test_frame_zero_and_shapes():
    clip = make_clip("mains_chelsea", size=SMALL, frames=5)
    n, (h, w) = 5, SMALL
    assert clip.clean.shape == clip.flickering.shape == (n, h, w, 3)
    assert clip.clean.dtype == clip.flickering.dtype == clip.flow_prev.dtype == np.float32
    assert clip.flow_prev.shape == clip.flow_first.shape == (n, h, w, 2)
    assert clip.valid_prev.shape == clip.valid_first.shape == (n, h, w) and clip.valid_prev.dtype == bool
    assert not clip.valid_prev[0].any() and not clip.flow_prev[0].any() and not clip.flow_first[0].any()
    assert 0.0 <= clip.clean.min() and clip.clean.max() <= 1.0
    assert clip.family == "mains" and clip.target_is_clean and clip.fps == 24.0


def test_reproducible_from_the_seed():
    a = make_clip("timelapse_coffee", size=SMALL, frames=6, seed=5)
    b = make_clip("timelapse_coffee", size=SMALL, frames=6, seed=5)
    c = make_clip("timelapse_coffee", size=SMALL, frames=6, seed=6)
    for field in ("clean", "flickering", "flow_prev", "valid_prev", "flow_first", "valid_first"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert not np.allclose(a.clean, c.clean)
    assert not np.allclose(a.flickering / (a.clean + 0.05), c.flickering / (c.clean + 0.05))


def _structure(frame: np.ndarray) -> np.ndarray:
    y = luminance(frame)
    return y - cv2.GaussianBlur(y, (0, 0), 2.0)


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_kind_flickers_and_keeps_structure(kind):
    clip = make_clip(f"{kind}_chelsea", size=SMALL, frames=6)
    assert clip.family in FAMILIES
    assert clip.target_is_clean == (not kind.startswith("processed"))
    assert np.isfinite(clip.flickering).all() and clip.flickering.min() >= 0 and clip.flickering.max() <= 1
    assert np.abs(clip.flickering - clip.clean).mean() > 0.02
    for clean, flick in zip(clip.clean, clip.flickering):
        a, b = _structure(clean).ravel(), _structure(flick).ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.5  # edges stay where they are


@pytest.mark.parametrize("kind", list(PROCESSING))
def test_flicker_free_look_is_the_processed_look_without_flicker(kind):
    clip = make_clip(f"{kind}_coffee", size=(96, 128), frames=8)
    look = flicker_free_look(clip)
    assert look is not None and look.shape == clip.clean.shape and look.dtype == np.float32
    assert np.array_equal(look, flicker_free_look(clip))  # deterministic
    # the processed look: nearer the processed input than the clean clip is
    assert psnr(look, clip.flickering) > psnr(clip.clean, clip.flickering) + 3.0
    # and consistent: its Ewarp is below the input's
    assert score(look, clip)["ewarp"] < score(clip.flickering, clip)["ewarp"]


def test_flicker_free_look_of_detail_enhancement_sits_far_above_the_clean_floor():
    clip = make_clip("processed_detail_motorcycle", size=(96, 128), frames=8)
    look = flicker_free_look(clip)
    assert look is not None
    assert score(look, clip)["ewarp"] > 1.8 * floor(clip)  # amplified detail: larger warp interpolation error
    assert flicker_free_look(make_clip("global_w1_motorcycle", size=(48, 64), frames=3)) is None


def test_names_and_set():
    names = clip_names()
    assert names[-1] == "long_global_coffee" and len(names) == len(set(names)) == 23
    assert clip_names(long_frames=0) == names[:-1]
    families = {make_clip(n, size=(16, 16), frames=2).family for n in names}
    assert families == set(FAMILIES)
    assert len({parse_name(n)[1] for n in names}) >= 5  # photos vary
    clips = list(make_set(size=SMALL, frames=3, long_frames=7, names=["global_w3_rocket", "long_global_chelsea"]))
    assert [len(c.clean) for c in clips] == [3, 7]
    with pytest.raises(InvalidSettingsError):
        make_clip("global_w2_astronaut")
    with pytest.raises(InvalidSettingsError):
        make_clip("local_astronaut", size=(8, 64))


def test_fades_keep_their_ramp_in_the_truth():
    (clip,) = make_set(size=SMALL, frames=6, names=["fade_black_w3_chelsea"])
    assert len(clip.clean) == 72  # never shorter than its 60-frame ramp
    level = clip.clean.mean(axis=(1, 2, 3))
    assert np.all(np.diff(level[6:67:6]) < 0) and level[0] > 0.2 and level[-1] == 0.0  # the fade to black is truth
    assert not np.allclose(clip.flickering[:6].mean(axis=(1, 2, 3)), level[:6], atol=0.01)  # flicker on top
    sunrise = make_clip("fade_sunrise_w1_motorcycle", size=SMALL, frames=72).clean.mean(axis=(1, 2, 3))
    assert sunrise[-1] > 2 * sunrise[0]


def test_repeated_frames_are_exact_in_the_truth_and_lossy_in_the_input():
    clip = make_clip("repeat_pulldown_chelsea", size=SMALL, frames=10)
    groups = [(0, 1), (2, 3, 4), (5, 6), (7, 8, 9)]  # 2:3 pulldown
    for group in groups:
        for t in group[1:]:
            assert np.array_equal(clip.clean[t], clip.clean[group[0]])
            assert np.abs(clip.flow_prev[t]).max() < 1e-6 and clip.valid_prev[t].mean() > 0.8  # the same film frame
    repeats = [np.abs(clip.flickering[t] - clip.flickering[g[0]]).max() for g in groups for t in g[1:]]
    distinct = [np.abs(clip.flickering[g[0]] - clip.flickering[g[0] - 1]).mean() for g in groups[1:]]
    assert max(repeats) > 0 and max(repeats) < 0.2 and min(distinct) > 0.01  # libx264: near-identical, not exact
    assert not np.array_equal(clip.clean[1], clip.clean[2])


def test_save_load_round_trip(tmp_path):
    clip = make_clip("processed_clahe_astronaut", size=SMALL, frames=6, seed=2)
    path = save_clip(clip, tmp_path)
    assert path == tmp_path / clip.name
    assert sorted(p.name for p in path.iterdir()) == ["clean.mkv", "flickering.mkv", "meta.json", "truth.npz"]
    back = load_clip(path)
    assert (back.name, back.family, back.target_is_clean, back.fps, back.seed) == (
        clip.name, "processed", False, 24.0, 2)
    for field in ("clean", "flickering"):
        assert np.abs(getattr(back, field) - getattr(clip, field)).max() <= 1.0 / 65535 + 1e-6
    for field in ("flow_prev", "flow_first"):
        assert getattr(back, field).dtype == np.float32
        assert np.abs(getattr(back, field) - getattr(clip, field)).max() < 0.02
    assert np.array_equal(back.valid_prev, clip.valid_prev) and np.array_equal(back.valid_first, clip.valid_first)
    meta = json.loads((path / "meta.json").read_text())
    assert meta["frames"] == 6 and meta["input_ewarp"] > meta["floor_ewarp"] > 0
    save_clip(make_clip("processed_clahe_astronaut", size=SMALL, frames=4), tmp_path)  # replaces it
    assert len(load_clip(path).clean) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [clip.name]  # no temp folders left


def test_cli_writes_the_set(tmp_path, capsys):
    out = tmp_path / "set"
    assert main(["synth", str(out), "--frames", "6", "--size", "64x48", "--long-frames", "20"]) == 0
    names = clip_names()
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    long_meta = json.loads((out / "long_global_coffee" / "meta.json").read_text())
    assert (long_meta["frames"], long_meta["width"], long_meta["height"]) == (20, 64, 48)
    clip = load_clip(out / "global_w1_astronaut")
    assert clip.clean.shape == (6, 48, 64, 3)
    assert f"wrote {len(names)} clips" in capsys.readouterr().out
    assert main(["synth", str(out), "--frames", "3", "--size", "32x32", "--only", "local_chelsea"]) == 0
    assert json.loads((out / "local_chelsea" / "meta.json").read_text())["frames"] == 3


@pytest.mark.parametrize("args, code", [
    (["--size", "big"], 2), (["--size", "8x8"], 2), (["--frames", "1"], 2), (["--long-frames", "1"], 2), (["--seed", "-1"], 2),
    (["--only", "global_w1_nosuchphoto"], 2), (["--only", "long_global_coffee", "--long-frames", "0"], 2),
])
def test_cli_bad_arguments(tmp_path, capsys, args, code):
    assert main(["synth", str(tmp_path / "out"), *args]) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith("deflicker: error:") and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_cli_unwritable_output(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["synth", str(blocker / "out"), "--frames", "2", "--only", "local_chelsea"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.startswith("deflicker: error:") and "\n" not in err
    assert main(["synth", str(blocker), "--frames", "2", "--only", "local_chelsea"]) == 3


@pytest.mark.parametrize("kind", list(FILM_KINDS))
def test_film_kinds_are_deterministic_with_an_exact_static_region(kind):
    clip = make_clip(f"{kind}_coffee", size=(48, 64), frames=6, seed=3)
    again = make_clip(f"{kind}_coffee", size=(48, 64), frames=6, seed=3)
    for field in ("clean", "flickering", "flow_prev", "valid_prev", "flow_first", "valid_first", "static"):
        assert np.array_equal(getattr(clip, field), getattr(again, field)), field
    assert not np.array_equal(make_clip(f"{kind}_coffee", size=(48, 64), frames=6, seed=4).flickering, clip.flickering)
    region = clip.static
    assert region is not None and 0.02 < region.mean() < 0.6
    value = clip.flickering[0][region][0, 0]
    assert value in (0.0, 1.0)
    for frames in (clip.clean, clip.flickering):  # the same exact value in every frame, clean and input
        assert np.array_equal(frames[:, region], np.full_like(frames[:, region], value))
    assert np.abs(clip.flickering - clip.clean)[:, ~region].mean() > 0.02  # the picture flickers
    # static pixels are valid with zero flow; the picture's truth still holds (floor far below the input)
    assert clip.valid_first[1:, region].all() and (clip.flow_first[:, region] == 0).all()
    assert floor(clip) < 0.5 * score(clip.flickering, clip)["ewarp"]


def test_old_film_has_weave_grain_dust_and_vignetting():
    clip = make_clip("oldfilm_chelsea", size=(96, 128), frames=8)
    plain = make_clip("global_w1_chelsea", size=(96, 128), frames=8)
    # gate weave: the picture moves by a few tenths of a pixel more from frame to frame than the plain camera
    weave = np.abs(clip.flow_prev[1:] - plain.flow_prev[1:])[clip.valid_prev[1:]].mean()
    assert 0.2 < weave < 3.0
    picture = ~clip.static
    # vignetting: the picture's corners darker than its centre, relative to the same scene without it
    ratio = clip.clean.mean(axis=(0, 3)) / np.maximum(plain.clean.mean(axis=(0, 3)), 1e-3)
    assert ratio[40:56, 56:72].mean() > ratio[8:16, 10:20].mean() + 0.1
    # grain: fine detail differs between frames where the scene does not (the clean frames carry it too)
    hp = [(f - cv2.GaussianBlur(f, (0, 0), 1.0))[picture] for f in clip.clean[:2]]
    assert np.std(hp[0]) > 0.01 and abs(np.corrcoef(hp[0].ravel(), hp[1].ravel())[0, 1]) < 0.5
    # dust: per-frame specks, occluded in the truth, differ between frames
    specks = [~clip.valid_first[t] & picture for t in range(1, 8)]
    assert all(s.any() for s in specks) and not np.array_equal(specks[0], specks[1])


def test_static_region_survives_save_and_load(tmp_path):
    clip = make_clip("gate_letterbox_rocket", size=SMALL, frames=3)
    back = load_clip(save_clip(clip, tmp_path))
    assert back.static is not None and np.array_equal(back.static, clip.static)
    assert load_clip(save_clip(make_clip("local_rocket", size=SMALL, frames=3), tmp_path)).static is None
