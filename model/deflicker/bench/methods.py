"""Methods the quality benchmark scores, plugged in by name.

:data:`METHODS` maps a name to ``callable(clip, context) -> (N, H, W, 3) float32 frames``.
``raw`` is the flickering input, ``clean`` the clean clip (its Ewarp is the floor), ``look``
the flicker-free processed look of a processed clip (:func:`deflicker.synth.clips.flicker_free_look`;
a method returns None where it does not apply), ``ffmpeg``
is ffmpeg's ``deflicker`` filter run by a real ffmpeg process, and the engine methods render
one :data:`deflicker.method.frame_render.STAGES` stage each from one shared analysis per clip.
Add a method with :func:`register_method`.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import numpy as np

from deflicker.bench.common import Measured, PeakMemory
from deflicker.errors import Cancelled, InvalidSettingsError, VideoIOError
from deflicker.settings import Settings

if TYPE_CHECKING:
    from deflicker.engine import Session
    from deflicker.synth.clips import SynthClip

log = logging.getLogger(__name__)

#: ffmpeg's deflicker over its default 5-frame window with the power mean of the luma. On the
#: synthetic set (128x96, 24 frames) am and pm score within 1% of each other in mean Ewarp,
#: median 17% worse, a 10-frame window 4% better (``--ffmpeg-filter`` picks another), and a
#: 15-frame window darkens the clips badly (ffmpeg 5.1).
#: Run on 16-bit RGB pipes, so quantization stays far below the metrics.
FFMPEG_FILTER = "deflicker=size=5:mode=pm"

T = TypeVar("T")
MethodFn = Callable[["SynthClip", "BenchContext"], Optional[np.ndarray]]
METHODS: dict[str, MethodFn] = {}
#: Methods rendered by the engine: they share one analysis per clip (timed separately).
ENGINE_METHODS: set[str] = set()
#: Rows that are references rather than deflickerers (shown marked in tables).
REFERENCES = {"raw": "input", "clean": "floor", "look": "flicker-free look"}


@dataclass
class AnalysisStats:
    """Cost of one clip's engine analysis, charged to every engine method on that clip."""

    seconds: float = 0.0
    peak_mb: float = 0.0
    error: Optional[str] = None


@dataclass
class BenchContext:
    """What methods share during one benchmark run: engine settings, cache, ffmpeg options."""

    settings: Settings = field(default_factory=Settings)
    cache_dir: Optional[Path] = None
    ffmpeg_filter: str = FFMPEG_FILTER
    _engine: Any = None
    _sessions: dict[str, "Session"] = field(default_factory=dict)
    analysis: dict[str, AnalysisStats] = field(default_factory=dict)
    #: Peak memory (MiB) of helper processes a method ran (ffmpeg); the runner reads and resets it.
    child_peak_mb: float = 0.0

    def engine(self) -> Any:
        """The engine (created on first use, with this run's cache folder)."""
        if self._engine is None:
            from deflicker.engine import Engine

            self._engine = Engine(self.settings, cache_dir=self.cache_dir)
        return self._engine

    def prepare(self, clip: "SynthClip") -> AnalysisStats:
        """Analyse the clip once (measured); later calls return the recorded cost or error."""
        stats = self.analysis.get(clip.name)
        if stats is not None:
            return stats
        from deflicker.io.source import ArraySource

        stats = AnalysisStats()
        try:
            with Measured() as m:
                session = self.engine().open(ArraySource(clip.flickering, fps=clip.fps))
                session.analyze()
            self._sessions[clip.name] = session
            stats.seconds, stats.peak_mb = m.seconds, m.memory.peak_mb
        except Cancelled:
            raise
        except Exception as exc:  # noqa: BLE001 - the bench reports a broken method, it does not stop
            log.debug("analysis of %s failed", clip.name, exc_info=True)
            stats.error = f"analysis failed: {type(exc).__name__}: {exc}"
        self.analysis[clip.name] = stats
        return stats

    def session(self, clip: "SynthClip") -> "Session":
        """The analysed session of a clip (analysing it if needed)."""
        stats = self.prepare(clip)
        if stats.error:
            raise RuntimeError(stats.error)
        return self._sessions[clip.name]

    def release(self, clip: "SynthClip") -> None:
        """Drop the clip's session (its analysis stays in the cache folder)."""
        session = self._sessions.pop(clip.name, None)
        if session is not None:
            session.close()


def register_method(name: str, fn: MethodFn, *, engine: bool = False) -> None:
    """Add (or replace) a method; ``engine`` marks it as needing the clip's analysis."""
    METHODS[name] = fn
    if engine:
        ENGINE_METHODS.add(name)
    else:
        ENGINE_METHODS.discard(name)


def engine_status() -> Optional[str]:
    """None when the engine's modules import, else why not (one line)."""
    try:
        import deflicker.method.analysis  # noqa: F401
        import deflicker.method.segment_analysis  # noqa: F401
        import deflicker.engine  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def resolve_methods(spec: Optional[str]) -> list[str]:
    """Method names from '--methods a,b' (unknown names: InvalidSettingsError), or every available one."""
    if spec:
        names = [n.strip() for n in spec.split(",") if n.strip()]
        unknown = [n for n in names if n not in METHODS]
        if unknown or not names:
            raise InvalidSettingsError(f"unknown bench method {', '.join(unknown) or repr(spec)} "
                                       f"(known: {', '.join(METHODS)})")
        return list(dict.fromkeys(names))
    names = list(METHODS)
    reason = engine_status()
    if reason:
        log.warning("engine methods skipped (%s)", reason)
        names = [n for n in names if n not in ENGINE_METHODS]
    if shutil.which("ffmpeg") is None:
        log.warning("ffmpeg method skipped: no ffmpeg on PATH")
        names = [n for n in names if n != "ffmpeg"]
    return names


def _raw(clip: "SynthClip", context: BenchContext) -> np.ndarray:
    return clip.flickering


def _clean(clip: "SynthClip", context: BenchContext) -> np.ndarray:
    return clip.clean


def _look(clip: "SynthClip", context: BenchContext) -> Optional[np.ndarray]:
    from deflicker.synth.clips import flicker_free_look

    return flicker_free_look(clip)


def ffmpeg_command(width: int, height: int, vf: str, *, fps: float = 24.0) -> list[str]:
    """ffmpeg reading rgb48le frames on stdin, filtering with ``vf``, writing rgb48le on stdout."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise VideoIOError("ffmpeg is not installed (apt-get install ffmpeg)")
    return [exe, "-nostdin", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb48le", "-s", f"{width}x{height}",
            "-r", f"{fps:g}", "-i", "pipe:0", "-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb48le", "pipe:1"]


def to_rgb48(frames: np.ndarray) -> bytes:
    """Frames (..., 3+) in [0, 1] as little-endian 16-bit RGB bytes (clipped to [0, 1]), quantized
    like the 16-bit file writers."""
    from deflicker.io.clip import quantize

    return quantize(frames[..., :3], 16).astype("<u2").tobytes()


def _run_piped(cmd: list[str], data: bytes) -> tuple[int, bytes, str, float]:
    """(exit code, stdout, stderr, the child's peak private RSS in MiB) of ``cmd`` fed ``data``."""
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with PeakMemory(0.002, pid=proc.pid) as mem:
            out, err = proc.communicate(data)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, out, err.decode(errors="replace"), mem.peak_mb


def run_ffmpeg_filter(frames: np.ndarray, vf: str, *, fps: float = 24.0,
                      context: Optional["BenchContext"] = None) -> np.ndarray:
    """Run frames (N, H, W, 3) in [0, 1] through ``ffmpeg -vf vf`` on 16-bit RGB pipes.

    Values outside [0, 1] are clipped on the way in (rgb48 cannot hold them). ffmpeg's own
    peak memory is added to ``context.child_peak_mb`` when a context is given.
    """
    n, h, w, _ = frames.shape
    code, stdout, stderr, peak_mb = _run_piped(ffmpeg_command(w, h, vf, fps=fps), to_rgb48(frames))
    if context is not None:
        context.child_peak_mb += peak_mb
    if code != 0:
        message = stderr.strip().splitlines()
        raise VideoIOError(f"ffmpeg -vf {vf} failed: {message[-1] if message else code}")
    out = np.frombuffer(stdout, dtype="<u2")
    if out.size != n * h * w * 3:
        raise VideoIOError(f"ffmpeg -vf {vf} returned {out.size // max(1, h * w * 3)} frames, expected {n}")
    return out.reshape(n, h, w, 3).astype(np.float32) / np.float32(65535.0)


def _ffmpeg(clip: "SynthClip", context: BenchContext) -> np.ndarray:
    return run_ffmpeg_filter(clip.flickering, context.ffmpeg_filter, fps=clip.fps, context=context)


def engine_method(stage: str) -> MethodFn:
    """A method rendering ``stage`` of the engine for every frame of the clip."""

    def render(clip: "SynthClip", context: BenchContext) -> np.ndarray:
        session = context.session(clip)
        return np.stack([session.render(t, stage=stage)[..., :3] for t in range(len(session))])

    render.__name__ = f"engine_{stage.replace('-', '_')}"
    return render


register_method("raw", _raw)
register_method("clean", _clean)
register_method("look", _look)
register_method("ffmpeg", _ffmpeg)
for _stage in ("atlas", "filter", "refine-only", "full"):
    register_method(_stage, engine_method(_stage), engine=True)


def timed(fn: Callable[[], T]) -> tuple[T, float, float]:
    """(result, seconds, peak MiB above baseline) of ``fn()``."""
    with Measured() as m:
        out = fn()
    return out, m.seconds, m.memory.peak_mb


__all__ = ["METHODS", "ENGINE_METHODS", "REFERENCES", "BenchContext", "register_method", "resolve_methods",
           "run_ffmpeg_filter", "engine_status", "timed"]
