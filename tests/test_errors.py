"""Every error class is a DeflickerError, also its builtin, and carries its documented exit code."""
from __future__ import annotations

import pytest

from deflicker import errors

EXPECTED = {  # class name -> (builtin it also is, exit code)
    "DeflickerError": (Exception, 1),
    "InvalidSettingsError": (ValueError, 2),
    "VideoIOError": (OSError, 3),
    "ModelLoadError": (Exception, 4),
    "DeviceError": (RuntimeError, 5),
    "Cancelled": (Exception, 130),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bases_and_exit_codes(name):
    cls = getattr(errors, name)
    builtin, code = EXPECTED[name]
    assert issubclass(cls, errors.DeflickerError)
    assert issubclass(cls, builtin)
    assert cls.exit_code == code
    with pytest.raises(builtin, match="one line"):
        raise cls("one line")


def test_every_exported_error_is_covered_with_a_distinct_code():
    assert set(errors.__all__) == set(EXPECTED)
    assert len({getattr(errors, name).exit_code for name in errors.__all__}) == len(EXPECTED)


def test_cancelled_and_model_errors_are_not_caught_as_io_or_value_errors():
    assert not issubclass(errors.Cancelled, (OSError, ValueError, RuntimeError))
    assert not issubclass(errors.ModelLoadError, (OSError, ValueError))


def test_package_reexports_the_same_classes():
    import deflicker

    for name in EXPECTED:
        assert getattr(deflicker, name) is getattr(errors, name)
