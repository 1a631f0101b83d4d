"""Each error a user can cause comes out as its documented exit code with one line on stderr, and
the engine's errors can be caught as the builtins they also are.

Every case is a real failure (a missing file, a bad setting, absent CUDA, unreadable weights), run
through the ``deflicker`` command line in process or through the engine API.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import deflicker
from deflicker import Engine, Settings, errors
from deflicker.cli.main import main
from deflicker.io.files import write_clip
from deflicker.settings import FilterSettings

from _clips import flicker_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, frames = flicker_clip(4, 32, 48, seed=3)
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mkv", list(frames), fps=24.0)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    """Exit code and the stderr lines of one in-process ``deflicker`` call."""
    code = main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("case, code, words", [
    ("missing input", 3, "no such file"),
    ("bad setting", 2, "strength"),
    ("unknown output type", 3, "unknown output type"),
])
def test_user_errors_exit_with_their_code_and_one_line(clip, tmp_path, capsys, case, code, words):
    argv = {"missing input": ["run", str(tmp_path / "gone.mkv"), "-o", str(tmp_path / "a.mkv")],
            "bad setting": ["run", str(clip), "-o", str(tmp_path / "b.mkv"), "--strength", "7"],
            "unknown output type": ["run", str(clip), "-o", str(tmp_path / "c.xyz")]}[case]
    got, lines = run_cli(capsys, *argv)
    assert got == code and len(lines) == 1 and lines[0].startswith("deflicker: error: "), lines
    assert words in lines[0], lines
    assert not list(tmp_path.glob("[abc].*")), "a refused run left an output"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_exits_5(clip, tmp_path, capsys):
    got, lines = run_cli(capsys, "run", str(clip), "-o", str(tmp_path / "d.mkv"), "--device", "cuda")
    assert got == 5 and len(lines) == 1 and "CUDA" in lines[0], lines


def test_unreadable_weights_are_a_model_error_caught_as_such(clip, tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a torch file")
    with Engine(Settings(filter=FilterSettings(weights=str(bad)))).open(str(clip)) as session:
        with pytest.raises(errors.ModelLoadError, match="cannot load filter weights") as caught:
            session.render(0)
    assert caught.value.exit_code == 4 and isinstance(caught.value, deflicker.DeflickerError)
    assert not isinstance(caught.value, (OSError, ValueError))  # no caller's file or value handler takes it


def test_engine_errors_are_also_their_builtins(tmp_path):
    with pytest.raises(OSError):  # VideoIOError, for a caller that only knows OSError
        Engine().open(str(tmp_path / "gone.mkv"))
    with pytest.raises(ValueError):  # InvalidSettingsError
        Settings(strength=7.0)
    for name in errors.__all__:  # the package exports the same classes
        assert getattr(deflicker, name) is getattr(errors, name)
