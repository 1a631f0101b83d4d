#!/bin/sh
# Install or uninstall Deflicker on Linux (a thin wrapper around install.py).
#   sudo ./install_linux.sh install --resolve   # /usr/OFX/Plugins and Resolve's Scripts menu
#   ./install_linux.sh install --user --nuke    # ~/.local/share/OFX/Plugins (prints the OFX_PLUGIN_PATH to set)
#   sudo ./install_linux.sh uninstall
# Any install.py option passes through (--resolve, --nuke, --prefix ROOT, --bundle PATH);
# the layout is linux's (elsewhere only under --prefix ROOT).
DEFLICKER_PYTHON_HINT="apt install python3" DEFLICKER_INSTALL_PLATFORM=linux exec sh "$(dirname "$0")/install_unix.sh" "$@"
