#!/bin/sh
# Shared body of install_linux.sh and install_macos.sh: find a python3 and run install.py with
# the wrapper's layout (DEFLICKER_INSTALL_PLATFORM: linux or darwin).
#   install_unix.sh [install|uninstall] [install.py options...]
# Run as root (sudo), it runs only a Python that root owns and no one else can change, in a folder
# likewise (not simply the first on PATH: /opt/homebrew/bin, ~/bin and the like belong to a user),
# in isolated mode (-I: PYTHONPATH and the user's site-packages ignored).
set -eu
here=$(cd "$(dirname "$0")" && pwd)

# Whether the program $1 (links followed) and its folder are root's and writable by no one else.
root_only() {
  [ "$(find -L "$1" "$(dirname "$1")" -maxdepth 0 -user 0 ! -perm -0020 ! -perm -0002 2>/dev/null | wc -l)" -eq 2 ]
}

find_python() {
  if [ "$(id -u)" -ne 0 ]; then
    command -v python3 || command -v python || true
    return
  fi
  old_ifs=$IFS
  IFS=:
  for dir in $PATH; do
    for name in python3 python; do
      if [ -n "$dir" ] && [ -x "$dir/$name" ] && root_only "$dir/$name"; then
        IFS=$old_ifs
        echo "$dir/$name"
        return
      fi
    done
  done
  IFS=$old_ifs
}

python=$(find_python)
if [ -z "$python" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "install: error: no python3 on PATH that root owns and no one else can change (${DEFLICKER_PYTHON_HINT:-install Python 3.10 or newer})" >&2
  else
    echo "install: error: python3 is needed to run the installer (${DEFLICKER_PYTHON_HINT:-install Python 3.10 or newer})" >&2
  fi
  exit 3
fi
action=install
if [ $# -gt 0 ]; then action=$1; shift; fi
exec "$python" -I "$here/install.py" "$action" --platform "${DEFLICKER_INSTALL_PLATFORM:?set by the wrapper}" "$@"
