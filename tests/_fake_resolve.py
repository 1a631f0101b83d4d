"""An in-memory stand-in for DaVinci Resolve's scripting API (fusionscript), for the Resolve script.

Each class is named after its fusionscript class (``STUB``) and only has methods that class has
in the ``fusionscript-stubs`` package, with the stub's parameter names (tests/test_resolve_script.py
checks both against the .pyi). Behaviour follows Resolve's as documented or reported: indices are
1-based, source frame ranges end exclusive (like ``GetEnd``; ``duration`` can fake an inclusive
one), ``AddRenderJob`` returns "" without a render location, ``GetMediaPoolItem`` is None for
generators. Like the real bridge, every call that returns a timeline item hands out a new proxy
object (so only ``GetUniqueId`` tells two apart), ``GetNodeGraph(None)`` returns nothing, and
``StartRendering`` takes positional arguments only. A started job stays queued ("Ready", not in
progress) for one poll, then advances while it is polled and, when it completes, the "Deliver page"
renders each item through ``deliver`` (the test's stand-in for the plugin reading the cache).
"""
from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Optional, Union

_ids = itertools.count(1)
#: GetNodeGraph's "no argument" (Resolve returns the first layer then; an explicit None it refuses).
_FIRST_LAYER: Any = object()


class FakeGraph:
    STUB = "Graph"

    def __init__(self, nodes: list[list[str]]):
        self.nodes = nodes  # tools of each node, node 1 first

    def GetNumNodes(self) -> int:
        return len(self.nodes)

    def GetToolsInNode(self, nodeIndex: int) -> list[str]:
        return list(self.nodes[nodeIndex - 1])

    def GetNodeLabel(self, nodeIndex: int) -> str:
        return f"Node {nodeIndex}"


class FakeMediaPoolItem:
    STUB = "MediaPoolItem"

    def __init__(self, path: str, frames: int):
        self.path, self.frames = path, frames

    def GetName(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def GetClipProperty(self, propertyName: Optional[str] = None) -> Union[str, dict]:
        props = {"File Path": self.path, "Frames": str(self.frames), "Type": "Video"}
        return props if propertyName is None else props.get(propertyName, "")


class FakeTimelineItem:
    STUB = "TimelineItem"

    def __init__(self, name: str, media: Optional[FakeMediaPoolItem], source_start: int, source_end: int,
                 nodes: Optional[list[list[str]]] = None, start: int = 86400, duration: Optional[int] = None):
        self.name, self.media, self.duration = name, media, duration
        self.source_start, self.source_end, self.start = source_start, source_end, start
        self.graph = FakeGraph(nodes if nodes is not None else [[]])
        self.unique_id = f"item-{next(_ids)}"

    def GetName(self) -> str:
        return self.name

    def GetMediaPoolItem(self) -> Optional[FakeMediaPoolItem]:
        return self.media

    def GetNodeGraph(self, layerIdx: Optional[int] = _FIRST_LAYER) -> Optional[FakeGraph]:
        return None if layerIdx is None else self.graph

    def GetSourceStartFrame(self) -> int:
        return self.source_start

    def GetSourceEndFrame(self) -> int:
        return self.source_end

    def GetStart(self, subframe_precision: bool = False) -> int:
        return self.start

    def GetDuration(self, subframe_precision: bool = False) -> int:
        if self.duration is not None:
            return self.duration
        return self.source_end - self.source_start  # no retime: as many frames as the source range

    def GetUniqueId(self) -> str:
        return self.unique_id


class FakeTimeline:
    STUB = "Timeline"

    def __init__(self, name: str, tracks: list[list[FakeTimelineItem]]):
        self.name, self.tracks = name, tracks
        self.playhead: Optional[FakeTimelineItem] = None

    def GetName(self) -> str:
        return self.name

    def GetTrackCount(self, trackType: str) -> int:
        return len(self.tracks) if trackType == "video" else 0

    def GetItemListInTrack(self, trackType: str, index: int) -> list[FakeTimelineItem]:
        if trackType != "video" or not 1 <= index <= len(self.tracks):
            return []
        return [copy.copy(item) for item in self.tracks[index - 1]]

    def GetCurrentVideoItem(self) -> Optional[FakeTimelineItem]:
        return copy.copy(self.playhead)


class FakeProject:
    STUB = "Project"

    def __init__(self, timeline: Optional[FakeTimeline], deliver: Optional[Callable[[FakeTimeline], str]] = None):
        self.timeline = timeline
        self.deliver = deliver  # returns "" when the render works, else Resolve's error text
        self.render_settings: dict[str, Any] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.queued: list[str] = []
        self.rendering: list[str] = []
        self.polls = 0

    def GetName(self) -> str:
        return "Fake project"

    def GetCurrentTimeline(self) -> Optional[FakeTimeline]:
        return self.timeline

    def SetRenderSettings(self, settings: dict[str, Any]) -> bool:
        self.render_settings.update(settings)
        return True

    def AddRenderJob(self) -> str:
        if not self.render_settings.get("TargetDir"):
            return ""  # Resolve adds no job without a render location
        job = f"job-{len(self.jobs) + 1}"
        self.jobs[job] = {"JobStatus": "Ready", "CompletionPercentage": 0}
        return job

    def StartRendering(self, jobIds: list[str], isInteractiveMode: bool = False, /) -> bool:
        if not jobIds or any(j not in self.jobs for j in jobIds):
            return False
        self.queued = list(jobIds)  # taken up at the next status poll
        return True

    def IsRenderingInProgress(self) -> bool:
        return bool(self.rendering)

    def GetRenderJobStatus(self, jobId: str) -> dict[str, Any]:
        job = self.jobs.get(jobId)
        if job is None:
            return {}
        if jobId in self.queued:  # the first poll finds it queued, not in progress; the next one starts it
            if job.setdefault("polled", False):
                self.queued.remove(jobId)
                self.rendering.append(jobId)
                job["JobStatus"] = "Rendering"
            job["polled"] = True
        if job["JobStatus"] == "Rendering":  # each poll renders another quarter
            self.polls += 1
            job["CompletionPercentage"] = min(100, job["CompletionPercentage"] + 25)
            if job["CompletionPercentage"] == 100:
                error = self.deliver(self.timeline) if self.deliver and self.timeline else ""
                job.update(JobStatus="Failed" if error else "Complete", **({"Error": error} if error else {}))
                self.rendering.remove(jobId)
        return {k: v for k, v in job.items() if k != "polled"}


class FakeProjectManager:
    STUB = "ProjectManager"

    def __init__(self, project: Optional[FakeProject]):
        self.project = project

    def GetCurrentProject(self) -> Optional[FakeProject]:
        return self.project


class FakeResolve:
    STUB = "Resolve"

    def __init__(self, project: Optional[FakeProject]):
        self.manager = FakeProjectManager(project)

    def GetProjectManager(self) -> FakeProjectManager:
        return self.manager

    def GetProductName(self) -> str:
        return "DaVinci Resolve"


FAKES = (FakeGraph, FakeMediaPoolItem, FakeTimelineItem, FakeTimeline, FakeProject, FakeProjectManager, FakeResolve)
