#!/bin/sh
# Shared body of install_linux.sh and install_macos.sh: find a python3 and run install.py with
# the wrapper's layout (DEFLICKER_INSTALL_PLATFORM: linux or darwin).
#   install_unix.sh [install|uninstall] [install.py options...]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  echo "install: error: python3 is needed to run the installer (${DEFLICKER_PYTHON_HINT:-install Python 3.10 or newer})" >&2
  exit 3
fi
action=install
if [ $# -gt 0 ]; then action=$1; shift; fi
exec "$python" "$here/install.py" "$action" --platform "${DEFLICKER_INSTALL_PLATFORM:?set by the wrapper}" "$@"
