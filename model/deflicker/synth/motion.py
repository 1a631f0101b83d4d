"""Synthetic scenes with exact motion: a photo seen by a moving camera, and a textured object
moving on its own path in front of it.

Every frame is rendered by inverse mapping (``cv2.remap``): frame pixel ``x`` shows the photo
at ``C_t x`` and the object's texture at ``O_t x`` (3x3 homogeneous similarity transforms).
The flow between any two frames is therefore known exactly: ``C_s^-1 C_t x - x`` on the
background and ``O_s^-1 O_t x - x`` on the object. A pixel of t is valid in the pair (t, s)
when it and its neighbours are purely background (or purely object) in t, the point it maps to
is purely the same layer in s (not occluded, not on the object's antialiased edge) and lies
inside frame s. Photos are pre-filtered to about one photo pixel per frame pixel, so frames are
not aliased and warping one with the exact flow reproduces another to interpolation accuracy.
Conventions for flows follow :mod:`deflicker.method.warp`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

#: scikit-image photographs a scene can be built from (name -> loader in ``skimage.data``).
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle")

_VIEW_MARGIN = 1.5  # the prepared photo is this many times the frame size (room to pan)
_PURE = 1e-3  # coverage tolerance of "purely object" / "purely background"


@functools.lru_cache(maxsize=8)
def load_photo(name: str) -> np.ndarray:
    """A scikit-image photo as (H, W, 3) float32 in [0, 1] (cached; do not modify)."""
    from skimage import data

    if name not in PHOTOS:
        raise KeyError(name)
    image = data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(data, name)()
    out = image[..., :3].astype(np.float32) / 255.0
    out.setflags(write=False)
    return out


def _prefilter(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize by ``scale`` (area filter) and blur slightly: band-limited at the frame's pixel pitch."""
    h, w = image.shape[:2]
    size = (max(2, int(round(w * scale))), max(2, int(round(h * scale))))
    out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(out, (0, 0), 0.6)


def _similarity(center_to: np.ndarray, center_from: np.ndarray, scale: float, angle: float) -> np.ndarray:
    """3x3 map x -> center_to + scale * R(angle) (x - center_from)."""
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    m = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    m[:2, 2] = center_to - m[:2, :2] @ center_from
    return m


def _wave(rng: np.random.Generator, t: np.ndarray, amplitude: float, periods: tuple[float, float]) -> np.ndarray:
    """Smooth bounded path: two incommensurate sines with random periods and phases, |value| <= amplitude."""
    p1, p2 = rng.uniform(*periods, size=2) * np.array([1.0, 1.7])
    f1, f2 = rng.uniform(0, 2 * np.pi, size=2)
    return amplitude * (0.7 * np.sin(2 * np.pi * t / p1 + f1) + 0.3 * np.sin(2 * np.pi * t / p2 + f2))


@dataclass
class Scene:
    """A rendered-on-demand scene: prepared photo and object, and per-frame transforms."""

    background: np.ndarray  # (Hp, Wp, 3) float32, prefiltered photo
    texture: np.ndarray  # (ho, wo, 3) float32, prefiltered object texture
    alpha: np.ndarray  # (ho, wo) float32 in [0, 1], antialiased object shape
    size: tuple[int, int]  # (H, W) of the frames
    camera: np.ndarray  # (N, 3, 3) frame pixel -> photo pixel
    motion: np.ndarray  # (N, 3, 3) frame pixel -> texture pixel

    def __len__(self) -> int:
        return len(self.camera)


def _object_texture(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An elliptical patch cut from ``photo`` at frame pixel pitch: (texture, alpha)."""
    h, w = size
    oh, ow = max(8, int(round(0.42 * h))), max(8, int(round(0.30 * w)))
    small = _prefilter(photo, max(oh / photo.shape[0], ow / photo.shape[1]) * 2.0)
    grey = small.mean(axis=-1)
    detail = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1]
    best, texture = -1.0, small[:oh, :ow]
    for _ in range(8):  # the most detailed of a few random crops (a flat patch hides the motion)
        y0 = int(rng.integers(0, small.shape[0] - oh + 1))
        x0 = int(rng.integers(0, small.shape[1] - ow + 1))
        energy = float(detail[y0:y0 + oh - 1, x0:x0 + ow - 1].mean())
        if energy > best:
            best, texture = energy, small[y0:y0 + oh, x0:x0 + ow]
    texture = np.ascontiguousarray(texture)
    yy, xx = np.mgrid[0:oh, 0:ow].astype(np.float32)
    a, b = (ow - 1) / 2.0, (oh - 1) / 2.0
    r = np.sqrt(((xx - a) / a) ** 2 + ((yy - b) / b) ** 2)
    alpha = np.clip((1.0 - r) * min(a, b) + 0.5, 0.0, 1.0).astype(np.float32)  # ~1 px soft edge
    return texture, alpha


def make_scene(photo: str, object_photo: str, size: tuple[int, int], frames: int, rng: np.random.Generator) -> Scene:
    """A scene of ``frames`` frames of ``size`` = (H, W): camera pan, zoom and slight rotation over
    ``photo``, and a patch of ``object_photo`` moving, turning and scaling on its own path."""
    h, w = size
    src = load_photo(photo)
    background = _prefilter(src, _VIEW_MARGIN * max(h / src.shape[0], w / src.shape[1]))
    texture, alpha = _object_texture(load_photo(object_photo), size, rng)
    t = np.arange(frames, dtype=np.float64)
    frame_center = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    # camera: zoom in [0.9, 1.1] photo px per frame px, rotation <= ~2.5 degrees, pan within the photo
    zoom = 1.0 + _wave(rng, t, 0.1, (50.0, 90.0))
    angle = _wave(rng, t, 0.045, (60.0, 110.0))
    ph, pw = background.shape[:2]
    reach = 1.1 * np.array([w + 0.05 * h, h + 0.05 * w])  # the rotated, zoomed view's extent
    room = np.maximum(0.0, (np.array([pw, ph]) - 1 - reach) / 2.0)
    pan_x = _wave(rng, t, room[0], (45.0, 80.0))
    pan_y = _wave(rng, t, room[1], (55.0, 95.0))
    photo_center = np.array([(pw - 1) / 2.0, (ph - 1) / 2.0])
    camera = np.stack([_similarity(photo_center + (pan_x[i], pan_y[i]), frame_center, zoom[i], angle[i])
                       for i in range(frames)])
    # object: screen path across most of the frame, its own turn and scale (texture px per frame px)
    ox = frame_center[0] + _wave(rng, t, 0.32 * w, (35.0, 60.0))
    oy = frame_center[1] + _wave(rng, t, 0.22 * h, (40.0, 70.0))
    spin = _wave(rng, t, 0.35, (40.0, 80.0))
    grow = 1.0 + _wave(rng, t, 0.12, (40.0, 80.0))
    tex_center = np.array([(texture.shape[1] - 1) / 2.0, (texture.shape[0] - 1) / 2.0])
    motion = np.stack([_similarity(tex_center, np.array([ox[i], oy[i]]), grow[i], spin[i]) for i in range(frames)])
    return Scene(background, texture, alpha, (h, w), camera, motion)


def _grid(size: tuple[int, int]) -> np.ndarray:
    """Homogeneous pixel coordinates (3, H*W) float64."""
    h, w = size
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    return np.stack([gx.ravel(), gy.ravel(), np.ones(h * w)])


def _maps(matrix: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """remap coordinates (map_x, map_y), float32 (H, W), of an affine 3x3 map on the frame grid."""
    p = matrix[:2] @ _grid(size)
    return p[0].reshape(size).astype(np.float32), p[1].reshape(size).astype(np.float32)


@dataclass
class Layers:
    """One rendered frame and its layer coverage."""

    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    coverage: np.ndarray  # (H, W) float32 object coverage in [0, 1]
    pure_object: np.ndarray  # (H, W) float32 1.0 where the pixel and its 3x3 neighbours are object only
    pure_background: np.ndarray  # (H, W) float32 1.0 where they are background only


def render(scene: Scene, t: int) -> Layers:
    """Frame t of the scene (bilinear inverse mapping; the object composited with its coverage)."""
    bx, by = _maps(scene.camera[t], scene.size)
    bg = cv2.remap(scene.background, bx, by, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    ox, oy = _maps(scene.motion[t], scene.size)
    obj = cv2.remap(scene.texture, ox, oy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    cov = cv2.remap(scene.alpha, ox, oy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    image = np.clip(bg * (1.0 - cov[..., None]) + obj * cov[..., None], 0.0, 1.0).astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    pure_obj = cv2.erode((cov >= 1.0 - _PURE).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
    pure_bg = cv2.erode((cov <= _PURE).astype(np.uint8), kernel, borderType=cv2.BORDER_REPLICATE)
    return Layers(image, cov, pure_obj.astype(np.float32), pure_bg.astype(np.float32))


def exact_flow(scene: Scene, layers: list[Layers], t: int, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(f_{t->s} (H, W, 2) float32, valid (H, W) bool): the exact flow and occlusion mask of (t, s).

    ``layers`` holds the rendered frames (at least t and s).
    """
    size = scene.size
    h, w = size
    grid = _grid(size)[:2].T.reshape(h, w, 2)
    flows = []
    for chain in (scene.camera, scene.motion):
        m = np.eye(3) if s == t else np.linalg.inv(chain[s]) @ chain[t]
        flows.append((m[:2] @ _grid(size)).T.reshape(h, w, 2) - grid)
    bg_flow, obj_flow = flows
    on_object = layers[t].coverage >= 0.5
    flow = np.where(on_object[..., None], obj_flow, bg_flow).astype(np.float32)
    valid = np.zeros((h, w), bool)
    for f, pure_t, pure_s in ((obj_flow, layers[t].pure_object, layers[s].pure_object),
                              (bg_flow, layers[t].pure_background, layers[s].pure_background)):
        mx = (grid[..., 0] + f[..., 0]).astype(np.float32)
        my = (grid[..., 1] + f[..., 1]).astype(np.float32)
        inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        there = cv2.remap(pure_s, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        valid |= inside & (pure_t > 0.5) & (there >= 1.0 - _PURE)
    return flow, valid
