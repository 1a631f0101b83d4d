"""Synthetic clips whose content changes over time, for issue 13's families.

* **fade**: the clean clip itself fades (a dusk ramp, a fade to black, a sunrise), so the
  truth keeps the ramp; the paper protocol's global flicker (W = 1 or 3) sits on top.
  Kinds ``fade_<ramp>_w<W>``; clips are at least :data:`FADE_MIN_FRAMES` long (a 60-frame ramp
  between short holds).
* **repeat**: a film transfer at a higher frame rate repeats film frames (every frame twice,
  or 2:3 pulldown); the flicker belongs to the film frame, and the clip is then coded with
  libx264 (lossy, crf :data:`REPEAT_CRF`) so the repeats are near-identical, not bit-identical.
  The clean clip keeps its repeats exact. Kinds ``repeat_x2``, ``repeat_pulldown``.
"""
from __future__ import annotations

import io
from dataclasses import replace
from typing import Callable

import numpy as np

from deflicker.synth.flicker import Flicker, global_flicker
from deflicker.synth.motion import Scene

#: Frames of a fade ramp, and the shortest fade clip (the ramp plus holds before and after).
FADE_RAMP_FRAMES = 60
FADE_MIN_FRAMES = 72
#: x264 constant rate factor of the repeated-frame clips (visually transparent, lossy).
REPEAT_CRF = 20

#: ramp name -> brightness and colour gain (3,) over the ramp's progress u in [0, 1]
RAMPS: dict[str, Callable[[float], np.ndarray]] = {
    # dusk: light falls to a third and turns warm (blue goes first)
    "dusk": lambda u: (1.0 - 0.62 * u) * np.array([1.0, 1.0 - 0.08 * u, 1.0 - 0.2 * u]),
    "black": lambda u: np.full(3, 1.0 - u),  # fade to black
    "sunrise": lambda u: (0.3 + 0.7 * u) * np.array([1.0, 0.92 + 0.08 * u, 0.8 + 0.2 * u]),
}
#: repeat pattern -> how many video frames each film frame lasts, cycled
PATTERNS: dict[str, tuple[int, ...]] = {"x2": (2,), "pulldown": (2, 3)}

FADE_KINDS = tuple(f"fade_{ramp}_w{w}" for ramp, w in (("dusk", 1), ("dusk", 3), ("black", 3), ("sunrise", 1)))
REPEAT_KINDS = tuple(f"repeat_{pattern}" for pattern in PATTERNS)


def clip_frames(kind: str, frames: int) -> int:
    """Frames of a clip of ``kind`` asked for with ``frames`` (fades are never shorter than their ramp)."""
    return max(frames, FADE_MIN_FRAMES) if kind in FADE_KINDS else frames


def ramp_gains(ramp: str, n: int) -> np.ndarray:
    """(n, 3) per-frame colour gains of a ramp of FADE_RAMP_FRAMES frames centred in n frames."""
    start = max(0, (n - FADE_RAMP_FRAMES) // 2)
    u = np.clip((np.arange(n) - start) / max(1, min(n, FADE_RAMP_FRAMES) - 1), 0.0, 1.0)
    return np.stack([RAMPS[ramp](float(v)) for v in u]).astype(np.float32)


def film_frames(pattern: str, n: int) -> np.ndarray:
    """(n,) index of the video frame that first shows each video frame's film frame."""
    first = np.empty(n, np.int64)
    t, k = 0, 0
    lengths = PATTERNS[pattern]
    while t < n:
        first[t:t + lengths[k % len(lengths)]] = t
        t += lengths[k % len(lengths)]
        k += 1
    return first


def faded(kind: str, clean: np.ndarray) -> np.ndarray:
    """The clean clip of a fade kind: the frames times the ramp's gains, (N, H, W, 3) float32."""
    ramp = kind.split("_")[1]
    out: np.ndarray = np.clip(clean * ramp_gains(ramp, len(clean))[:, None, None, :], 0.0, 1.0)
    return out.astype(np.float32)


def fade_flicker(kind: str) -> Flicker:
    """The flicker of a fade kind: the paper's global flicker with its window W."""
    window = int(kind.rsplit("_w", 1)[1])
    return lambda clean, rng: global_flicker(clean, rng, window)


def repeat_flicker(kind: str, fps: float) -> Flicker:
    """The flicker of a repeat kind: one global gain per film frame (W = 1 on the film), then
    the whole clip coded with libx264 and decoded."""
    first = film_frames(kind.split("_", 1)[1], 1 << 16)

    def apply(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        own = first[:len(clean)]
        starts = np.unique(own)
        flickered = global_flicker(clean[starts], rng, 1)
        return lossy_h264(flickered[np.searchsorted(starts, own)], fps)

    return apply


def lossy_h264(frames: np.ndarray, fps: float, crf: int = REPEAT_CRF) -> np.ndarray:
    """``frames`` (N, H, W, 3) float in [0, 1] coded with libx264 (8-bit yuv420p, crf) in
    memory and decoded again, float32."""
    import av

    from deflicker.io.encode import frame_rate

    n, h, w = frames.shape[:3]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as out:
        stream = out.add_stream("libx264", rate=frame_rate(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            rgb8 = np.clip(np.rint(frame * 255.0), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb8, format="rgb24")))
        out.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, "r") as src:
        decoded = [f.to_ndarray(format="rgb24") for f in src.decode(video=0)]
    if len(decoded) != n:
        raise RuntimeError(f"libx264 round trip gave {len(decoded)} frames, expected {n}")
    return np.stack(decoded).astype(np.float32) / np.float32(255.0)


def film_scene(kind: str, scene: Scene) -> Scene:
    """The scene of a repeat kind seen by the transfer: video frame t shows the film frame
    (the scene's frame) that its repeat started at; other kinds' scenes unchanged."""
    if kind not in REPEAT_KINDS:
        return scene
    first = film_frames(kind.split("_", 1)[1], len(scene))
    return replace(scene, camera=scene.camera[first], motion=scene.motion[first])


def truth(kind: str, clean: np.ndarray) -> np.ndarray:
    """The clean clip of ``kind``: faded for fade kinds, ``clean`` itself otherwise."""
    return faded(kind, clean) if kind in FADE_KINDS else clean


#: flicker kind -> function, for :data:`deflicker.synth.clips.KINDS` (synthetic clips are 24 fps)
KINDS: dict[str, Flicker] = {**{kind: fade_flicker(kind) for kind in FADE_KINDS},
                             **{kind: repeat_flicker(kind, 24.0) for kind in REPEAT_KINDS}}
