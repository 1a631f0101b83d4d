// fake_host_library.cpp: an empty shared library, built as libc10.so and libpython3.1.so. Preloaded
// (LD_PRELOAD) into ofxhost, it stands for a host that already runs its own torch (Nuke 14+) or a
// Python of another version: the plugin's auto server mode must then pick the child process.
extern "C" int deflicker_fake_host_library(void) { return 1; }
