"""Deflicker in DaVinci Resolve's script menu: analyse ahead of time, reanalyze, render.

Resolve's scripting API cannot read an OFX node's parameters, but it can list the tools of each
Color-page node (``Graph.GetToolsInNode``), which is how the timeline items that carry the
Deflicker effect are found. Each such item is analysed straight from its media file, over the
source frames the item uses, through the same ``deflicker.Engine`` and on-disk cache as the
plugin, so the Deliver page's render only reads the cache. Commands (``main``):

    list                     the Deflicker items of the current timeline (media file, source frames)
    analyse                  analyse every Deflicker item not analysed yet
    reanalyze-current        analyse again (force) the Deflicker item under the playhead
    reanalyze NAME...        analyse again the Deflicker items with these names
    render                   analyse what is missing, then add a render job, start it and follow it

Progress goes to Resolve's console (Workspace > Console).
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, cast

if TYPE_CHECKING:
    from fusionscript import Project, RenderSettings, Resolve, Timeline, TimelineItem

    from deflicker import Engine

#: The effect's label as the node graph lists it (LABEL in deflicker.server.plugin_spec). Matched whole
#: (case and surrounding spaces aside): Resolve Studio has a built-in ResolveFX "Deflicker" of its own.
EFFECT_LABEL = "Atlas Deflicker"
#: Resolve's render job states (GetRenderJobStatus()["JobStatus"]) that end a job.
FINAL_STATES = ("Complete", "Failed", "Cancelled")
#: How long a started render job may stay queued ("Ready") before the script gives up on it.
START_TIMEOUT_S = 120.0

Report = Callable[[str], None]


class ResolveScriptError(Exception):
    """A one-line reason the script stopped."""


@dataclass(frozen=True)
class DeflickerClip:
    """A timeline item with the Deflicker effect, and the media frames it shows."""

    item: "TimelineItem"
    name: str
    track: int
    path: str
    start: int  # first source frame in the media file
    end: int  # one past the last source frame

    def describe(self) -> str:
        return f"V{self.track} {self.name} ({self.path} frames {self.start}-{self.end - 1})"


def get_resolve(namespace: Optional[Mapping[str, Any]] = None) -> "Resolve":
    """The running Resolve: the ``resolve`` global of a menu script, else DaVinciResolveScript's."""
    namespace = namespace or {}
    if namespace.get("resolve") is not None:
        return cast("Resolve", namespace["resolve"])
    if namespace.get("bmd") is not None:
        found = namespace["bmd"].scriptapp("Resolve")
        if found is not None:
            return cast("Resolve", found)
    try:
        import DaVinciResolveScript  # type: ignore[import-not-found]
    except ImportError:
        raise ResolveScriptError("cannot reach Resolve: run this from Workspace > Scripts, or set RESOLVE_SCRIPT_API "
                                 "and add its Modules folder to PYTHONPATH") from None
    found = DaVinciResolveScript.scriptapp("Resolve")
    if found is None:
        raise ResolveScriptError("Resolve is not running, or external scripting is off "
                                 "(Preferences > System > General > External scripting using: Local)")
    return cast("Resolve", found)


def has_deflicker(item: "TimelineItem") -> bool:
    """True when one of the item's Color-page nodes holds the Deflicker effect."""
    # Without an argument Resolve returns the first layer's graph; an explicit None is refused there
    # (the stubs mark the argument required, Resolve's documentation optional).
    graph = item.GetNodeGraph()  # type: ignore[call-arg]
    if not graph:
        return False
    wanted = EFFECT_LABEL.casefold()
    for node in range(1, graph.GetNumNodes() + 1):
        if any(str(tool).strip().casefold() == wanted for tool in graph.GetToolsInNode(node) or []):
            return True
    return False


def as_clip(item: "TimelineItem", track: int) -> Optional[DeflickerClip]:
    """The item as a DeflickerClip when it has the effect and a media file; else None."""
    if not has_deflicker(item):
        return None
    media = item.GetMediaPoolItem()
    path = str(media.GetClipProperty("File Path")) if media else ""
    if not path:
        return None  # generators, titles, compound clips: no media file to read
    start, end = int(item.GetSourceStartFrame()), int(item.GetSourceEndFrame())
    if end - start == int(item.GetDuration(False)) - 1:
        end += 1  # tolerate an inclusive end (Resolve documents neither); ends are exclusive like GetEnd's
    return DeflickerClip(item=item, name=item.GetName(), track=track, path=path, start=start, end=max(start + 1, end))


def deflicker_clips(timeline: "Timeline") -> list[DeflickerClip]:
    """Every Deflicker item of the timeline's video tracks, in track then time order."""
    out = []
    for track in range(1, timeline.GetTrackCount("video") + 1):
        for item in timeline.GetItemListInTrack("video", track) or []:
            clip = as_clip(item, track)
            if clip is not None:
                out.append(clip)
    return out


def current_timeline(resolve: "Resolve") -> tuple["Project", "Timeline"]:
    project = resolve.GetProjectManager().GetCurrentProject()
    if not project:
        raise ResolveScriptError("no project is open")
    timeline = project.GetCurrentTimeline()
    if not timeline:
        raise ResolveScriptError("the project has no current timeline")
    return project, timeline


def make_engine(analysis_size: Optional[int] = None, method: Optional[str] = None) -> "Engine":
    """The engine the plugin would use: default settings unless told otherwise, the shared cache."""
    from deflicker import Engine, Settings

    overrides: dict[str, Any] = {}
    if analysis_size is not None:
        overrides["analysis_size"] = analysis_size
    if method is not None:
        overrides["method"] = method
    return Engine(Settings(**overrides))


def progress_printer(clip: DeflickerClip, report: Report) -> Callable[[float, str], None]:
    """A progress callback that reports every 10% of one clip's analysis."""
    shown = [-1]

    def progress(fraction: float, label: str) -> None:
        step = int(fraction * 10)
        if step > shown[0]:
            shown[0] = step
            report(f"  {clip.name}: {step * 10}% {label}")

    return progress


def analyse(clips: Sequence[DeflickerClip], engine: "Engine", report: Report, *, force: bool = False,
            cancel: Optional[Callable[[], bool]] = None) -> int:
    """Analyse each clip (cached ones are skipped unless ``force``); the number that failed."""
    from deflicker.errors import DeflickerError

    failed = 0
    for clip in clips:
        try:
            with engine.open(clip.path, frame_range=(clip.start, clip.end)) as session:
                if not force and session.in_cache():
                    report(f"{clip.describe()}: already analysed")
                    continue
                report(f"{clip.describe()}: analysing")
                session.analyze(progress_printer(clip, report), cancel, force=force)
                report(f"{clip.name}: analysed")
        except DeflickerError as e:
            failed += 1
            report(f"{clip.name}: failed: {e}")
    return failed


def wait_for_start(project: "Project", job: str, *, poll_s: float, sleep: Callable[[float], None],
                   timeout_s: float) -> tuple[str, Mapping[str, Any]]:
    """The job's first status once Resolve has taken it up (StartRendering returns before it does)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = cast(Mapping[str, Any], project.GetRenderJobStatus(job))
        state = str(status.get("JobStatus", ""))
        if state in FINAL_STATES or (state not in ("", "Ready") and project.IsRenderingInProgress()):
            return state, status
        if time.monotonic() >= deadline:
            raise ResolveScriptError(f"render job {job} did not start within {timeout_s:g} s (status {state or 'none'})")
        sleep(poll_s)


def render(project: "Project", report: Report, *, target_dir: Optional[str] = None, poll_s: float = 1.0,
           sleep: Callable[[float], None] = time.sleep, start_timeout_s: float = START_TIMEOUT_S) -> None:
    """Add a render job of the current timeline with the Deliver page's settings, start it, follow it."""
    if target_dir:
        project.SetRenderSettings(cast("RenderSettings", {"TargetDir": target_dir}))  # the stub's TypedDict is total
    job = project.AddRenderJob()
    if not job:
        raise ResolveScriptError("Resolve refused to add a render job: set a location and format on the Deliver page")
    # Positional: Resolve's scripting bridge takes no keyword arguments.
    if not project.StartRendering([job], False):
        raise ResolveScriptError(f"Resolve did not start render job {job}")
    report(f"render job {job} started")
    state, status = wait_for_start(project, job, poll_s=poll_s, sleep=sleep, timeout_s=start_timeout_s)
    shown = -1
    while True:
        percent = int(status.get("CompletionPercentage", 0) or 0)
        if percent != shown:
            shown = percent
            report(f"  render {percent}% {state}")
        if state in FINAL_STATES or not project.IsRenderingInProgress():
            break
        sleep(poll_s)
        status = cast(Mapping[str, Any], project.GetRenderJobStatus(job))
        state = str(status.get("JobStatus", ""))
    if state != "Complete":
        raise ResolveScriptError(f"render job {job} ended {state or 'without a status'}: {status.get('Error', '')}".rstrip(": "))
    report(f"render job {job} complete")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="deflicker_resolve", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("list", "analyse", "reanalyze-current", "reanalyze", "render"))
    parser.add_argument("names", nargs="*", help="reanalyze: names of the timeline items")
    parser.add_argument("--analysis-size", type=int, help="as the plugin's Analysis size (default: the plugin's)")
    parser.add_argument("--method", choices=("fast", "neural"), help="as the plugin's Method (default: the plugin's)")
    parser.add_argument("--target-dir", help="render: output folder (default: the Deliver page's)")
    return parser.parse_args(list(argv))


def run(args: argparse.Namespace, resolve: "Resolve", report: Report) -> int:
    """One command against a running Resolve; returns the exit status."""
    project, timeline = current_timeline(resolve)
    clips = deflicker_clips(timeline)
    if args.command == "list":
        for clip in clips:
            report(clip.describe())
        report(f"{len(clips)} Deflicker clip(s) on {timeline.GetName()}")
        return 0
    if not clips:
        report(f"no clip of {timeline.GetName()} has the Deflicker effect on a Color-page node")
        if args.command != "render":
            return 0 if args.command == "analyse" else 1
    if args.command == "reanalyze-current":
        # Each API call hands out a new proxy object: items are the same when their unique ids are.
        current = timeline.GetCurrentVideoItem()
        current_id = current.GetUniqueId() if current else None
        chosen = [c for c in clips if current_id is not None and c.item.GetUniqueId() == current_id]
        if not chosen:
            raise ResolveScriptError("the clip under the playhead has no Deflicker effect")
    elif args.command == "reanalyze":
        chosen = [c for c in clips if c.name in args.names]
        if not chosen:
            raise ResolveScriptError(f"no Deflicker clip named {', '.join(args.names) or '(none given)'}")
    else:
        chosen = clips
    engine = make_engine(args.analysis_size, args.method)
    failed = analyse(chosen, engine, report, force=args.command.startswith("reanalyze"))
    if failed:
        report(f"{failed} of {len(chosen)} clip(s) failed")
        return 1
    if args.command == "render":
        render(project, report, target_dir=args.target_dir)
    return 0


def main(argv: Optional[Sequence[str]] = None, namespace: Optional[Mapping[str, Any]] = None,
         report: Report = print) -> int:
    """Entry point of the menu scripts and of external scripting; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        from deflicker_bootstrap import use_bundle_python

        use_bundle_python()
        return run(args, get_resolve(namespace), report)
    except ResolveScriptError as e:
        report(f"Deflicker: {e}")
        return 1
    except ImportError as e:
        report(f"Deflicker: cannot load the Deflicker engine in this Python ({e})")
        return 1
    except RuntimeError as e:  # BundleError: wrong Python version for the bundle
        report(f"Deflicker: {e}")
        return 1
    except KeyboardInterrupt:
        report("Deflicker: cancelled")
        return 130


if __name__ == "__main__":
    sys.exit(main())
