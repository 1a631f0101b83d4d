"""Neural filter F: appearance from the guide, structure from the input; committed weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deflicker.train import degrade
from deflicker.method.correction import apply_to_proxy
from deflicker.errors import DeviceError, ModelLoadError
from deflicker.method.filter import DEFAULT_WEIGHTS, NeuralFilter, load_filter, predict_coefficients
from deflicker.settings import FilterSettings
from deflicker.train.trainer import evaluate, make_sample, validation_set
from deflicker.train.data import validation_images


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a - b) ** 2)))


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    """The held-out photograph (never seen in training), (213, 320, 3) in [0, 1]."""
    return validation_images()[0][0]


@pytest.fixture(scope="module")
def committed() -> NeuralFilter:
    return load_filter()


def untrained_like(model: NeuralFilter) -> NeuralFilter:
    """Same architecture with a zero UNet head: the plain confidence-weighted local colour transfer."""
    torch.manual_seed(0)
    return NeuralFilter(**model.config).eval()


def test_untrained_filter_already_transfers_appearance(coffee):
    inp = (coffee * np.float32([0.6, 0.75, 1.1])) ** 1.3 + 0.05
    guide = np.roll(coffee, (3, -4), axis=(0, 1))
    out = apply_to_proxy(inp, predict_coefficients(NeuralFilter().eval(), inp, guide))
    assert psnr(out, coffee) > max(psnr(inp, coffee), psnr(guide, coffee)) + 4


def test_committed_weights_beat_input_guide_and_untrained_on_held_out_images(committed, coffee):
    rng = np.random.default_rng(2024)  # degradations the validation set never used
    samples = [make_sample(coffee, rng) for _ in range(3)] + validation_set()[:3]
    trained = evaluate(committed, samples)
    untrained = evaluate(untrained_like(committed), samples)
    assert trained["psnr_output"] > max(trained["psnr_input"], trained["psnr_guide"]) + 6
    assert trained["psnr_output"] > untrained["psnr_output"] + 1


def test_committed_filter_keeps_structure_and_is_deterministic(committed, coffee):
    c = predict_coefficients(committed, coffee, coffee)
    # Nothing to fix: near identity (F learned a mild contrast lift, since atlas guides are soft).
    assert psnr(apply_to_proxy(coffee, c), coffee) > 30
    rng = np.random.default_rng(3)
    inp = degrade.appearance(coffee, rng)
    guide, conf = degrade.structure(coffee, rng)
    a = predict_coefficients(committed, inp, guide, conf)
    assert a.tobytes() == predict_coefficients(committed, inp, guide, conf).tobytes()


def test_predict_coefficients_shapes(committed):
    rng = np.random.default_rng(0)
    inp = rng.random((37, 53, 3), dtype=np.float32) * 2.0  # odd size, above 1.0
    c = predict_coefficients(committed, inp, inp * 0.5)
    assert c.shape == (37, 53, 12) and c.dtype == np.float32 and np.isfinite(c).all()
    np.testing.assert_allclose(apply_to_proxy(inp, c).mean(), (inp * 0.5).mean(), rtol=0.05)


def test_bad_weights_raise_model_load_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        load_filter(FilterSettings(weights=str(tmp_path / "missing.pt")))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelLoadError) as info:
        load_filter(FilterSettings(weights=str(junk)))
    assert info.value.exit_code == 4 and "\n" not in str(info.value)
    assert DEFAULT_WEIGHTS.exists() and DEFAULT_WEIGHTS.stat().st_size < 4_000_000


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_cuda_without_cuda_is_a_device_error():
    with pytest.raises(DeviceError):
        load_filter(device="cuda")
