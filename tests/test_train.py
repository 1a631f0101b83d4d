"""train-filter: a tiny run writes loadable weights and a complete recipe, deterministically."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deflicker.train import degrade
from deflicker.cli.main import main
from deflicker.errors import InvalidSettingsError
from deflicker.method.filter import load_filter
from deflicker.settings import FilterSettings
from deflicker.train.trainer import TrainConfig, random_crop, train_filter
from deflicker.train.data import SKIMAGE_TRAIN, SKIMAGE_VAL, procedural_image, training_images

TINY = TrainConfig(steps=2, batch=2, crop=48, threads=1, width=4, log_every=1)


def test_tiny_training_writes_loadable_weights_and_recipe(tmp_path):
    recipe = train_filter(TINY, tmp_path / "a")
    model = load_filter(FilterSettings(weights=str(tmp_path / "a" / "filter.pt")))
    assert model.config["width"] == 4 and not model.training
    saved = json.loads((tmp_path / "a" / "filter.json").read_text())
    for key in ("config", "train_images", "validation_images", "degradations", "loss_curve", "final", "wall_time_s"):
        assert key in saved
    assert len(saved["loss_curve"]) == 2 and saved["config"]["seed"] == 0
    assert not set(saved["train_images"]) & set(saved["validation_images"])
    assert recipe["final"]["loss"] == saved["final"]["loss"]
    again = train_filter(TINY, tmp_path / "b")  # deterministic given the seed
    a = torch.load(tmp_path / "a" / "filter.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "filter.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert recipe["loss_curve"] == again["loss_curve"]


def test_cli_train_filter_runs(tmp_path, capsys):
    code = main(["train-filter", "--steps", "1", "--batch", "1", "--crop", "32", "--threads", "1", "--out", str(tmp_path)])
    assert code == 0 and (tmp_path / "filter.pt").exists()
    assert "validation PSNR" in capsys.readouterr().out
    assert main(["train-filter", "--steps", "0", "--out", str(tmp_path)]) == InvalidSettingsError.exit_code


def test_data_excludes_held_out_and_degradations_behave():
    images, names = training_images(0)
    assert len(images) == len(names) >= 30 and not set(SKIMAGE_VAL) & set(SKIMAGE_TRAIN)
    rng = np.random.default_rng(0)
    x = random_crop(images, 64, rng)
    assert x.shape == (64, 64, 3) and 0.0 <= x.min() and x.max() <= 1.0 + 1e-5
    guide, conf = degrade.structure(x, rng)
    assert guide.shape == x.shape and conf.shape == x.shape[:2] and 0 <= conf.min() and conf.max() <= 1
    changed = [np.abs(degrade.appearance(x, rng) - x).mean() for _ in range(10)]
    assert np.median(changed) > 0.02
    assert procedural_image(np.random.default_rng(1)).shape == (192, 192, 3)


def test_an_output_folder_that_refuses_files_is_refused_before_training(capsys):
    assert main(["train-filter", "--steps", "1", "--out", "/proc/deflicker-weights"]) == 3
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("deflicker: error: cannot write /proc/deflicker-weights")


def test_bad_config_is_rejected(tmp_path):
    with pytest.raises(InvalidSettingsError):
        train_filter(TrainConfig(steps=0), tmp_path)
