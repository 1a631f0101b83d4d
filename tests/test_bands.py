"""Row bands (deflicker.bands) and the banded full-resolution steps: every row once, and the
same bits as the whole-frame computation."""
import cv2
import numpy as np
import pytest

from deflicker.bands import (ALIGN, TAIL_PIXELS, area_bands, band_rows, banded_upsampling, row_bands, row_grid,
                             row_upsampler, upsampled_rows, with_tail)


@pytest.mark.parametrize("height,width", [(2160, 3840), (1080, 1920), (721, 1283), (5, 7), (1, 1), (3000, 1024)])
def test_row_bands_cover_every_row_once_in_aligned_bands(height, width):
    bands = list(row_bands(height, width))
    rows = np.concatenate([np.arange(b.start, b.stop) for b in bands])
    np.testing.assert_array_equal(rows, np.arange(height))  # each row once, in order
    assert all((b.start * width) % ALIGN == 0 for b in bands)  # vector loops split a band like the frame
    assert all(b.stop - b.start == band_rows(width) for b in bands[:-1])


def test_band_size_follows_the_pixel_budget():
    assert band_rows(3840) * 3840 <= 1 << 20 < (band_rows(3840) + 4) * 3840
    assert band_rows(1283) == 1024  # odd width: the alignment sets the rows
    assert band_rows(4096, pixels=1) == 1


def test_with_tail_reaches_past_the_band_by_the_tail_within_the_frame():
    assert with_tail(slice(0, 8), 64, 1024) == slice(0, 9)  # one more row holds the tail
    wide = with_tail(slice(10, 20), 100, 7)
    assert wide.start == 10 and (wide.stop - 20) * 7 >= TAIL_PIXELS > (wide.stop - 21) * 7
    assert with_tail(slice(56, 64), 64, 1024) == slice(56, 64)  # the frame's last band: its tail is the frame's


def _whole_frame_transform(image, coeffs, scale):
    """The colour transform computed on the whole frame at once (cv2, as before the bands)."""
    h, w = image.shape[:2]
    sums = []
    for c in range(3):
        gains = cv2.resize(np.ascontiguousarray(coeffs[..., 3 * c:3 * c + 3]), (w, h), interpolation=cv2.INTER_LINEAR)
        sums.append(cv2.transform(cv2.multiply(gains, image), np.ones((1, 3), np.float32)))
    offsets = cv2.resize(np.ascontiguousarray(coeffs[..., 9:12] * np.float32(scale)), (w, h),
                         interpolation=cv2.INTER_LINEAR)
    return cv2.add(cv2.merge(sums), offsets)


@pytest.mark.parametrize("height,width,proxy", [
    (1080, 1920, (72, 128)), (1500, 1283, (100, 85)), (2160, 3840, (144, 256)), (1080, 1920, (144, 256)),  # banded
    (1081, 1283, (72, 85))])  # 1081 / 72 rows: a grid is all 72, so upsampled whole-frame
def test_banded_transform_equals_the_whole_frame_bit_for_bit(height, width, proxy):
    from deflicker.bands import CACHE_BAND_PIXELS
    from deflicker.method.correction import IDENTITY, apply_affine

    rng = np.random.default_rng(3)
    image = rng.uniform(-0.1, 1.1, (height, width, 3)).astype(np.float32)
    coeffs = (IDENTITY + 0.2 * rng.standard_normal((*proxy, 12))).astype(np.float32)
    assert len(list(row_bands(height, width, CACHE_BAND_PIXELS))) > 1  # really banded
    np.testing.assert_array_equal(apply_affine(image, coeffs, scale=1.7), _whole_frame_transform(image, coeffs, 1.7))


@pytest.mark.parametrize("src_height,height", [
    (37, 37), (37, 74), (37, 111), (37, 37 * 15), (37, 37 * 16),  # whole factors
    (144, 1080), (144, 2160), (135, 2160), (400, 1080), (540, 720), (107, 858)])  # 7.5, 15, 16, 2.7, 4/3, 858/107
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_upsampled_rows_equal_the_whole_frame_upsampling_for_any_band(src_height, height, channels):
    rng = np.random.default_rng(src_height + height)
    src = rng.standard_normal((src_height, 53, channels)).astype(np.float32)[..., 0 if channels == 1 else slice(None)]
    shape = (height, 211)
    whole = cv2.resize(src, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    edges = sorted({0, height, *rng.integers(1, height, 6).tolist()})  # bands starting and ending anywhere
    for top, bottom in zip(edges, edges[1:]):
        np.testing.assert_array_equal(upsampled_rows(src, shape, slice(top, bottom)), whole[top:bottom])


def test_upsampling_is_banded_where_a_band_reads_a_few_source_rows_only():
    assert row_grid(144, 1080) == (2, 15) and banded_upsampling(144, 1080)  # 1080p from the default proxy
    assert row_grid(144, 2160) == (1, 15) and banded_upsampling(144, 2160)
    assert row_grid(107, 858) == (107, 858) and not banded_upsampling(107, 858)  # scope: the whole source
    rng = np.random.default_rng(2)
    for src_height, height in ((107, 858), (144, 1080)):
        src = rng.standard_normal((src_height, 85, 3)).astype(np.float32)
        shape = (height, 1283)
        whole = cv2.resize(src, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
        up = row_upsampler(src, shape)
        for rows in row_bands(*shape, pixels=1 << 16):
            np.testing.assert_array_equal(up(rows), whole[rows])


@pytest.mark.parametrize("shape,small", [((2160, 3840), (144, 256)), ((1080, 1920), (144, 256)),
                                         ((1080, 1000), (400, 333)), ((858, 2048), (107, 256)), ((5, 7), (5, 7))])
def test_area_bands_are_whole_grids_whose_downsampling_is_the_whole_frames(shape, small):
    rng = np.random.default_rng(shape[0])
    frame = rng.uniform(-0.1, 1.1, (*shape, 3)).astype(np.float32)
    whole = cv2.resize(frame, small[::-1], interpolation=cv2.INTER_AREA)
    bands = list(area_bands(shape, small, pixels=1 << 18))
    assert np.concatenate([np.arange(r.start, r.stop) for r, _ in bands]).tolist() == list(range(shape[0]))
    assert np.concatenate([np.arange(s.start, s.stop) for _, s in bands]).tolist() == list(range(small[0]))
    q, p = row_grid(small[0], shape[0])
    grids = max(1, (1 << 18) // (shape[1] * p))  # a band is one grid at least
    assert all((r.stop - r.start) == grids * p and (o.stop - o.start) == grids * q for r, o in bands[:-1])
    assert (len(bands) == 1) == (shape[0] == 858 or shape[0] * shape[1] <= 1 << 18)  # 858 onto 107: no shorter grid
    for rows, out in bands:
        part = cv2.resize(frame[rows], (small[1], out.stop - out.start), interpolation=cv2.INTER_AREA)
        np.testing.assert_array_equal(part.reshape(-1, small[1], 3), whole[out])


@pytest.mark.parametrize("height,width,channels", [(2160, 3840, 3), (1080, 1920, 4), (858, 2048, 3)])
def test_banded_code_thumbnail_equals_the_whole_frame_code_values_resized(height, width, channels):
    from deflicker.method.content import code_thumbnail, code_values
    from deflicker.method.image import proxy_shape

    rng = np.random.default_rng(10)
    frame = rng.uniform(-0.1, 1.1, (height, width, channels)).astype(np.float32)
    small = proxy_shape(height, width, 256)
    expected = cv2.resize(code_values(frame), small[::-1], interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(code_thumbnail(frame, small), expected)


@pytest.mark.parametrize("height,width,channels", [(2160, 3840, 3), (1080, 1920, 4), (858, 2048, 3), (144, 256, 3)])
@pytest.mark.parametrize("scale", [1.0, 2.5])
def test_proxies_of_stored_pixels_are_those_of_the_float_frame(height, width, channels, scale):
    """A render makes its neighbours' proxies from their pixels as the file stores them, a band
    at a time: the analysis proxy, the flow proxy and the content digest are the float frame's
    (the whole-frame resize of its colour), bit for bit."""
    from deflicker.io.clip import to_float
    from deflicker.method.analysis import ClipAnalysis
    from deflicker.method.content import content_digest
    from deflicker.method.image import proxy_shape, resize, rgb

    rng = np.random.default_rng(height)
    pixels = rng.integers(0, 65536, (height, width, channels), dtype=np.uint16)
    frame = to_float(pixels)
    small = proxy_shape(height, width, 256)
    analysis = ClipAnalysis(shape=small, scale=scale, canonical=np.arange(1), shots=np.array([0, 1]), atlases=[])
    expected = resize(rgb(frame), small) / np.float32(scale)
    for given in (pixels, frame):
        np.testing.assert_array_equal(analysis.proxy(given), expected)
        assert not np.may_share_memory(analysis.proxy(given), given)
    np.testing.assert_array_equal(analysis.flow_proxy(pixels), analysis.flow_proxy(frame))
    np.testing.assert_array_equal(content_digest(pixels, small), content_digest(frame, small))


def _passthrough_weight(mask, image):
    """The pass-through weight of a display-referred frame, its bands put together (H, W)."""
    from deflicker.method.static_regions import passthrough_bands

    return np.concatenate([band for _, band in passthrough_bands(mask, image, display=True)])


def test_banded_keep_static_equals_the_whole_frame_blend():
    from deflicker.method.static_regions import keep_static

    rng = np.random.default_rng(4)
    image = rng.uniform(0.0, 1.0, (1080, 1920, 3)).astype(np.float32)
    image[:140] = 0.0  # a letterbox bar
    corrected = rng.uniform(0.0, 1.0, image.shape).astype(np.float32)
    mask = np.zeros((72, 128), bool)
    mask[:9] = True
    weight = _passthrough_weight(mask, image)[..., None]
    expected = (corrected + weight * (image - corrected)).astype(np.float32)
    np.copyto(expected, image, where=weight >= 1.0)
    out = keep_static(corrected.copy(), image, mask, display=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[:130], image[:130])


def test_scratch_frames_reuse_a_returned_buffer_and_never_share_a_held_one():
    from deflicker.bands import ScratchFrames

    pool = ScratchFrames(keep=1)
    shape = (1600, 2048, 3)  # 39 MB of float32, 20 MB of int16: pooled
    with pool.take(shape) as a:
        with pool.take(shape) as b:
            assert not np.shares_memory(a, b)  # both held: two buffers
        a_id = a.ctypes.data
    with pool.take(shape) as c:
        assert c.ctypes.data in (a_id, b.ctypes.data)  # a returned one, not a fresh allocation
        assert c.shape == shape and c.dtype == np.float32
    with pool.take(shape, np.int16) as d:  # the float buffer's first half
        assert d.dtype == np.int16 and d.shape == shape and d.ctypes.data == c.ctypes.data
        with pool.take(shape) as f:  # held: never shared
            assert not np.shares_memory(d, f)
    with pool.take((10, 10, 3)) as small, pool.take((10, 10, 3)) as small2:
        assert not np.shares_memory(small, small2)
    with pool.take((1700, 2048, 3)) as other:  # another frame size: the old buffers go
        assert other.shape == (1700, 2048, 3)
    with pool.take(shape) as e:
        assert e.ctypes.data not in (a_id, b.ctypes.data, c.ctypes.data)


def test_renders_through_reused_scratch_buffers_do_not_leak_between_frames():
    from deflicker.method.correction import IDENTITY, apply_affine, fill_clipped

    rng = np.random.default_rng(5)
    shape = (1600, 2048, 3)  # above the pool's minimum: its buffers are reused across the calls
    images = [rng.uniform(-0.05, 1.05, shape).astype(np.float32) for _ in range(2)]
    coeffs = [(IDENTITY + 0.1 * rng.standard_normal((90, 128, 12))).astype(np.float32) for _ in range(2)]
    guide = rng.uniform(0, 1, (90, 128, 3)).astype(np.float32)
    first = [fill_clipped(apply_affine(im, c), im, guide) for im, c in zip(images, coeffs)]
    again = [fill_clipped(apply_affine(im, c), im, guide) for im, c in reversed(list(zip(images, coeffs)))][::-1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])


def test_keep_static_with_scattered_static_pixels_equals_the_whole_frame_blend():
    from deflicker.method.static_regions import keep_static

    rng = np.random.default_rng(6)
    image = rng.uniform(0.0, 1.0, (1080, 1920, 3)).astype(np.float32)
    mask = rng.uniform(size=(72, 128)) < 0.01  # clipped texels here and there
    image[rng.uniform(size=image.shape[:2]) < 0.02] = 1.0
    corrected = rng.uniform(0.0, 1.0, image.shape).astype(np.float32)
    weight = _passthrough_weight(mask, image)[..., None]
    expected = (corrected + weight * (image - corrected)).astype(np.float32)
    np.copyto(expected, image, where=weight >= 1.0)
    assert 0.0 < float((weight > 0).mean()) < 0.5
    np.testing.assert_array_equal(keep_static(corrected.copy(), image, mask, display=True), expected)


@pytest.mark.parametrize("height,width", [(2160, 3840), (1081, 1283)])
def test_banded_passthrough_weight_equals_the_whole_frame_one(height, width):
    from deflicker.method.atlas.texture import clipped_amount

    rng = np.random.default_rng(7)
    image = rng.uniform(-0.02, 1.02, (height, width, 3)).astype(np.float32)
    image[: height // 8] = 0.0  # a letterbox bar: fully black pixels
    mask = rng.uniform(size=(72, 128)) < 0.2
    proxy = mask.astype(np.float32)
    weight = cv2.resize(proxy, (width, height), interpolation=cv2.INTER_LINEAR)
    ring = cv2.resize(cv2.dilate(proxy, np.ones((3, 3), np.uint8)), (width, height), interpolation=cv2.INTER_LINEAR)
    extreme = np.maximum(clipped_amount(image.max(axis=-1))[1], clipped_amount(image.min(axis=-1))[0])
    expected = np.maximum(weight, ring * extreme)
    assert len(list(row_bands(height, width))) > 1 and not np.array_equal(expected, weight)
    np.testing.assert_array_equal(_passthrough_weight(mask, image), expected)


@pytest.mark.parametrize("height,width,channels", [(2160, 3840, 3), (1081, 1283, 4)])
def test_banded_flow_proxy_equals_the_whole_frame_code_values_resized(height, width, channels):
    from deflicker.method.analysis import ClipAnalysis
    from deflicker.method.content import CODE_SCALE, code_values
    from deflicker.method.image import resize

    class Proxy:  # what flow_proxy reads of an analysis
        shape, scale = (216, 384), 1.0

    rng = np.random.default_rng(8)
    frame = rng.uniform(-0.1, 1.1, (height, width, channels)).astype(np.float32)
    expected = resize(np.multiply(code_values(frame), np.float32(1.0 / CODE_SCALE)), Proxy.shape)
    assert len(list(row_bands(height, width))) > 1
    np.testing.assert_array_equal(ClipAnalysis.flow_proxy(Proxy(), frame), expected)  # type: ignore[arg-type]


def test_scratch_frames_keep_the_largest_buffers_for_every_dtype():
    from deflicker.bands import ScratchFrames

    pool = ScratchFrames(keep=1)
    shape = (1600, 2048, 3)
    with pool.take(shape, np.int16) as ints:
        small = ints.ctypes.data
    with pool.take(shape) as floats:  # the idle int16 buffer is too small: a new one
        assert floats.ctypes.data != small
        large = floats.ctypes.data
    with pool.take(shape, np.int16) as again, pool.take(shape, np.int16) as other:
        assert again.ctypes.data == large and other.ctypes.data != large  # only the largest stayed
        assert not np.shares_memory(again, other)


@pytest.mark.parametrize("height,width", [(1080, 1920), (1081, 1283)])
def test_banded_fill_clipped_equals_the_whole_frame_fill(height, width):
    from deflicker.method.correction import IDENTITY, _band_colour_bound, _fill_band, colour_bound, fill_clipped

    rng = np.random.default_rng(9)
    image = rng.uniform(-0.05, 1.05, (height, width, 3)).astype(np.float32).clip(0.0, 1.0)  # clipped both ends
    corrected = rng.uniform(0.0, 1.0, image.shape).astype(np.float32)
    guide = rng.uniform(0.0, 1.0, (72, 128, 3)).astype(np.float32)
    bound = (IDENTITY + 0.1 * rng.standard_normal(12)).astype(np.float32)
    expected = corrected.copy()
    up = cv2.resize(guide, (width, height), interpolation=cv2.INTER_LINEAR)
    under = colour_bound(image, bound, 0.8)
    _fill_band(expected, image, up, 0.8, under)  # the whole frame as one band
    assert len(list(row_bands(height, width))) > 1  # really banded
    for rows in row_bands(height, width):  # cv2.transform's scalar tail at a band's end included
        np.testing.assert_array_equal(_band_colour_bound(image, rows, bound, 0.8), under[rows])
    assert not np.array_equal(expected, corrected)
    np.testing.assert_array_equal(fill_clipped(corrected, image, guide, strength=0.8, bound=bound), expected)
