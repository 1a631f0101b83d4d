"""The fast flawed atlas of one shot: an explicit texture plus a smooth mapping per frame.

Every frame t of a shot maps into one shared 2D atlas through ``M_t``: a bilinear mesh of
``residual_grid`` cells on the frame's long side whose node positions are fitted jointly for
all frames. The losses are the paper's, restricted so that they are quadratic in the node
positions and solved exactly (sparse least squares, a few iteratively reweighted passes):

* **flow consistency**: a pixel x of frame t and its flow partner x + f_{t->s} in frame s map
  to the same atlas point, for neighbouring frames and for keyframe pairs further apart
  (these bound long-term drift);
* **rigidity**: each mesh edge keeps the length and orientation given by the frame's global
  similarity motion (chained from the flows), so the mesh can bend smoothly but not collapse;
* **anchor**: the shot's middle frame defines atlas coordinates.

The texture is then the minimizer of the RGB reconstruction loss given the mapping, with a
per-frame affine colour in the reconstruction (``P_t ~ g_t * T(M_t(x)) + b_t``, per channel):
alternately the mean of every frame's colour-normalized pixels splatted into the atlas, and each
frame's gains and offsets fitted against that texture. Without them, content seen by only a few
frames (the edges of a pan) would keep those frames' flicker and the atlas would drift in
brightness. Each splat takes the colours rescaled to the shot's average look
(:func:`~deflicker.method.atlas.colour.normalized_colours`); the colours kept, and stored, are
the fit of every frame to the texture as splatted, unrescaled: they map the stored texture to
every frame, so a fade's ramp lives in them whole (:mod:`deflicker.method.slow_changes`).
Stored rescaled, they had mapped another texture than the stored one and flattened fades.
``A_t`` samples the texture back through ``M_t``: temporally consistent (one texture for the
shot) but structurally flawed (moving objects and mapping errors blur or ghost), which is what
the neural filter expects.

Chained flows drift (a small bias per frame adds up over a shot), so the fit ends with
passes that register every frame directly to the texture (the role of the paper's
reconstruction loss for the mapping): DIS flow from the colour-normalized frame to A_t,
nodes refitted to it, texture re-splatted. Where a frame's pixels stay unlike A_t after that
(and unlike the flow mesh), they move on their own: ``FastAtlas.static``. The shot's dominant
moving object gets a texture of its own, :mod:`deflicker.method.atlas.object_layer`.

The concepts live in modules of their own around this one: the mesh and its solve
(:mod:`deflicker.method.atlas.mesh`, a :class:`~deflicker.method.atlas.mesh.Mesh` value),
registration (:mod:`deflicker.method.atlas.registration`), the colour fit
(:mod:`deflicker.method.atlas.colour`), texture splatting primitives
(:mod:`deflicker.method.atlas.texture`) and the object layer. This module holds the fitted
:class:`FastAtlas`, the texture splat and the fit's schedule (:func:`fit_fast`).

Memory: the fit holds the shot's proxies and flows (proxy size x frame count); the result
is the texture plus ``(n, gh, gw, 2)`` node positions.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from deflicker.method.atlas.colour import frame_colours, identity_colour, normalized_colours
from deflicker.method.atlas.mesh import Mesh, mesh_weights, motion_maps, sample_pairs, solve_mesh
from deflicker.method.atlas.object_layer import MOVING, ObjectLayer, fit_object_layer
from deflicker.method.atlas.registration import chain_similarities, register_nodes
from deflicker.method.atlas.texture import (bound_texels, canvas_box, censored, clipped_amount, fill_holes,
                                            normalize_colour, splat)
from deflicker.method.image import local_contrast, local_correlation
from deflicker.progress import CancelCheck, Progress, check_cancel, report
from deflicker.settings import AtlasSettings, FlowSettings

log = logging.getLogger(__name__)

#: Largest atlas canvas, in multiples of the proxy area (long pans get a coarser atlas).
MAX_CANVAS = 12.0
#: Splat weight of a texel's unclipped observations under which the bounds of its clipped
#: channels decide (:func:`splat_texture`): less than a twentieth of one mapped frame.
CENSORED_SEEN = 0.05
#: Mesh residual (atlas pixels) up to which a pixel counts as following the mapping.
MOTION_OK = 1.5
#: Local structure correlation below which A_t does not represent the frame (ramps to 2x).
AGREE_LOW = 0.25
#: Local contrast (luma std) below which a region counts as flat: any guide represents it.
FLAT = 0.03
#: Alternations between the texture and the per-frame colour transforms.
GAIN_PASSES = 3
#: Passes registering every frame to the fitted texture (then re-splatting it): they remove
#: the drift that chained flows accumulate, as the paper's reconstruction loss does. On the
#: 600-frame synthetic pan, 2 passes left up to 2.5 px of drift against frame 0, 4 under 0.8 px.
REGISTER_PASSES = 4


@dataclass(frozen=True)
class ShotFlows:
    """Flows between neighbouring frames of one shot, at proxy resolution.

    ``fw[t]`` = f_{t->t+1}, ``bw[t]`` = f_{t+1->t}: (n-1, h, w, 2) float16 or float32; ``valid_*`` (n-1, h, w)
    bool from the forward-backward check. ``keys`` holds direct keyframe flows
    ``(t, s, f_{t->s}, valid)`` between frames further apart (``AtlasSettings.key_gap``).
    """

    fw: np.ndarray
    valid_fw: np.ndarray
    bw: np.ndarray
    valid_bw: np.ndarray
    keys: tuple[tuple[int, int, np.ndarray, np.ndarray], ...] = ()


class FastAtlas:
    """A fitted shot atlas: texture (Ha, Wa, 3) + per-frame mesh nodes in atlas pixels."""

    method = "fast"

    def __init__(self, texture: np.ndarray, weight: np.ndarray, nodes: np.ndarray, frame_shape: tuple[int, int],
                 motion: Optional[np.ndarray] = None, colour: Optional[np.ndarray] = None,
                 objects: Optional[ObjectLayer] = None):
        self.texture = np.ascontiguousarray(texture, dtype=np.float32)
        self.colour = identity_colour(len(nodes)) if colour is None else np.asarray(colour, np.float32)
        self.motion = None if motion is None else np.ascontiguousarray(motion, dtype=np.float16)
        self.weight = np.ascontiguousarray(weight, dtype=np.float32)
        self.nodes = np.ascontiguousarray(nodes, dtype=np.float64)
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.objects = objects
        h, w = self.frame_shape
        self._wy = mesh_weights(h, nodes.shape[1] - 1)
        self._wx = mesh_weights(w, nodes.shape[2] - 1)

    def __len__(self) -> int:
        return len(self.nodes)

    def mapping(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Atlas coordinates (map_x, map_y), (h, w) float32 each, of frame t's pixels."""
        g = self.nodes[t]
        mx = self._wy @ g[..., 0] @ self._wx.T
        my = self._wy @ g[..., 1] @ self._wx.T
        return mx.astype(np.float32), my.astype(np.float32)

    def frame(self, t: int) -> np.ndarray:
        """A_t: the texture sampled through M_t, (h, w, 3) float32 proxy units."""
        mx, my = self.mapping(t)
        return cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def static(self, t: int) -> np.ndarray:
        """How well frame t's pixels follow the atlas mapping, (h, w) float32 in [0, 1]: 0 on
        independently moving objects (and a margin around them), 1 on the mapped scene."""
        if self.motion is None:
            return np.ones(self.frame_shape, np.float32)
        h, w = self.frame_shape
        res = cv2.dilate(self.motion[t].astype(np.float32), np.ones((3, 3), np.uint8))
        res = cv2.resize(res, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(1.0 - (res - MOTION_OK) / MOTION_OK, 0.0, 1.0).astype(np.float32)

    def _own(self, t: int, proxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(frame t's proxy with its colour transform undone, where it is flat: nothing there
        for a texture to disagree with), (h, w, 3) and (h, w) float32."""
        own = normalize_colour(proxy, self.colour[t])
        return own, np.clip(1.0 - local_contrast(own) / FLAT, 0.0, 1.0)

    def unlike_texture(self, t: int, proxy: np.ndarray) -> np.ndarray:
        """(h, w) bool: frame t's pixels whose structure A_t does not show; with ``static(t) <
        MOVING`` the pixels that move on their own (not the margin :meth:`static` leaves)."""
        _, flat = self._own(t, proxy)
        return _shown(local_correlation(proxy, self.frame(t)), flat) < MOVING  # type: ignore[no-any-return]

    def guide(self, t: int, proxy: np.ndarray, display: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(guide, represented, coverage) of frame t, each at proxy size, float32.

        ``represented`` (in [0, 1]) is where A_t shows what the frame shows: the pixel follows
        the atlas mapping and its local structure matches A_t's (not a moving object, ghost or
        disocclusion the atlas got wrong). The guide is A_t there and elsewhere the frame's own
        proxy with its fitted colour transform undone, which already makes its appearance
        consistent; the object layer (:mod:`deflicker.method.atlas.object_layer`) replaces a ghost of the
        object in A_t and bounds clipped pixels (:meth:`_with_object`).
        ``coverage`` is how many frames back each pixel of A_t (its splat weight).
        """
        mx, my = self.mapping(t)
        atlas = cv2.remap(self.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        coverage = cv2.remap(self.weight, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
        own, flat = self._own(t, proxy)
        atlas_fit = local_correlation(proxy, atlas)
        keep = np.minimum(self.static(t), _shown(atlas_fit, flat))
        guide = keep[..., None] * atlas + (1.0 - keep[..., None]) * own
        if self.objects is not None:
            guide = self._with_object(t, proxy, own, atlas, atlas_fit, guide, keep, display)
        return guide.astype(np.float32), keep.astype(np.float32), coverage

    def _with_object(self, t: int, proxy: np.ndarray, own: np.ndarray, atlas: np.ndarray, atlas_fit: np.ndarray,
                     guide: np.ndarray, keep: np.ndarray, display: bool) -> np.ndarray:
        """The guide with frame t's object layer: where A_t shows the object but its texture's
        local structure matches the frame less well than the object layer's (a ghost of the
        object smeared into the atlas while it moved with the camera), the layer instead; and
        where the frame clipped (its pixels only bound the scene) off the atlas, the layer where
        it is brighter (darker for crushed shadows). ``atlas_fit``: the local correlation of the
        proxy and A_t."""
        assert self.objects is not None
        layer, covered = self.objects.frame(t, self.frame_shape)
        on = covered.astype(np.float32) * np.float32(self.objects.trust[t])
        if not on.any():
            return guide
        layer_fit = cv2.GaussianBlur(local_correlation(proxy, layer), (0, 0), 2.0)
        atlas_fit = cv2.GaussianBlur(atlas_fit, (0, 0), 2.0)
        better = np.clip((layer_fit - atlas_fit) / OBJECT_BETTER, 0.0, 1.0) * on
        guide = guide + (keep * better)[..., None] * (layer - atlas)
        if display:
            high, low = clipped_amount(proxy)
            bound = own + high * (np.maximum(own, layer) - own) + low * (np.minimum(own, layer) - own)
            guide = guide + ((1.0 - keep) * on)[..., None] * (bound - own)
        return guide

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the cache."""
        out: dict[str, np.ndarray] = {"texture": self.texture, "weight": self.weight, "nodes": self.nodes,
                                      "frame_shape": np.array(self.frame_shape, np.int64), "colour": self.colour}
        if self.motion is not None:
            out["motion"] = self.motion
        if self.objects is not None:
            out.update(self.objects.to_arrays(OBJECT_PREFIX))
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "FastAtlas":
        """Rebuild from :meth:`to_arrays` output."""
        shape = tuple(int(v) for v in arrays["frame_shape"])
        return cls(arrays["texture"], arrays["weight"], arrays["nodes"], (shape[0], shape[1]), arrays.get("motion"),
                   arrays["colour"], ObjectLayer.from_arrays(arrays, OBJECT_PREFIX))


#: Cache key prefix of the object layer's arrays.
OBJECT_PREFIX = "object_"
#: Local-correlation margin over A_t's at which the object layer fully replaces A_t.
OBJECT_BETTER = 0.1


def _shown(correlation: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Where a texture seen from the frame shows the frame's structure, (h, w) float32 in [0, 1],
    from their local ``correlation``: from AGREE_LOW up (or ``flat``: nothing to disagree on),
    eroded and softened so that it ends before the structure stops matching."""
    agree = np.clip((correlation - AGREE_LOW) / AGREE_LOW, 0.0, 1.0)
    shown = cv2.erode(np.maximum(agree, flat).astype(np.float32), np.ones((5, 5), np.uint8))
    return cv2.GaussianBlur(shown, (0, 0), 1.0)  # type: ignore[no-any-return]


def splat_texture(proxies: np.ndarray, nodes: np.ndarray, canvas: tuple[int, int],
                  colour: Optional[np.ndarray] = None, motion: Optional[np.ndarray] = None,
                  display: bool = True, cancel: Optional[CancelCheck] = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean of every frame's pixels (its colour transform undone) splatted bilinearly at their atlas
    positions, independently moving pixels all but left out: (texture (Ha, Wa, 3), weight (Ha, Wa):
    how many frames back each texel).

    A ``display``-referred pixel with a clipped (or crushed) channel says only that the scene is
    at least (at most) its normalized value there: it adds all but no weight to the mean, and a
    texel that no mapped frame saw unclipped (weight under CENSORED_SEEN) takes, in each channel
    that clipped, the tightest such bound over the shot (the highest; the lowest for crushed
    ones), the same for every frame. The mean of the bounds sat under the bound of the frames
    with the lowest gain, and their clipped pixels kept their flicker (the guide only raises a
    clipped pixel to A_t).
    """
    n, h, w, _ = proxies.shape
    ha, wa = canvas
    atlas = FastAtlas(np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.float32), nodes, (h, w), motion)
    acc = np.zeros((4, ha * wa))
    highest = np.full((3, ha * wa), -np.inf)
    lowest = np.full((3, ha * wa), np.inf)
    for t in range(n):
        check_cancel(cancel)
        mx, my = atlas.mapping(t)
        pixels = proxies[t].reshape(-1, 3).astype(np.float64)
        high, low = censored(pixels)  # of the values as filmed, before the colour is undone
        if colour is not None:
            pixels = (pixels - colour[t, 1]) / colour[t, 0]
        static = atlas.static(t).ravel().astype(np.float64)
        keep = static + 1e-3
        if display:  # next to nothing: the mean of those is the fallback of last resort
            keep *= np.where((high | low).any(-1), 1e-6, 1.0)
            mapped = (static >= MOVING)[:, None]
            bound_texels(highest, mx, my, pixels, high & mapped, canvas, high=True)
            bound_texels(lowest, mx, my, pixels, low & mapped, canvas, high=False)
        splat(acc, mx, my, pixels, keep, canvas)
    seen = acc[3]
    mean = acc[:3] / np.maximum(seen, 1e-9)
    unseen = seen < CENSORED_SEEN
    mean = np.where(unseen & np.isfinite(highest), np.maximum(mean, highest), mean)
    mean = np.where(unseen & np.isfinite(lowest) & ~np.isfinite(highest), np.minimum(mean, lowest), mean)
    weight = seen.reshape(ha, wa)
    texture = mean.T.reshape(ha, wa, 3)
    return fill_holes(texture, weight).astype(np.float32), weight.astype(np.float32)


def fit_fast(proxies: np.ndarray, flows: ShotFlows, settings: AtlasSettings, flow: FlowSettings = FlowSettings(), *,
             display: bool = True, progress: Optional[Progress] = None,
             cancel: Optional[CancelCheck] = None) -> FastAtlas:
    """Fit the fast atlas of one shot from its (n, h, w, 3) proxies and flows (module doc);
    ``display``: the proxies are display-referred [0, 1] values that clip (not scaled HDR)."""
    n, h, w, _ = proxies.shape
    ref = n // 2
    mesh = Mesh.over(h, w, settings.residual_grid)
    report(progress, 0.0, "atlas: motion")
    sims = chain_similarities(flows, n, ref, h, w, cancel)
    motion = None
    if n > 1 and settings.irls_passes > 0:
        pairs = sample_pairs(flows, h, w, cancel)
        report(progress, 0.3, "atlas: mapping")
        nodes, residuals = solve_mesh(pairs, sims, ref, mesh, passes=settings.irls_passes,
                                      rigidity=settings.rigidity, cancel=cancel)
        motion = motion_maps(pairs, residuals, n, h, w)
    else:
        nodes = mesh.moved_by(sims).reshape(n, mesh.gh + 1, mesh.gw + 1, 2)
    check_cancel(cancel)
    lo, scale, canvas = canvas_box(nodes.reshape(-1, 2), h, w, MAX_CANVAS)
    nodes = (nodes - lo) * scale
    report(progress, 0.7, "atlas: texture")
    colour = identity_colour(n)
    unregistered: Optional[np.ndarray] = None
    texture: np.ndarray  # first splatted in pass 0, registered against from pass GAIN_PASSES on
    weight: np.ndarray
    passes = GAIN_PASSES + REGISTER_PASSES
    for i in range(passes):
        check_cancel(cancel)
        if i >= GAIN_PASSES and n > 1:
            fitted = FastAtlas(texture, weight, nodes, (h, w), motion, colour)
            registered = []
            for t in range(n):
                check_cancel(cancel)
                registered.append(register_nodes(proxies[t], fitted, t, flow, display))
            nodes = np.stack([r[0] for r in registered])
            unregistered = np.stack([r[1] for r in registered])
        # The splat takes the colours rescaled to the shot's average look; the colours kept (for
        # the registration and the stored atlas) are the fit to the texture just splatted.
        texture, weight = splat_texture(proxies, nodes, canvas, normalized_colours(colour), motion, display, cancel)
        colour = frame_colours(proxies, FastAtlas(texture, weight, nodes, (h, w), motion), display, cancel)
        report(progress, 0.7 + 0.3 * (i + 1) / passes, "atlas: texture")
    if unregistered is not None:
        # Moving = unlike the mesh by both measures: the flow pairs' residual alone flags whole
        # background regions next to a fast object, the registration's alone flags local flicker.
        motion = unregistered if motion is None else np.minimum(motion, unregistered)
    fitted = FastAtlas(texture, weight, nodes, (h, w), motion, colour)
    if motion is not None:
        unmapped = np.zeros((n, h, w), bool)
        moving = np.zeros((n, h, w), bool)
        for t in range(n):
            check_cancel(cancel)
            unmapped[t] = fitted.static(t) < MOVING
            moving[t] = unmapped[t] & fitted.unlike_texture(t, proxies[t])
        fitted.objects = fit_object_layer(proxies, moving, unmapped, colour, flows, flow, display, cancel)
    return fitted
