"""Shared pieces of the benchmarks: peak-memory sampling, size parsing, tables, atomic text output.

Peak memory is the process's resident set size sampled by a background thread (reading
``/proc/self/statm``), so it sees torch, OpenCV and numpy allocations alike; ``tracemalloc``
would see only Python's own. Figures are the peak minus the baseline taken on entry.
"""
from __future__ import annotations

import gc
import json
import math
import os
import resource
import threading
import time
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from deflicker.errors import InvalidSettingsError
from deflicker.heap import return_free_heap
from deflicker.io.atomic import replaced_on_success
from deflicker.settings import NAMED_SIZES

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes(pid: Optional[int] = None) -> int:
    """Resident set size in bytes: of this process, or the private (non-shared) part of process ``pid``."""
    try:
        with open(f"/proc/{pid or 'self'}/statm", "rb") as fh:
            fields = fh.read().split()
        return (int(fields[1]) - (int(fields[2]) if pid else 0)) * _PAGE
    except (OSError, ValueError, IndexError):
        if pid:  # gone (or not Linux): nothing more to see
            return 0
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux: the lifetime peak


class PeakMemory:
    """Context manager sampling RSS every ``interval`` seconds; ``peak_mb`` is above the entry baseline.

    With ``pid``, samples another process's private resident memory (baseline 0) until it exits.
    """

    def __init__(self, interval: float = 0.005, *, pid: Optional[int] = None):
        self.interval = interval
        self.pid = pid
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __enter__(self) -> "PeakMemory":
        self.baseline = 0 if self.pid else rss_bytes()
        self.peak = max(self.baseline, rss_bytes(self.pid))
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, name="bench-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    @property
    def peak_mb(self) -> float:
        """Peak RSS above the baseline, MiB."""
        return (self.peak - self.baseline) / 2**20

    @property
    def absolute_mb(self) -> float:
        """Peak RSS of the whole process, MiB."""
        return self.peak / 2**20


def release_free_memory() -> None:
    """Collect garbage and hand freed heap back to the OS (glibc), so the next baseline is honest."""
    gc.collect()
    return_free_heap()


class Measured:
    """Wall-clock seconds and peak memory of a block: ``with Measured() as m: ...``.

    Freed memory is returned to the OS first, so memory the block reuses from earlier work
    still shows in its peak.
    """

    def __enter__(self) -> "Measured":
        release_free_memory()
        self.memory = PeakMemory().__enter__()
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        self.memory.__exit__(*exc)


def size_label(size: tuple[int, int]) -> str:
    """(height, width) -> its name ('1080p', '4k') or 'WxH'."""
    for name, value in NAMED_SIZES.items():
        if value == tuple(size) and name not in ("2k", "uhd"):
            return name
    return f"{size[1]}x{size[0]}"


def parse_int_list(text: str, what: str, *, minimum: int = 1) -> list[int]:
    """'100,1000' -> [100, 1000]; InvalidSettingsError naming ``what`` otherwise."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidSettingsError(f"{what} must be comma-separated integers, not {text!r}") from None
    if not values or min(values) < minimum:
        raise InvalidSettingsError(f"{what} must be integers >= {minimum}, not {text!r}")
    return values


def fmt(value: Any, spec: str = ".4g") -> str:
    """A table cell: numbers with the format ``spec``, inf/nan spelled out, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf"
        return format(float(value), spec)
    return str(value)


def _cells(rows: Sequence[Sequence[Any]], formats: Optional[Sequence[str]]) -> list[list[str]]:
    return [[fmt(c, formats[i] if formats and i < len(formats) and formats[i] else ".4g") for i, c in enumerate(row)]
            for row in rows]


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], formats: Optional[Sequence[str]] = None) -> str:
    """A plain-text table: first column left-aligned, the others right-aligned; ``formats`` per column."""
    cells = _cells(rows, formats)
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(items: Sequence[str]) -> str:
        return "  ".join(s.ljust(w) if i == 0 else s.rjust(w) for i, (s, w) in enumerate(zip(items, widths))).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
                   formats: Optional[Sequence[str]] = None) -> str:
    """The same table as GitHub Markdown."""
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in _cells(rows, formats)]
    return "\n".join(out)


def jsonable(value: Any) -> Any:
    """Replace inf/nan floats (not valid JSON) by None, recursively."""
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_text(path: Union[str, Path], text: str) -> Path:
    """Write a text file atomically (temp file beside it, then rename)."""
    path = Path(path)
    with replaced_on_success(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Union[str, Path], data: Any) -> Path:
    """Write ``data`` as indented JSON (inf/nan as null), atomically."""
    return write_text(path, json.dumps(jsonable(data), indent=2, sort_keys=False) + "\n")
