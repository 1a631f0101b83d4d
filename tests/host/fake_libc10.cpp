// fake_libc10.cpp: an empty libc10.so. LD_PRELOADed into ofxhost it stands for a host that already
// runs its own torch (Nuke 14+): the plugin's auto server mode must then pick the child process.
extern "C" int deflicker_fake_c10_marker(void) { return 10; }
