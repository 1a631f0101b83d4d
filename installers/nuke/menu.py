"""Nuke menu entries for Deflicker (Nodes toolbar > Deflicker); Nuke runs this file at start-up.

The installer (install.py --nuke) puts this folder on Nuke's plug-in path through one line in
~/.nuke/init.py; or add it yourself: nuke.pluginAddPath("<bundle>/Contents/Resources/hosts").
"""
import deflicker_nuke

deflicker_nuke.add_menus()
