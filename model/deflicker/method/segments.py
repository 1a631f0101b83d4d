"""The fixed grid of segments a long clip is analysed in, and how their renders blend.

A clip of ``n`` frames with ``segment_frames`` S (:class:`~deflicker.settings.AnalysisSettings`)
is cut at every multiple of S; the last segment keeps the remainder, so every segment holds S
to 2S - 1 frames, and a clip of fewer than 2S frames (or S = 0) is one segment: the whole clip,
analysed as it always was. The grid depends on ``n`` and S only, never on which frame a host
asks for first, so every process finds the same segments (and their cache entries).

Each segment is analysed on its frames plus SEGMENT_OVERLAP frames on each side (its *span*),
and renders any frame of its span. Around a cut between two segments, the BLEND_FRAMES frames
that both spans hold render with both analyses, the correction crossfading linearly from the
first segment's to the second's; every other frame renders with its own segment alone.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Frames each segment's analysis reaches past its own on each side.
SEGMENT_OVERLAP = 12
#: Frames over which the render crossfades from one segment's correction to the next one's.
BLEND_FRAMES = 2 * SEGMENT_OVERLAP


@dataclass(frozen=True)
class Segment:
    """Segment ``index`` owns frames [start, end) and is analysed on its span [first, stop)."""

    index: int
    start: int
    end: int
    first: int
    stop: int

    def __len__(self) -> int:
        """Frames in its span."""
        return self.stop - self.first


def segment_grid(frame_count: int, segment_frames: int) -> tuple[Segment, ...]:
    """The clip's segments in order (module doc)."""
    n, size = frame_count, segment_frames
    if size <= 0 or n < 2 * size:
        return (Segment(0, 0, n, 0, n),)
    cuts = [k * size for k in range(n // size)] + [n]
    return tuple(Segment(k, a, b, max(0, a - SEGMENT_OVERLAP), min(n, b + SEGMENT_OVERLAP))
                 for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:])))


def blend(grid: tuple[Segment, ...], t: int) -> list[tuple[Segment, float]]:
    """The segments frame t renders with and their weights (summing to 1): its own segment, or
    near a cut both neighbours, the later one's weight rising by 1 / (BLEND_FRAMES + 1) a frame."""
    for before, after in zip(grid[:-1], grid[1:]):
        low = after.start - SEGMENT_OVERLAP
        if low <= t < after.start + SEGMENT_OVERLAP:
            w = (t - low + 1) / (BLEND_FRAMES + 1)
            return [(before, 1.0 - w), (after, w)]
    return [next((s, 1.0) for s in grid if s.start <= t < s.end)]


def spans_for(grid: tuple[Segment, ...], t: int) -> list[tuple[int, int]]:
    """The [first, last] frame ranges (inclusive) of the spans frame t needs analysed, merged."""
    ranges: list[tuple[int, int]] = []
    for segment, _ in blend(grid, t):
        if ranges and segment.first <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], segment.stop - 1))
        else:
            ranges.append((segment.first, segment.stop - 1))
    return ranges


def merge_ranges(frames: list[int]) -> list[tuple[int, int]]:
    """Sorted frame indices as [first, last] ranges (inclusive) of consecutive frames."""
    ranges: list[tuple[int, int]] = []
    for i in sorted(set(frames)):
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges
