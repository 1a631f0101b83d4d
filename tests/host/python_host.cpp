// python_host.cpp: start the host's own interpreter (only in the ofxhost-py build).
#ifdef OFXHOST_WITH_PYTHON
#include <Python.h>
#endif

#include "python_host.h"

#include "common.h"

#ifdef OFXHOST_WITH_PYTHON
bool hostPythonAvailable() { return true; }

void startHostPython() {
  Py_InitializeEx(0);  // no signal handlers, like an application embedding Python
  PyEval_SaveThread();  // the host's main thread does not hold the GIL while plugins run
  emit("host-python", {{"version", json(Py_GetVersion())}, {"initialized", json(Py_IsInitialized())}});
}
#else
bool hostPythonAvailable() { return false; }

void startHostPython() { throw HostError("this ofxhost was built without Python: use ofxhost-py for --host-python", 2); }
#endif
