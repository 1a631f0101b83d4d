// python_host.h: the --host-python mode (ofxhost-py links libpython, as Nuke does).
#pragma once

/** True when this executable was built with libpython (ofxhost-py). */
bool hostPythonAvailable();

/** Py_InitializeEx(0) and release the GIL (PyEval_SaveThread) before any plugin is loaded. */
void startHostPython();
