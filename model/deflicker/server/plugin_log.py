"""The plugin's log file (deflicker-ofx.log), opened for the engine as the bridge opens it.

The bridge (common/log_file.h) picks the file and hands its path over; it may lie in the temp
folder every user shares, so the engine opens it the same careful way: never through a symbolic
link, and only a regular file of this user's with no second name (a hard link), created private.
"""
from __future__ import annotations

import logging
import os
import stat
from typing import Optional, TextIO

#: Appending, created private, refusing a link at the path itself and a FIFO's blocking open.
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def open_plugin_log(path: str) -> Optional[TextIO]:
    """``path`` opened to append log lines to, or None when it is not safe to (or cannot be) written."""
    if not hasattr(os, "O_NOFOLLOW") and os.path.islink(path):  # Windows: its temp folder is the user's own
        return None
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except OSError:
        return None
    st = os.fstat(fd)
    ours = not hasattr(os, "geteuid") or (st.st_uid == os.geteuid() and st.st_nlink == 1)
    if not stat.S_ISREG(st.st_mode) or not ours:
        os.close(fd)
        return None
    return open(fd, "a", encoding="utf-8", buffering=1)


class PluginLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the engine's records into the plugin's log."""


def log_to_plugin_log(logger: logging.Logger, path: str) -> None:
    """Send ``logger``'s records to the plugin's log at ``path`` (once; nothing if it is not safe to)."""
    if any(isinstance(h, PluginLogHandler) for h in logger.handlers):
        return
    stream = open_plugin_log(path)
    if stream is None:
        return
    handler = PluginLogHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(threadName)s %(name)s %(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
