#!/bin/sh
# Install or uninstall Deflicker on macOS (a thin wrapper around install.py).
#   sudo ./install_macos.sh install --resolve   # /Library/OFX/Plugins and Resolve's Scripts menu
#   ./install_macos.sh install --user --nuke    # ~/Library/OFX/Plugins (prints the OFX_PLUGIN_PATH to set)
#   sudo ./install_macos.sh uninstall
# Any install.py option passes through (--resolve, --nuke, --prefix ROOT, --bundle PATH);
# the layout is darwin's (elsewhere only under --prefix ROOT).
DEFLICKER_PYTHON_HINT="xcode-select --install provides one" DEFLICKER_INSTALL_PLATFORM=darwin exec sh "$(dirname "$0")/install_unix.sh" "$@"
