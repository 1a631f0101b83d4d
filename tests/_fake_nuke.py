"""An in-memory stand-in for Nuke's ``nuke`` Python module, for the Deflicker Nuke helper.

It implements the parts of Nuke's API the helper uses, with Nuke's names and call shapes:
``createNode`` (RuntimeError for an unknown class, like Nuke), ``selectedNodes``, ``allNodes``
(class filter), ``menu(...).addMenu/addCommand``, ``message``, ``ProgressTask``, ``scriptOpen``,
``GUI`` (a plain attribute; tests set it True for the interface); nodes with ``Class``, ``name``,
``dependent``, ``input``, ``firstFrame``, ``sample`` (renders it), ``hasError`` and knobs
(``value``, ``setValue``, ``execute`` for push buttons). ``scriptOpen`` reads a JSON list of
nodes (``{"class", "name", "knobs", "inputs"}``) in place of a .nk file.
"""
from __future__ import annotations

import json
import sys
import types
from typing import Any, Callable, Optional


class Knob:
    def __init__(self, node: "Node", name: str, value: Any = None):
        self.node, self._name, self._value = node, name, value

    def name(self) -> str:
        return self._name

    def value(self) -> Any:
        return self._value

    def setValue(self, value: Any) -> bool:
        self._value = value
        return True

    def execute(self) -> None:  # a push button: the plugin gets InstanceChanged
        self.node.pressed.append(self._name)


class Node:
    def __init__(self, session: "FakeNuke", cls: str, name: str, knobs: Optional[dict[str, Any]] = None,
                 inputs: Optional[list["Node"]] = None):
        self.session, self._class, self._name = session, cls, name
        self.knobs = {k: Knob(self, k, v) for k, v in (knobs or {}).items()}
        self.inputs = list(inputs or [])
        self.selected = False
        self.error = False
        self.pressed: list[str] = []
        self.samples: list[tuple[str, Optional[int]]] = []

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._name

    def __getitem__(self, knob: str) -> Knob:
        return self.knobs[knob]  # KeyError for a missing knob, as Nuke raises NameError-like errors

    def input(self, i: int) -> Optional["Node"]:
        return self.inputs[i] if i < len(self.inputs) else None

    def dependent(self) -> list["Node"]:
        return [n for n in self.session.nodes if self in n.inputs]

    def firstFrame(self) -> int:
        if "first" in self.knobs:
            return int(self.knobs["first"].value())
        return self.inputs[0].firstFrame() if self.inputs else 1

    def sample(self, channel: str, x: float, y: float, dx: float = 1.0, dy: float = 1.0, frame: Optional[int] = None) -> float:
        """Renders the node at ``frame``: here, calls the session's ``render`` hook (the plugin)."""
        self.samples.append((channel, frame))
        self.error = not self.session.render(self, frame) if self.session.render else False
        return 0.0

    def hasError(self) -> bool:
        return self.error

    def setSelected(self, selected: bool) -> None:
        self.selected = selected

    def isSelected(self) -> bool:
        return self.selected


class Menu:
    def __init__(self, name: str):
        self._name = name
        self.items: dict[str, Any] = {}

    def name(self) -> str:
        return self._name

    def addMenu(self, name: str, icon: str = "") -> "Menu":
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name: str, command: Optional[Callable[[], Any]] = None, shortcut: str = "", icon: str = "") -> None:
        self.items[name] = command


class ProgressTask:
    def __init__(self, session: "FakeNuke", title: str):
        self.title, self.values, self.messages = title, [], []
        self.cancel_after = session.cancel_after
        session.tasks.append(self)

    def setProgress(self, value: int) -> None:
        self.values.append(value)

    def setMessage(self, text: str) -> None:
        self.messages.append(text)

    def isCancelled(self) -> bool:
        return self.cancel_after is not None and len(self.values) >= self.cancel_after


class FakeNuke:
    """The state behind one fake ``nuke`` module."""

    def __init__(self, known_classes: tuple[str, ...] = ()):
        self.known = set(known_classes) | {"Read", "Write", "Grade"}
        self.nodes: list[Node] = []
        self.menus: dict[str, Menu] = {}
        self.messages: list[str] = []
        self.tasks: list[ProgressTask] = []
        self.cancel_after: Optional[int] = None
        self.render: Optional[Callable[[Node, Optional[int]], bool]] = None  # the plugin: True when it rendered

    def add(self, cls: str, name: str, knobs: Optional[dict[str, Any]] = None, inputs: Optional[list[Node]] = None) -> Node:
        node = Node(self, cls, name, knobs, inputs)
        self.nodes.append(node)
        return node

    def module(self) -> types.ModuleType:
        """A module object with Nuke's function names, bound to this state."""
        mod = types.ModuleType("nuke")

        def createNode(node: str, args: str = "", inpanel: bool = True) -> Node:
            if node not in self.known:
                raise RuntimeError(f"{node}: unknown command")
            selected = [n for n in self.nodes if n.selected]
            return self.add(node, f"{node.split('.')[-1]}{len(self.nodes) + 1}", inputs=selected[-1:])

        def selectedNodes(filter: Optional[str] = None) -> list[Node]:
            return [n for n in self.nodes if n.selected and (filter is None or n.Class() == filter)]

        def allNodes(filter: Optional[str] = None, group: Any = None) -> list[Node]:
            return [n for n in self.nodes if filter is None or n.Class() == filter]

        def scriptOpen(filename: str) -> None:
            with open(filename) as f:
                spec = json.load(f)
            by_name: dict[str, Node] = {}
            for entry in spec:
                by_name[entry["name"]] = self.add(entry["class"], entry["name"], entry.get("knobs"),
                                                  [by_name[i] for i in entry.get("inputs", [])])

        mod.createNode = createNode  # type: ignore[attr-defined]
        mod.selectedNodes = selectedNodes  # type: ignore[attr-defined]
        mod.allNodes = allNodes  # type: ignore[attr-defined]
        mod.scriptOpen = scriptOpen  # type: ignore[attr-defined]
        mod.menu = lambda name: self.menus.setdefault(name, Menu(name))  # type: ignore[attr-defined]
        mod.message = self.messages.append  # type: ignore[attr-defined]
        mod.ProgressTask = lambda title: ProgressTask(self, title)  # type: ignore[attr-defined]
        mod.GUI = False  # type: ignore[attr-defined]  # True in Nuke's interface, False under nuke -t / -x
        return mod


def install(state: FakeNuke) -> types.ModuleType:
    """Make ``import nuke`` return a module backed by ``state``."""
    mod = state.module()
    sys.modules["nuke"] = mod
    return mod
