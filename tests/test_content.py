"""Content identity (deflicker.method.content): the same media gives the same code values and
digests from any source format (8-bit RGB file, a host's float RGBA, 16-bit RGB), and other
content gives other digests."""
from __future__ import annotations

import numpy as np
import pytest

from deflicker.io.clip import to_float
from deflicker.method.content import ContentDigests, ContentMismatch, code_values, content_digest
from tests._clips import flicker_clip, host_frames

SHAPE = (24, 32)  # a proxy of the 48x64 frames


@pytest.fixture(scope="module")
def codes() -> np.ndarray:
    """A frame of 8-bit content, (48, 64, 3) uint8."""
    frame = flicker_clip(1, 48, 64, seed=2)[1][0]
    return np.rint(np.clip(frame, 0, 1) * 255).astype(np.uint8)


def formats(codes: np.ndarray) -> dict[str, np.ndarray]:
    """The same 8-bit content as each source hands it over, float32 in clip units."""
    wide = codes.astype(np.uint16) * 257  # 16-bit RGB, widened exactly
    return {
        "8-bit RGB file": to_float(codes),
        "host float RGBA": host_frames(codes[None])[0],
        "16-bit RGB": to_float(wide),
        "16-bit RGBA": to_float(np.concatenate([wide, np.full((*codes.shape[:2], 1), 65535, np.uint16)], -1)),
        "half float RGBA": host_frames(codes[None])[0].astype(np.float16).astype(np.float32),
    }


def test_code_values_are_the_same_from_every_format(codes):
    for name, frame in formats(codes).items():
        got = code_values(frame)
        assert got.shape == codes.shape, name
        assert np.array_equal(got, codes), f"{name}: {int((got != codes).sum())} code values differ"


def test_a_half_float_host_hands_other_bits_and_proxies(codes):
    """Why digests are of code values: a host's half-float frames differ from the file's in the
    last bits, and so do their analysis proxies (the old digests)."""
    from deflicker.method.image import to_proxy

    got = formats(codes)
    assert not np.array_equal(got["half float RGBA"][..., :3], got["8-bit RGB file"])
    half, exact = (to_proxy(got[k], 32).astype(np.float16) for k in ("half float RGBA", "8-bit RGB file"))
    assert not np.array_equal(half, exact)


def test_content_digest_is_the_same_from_every_format(codes):
    digests = {name: content_digest(frame, SHAPE).tobytes() for name, frame in formats(codes).items()}
    assert len(set(digests.values())) == 1, digests


def test_other_content_has_another_digest(codes):
    frame = to_float(codes)
    base = content_digest(frame, SHAPE)
    one_code = frame.copy()
    one_code[:2, :2, 1] += np.float32(1 / 255)  # one code value up in a 2x2 block: one proxy pixel
    highlight = frame.copy()
    highlight[..., 0] *= 4.0  # float HDR: values above 1.0 are kept, not clipped
    brighter = highlight.copy()
    brighter[:, :32, 0] *= 1.5
    others = [content_digest(f, SHAPE) for f in (one_code, highlight, brighter)]
    assert len({base.tobytes(), *(d.tobytes() for d in others)}) == 4
    alpha = np.concatenate([frame, np.zeros((*frame.shape[:2], 1), np.float32)], -1)
    assert np.array_equal(content_digest(alpha, SHAPE), base)  # alpha is not part of the content


def test_code_values_round_half_to_even_and_keep_values_beyond_one():
    frame = np.array([[[0.5, 1.5, 2.5], [-3.0, 300.0, 1e9]]], np.float32) / np.float32(255)
    assert code_values(frame).tolist() == [[[0, 2, 2], [-3, 300, 32767]]]


def test_check_accepts_every_format_and_refuses_other_content(codes):
    frames = formats(codes)
    digests = ContentDigests(content_digest(frames["8-bit RGB file"], SHAPE)[None], SHAPE)
    for frame in frames.values():
        digests.check(0, frame)
    with pytest.raises(ContentMismatch):
        digests.check(0, frames["8-bit RGB file"] * np.float32(0.9))
