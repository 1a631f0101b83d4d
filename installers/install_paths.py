"""Where the Deflicker installer puts things, per OS (standard library only).

OFX plugin folders follow the OpenFX packaging spec: Linux ``/usr/OFX/Plugins``, Windows
``%CommonProgramFiles%\\OFX\\Plugins``, macOS ``/Library/OFX/Plugins``; a per-user folder works
through ``OFX_PLUGIN_PATH``. Resolve's script menu reads ``Fusion/Scripts/Utility`` under its
system or per-user support folder; Nuke runs ``init.py`` from ``~/.nuke``. ``--prefix ROOT``
re-roots every location under ROOT (like DESTDIR, a Windows drive dropped like the leading ``/``),
which is how the tests install, also for the layouts of the other two OSes.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Mapping, Optional

#: The layouts install.py knows, by sys.platform value.
PLATFORMS = ("linux", "darwin", "win32")


def this_platform() -> str:
    """sys.platform as one of PLATFORMS ("linux" for every Linux)."""
    return "linux" if sys.platform.startswith("linux") else sys.platform


@dataclass(frozen=True)
class Locations:
    """The folders one install touches."""

    plugins: Path        # holds Deflicker.ofx.bundle
    resolve_scripts: Path  # Resolve's Workspace > Scripts > Utility menu
    nuke_home: Path      # ~/.nuke (always the user's)
    user: bool           # plugins is not a default OFX folder: OFX_PLUGIN_PATH must name it


def _system_plugins(platform: str, env: Mapping[str, str]) -> PurePath:
    if platform == "win32":
        return PureWindowsPath(env.get("CommonProgramFiles", r"C:\Program Files\Common Files"), "OFX", "Plugins")
    if platform == "darwin":
        return PurePosixPath("/Library/OFX/Plugins")
    return PurePosixPath("/usr/OFX/Plugins")


def _user_plugins(platform: str, home: PurePath, env: Mapping[str, str]) -> PurePath:
    if platform == "win32":
        return PureWindowsPath(env.get("LOCALAPPDATA", str(home / "AppData" / "Local")), "OFX", "Plugins")
    if platform == "darwin":
        return home / "Library" / "OFX" / "Plugins"
    return PurePosixPath(env.get("XDG_DATA_HOME", str(home / ".local" / "share")), "OFX", "Plugins")


def _resolve_scripts(platform: str, user: bool, home: PurePath, env: Mapping[str, str]) -> PurePath:
    if platform == "win32":
        if user:
            return PureWindowsPath(env.get("APPDATA", str(home / "AppData" / "Roaming")), "Blackmagic Design",
                                   "DaVinci Resolve", "Support", "Fusion", "Scripts", "Utility")
        return PureWindowsPath(env.get("PROGRAMDATA", r"C:\ProgramData"), "Blackmagic Design", "DaVinci Resolve",
                               "Fusion", "Scripts", "Utility")
    if platform == "darwin":
        base = (home / "Library") if user else PurePosixPath("/Library")
        return base / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts" / "Utility"
    if user:
        return home / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts" / "Utility"
    return PurePosixPath("/opt/resolve/Fusion/Scripts/Utility")


def reroot(path: PurePath, prefix: Optional[Path]) -> Path:
    """``path`` moved under ``prefix`` (its anchor, ``/`` or a drive, dropped), or as is without a prefix."""
    if prefix is None:
        return Path(str(path))
    return prefix.joinpath(*(path.parts[1:] if path.anchor else path.parts))


def locations(platform: str, *, user: bool, prefix: Optional[Path] = None, home: Optional[Path] = None,
              env: Optional[Mapping[str, str]] = None) -> Locations:
    """The install locations for ``platform`` (a PLATFORMS value), per user or system wide.

    The layout of another OS than this one is only meaningful under a ``prefix``."""
    env = os.environ if env is None else env
    flavour = PureWindowsPath if platform == "win32" else PurePosixPath
    target_home = flavour(str(home or Path.home()))
    plugins = _user_plugins(platform, target_home, env) if user else _system_plugins(platform, env)
    return Locations(plugins=reroot(plugins, prefix),
                     resolve_scripts=reroot(_resolve_scripts(platform, user, target_home, env), prefix),
                     nuke_home=reroot(target_home / ".nuke", prefix), user=user)


def plugin_path_hint(platform: str, folder: Path) -> str:
    """The shell line that puts ``folder`` on OFX_PLUGIN_PATH."""
    if platform == "win32":
        return f'setx OFX_PLUGIN_PATH "{folder}"'
    sep = ":" if platform.startswith("linux") else ";"  # the OFX spec: ';' on macOS, ':' on Linux
    return f'export OFX_PLUGIN_PATH="{folder}${{OFX_PLUGIN_PATH:+{sep}$OFX_PLUGIN_PATH}}"'
