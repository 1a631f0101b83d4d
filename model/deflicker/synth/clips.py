"""The synthetic benchmark: flickering clips with their clean originals and exact truth.

Each clip is a scikit-image photo seen by a moving camera with a textured object moving in
front of it (:mod:`deflicker.synth.motion`), so the flow between any two frames and the
occlusion mask are exact; one flicker kind is applied to it (:mod:`deflicker.synth.flicker`).
Film kinds (:mod:`deflicker.synth.film`) add what does not move with the picture: letterbox and
pillarbox bars, black and white static regions, and old film (gate weave, grain, dust,
vignetting, a static gate); their clips carry the static region's pixels in ``static``.
A clip is named ``<kind>_<photo>``, e.g. ``global_w1_astronaut``, ``processed_clahe_chelsea``,
``long_global_coffee``, ``oldfilm_chelsea``, and is reproducible from its name, size, length and seed.

``deflicker synth OUT_DIR`` writes the standard set: ``OUT_DIR/<name>/`` holds
``flickering.mkv`` and ``clean.mkv`` (16-bit FFV1), ``truth.npz`` (flows float16, masks) and
``meta.json``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from deflicker.errors import InvalidSettingsError, VideoIOError
from deflicker.settings import parse_size
from deflicker.synth import content_change as synth_time
from deflicker.synth.film import KINDS as FILM_KINDS, finish as finish_film, weave
from deflicker.synth.flicker import KINDS as FLICKER_KINDS, PROCESSING
from deflicker.synth.motion import PHOTOS, Scene, exact_flow, make_scene, render

log = logging.getLogger(__name__)

FAMILIES = ("global", "local", "mains", "timelapse", "processed", "long", "gate", "static", "oldfilm", "fade", "repeat")
KINDS = {**FLICKER_KINDS, **synth_time.KINDS}
FORMAT_VERSION = 1
#: the standard set (without the long clip), photos varied between clips
STANDARD = ("global_w1_astronaut", "global_w3_chelsea", "global_w10_coffee", "local_rocket", "mains_motorcycle",
            "timelapse_astronaut", "processed_autolevels_chelsea", "processed_greyworld_coffee",
            "processed_clahe_rocket", "processed_detail_motorcycle",
            "gate_letterbox_astronaut", "gate_pillarbox_chelsea", "static_black_coffee", "static_white_rocket",
            "oldfilm_motorcycle", "oldfilm_chelsea",
            "fade_dusk_w1_coffee", "fade_dusk_w3_rocket", "fade_black_w3_chelsea", "fade_sunrise_w1_motorcycle",
            "repeat_x2_astronaut", "repeat_pulldown_chelsea")
LONG = "long_global_coffee"
MIN_SIDE = 16


@dataclass
class SynthClip:
    """A synthetic clip with its clean original and exact truth (flows f_{t->s}, masks)."""

    name: str  # e.g. "global_w1_astronaut"
    family: str  # one of FAMILIES
    clean: np.ndarray  # (N, H, W, 3) float32 in [0, 1]
    flickering: np.ndarray  # (N, H, W, 3) float32 in [0, 1]: what a deflicker method receives
    flow_prev: np.ndarray  # (N, H, W, 2) float32 exact f_{t->t-1} (frame 0: zeros)
    valid_prev: np.ndarray  # (N, H, W) bool mask of (t, t-1) (frame 0: False)
    flow_first: np.ndarray  # (N, H, W, 2) float32 exact f_{t->0}
    valid_first: np.ndarray  # (N, H, W) bool mask of (t, 0)
    target_is_clean: bool  # False for "processed": the processed look is the target there
    fps: float = 24.0
    seed: int = 0
    static: Optional[np.ndarray] = None  # (H, W) bool: pixels of a static region (synth_film), None: none


def parse_name(name: str) -> tuple[str, str]:
    """(kind, photo) of a clip name ``<kind>_<photo>``; InvalidSettingsError when unknown."""
    kind, _, photo = name.rpartition("_")
    if (kind not in KINDS and kind not in FILM_KINDS) or photo not in PHOTOS:
        raise InvalidSettingsError(f"unknown synthetic clip {name!r}: names are <kind>_<photo> with kind in "
                                   f"{', '.join([*KINDS, *FILM_KINDS])} and photo in {', '.join(PHOTOS)}")
    return kind, photo


def family_of(kind: str) -> str:
    """The family (one of FAMILIES) of a flicker kind."""
    family = kind.split("_")[0]
    assert family in FAMILIES, kind
    return family


def clip_names(*, long_frames: int = 600) -> list[str]:
    """The standard set's names, in order; the long clip is last, left out when long_frames is 0."""
    return list(STANDARD) + ([LONG] if long_frames > 0 else [])


def _check_shape(size: Sequence[int], frames: int) -> tuple[int, int]:
    if len(size) != 2 or min(size) < MIN_SIDE:
        raise InvalidSettingsError(f"clip size must be (H, W) with both at least {MIN_SIDE}, not {tuple(size)}")
    if frames < 2:
        raise InvalidSettingsError(f"a synthetic clip needs at least 2 frames, not {frames}")
    return int(size[0]), int(size[1])


def _name_key(name: str) -> int:
    """The clip name's part of its random seeds (the same clip name, the same draws)."""
    return zlib.crc32(name.encode())


def make_scene_for(name: str, *, size: Sequence[int] = (96, 128), frames: int = 24, seed: int = 0) -> Scene:
    """The scene (camera and object motion, textures) that clip ``name`` is rendered from."""
    kind, photo = parse_name(name)
    h, w = _check_shape(size, frames)
    if seed < 0:
        raise InvalidSettingsError(f"the seed must be >= 0, not {seed}")
    object_photo = PHOTOS[(PHOTOS.index(photo) + 2) % len(PHOTOS)]
    return make_scene(photo, object_photo, (h, w), frames, np.random.default_rng([seed, _name_key(name), 0]))


def make_clip(name: str, *, size: Sequence[int] = (96, 128), frames: int = 24, seed: int = 0) -> SynthClip:
    """Render clip ``name`` at ``size`` = (H, W) with ``frames`` frames; same arguments, same clip."""
    kind, _ = parse_name(name)
    film = FILM_KINDS.get(kind)
    film_rng = np.random.default_rng([seed, _name_key(name), 2])
    scene = synth_time.film_scene(kind, make_scene_for(name, size=size, frames=frames, seed=seed))
    if film is not None:
        scene = weave(scene, film, film_rng)
    h, w = scene.size
    layers = [render(scene, t) for t in range(frames)]
    clean = synth_time.truth(kind, np.stack([layer.image for layer in layers]))
    flow_prev = np.zeros((frames, h, w, 2), np.float32)
    valid_prev = np.zeros((frames, h, w), bool)
    flow_first = np.zeros((frames, h, w, 2), np.float32)
    valid_first = np.zeros((frames, h, w), bool)
    for t in range(frames):
        flow_first[t], valid_first[t] = exact_flow(scene, layers, t, 0)
        if t > 0:
            flow_prev[t], valid_prev[t] = exact_flow(scene, layers, t, t - 1)
    flickering = KINDS[film.flicker if film else kind](clean, np.random.default_rng([seed, _name_key(name), 1]))
    family = family_of(kind)
    clip = SynthClip(name=name, family=family, clean=clean, flickering=flickering.astype(np.float32),
                     flow_prev=flow_prev, valid_prev=valid_prev, flow_first=flow_first, valid_first=valid_first,
                     target_is_clean=family != "processed", seed=seed)
    return clip if film is None else finish_film(clip, film, film_rng)


def flicker_free_look(clip: SynthClip) -> Optional[np.ndarray]:
    """The processed look of a processed clip without its flicker, (N, H, W, 3) float32; None
    for the other families (their flicker-free look is ``clip.clean``).

    The clip's image operation runs once on the scene's photo and once on its object texture,
    and the frames are rendered from those with the clip's own motion (the camera maps about
    one photo pixel to one frame pixel, so the operation sees detail at the frames' scale). Its
    Ewarp is the floor of that look: an operation that amplifies fine detail (detail
    enhancement) raises the interpolation error of every warp, flicker or not.
    """
    kind, _ = parse_name(clip.name)
    op = PROCESSING.get(kind)
    if op is None:
        return None
    n, h, w = clip.clean.shape[:3]
    scene = make_scene_for(clip.name, size=(h, w), frames=n, seed=clip.seed)
    scene = replace(scene, background=op(scene.background), texture=op(scene.texture))
    return np.stack([render(scene, t).image for t in range(n)])


def make_set(*, size: Sequence[int] = (96, 128), frames: int = 24, seed: int = 0, long_frames: int = 600,
             names: Optional[Sequence[str]] = None) -> Iterator[SynthClip]:
    """Render the clips one by one (the standard set unless ``names``); long clips get ``long_frames``."""
    chosen = list(names) if names is not None else clip_names(long_frames=long_frames)
    for name in chosen:
        parse_name(name)
    for name in chosen:
        kind = parse_name(name)[0]
        n = long_frames if family_of(kind) == "long" else synth_time.clip_frames(kind, frames)
        yield make_clip(name, size=size, frames=n, seed=seed)


def save_clip(clip: SynthClip, out_dir: Path) -> Path:
    """Write ``out_dir/<name>/`` (flickering.mkv, clean.mkv, truth.npz, meta.json) atomically."""
    from deflicker.io.files import write_clip
    from deflicker.io.atomic import check_output_path, temp_dir_for
    from deflicker.bench.metrics import ewarp, floor

    final = check_output_path(Path(out_dir) / clip.name)
    tmp = temp_dir_for(final)
    try:
        for part in ("flickering", "clean"):
            write_clip(tmp / f"{part}.mkv", getattr(clip, part), fps=clip.fps, bit_depth=16, codec="ffv1")
        truth: dict[str, np.ndarray] = {"flow_prev": clip.flow_prev.astype(np.float16), "valid_prev": clip.valid_prev,
                                        "flow_first": clip.flow_first.astype(np.float16),
                                        "valid_first": clip.valid_first}
        if clip.static is not None:
            truth["static"] = clip.static
        np.savez_compressed(tmp / "truth.npz", allow_pickle=False, **truth)
        n, h, w = clip.clean.shape[:3]
        meta = {"format_version": FORMAT_VERSION, "name": clip.name, "family": clip.family, "frames": n,
                "height": h, "width": w, "fps": clip.fps, "seed": clip.seed, "target_is_clean": clip.target_is_clean,
                "input_ewarp": ewarp(clip.flickering, clip.flow_prev, clip.valid_prev, clip.flow_first,
                                     clip.valid_first),
                "floor_ewarp": floor(clip)}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        _replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _replace_dir(new: Path, final: Path) -> None:
    """Move folder ``new`` to ``final``, replacing an existing one (the old one removed after)."""
    old = None
    try:
        if final.exists():
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
        os.replace(new, final)
    except OSError as exc:
        raise VideoIOError(f"cannot write {final}: {exc.strerror or exc}") from None
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _read_frames(path: Path) -> np.ndarray:
    from deflicker.io.files import open_clip

    with open_clip(path) as clip:
        return np.stack([frame[..., :3] for frame in clip]).astype(np.float32)


def load_clip(path: Path) -> SynthClip:
    """Read a clip written by :func:`save_clip` (frames 16-bit quantized, flows float16-rounded)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text())
        truth = np.load(path / "truth.npz")
    except (OSError, ValueError) as exc:
        raise VideoIOError(f"{path} is not a synthetic clip: {exc}") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise VideoIOError(f"{path}: synthetic clip format {meta.get('format_version')} is not {FORMAT_VERSION}")
    with truth:
        arrays = {key: truth[key] for key in ("flow_prev", "valid_prev", "flow_first", "valid_first", "static")
                  if key in truth}
    return SynthClip(name=meta["name"], family=meta["family"], clean=_read_frames(path / "clean.mkv"),
                     flickering=_read_frames(path / "flickering.mkv"),
                     flow_prev=arrays["flow_prev"].astype(np.float32), valid_prev=arrays["valid_prev"].astype(bool),
                     flow_first=arrays["flow_first"].astype(np.float32),
                     valid_first=arrays["valid_first"].astype(bool), target_is_clean=bool(meta["target_is_clean"]),
                     fps=float(meta["fps"]), seed=int(meta["seed"]),
                     static=arrays["static"].astype(bool) if "static" in arrays else None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``deflicker synth``."""
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the clips into (one sub-folder each)")
    parser.add_argument("--size", default="128x96", metavar="WxH", help="frame size (default: %(default)s)")
    parser.add_argument("--frames", type=int, default=24, help="frames per clip (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument("--long-frames", type=int, default=600,
                        help="frames of the long clip, 0 to skip it (default: %(default)s)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help=f"render only these clips (<kind>_<photo>; standard: {', '.join(clip_names())})")


def run_command(args: argparse.Namespace) -> int:
    """Render and write the clips with a progress bar; print one line per clip."""
    from tqdm import tqdm

    from deflicker.io.atomic import check_output_path

    size = parse_size(args.size, minimum=MIN_SIDE, named=False)
    if args.seed < 0:
        raise InvalidSettingsError(f"--seed must be >= 0, not {args.seed}")
    if args.frames < 2:
        raise InvalidSettingsError(f"--frames must be at least 2, not {args.frames}")
    if args.long_frames != 0 and args.long_frames < 2:
        raise InvalidSettingsError(f"--long-frames must be 0 or at least 2, not {args.long_frames}")
    names = args.only if args.only else clip_names(long_frames=args.long_frames)
    for name in names:
        if family_of(parse_name(name)[0]) == "long" and args.long_frames == 0:
            raise InvalidSettingsError(f"{name} is a long clip; --long-frames 0 skips it")
    out = check_output_path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise VideoIOError(f"cannot write {out}: it is not a folder")
    clips = make_set(size=size, frames=args.frames, seed=args.seed, long_frames=args.long_frames, names=names)
    for clip in tqdm(clips, total=len(names), desc="synth", unit="clip", leave=False):
        path = save_clip(clip, out)
        meta = json.loads((path / "meta.json").read_text())
        print(f"{clip.name:32s} {len(clip.clean):4d} frames  input Ewarp {meta['input_ewarp']:.4f}  "
              f"floor {meta['floor_ewarp']:.4f}")
    print(f"wrote {len(names)} clips to {out}")
    return 0
