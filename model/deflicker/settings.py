"""Frozen, validated settings. Defaults live here and nowhere else.

``Settings`` is what the CLI, the server and the OFX plugin build (the plugin's parameter
script names equal the top-level user-facing field names). It is made of two parts:
``AnalysisSettings`` (what changes the per-clip analysis, so its cache key) and
``RenderSettings`` (everything else). Nested groups hold the knobs of each stage.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from deflicker.errors import InvalidSettingsError

METHODS = ("fast", "neural")
DEVICES = ("auto", "cpu", "cuda")
#: The longest Keep slow changes span, frames (about 40 s at 24 fps).
MAX_KEEP_SLOW = 1000
#: Validated ranges of the numeric user-facing settings (the plugin's param ranges come from these).
STRENGTH_RANGE = (0.0, 1.0)
ANALYSIS_SIZE_RANGE = (64, 1024)
KEEP_SLOW_RANGE = (-1, MAX_KEEP_SLOW)
#: The shortest segment a long clip is analysed in (0: the whole clip in one), frames.
MIN_SEGMENT_FRAMES = 48


#: Frame sizes (height, width) that size options accept by name.
NAMED_SIZES = {"480p": (480, 854), "720p": (720, 1280), "1080p": (1080, 1920), "2k": (1080, 2048),
               "4k": (2160, 3840), "uhd": (2160, 3840)}


def parse_size(text: str, *, minimum: int = 8, named: bool = True) -> tuple[int, int]:
    """'WxH' (e.g. '128x96'), or with ``named`` a name ('1080p', '4k'), -> (height, width)."""
    key = text.strip().lower()
    if named and key in NAMED_SIZES:
        return NAMED_SIZES[key]
    match = re.match(r"^(\d+)x(\d+)$", key)
    if not match or int(match.group(1)) < minimum or int(match.group(2)) < minimum:
        names = f" or one of {', '.join(NAMED_SIZES)}" if named else ""
        raise InvalidSettingsError(f"size must be WxH (at least {minimum}x{minimum}){names}, not {text!r}")
    return int(match.group(2)), int(match.group(1))


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise InvalidSettingsError(message)


@dataclass(frozen=True)
class FlowSettings:
    """Optical flow (OpenCV DIS) on brightness-normalized proxy frames."""

    preset: str = "medium"  # DIS preset of the analysis flows: ultrafast | fast | medium
    normalize_brightness: bool = True
    fb_threshold: float = 1.0  # forward-backward consistency tolerance, proxy pixels

    def __post_init__(self) -> None:
        _require(self.preset in ("ultrafast", "fast", "medium"), f"flow preset must be ultrafast, fast or medium, not {self.preset!r}")
        _require(self.fb_threshold > 0, "flow fb_threshold must be positive")


@dataclass(frozen=True)
class AtlasSettings:
    """Per-clip atlas fit."""

    irls_passes: int = 3  # reweighted least-squares passes of the fast mapping fit (0: global motion only)
    key_gap: int = 8  # frames between keyframe pairs with a direct flow (bounds long-term drift)
    rigidity: float = 8.0  # weight of each mesh edge's rigidity term, relative to one flow point (4 bent the mesh around clipped regions)
    neural_iterations: int = 2000  # optimizer steps of the neural atlas (per shot)
    neural_width: int = 256  # hidden width of the neural atlas MLPs (paper: 256; 64 is usable on a CPU)
    neural_batch: int = 10000  # pixels sampled per neural atlas step (paper: 10,000)
    neural_learning_rate: float = 5e-4
    residual_grid: int = 8  # mesh cells on the long side of each frame's smooth mapping
    cut_threshold: float = 0.5  # shot-cut score above which frames are split into shots
    seed: int = 0

    def __post_init__(self) -> None:
        _require(0 <= self.irls_passes <= 10, "atlas irls_passes must be in [0, 10]")
        _require(self.key_gap >= 2, "atlas key_gap must be >= 2")
        _require(self.rigidity > 0, "atlas rigidity must be positive")
        _require(self.neural_iterations >= 0, "atlas neural_iterations must be >= 0")
        _require(8 <= self.neural_width <= 1024, "atlas neural_width must be in [8, 1024]")
        _require(64 <= self.neural_batch <= 1_000_000, "atlas neural_batch must be in [64, 1000000]")
        _require(0 < self.neural_learning_rate < 1, "atlas neural_learning_rate must be in (0, 1)")
        _require(2 <= self.residual_grid <= 64, "atlas residual_grid must be in [2, 64]")
        _require(self.cut_threshold > 0, "atlas cut_threshold must be positive")


@dataclass(frozen=True)
class FilterSettings:
    """Neural filter F."""

    weights: str = ""  # empty: the committed weights shipped with the package
    locality: float = 0.25  # share of F's local correction kept over the frame's global colour fit (1 = all)

    def __post_init__(self) -> None:
        _require(isinstance(self.weights, str), "filter weights must be a path string")
        _require(0.0 <= self.locality <= 1.0, "filter locality must be in [0, 1]")


@dataclass(frozen=True)
class RefineSettings:
    """Stateless local refinement L."""

    window: int = 3  # frames on each side of t
    sigma: float = 4.0  # spatial smoothness of the local correction, proxy pixels
    outlier: float = 0.1  # warped pixels differing from frame t by more (high-pass, proxy units) are ignored

    def __post_init__(self) -> None:
        _require(0 <= self.window <= 8, "refine window must be in [0, 8]")
        _require(self.sigma > 0, "refine sigma must be positive")
        _require(self.outlier > 0, "refine outlier must be positive")


@dataclass(frozen=True)
class AnalysisSettings:
    """The settings that change a clip's analysis: the one definition of that fact.

    Its fields are the settings part of the analysis cache key (with the analysis tuning
    constants, :mod:`deflicker.method.tuning`), what a session refuses to change, and what the plugin's
    clip signature holds (generated from this class by :mod:`deflicker.server.plugin_header`).
    """

    method: str = "fast"  # atlas method: fast | neural
    analysis_size: int = 256  # long side of the proxy the analysis works at, pixels
    segment_frames: int = 200  # frames of each segment a long clip is analysed in (0: whole clip; deflicker.method.segments)
    flow: FlowSettings = field(default_factory=FlowSettings)
    atlas: AtlasSettings = field(default_factory=AtlasSettings)

    def __post_init__(self) -> None:
        _require(self.method in METHODS, f"method must be one of {', '.join(METHODS)}, not {self.method!r}")
        low, high = ANALYSIS_SIZE_RANGE
        _require(low <= int(self.analysis_size) <= high,
                 f"analysis_size must be in [{low}, {high}], not {self.analysis_size}")
        _require(isinstance(self.segment_frames, int) and (self.segment_frames == 0
                                                           or self.segment_frames >= MIN_SEGMENT_FRAMES),
                 f"segment_frames must be 0 (whole clip) or at least {MIN_SEGMENT_FRAMES}, not {self.segment_frames}")

    @property
    def analysis(self) -> "AnalysisSettings":
        """These analysis settings alone (of a :class:`Settings`: its analysis part)."""
        return AnalysisSettings(**{name: getattr(self, name) for name in ANALYSIS_FIELDS})


@dataclass(frozen=True)
class RenderSettings:
    """The settings that leave the analysis as it is: they shape the rendered frames (or, for
    ``device``, say where the work runs) and may change on an analysed clip."""

    strength: float = 1.0  # 0 = input unchanged, 1 = full correction
    local_refinement: bool = True
    device: str = "auto"  # auto | cpu | cuda
    keep_slow: int = -1  # frames: colour changes slower than this are content and kept; 0 = off, -1 = auto (~1 s)
    filter: FilterSettings = field(default_factory=FilterSettings)
    refine: RefineSettings = field(default_factory=RefineSettings)

    def __post_init__(self) -> None:
        low, high = STRENGTH_RANGE
        _require(low <= float(self.strength) <= high, f"strength must be in [{low:g}, {high:g}], not {self.strength}")
        _require(self.device in DEVICES, f"device must be one of {', '.join(DEVICES)}, not {self.device!r}")
        low, high = KEEP_SLOW_RANGE
        _require(isinstance(self.keep_slow, (int, float)) and float(self.keep_slow) == int(self.keep_slow)
                 and low <= int(self.keep_slow) <= high,
                 f"keep_slow must be -1 (auto), 0 (off) or frames up to {high}, not {self.keep_slow}")

    @property
    def render(self) -> "RenderSettings":
        """These render settings alone (of a :class:`Settings`: its render part)."""
        return RenderSettings(**{name: getattr(self, name) for name in RENDER_FIELDS})


@dataclass(frozen=True)
class Settings(RenderSettings, AnalysisSettings):
    """Everything that shapes a deflicker result: the analysis settings and the render settings
    in one flat value (``Settings(method=..., strength=...)``, ``settings.strength``).

    :attr:`analysis` and :attr:`render` are its two parts; the user-facing fields (CLI options,
    OFX parameters) are :data:`USER_FIELDS`.
    """

    def __post_init__(self) -> None:
        AnalysisSettings.__post_init__(self)
        RenderSettings.__post_init__(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Settings":
        """Build settings from a (possibly nested) mapping; unknown keys are an error."""
        kwargs: dict[str, Any] = {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            _require(key in names, f"unknown setting {key!r}")
            sub = _SUBGROUPS.get(key)
            if sub is not None and isinstance(value, Mapping):
                sub_names = {f.name for f in dataclasses.fields(sub)}
                for k in value:
                    _require(k in sub_names, f"unknown setting {key}.{k}")
                value = sub(**value)
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except TypeError as exc:  # wrong types reaching a comparison
            raise InvalidSettingsError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain nested dicts (JSON-serializable)."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "Settings":
        """A copy with top-level fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def analysis_changes(self, other: "Settings") -> list[str]:
        """The analysis fields in which ``other`` differs from these settings."""
        return [name for name in ANALYSIS_FIELDS if getattr(other, name) != getattr(self, name)]


#: The Settings fields that change the analysis (those of AnalysisSettings) and all the others.
ANALYSIS_FIELDS = tuple(f.name for f in dataclasses.fields(AnalysisSettings))
RENDER_FIELDS = tuple(f.name for f in dataclasses.fields(RenderSettings))

_SUBGROUPS = {"flow": FlowSettings, "atlas": AtlasSettings, "filter": FilterSettings, "refine": RefineSettings}

#: The user-facing fields, in the order the plugin shows them.
USER_FIELDS = ("strength", "method", "local_refinement", "analysis_size", "device", "keep_slow")
