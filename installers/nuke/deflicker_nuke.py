"""Deflicker in Nuke: create the OFX node, press Reanalyze, pre-analyse Read clips for farm renders.

Nuke names an OFX node ``OFX<identifier>_v<major>`` (identifier and major version from
deflicker.server.plugin_spec). A render from the command line (``nuke -x``) or a farm node would analyse
each clip on its first frame, in every process; pre-analysing the Read nodes' clips once, here
or with ``nuke -t deflicker_nuke.py script.nk``, leaves the analyses in the shared cache
(``DEFLICKER_CACHE_DIR``) so that every render process only reads them.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

import nuke  # type: ignore[import-not-found]

PLUGIN_ID = "com.atlasdeflicker.Deflicker"
PLUGIN_MAJOR = 1
NODE_CLASS = f"OFX{PLUGIN_ID}_v{PLUGIN_MAJOR}"
#: Knobs of the Deflicker node that change the analysis (the plugin's param script names).
ANALYSIS_KNOBS = ("method", "analysis_size")
MENU = "Deflicker"


@dataclass(frozen=True)
class ReadClip:
    """The media file and frame range of a Read node, with the analysis settings to use."""

    node: str
    path: str
    start: int  # first frame, 0-based within the file (or the sequence's existing frames)
    end: int  # one past the last
    settings: dict[str, Any]


def is_deflicker(node: Any) -> bool:
    return bool(node.Class() == NODE_CLASS)


def create_node() -> Any:
    """A Deflicker node after the selection, or a one-line message when Nuke lacks the plugin."""
    try:
        return nuke.createNode(NODE_CLASS)
    except RuntimeError:
        nuke.message(f"Deflicker: Nuke has no {NODE_CLASS}. Install the plugin (install.py install) and make "
                     "sure its folder is on OFX_PLUGIN_PATH, then restart Nuke.")
        return None


def reanalyze(nodes: Optional[Iterable[Any]] = None) -> int:
    """Press Reanalyze on the given (default: selected) Deflicker nodes; how many were pressed."""
    pressed = 0
    for node in nuke.selectedNodes() if nodes is None else nodes:
        if is_deflicker(node):
            node["reanalyze"].execute()
            pressed += 1
    if pressed == 0 and nodes is None:
        nuke.message("Deflicker: select one or more Deflicker nodes first.")
    return pressed


def nuke_pattern(path: str) -> str:
    """Nuke's ``####`` frame field as printf ``%04d`` (the form deflicker reads)."""
    return re.sub(r"#+", lambda m: f"%0{len(m.group(0))}d", path)


def downstream_deflicker(read: Any) -> Optional[Any]:
    """The first Deflicker node fed (through any chain) by ``read``."""
    seen: set[str] = set()
    todo = list(read.dependent())
    while todo:
        node = todo.pop(0)
        if node.name() in seen:
            continue
        seen.add(node.name())
        if is_deflicker(node):
            return node
        todo.extend(node.dependent())
    return None


def read_clip(read: Any) -> ReadClip:
    """A Read node's clip: file, frames [first, last] relative to the file's first, and settings."""
    origin = int(read["origfirst"].value())
    first, last = int(read["first"].value()), int(read["last"].value())
    effect = downstream_deflicker(read)
    settings: dict[str, Any] = {}
    if effect is not None:
        settings = {k: effect[k].value() for k in ANALYSIS_KNOBS}
        settings["analysis_size"] = int(settings["analysis_size"])
    return ReadClip(node=read.name(), path=nuke_pattern(str(read["file"].value())), start=first - origin,
                    end=last - origin + 1, settings=settings)


def progress_reporter(title: str) -> tuple[Callable[[float, str], None], Callable[[], bool], Callable[[], None]]:
    """(progress, cancel, close): a Nuke progress bar in the GUI, lines on stdout without one."""
    if nuke.GUI:
        task = nuke.ProgressTask(title)

        def gui_progress(fraction: float, label: str) -> None:
            task.setMessage(label)
            task.setProgress(int(fraction * 100))

        return gui_progress, task.isCancelled, lambda: None
    shown = [-1]

    def text_progress(fraction: float, label: str) -> None:
        step = int(fraction * 10)
        if step > shown[0]:
            shown[0] = step
            print(f"{title}: {step * 10}% {label}", flush=True)

    return text_progress, lambda: False, lambda: None


def preanalyse(reads: Optional[Iterable[Any]] = None, *, force: bool = False) -> list[str]:
    """Analyse the clips of the given (default: selected) Read nodes into the shared cache.

    Returns one line per clip ("<node>: analysed", "... already analysed", "... failed: why").
    """
    from deflicker_bootstrap import use_bundle_python

    use_bundle_python()
    from deflicker import Engine, Settings
    from deflicker.errors import DeflickerError

    chosen = [n for n in (nuke.selectedNodes() if reads is None else reads) if n.Class() == "Read"]
    results = []
    for node in chosen:
        clip = read_clip(node)
        progress, cancel, close = progress_reporter(f"Deflicker: {clip.node}")
        try:
            engine = Engine(Settings(**clip.settings))
            with engine.open(clip.path, frame_range=(clip.start, clip.end)) as session:
                if not force and session.in_cache():
                    results.append(f"{clip.node}: already analysed")
                    continue
                session.analyze(progress, cancel, force=force)
                results.append(f"{clip.node}: analysed")
        except DeflickerError as e:
            results.append(f"{clip.node}: failed: {e}")
        finally:
            close()
    if reads is None:
        nuke.message("\n".join(results) or "Deflicker: select one or more Read nodes first.")
    return results


def analyse_through_plugin(nodes: Optional[Iterable[Any]] = None) -> list[str]:
    """Have the plugin analyse the clip of each given (default: selected) Deflicker node now.

    Sampling one pixel of the node's first frame makes Nuke render it, so the plugin analyses
    exactly the frames a render will see (after the Read's colour conversion), into the cache.
    """
    results = []
    for node in nuke.selectedNodes() if nodes is None else nodes:
        if is_deflicker(node):
            node.sample("rgba.red", 0.5, 0.5, 1.0, 1.0, node.firstFrame())
            results.append(f"{node.name()}: {'failed (see the node)' if node.hasError() else 'analysed by the plugin'}")
    return results


def add_menus() -> None:
    """Nodes toolbar > Deflicker: the node, Reanalyze, pre-analysis of the selected Reads."""
    menu = nuke.menu("Nodes").addMenu(MENU)
    menu.addCommand("Deflicker", create_node)
    menu.addCommand("Reanalyze selected", reanalyze)
    menu.addCommand("Pre-analyse selected Reads", preanalyse)


def main(argv: Sequence[str]) -> int:
    """``nuke -t deflicker_nuke.py SCRIPT.nk [--force | --via-plugin]``: pre-analyse every Read
    feeding a Deflicker node from its file, or (--via-plugin) have each Deflicker node analyse."""
    scripts = [a for a in argv if not a.startswith("--")]
    if len(scripts) != 1:
        print("usage: nuke -t deflicker_nuke.py SCRIPT.nk [--force | --via-plugin]", file=sys.stderr)
        return 2
    nuke.scriptOpen(scripts[0])
    if "--via-plugin" in argv:
        lines = analyse_through_plugin([n for n in nuke.allNodes() if is_deflicker(n)])
    else:
        reads = [n for n in nuke.allNodes("Read") if downstream_deflicker(n) is not None]
        lines = preanalyse(reads, force="--force" in argv)
    for line in lines:
        print(line)
    return 1 if any(": failed" in line for line in lines) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
