"""Row bands (deflicker.bands) and the banded full-resolution steps: every row once, and the
same bits as the whole-frame computation."""
import cv2
import numpy as np
import pytest

from deflicker.bands import ALIGN, band_rows, row_bands


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


@pytest.mark.parametrize("height,width", [(1080, 1920), (1500, 1283)])
def test_banded_transform_equals_the_whole_frame_bit_for_bit(height, width):
    from deflicker.method.correction import IDENTITY, apply_affine

    rng = np.random.default_rng(3)
    image = rng.uniform(-0.1, 1.1, (height, width, 3)).astype(np.float32)
    coeffs = (IDENTITY + 0.2 * rng.standard_normal((height // 15, width // 15, 12))).astype(np.float32)
    assert len(list(row_bands(height, width))) > 1  # really banded
    np.testing.assert_array_equal(apply_affine(image, coeffs, scale=1.7), _whole_frame_transform(image, coeffs, 1.7))


def test_banded_keep_static_equals_the_whole_frame_blend():
    from deflicker.method.static_regions import keep_static, passthrough_weight

    rng = np.random.default_rng(4)
    image = rng.uniform(0.0, 1.0, (1080, 1920, 3)).astype(np.float32)
    image[:140] = 0.0  # a letterbox bar
    corrected = rng.uniform(0.0, 1.0, image.shape).astype(np.float32)
    mask = np.zeros((72, 128), bool)
    mask[:9] = True
    weight = passthrough_weight(mask, image, display=True)[..., None]
    expected = (corrected + weight * (image - corrected)).astype(np.float32)
    np.copyto(expected, image, where=weight >= 1.0)
    out = keep_static(corrected.copy(), image, mask, display=True)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out[:130], image[:130])
