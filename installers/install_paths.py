"""Where the Deflicker installer puts things, per OS (standard library only).

OFX plugin folders follow the OpenFX packaging spec: Linux ``/usr/OFX/Plugins``, Windows
``%CommonProgramFiles%\\OFX\\Plugins``, macOS ``/Library/OFX/Plugins``; a per-user folder works
through ``OFX_PLUGIN_PATH``. Resolve's script menu reads ``Fusion/Scripts/Utility`` under its
system or per-user support folder; Nuke runs ``init.py`` from ``~/.nuke``. ``--prefix ROOT``
re-roots every location under ROOT (like DESTDIR), which is how the tests install.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional


@dataclass(frozen=True)
class Locations:
    """The folders one install touches."""

    plugins: Path        # holds Deflicker.ofx.bundle
    resolve_scripts: Path  # Resolve's Workspace > Scripts > Utility menu
    nuke_home: Path      # ~/.nuke (always the user's)
    user: bool           # plugins is not a default OFX folder: OFX_PLUGIN_PATH must name it


def _system_plugins(platform: str, env: Mapping[str, str]) -> Path:
    if platform == "win32":
        return Path(env.get("CommonProgramFiles", r"C:\Program Files\Common Files")) / "OFX" / "Plugins"
    if platform == "darwin":
        return Path("/Library/OFX/Plugins")
    return Path("/usr/OFX/Plugins")


def _user_plugins(platform: str, home: Path, env: Mapping[str, str]) -> Path:
    if platform == "win32":
        return Path(env.get("LOCALAPPDATA", str(home / "AppData" / "Local"))) / "OFX" / "Plugins"
    if platform == "darwin":
        return home / "Library" / "OFX" / "Plugins"
    return Path(env.get("XDG_DATA_HOME", str(home / ".local" / "share"))) / "OFX" / "Plugins"


def _resolve_scripts(platform: str, user: bool, home: Path, env: Mapping[str, str]) -> Path:
    if platform == "win32":
        if user:
            return Path(env.get("APPDATA", str(home / "AppData" / "Roaming"))) / "Blackmagic Design" / "DaVinci Resolve" / \
                "Support" / "Fusion" / "Scripts" / "Utility"
        return Path(env.get("PROGRAMDATA", r"C:\ProgramData")) / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / \
            "Scripts" / "Utility"
    if platform == "darwin":
        base = (home / "Library") if user else Path("/Library")
        return base / "Application Support" / "Blackmagic Design" / "DaVinci Resolve" / "Fusion" / "Scripts" / "Utility"
    if user:
        return home / ".local" / "share" / "DaVinciResolve" / "Fusion" / "Scripts" / "Utility"
    return Path("/opt/resolve/Fusion/Scripts/Utility")


def reroot(path: Path, prefix: Optional[Path]) -> Path:
    """``path`` moved under ``prefix`` (its anchor dropped), or unchanged without a prefix."""
    if prefix is None:
        return path
    return prefix.joinpath(*path.parts[1:]) if path.is_absolute() else prefix / path


def locations(platform: str, *, user: bool, prefix: Optional[Path] = None, home: Optional[Path] = None,
              env: Optional[Mapping[str, str]] = None) -> Locations:
    """The install locations for ``platform`` (sys.platform values), per user or system wide."""
    env = os.environ if env is None else env
    home = home or Path.home()
    plugins = _user_plugins(platform, home, env) if user else _system_plugins(platform, env)
    return Locations(plugins=reroot(plugins, prefix),
                     resolve_scripts=reroot(_resolve_scripts(platform, user, home, env), prefix),
                     nuke_home=reroot(home / ".nuke", prefix), user=user)


def plugin_path_hint(platform: str, folder: Path) -> str:
    """The shell line that puts ``folder`` on OFX_PLUGIN_PATH."""
    if platform == "win32":
        return f'setx OFX_PLUGIN_PATH "{folder}"'
    sep = ":" if platform.startswith("linux") else ";"  # the OFX spec: ';' on macOS, ':' on Linux
    return f'export OFX_PLUGIN_PATH="{folder}${{OFX_PLUGIN_PATH:+{sep}$OFX_PLUGIN_PATH}}"'
