"""The model server in a child process of the OFX plugin (``DEFLICKER_SERVER=child``).

The plugin starts ``Contents/<arch>/deflicker_server``, which starts Python exactly as the embedded
bridge does and calls :func:`main` with a connected stream socket and a shared frame file. Requests
name a function of the server module (``deflicker.server.model_server`` or ``$DEFLICKER_OFX_SERVER``) and carry
its arguments; the answer is a ``result`` message. While a request runs, the server's ``fetch``,
``progress`` and ``cancel`` become questions to the plugin, which serves them from the host. Source
frames and the rendered frame travel through the frame file (top-down, packed), never the socket.

Messages (ofx_bridge/child_protocol.h): a 4-byte little-endian length, then UTF-8 text, the
operation on the first line and one ``key=value`` line per field.

``DEFLICKER_SERVER_CHILD_TEST_DIE_AFTER=N`` (tests only): the first child sends itself SIGKILL (or
``DEFLICKER_SERVER_CHILD_TEST_SIGNAL``: ``STOP`` hangs it) when the N-th message from the plugin
arrives, as a crash (or a hang) would.
"""
from __future__ import annotations

import importlib
import mmap
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Optional

import numpy as np

from deflicker.errors import VideoIOError
from deflicker.settings import Settings

Fields = dict[str, str]

#: DfkStatus codes (ofx_bridge/bridge.h) of the exceptions the plugin tells apart.
STATUS_BY_CLASS = {"Cancelled": 2, "VideoIOError": 3, "UnknownClipError": 5}
DTYPES: dict[int, np.dtype[Any]] = {1: np.dtype(np.uint8), 2: np.dtype("<u2"), 4: np.dtype("<f4")}
MAX_MESSAGE = 1 << 20


class ProtocolError(RuntimeError):
    """The plugin sent something this server does not understand."""


class Channel:
    """Framed messages over the socket to the plugin."""

    def __init__(self, sock: socket.socket, die_after: int = 0, die_by: signal.Signals = signal.SIGKILL):
        self._sock = sock
        self._received = 0
        self._die_after = die_after
        self._die_by = die_by

    def send(self, op: str, **fields: object) -> None:
        """Send one message; values are written on one line each."""
        lines = [op] + [f"{key}={_one_line(value)}" for key, value in fields.items()]
        body = ("\n".join(lines) + "\n").encode("utf-8")
        self._sock.sendall(struct.pack("<I", len(body)) + body)

    def receive(self) -> Optional[tuple[str, Fields]]:
        """The next message, or None when the plugin has gone."""
        prefix = self._read(4)
        if prefix is None:
            return None
        (size,) = struct.unpack("<I", prefix)
        if not 0 < size <= MAX_MESSAGE:
            raise ProtocolError(f"message of {size} bytes")
        body = self._read(size)
        if body is None:
            return None
        self._received += 1
        if self._die_after and self._received >= self._die_after:
            os.kill(os.getpid(), self._die_by)  # the test's stand-in for a crash or a hang
        op, *lines = body.decode("utf-8").split("\n")
        return op, dict(line.split("=", 1) for line in lines if line)

    def _read(self, size: int) -> Optional[bytes]:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(size - len(chunks))
            if not chunk:
                return None
            chunks += chunk
        return bytes(chunks)


class FrameFile:
    """The shared frame file; the plugin grows it, this side remaps when it needs more."""

    def __init__(self, fd: int):
        self._fd = fd
        self._map: Optional[mmap.mmap] = None

    def _room(self, size: int) -> mmap.mmap:
        if self._map is None or len(self._map) < size:
            length = os.fstat(self._fd).st_size
            if length < size:
                raise ProtocolError(f"the frame file holds {length} bytes, {size} needed")
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(self._fd, length)
        return self._map

    def read(self, height: int, width: int, channels: int, bytes_per_channel: int) -> np.ndarray:
        """A read-only copy of the frame the plugin just wrote (it reuses the file for the next one)."""
        dtype = DTYPES[bytes_per_channel]
        size = height * width * channels * dtype.itemsize
        frame: np.ndarray = np.frombuffer(self._room(size), dtype, count=height * width * channels)
        frame = frame.reshape(height, width, channels).copy()
        frame.setflags(write=False)
        return frame

    def write(self, frame: np.ndarray) -> None:
        """Put a float32 C-contiguous frame at the start of the file."""
        try:
            room = self._room(frame.nbytes)
        except ProtocolError:
            raise RuntimeError("server.render returned a frame that does not fit the output image") from None
        room[:frame.nbytes] = frame.tobytes()


class ChildServer:
    """Runs the plugin's requests on the server module, one at a time."""

    def __init__(self, channel: Channel, frames: FrameFile, server: ModuleType):
        self._channel = channel
        self._frames = frames
        self._server = server

    def serve(self) -> None:
        """Answer requests until the plugin closes the socket."""
        while (message := self._channel.receive()) is not None:
            op, fields = message
            try:
                answer = self._handle(op, fields)
            except Exception as exc:  # every failure goes back to the plugin, like the embedded bridge's
                self._channel.send("result", status=_status_of(exc), error=f"{type(exc).__name__}: {exc}")
            else:
                self._channel.send("result", status=0, **answer)

    def _handle(self, op: str, f: Fields) -> dict[str, object]:
        server = self._server
        if op == "ping":
            return {}
        if op == "open_clip":
            key = server.open_clip(f["instance_id"], _clip_facts(f), _settings(f), self._fetch, f.get("persisted_key", ""))
            return {"key": key}
        if op in ("analyze", "reanalyze"):
            getattr(server, op)(f["key"], self._fetch, self._progress(f), self._cancel(f))
            return {}
        if op == "render":
            result = server.render(f["key"], int(f["index"]), self._fetch, _settings(f), self._progress(f), self._cancel(f))
            frame = np.ascontiguousarray(result, dtype=np.float32)
            if frame.ndim != 3:
                raise RuntimeError("server.render returned a frame that does not fit the output image")
            self._frames.write(frame)
            return {"height": frame.shape[0], "width": frame.shape[1], "channels": frame.shape[2]}
        if op == "frames_needed":
            needed = server.frames_needed(f["key"], int(f["index"]), _settings(f), _clip_facts(f))
            return {"ranges": ",".join(f"{int(a)},{int(b)}" for a, b in needed)}
        if op == "status":
            return {"text": str(server.status(f["key"]))}
        if op == "close_instance":
            server.close_instance(f["instance_id"])
            return {}
        if op == "purge_caches":
            server.purge_caches()
            return {}
        raise ProtocolError(f"unknown request {op!r}")

    def _ask(self, op: str, expected: str, **fields: object) -> Fields:
        self._channel.send(op, **fields)
        message = self._channel.receive()
        if message is None:
            sys.exit(0)  # the plugin has gone: nothing to answer
        if message[0] != expected:
            raise ProtocolError(f"expected {expected!r}, got {message[0]!r}")
        return message[1]

    def _fetch(self, index: int) -> np.ndarray:
        f = self._ask("fetch", "frame", index=int(index))
        if f.get("status") != "0":
            raise VideoIOError(f.get("error", f"source frame {index} is not available from the host"))
        return self._frames.read(int(f["height"]), int(f["width"]), int(f["channels"]), int(f["bytes_per_channel"]))

    def _progress(self, f: Fields) -> Optional[Callable[[float, str], None]]:
        if f.get("has_progress") != "1":
            return None

        def progress(fraction: float, label: str = "") -> None:
            self._channel.send("progress", fraction=float(fraction), label=label)

        return progress

    def _cancel(self, f: Fields) -> Optional[Callable[[], bool]]:
        if f.get("has_cancel") != "1":
            return None
        return lambda: self._ask("cancel", "cancel").get("answer") == "1"


def _one_line(value: object) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    return text.replace("\r", " ").replace("\n", " ")


def _number(text: str) -> float | int:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _clip_facts(f: Mapping[str, str]) -> dict[str, float | int]:
    """The clip facts (``clip.`` fields) a request carries, as the embedded bridge passes them."""
    return {name.split(".", 1)[1]: _number(value) for name, value in f.items() if name.startswith("clip.")}


def _settings(f: Mapping[str, str]) -> dict[str, Any]:
    """The plugin's settings as the embedded bridge passes them (call_fields_gen.h, generated by
    deflicker.server.plugin_header), each read back as the type of its deflicker.Settings field (flags
    come as 0/1)."""
    defaults = Settings()
    out: dict[str, Any] = {}
    for name, text in f.items():
        if name.startswith("settings."):
            field = name.split(".", 1)[1]
            kind = type(getattr(defaults, field))
            out[field] = text == "1" if kind is bool else kind(text)
    return out


def _status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls.__name__ in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls.__name__]
    return 1


def main(sock_fd: int, frames_fd: int, server_module: str = "deflicker.server.model_server", generation: int = 1) -> None:
    """Serve the plugin on ``sock_fd`` until it closes it (called by deflicker_server)."""
    die_after = int(os.environ.get("DEFLICKER_SERVER_CHILD_TEST_DIE_AFTER") or 0) if generation == 1 else 0
    die_by = signal.Signals["SIG" + (os.environ.get("DEFLICKER_SERVER_CHILD_TEST_SIGNAL") or "KILL")]
    channel = Channel(socket.socket(fileno=sock_fd), die_after, die_by)
    server = importlib.import_module(server_module)
    version = sys.version.split()[0]
    channel.send("result", status=0, python=f"Python {version}, pid {os.getpid()}, server {server_module}")
    ChildServer(channel, FrameFile(frames_fd), server).serve()
