"""Fixtures shared by every test module."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own analysis cache directory (DEFLICKER_CACHE_DIR)."""
    path = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("DEFLICKER_CACHE_DIR", str(path))
    return path
