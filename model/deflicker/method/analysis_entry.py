"""A clip analysis as a cache entry (bytes for the plain store, :mod:`deflicker.store.cache`):
its layout, and every check made before an entry is used.

An entry is an ``.npz`` of the analysis's arrays (:meth:`ClipAnalysis.to_arrays`) plus:

* ``entry.key``: the name it was written under (a :class:`~deflicker.method.clip_key.ClipKey`'s digest,
  with the segment's range for a clip analysed in segments): an entry copied or renamed to another
  name is refused;
* ``content.frames`` and ``content.hash``: every frame's digest and the clip's full-content
  hash (:mod:`deflicker.method.content`), checked against the frames a render reads;
* ``entry.checksum``: a hash of every other member (names, types, shapes, bytes), so an entry
  edited by hand, or damaged, is refused.

Reading never trusts the file: the members' declared and stored sizes are capped before any is
read (:func:`entry_limit`: an entry holds far less than the analysis needed in memory), floats
must be finite, and the analysis's arrays must fit the clip: frame count, proxy shape, index
ranges, shot boundaries, mesh and canvas sizes (:func:`check_analysis`). Any failure is an
:class:`EntryRefused` and the caller analyses again.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from typing import IO

import numpy as np

from deflicker.method.analysis import ClipAnalysis
from deflicker.method.atlas.fast import MAX_CANVAS, FastAtlas
from deflicker.method.atlas.mesh import grid_shape
from deflicker.method.atlas.geometry import sample_grid
from deflicker.method.content import DIGEST_SIZE, ContentDigests
from deflicker.errors import ModelLoadError
from deflicker.method.image import proxy_shape
from deflicker.settings import Settings

#: Bytes any entry may hold, plus ENTRY_BYTES_PER_PIXEL per proxy pixel of every frame: a shot's
#: textures (32 bytes per canvas texel, the canvas at most the shot's frames' area) and meshes.
ENTRY_BASE_BYTES = 64 << 20
ENTRY_BYTES_PER_PIXEL = 64
#: Largest width and layer count of a stored neural atlas's MLPs, checked before they are built.
NEURAL_MAX_WIDTH = 1024
NEURAL_MAX_LAYERS = 16
NEURAL_MAX_FREQUENCIES = 24
#: Member names of the entry's own fields.
KEY, FRAMES, HASH, CHECKSUM = "entry.key", "content.frames", "content.hash", "entry.checksum"


class EntryRefused(ModelLoadError):
    """A cache entry that must not be used (damaged, edited, for another clip, or not this layout)."""


def entry_limit(frame_count: int, shape: tuple[int, int], settings: Settings) -> int:
    """Most bytes an entry for ``frame_count`` frames of (h, w) proxies may hold (module doc);
    neural atlases add at most their two MLPs' float32 weights per shot (one shot a frame at most)."""
    limit = ENTRY_BASE_BYTES + ENTRY_BYTES_PER_PIXEL * frame_count * shape[0] * shape[1]
    if settings.method == "neural":
        side = settings.atlas.neural_width + 4 * NEURAL_MAX_FREQUENCIES + 2  # widest layer input
        limit += frame_count * 4 * 2 * NEURAL_MAX_LAYERS * side * side
    return limit


def checksum(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the members (every one but the checksum): names, types, shapes and bytes."""
    h = hashlib.blake2b(digest_size=32)
    for name in sorted(arrays):
        if name == CHECKSUM:
            continue
        value = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{value.dtype.str}|{value.shape}|".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def entry_arrays(key_digest: str, analysis: ClipAnalysis) -> dict[str, np.ndarray]:
    """Every member of the entry for ``analysis`` (with its ``content``) under ``key_digest``."""
    if analysis.content is None:
        raise ValueError("an analysis without its frames' digests cannot be cached")
    arrays = analysis.to_arrays()
    content = analysis.content
    arrays.update({KEY: np.array(key_digest), FRAMES: content.frames, HASH: np.array(content.full_hash())})
    arrays[CHECKSUM] = np.array(checksum(arrays))
    return arrays


def _member(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> np.ndarray:
    """One member, its declared size checked against the stored one before it is read."""
    with zf.open(info) as fh:
        _check_header(fh, info)
    with zf.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _check_header(fh: IO[bytes], info: zipfile.ZipInfo) -> None:
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read(fh)
    if dtype.hasobject or dtype.kind not in "biufU":
        raise EntryRefused(f"member {info.filename} holds {dtype}")
    if int(np.prod(shape, dtype=np.float64)) * dtype.itemsize > info.file_size:
        raise EntryRefused(f"member {info.filename} declares more data than it holds")


def entry_bytes(name: str, analysis: ClipAnalysis) -> bytes:
    """The entry of ``analysis`` (with its ``content``) under ``name``, as the store keeps it."""
    out = io.BytesIO()
    np.savez(out, **entry_arrays(name, analysis))  # type: ignore[arg-type]
    return out.getvalue()


def read_entry(data: bytes, limit: int) -> dict[str, np.ndarray]:
    """The entry's members, refused (EntryRefused) past ``limit`` bytes or with a bad checksum."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            total = sum(info.file_size for info in infos)
            if total > limit:
                raise EntryRefused(f"it holds {total} bytes, more than the {limit} such a clip needs")
            arrays = {info.filename[:-4]: _member(zf, info) for info in infos if info.filename.endswith(".npy")}
    except (zipfile.BadZipFile, EOFError, ValueError, KeyError) as exc:
        raise EntryRefused(f"damaged ({exc})") from None
    stored = arrays.get(CHECKSUM)
    if stored is None or str(stored) != checksum(arrays):
        raise EntryRefused("its checksum does not match its content (damaged or edited)")
    return arrays


def analysis_from_entry(arrays: dict[str, np.ndarray], key_digest: str, frame_count: int,
                        frame_shape: tuple[int, int], settings: Settings) -> ClipAnalysis:
    """The analysis of a read entry (its ``content`` from the entry's digests), checked against
    the clip it is loaded for."""
    if str(arrays.get(KEY, "")) != key_digest:
        raise EntryRefused("it was written for another clip or settings")
    shape = proxy_shape(frame_shape[0], frame_shape[1], settings.analysis_size)
    frames = np.asarray(arrays.get(FRAMES, np.zeros(0)))
    if frames.shape != (frame_count, DIGEST_SIZE) or frames.dtype != np.uint8:
        raise EntryRefused("its frame digests do not cover the clip")
    content = ContentDigests(frames, shape)
    if str(arrays.get(HASH, "")) != content.full_hash():
        raise EntryRefused("its full-content hash does not match its frame digests")
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise EntryRefused(f"{name} holds NaN or infinite values")
    _check_neural_arch(arrays)
    try:
        analysis = ClipAnalysis.from_arrays({k: v for k, v in arrays.items() if k not in (KEY, FRAMES, HASH, CHECKSUM)})
    except (ModelLoadError, KeyError, IndexError, ValueError, TypeError, RuntimeError) as exc:
        raise EntryRefused(f"incomplete analysis: {exc}") from None
    check_analysis(analysis, frame_count, shape, settings)
    analysis.content = content
    return analysis


def _check_neural_arch(arrays: dict[str, np.ndarray]) -> None:
    """Refuse neural atlas sizes no settings make, before their MLPs are built."""
    for name, value in arrays.items():
        if name.endswith("neural.arch"):
            arch = np.asarray(value).ravel()
            if arch.size != 5 or not (1 <= arch[[0, 2]]).all() or (arch[[0, 2]] > NEURAL_MAX_LAYERS).any() \
                    or not (1 <= arch[[1, 3]]).all() or (arch[[1, 3]] > NEURAL_MAX_WIDTH).any() \
                    or not 0 <= arch[4] <= NEURAL_MAX_FREQUENCIES:
                raise EntryRefused(f"{name} {arch.tolist()} is not a neural atlas this tool makes")


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise EntryRefused(what)


def check_analysis(analysis: ClipAnalysis, frame_count: int, shape: tuple[int, int], settings: Settings) -> None:
    """Refuse an analysis that does not fit a clip of ``frame_count`` frames with (h, w) proxies."""
    n = frame_count
    canonical, shots = analysis.canonical, analysis.shots
    _require(analysis.method == settings.method, f"method {analysis.method!r}, expected {settings.method!r}")
    _require(tuple(analysis.shape) == shape, f"proxy shape {analysis.shape}, expected {shape}")
    _require(np.isfinite(analysis.scale) and analysis.scale >= 1.0, f"scale {analysis.scale} out of range")
    _require(canonical.shape == (n,), f"{canonical.shape} repeat indices for {n} frames")
    t = np.arange(n)
    _require(bool(((canonical >= 0) & (canonical <= t)).all()), "repeat indices out of range")
    _require(bool((canonical[canonical] == canonical).all()), "repeat indices point at repeats")
    _require(shots.ndim == 1 and len(shots) >= 2 and shots[0] == 0 and shots[-1] == n and bool((np.diff(shots) > 0).all()),
             "shot boundaries out of range")
    _require(len(analysis.atlases) == len(shots) - 1, "one atlas per shot expected")
    levels = analysis.local_levels
    _require(levels is None or (levels.shape == (len(shots) - 1,) and bool(((levels >= 0) & (levels <= 1)).all())),
             "local flicker levels out of range")
    static = analysis.static
    _require(static is None or (static.shape == (len(shots) - 1, *shape) and static.dtype == bool),
             "static regions do not fit the shots")
    means = analysis.frame_means
    _require(means is None or (means.shape == (n, 3) and bool(np.isfinite(means).all())
                               and bool((np.abs(means) <= 1e6).all())),
             "frame means do not fit the clip")
    for s, atlas in enumerate(analysis.atlases):
        length = int(shots[s + 1] - shots[s])
        if isinstance(atlas, FastAtlas):
            _check_fast_atlas(atlas, length, shape, settings)
        else:
            _require(tuple(atlas.shape) == (length, *shape), f"shot {s}'s neural atlas has the wrong shape")


def _check_fast_atlas(atlas: FastAtlas, length: int, shape: tuple[int, int], settings: Settings) -> None:
    h, w = shape
    gh, gw = grid_shape(h, w, settings.atlas.residual_grid)
    canvas = 2 * MAX_CANVAS * h * w + 64  # canvas_box's area with its margins and rounding
    _require(atlas.frame_shape == shape, "atlas frame shape differs from the proxies'")
    _require(atlas.nodes.shape == (length, gh + 1, gw + 1, 2), f"mesh nodes {atlas.nodes.shape} do not fit the shot")
    _require(atlas.colour.shape == (length, 2, 3) and bool((atlas.colour[:, 0] > 0).all()), "colour transforms out of range")
    _require(_texture_ok(atlas.texture, atlas.weight, canvas), "texture out of range")
    _require(atlas.motion is None or atlas.motion.shape == (length, *sample_grid(h, w)[0].shape), "motion maps do not fit")
    layer = atlas.objects
    if layer is not None:
        _require(_texture_ok(layer.texture, layer.weight, canvas), "object texture out of range")
        _require(layer.transforms.shape == (length, 2, 3) and layer.trust.shape == (length,)
                 and bool(((layer.trust >= 0) & (layer.trust <= 1)).all()), "object layer does not fit the shot")


def _texture_ok(texture: np.ndarray, weight: np.ndarray, canvas: float) -> bool:
    """A texture (Ha, Wa, 3) of at least 2x2 texels, at most ``canvas``, with its weights (Ha, Wa) >= 0."""
    return (texture.ndim == 3 and texture.shape[2] == 3 and min(texture.shape[:2]) >= 2
            and texture.shape[0] * texture.shape[1] <= canvas and weight.shape == texture.shape[:2]
            and bool((weight >= 0).all()))
