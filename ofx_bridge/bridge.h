/*
 * bridge.h: the C ABI between the OFX plugin and the embedded Python model server.
 *
 * Plain C (usable from C and C++), every function noexcept in the implementation: no C++ or
 * Python exception ever crosses it. pybind11 and Python.h stay inside the bridge's translation
 * unit. Errors come back as a DfkStatus plus a one-line message "<ExceptionClass>: <message>"
 * copied into a caller-owned buffer (always NUL-terminated, truncated to fit).
 *
 * Frames cross as DfkImage views: `data` points at the TOP-LEFT pixel and `row_bytes` is the
 * distance from one row to the row BELOW it (negative for bottom-up OFX hosts). Frame indices
 * are 0-based from the start of the source clip's frame range.
 */
#ifndef DEFLICKER_OFX_BRIDGE_H
#define DEFLICKER_OFX_BRIDGE_H

#include <stddef.h>

#ifdef __cplusplus
#define DFK_NOEXCEPT noexcept /* the implementation catches everything: nothing unwinds into the caller */
extern "C" {
#else
#define DFK_NOEXCEPT
#endif

typedef enum DfkStatus {
  DFK_OK = 0,
  DFK_ERROR = 1,        /* any Python exception not listed below */
  DFK_CANCELLED = 2,    /* deflicker.Cancelled: the host aborted */
  DFK_BAD_FRAME = 3,    /* VideoIOError: a missing, malformed or wrong-size frame */
  DFK_NO_PYTHON = 4,    /* the interpreter or the server module could not be loaded */
  DFK_UNKNOWN_CLIP = 5  /* UnknownClipError: the server holds no clip of that key (open it again) */
} DfkStatus;

/** A view of pixels owned by the host: top-down rows, interleaved channels. */
typedef struct DfkImage {
  void *data;            /* top-left pixel */
  int width, height;
  int channels;          /* 3 (RGB) or 4 (RGBA) */
  int bytes_per_channel; /* 1 (uint8), 2 (uint16), 4 (float32) */
  ptrdiff_t row_bytes;   /* from a row to the row below it; may be negative */
} DfkImage;

/** Fetch source frame `index` into *image; *token identifies it for release. 0 = OK. */
typedef int (*DfkFetchFn)(void *ctx, int index, DfkImage *image, void **token);
/** Release a frame returned by fetch (the bridge releases every fetched frame before returning). */
typedef void (*DfkReleaseFn)(void *ctx, void *token);
/** Report progress, fraction in [0, 1]. */
typedef void (*DfkProgressFn)(void *ctx, double fraction, const char *label);
/** Nonzero when the host wants the current work to stop. */
typedef int (*DfkCancelFn)(void *ctx);

/** Host callbacks for one bridge call; progress and cancel may be NULL. Called WITHOUT the GIL. */
typedef struct DfkCallbacks {
  void *ctx;
  DfkFetchFn fetch;
  DfkReleaseFn release;
  DfkProgressFn progress;
  DfkCancelFn cancel;
} DfkCallbacks;

/** The source clip as the server sees it (deflicker ClipInfo fields). */
typedef struct DfkClipInfo {
  int width, height, channels, frame_count;
  double fps;
  int bit_depth; /* 8, 16 or 32 */
  int premultiplied; /* nonzero: RGBA frames hold colour * alpha (kOfxImagePreMultiplied) */
} DfkClipInfo;

/** The plugin's settings (deflicker.server.model_server.PLUGIN_FIELDS, deflicker.Settings field names). */
typedef struct DfkSettings {
  double strength;
  const char *method;
  int local_refinement;
  int analysis_size;
  int keep_slow; /* frames; 0 off, -1 auto */
} DfkSettings;

/** Log one line to deflicker-ofx.log (where common/log_file.h says: never through a link; no Python
 * needed). level: 0 debug, 1 info, 2 warning, 3 error. */
void dfk_log(int level, const char *message) DFK_NOEXCEPT;

/** The bundle directory the host reports as OfxPluginPropFilePath (UTF-8): where the bridge finds
 * Contents/Resources/python.cfg. Call it before the first call that needs Python (dfk_init and
 * the server calls); without it the bridge falls back to its own binary's path. */
void dfk_set_bundle_path(const char *path) DFK_NOEXCEPT;

/** Start (or attach to) Python once per process and import the server. Idempotent. */
DfkStatus dfk_init(char *err, size_t err_size) DFK_NOEXCEPT;

/** server.open_clip: writes the clip key (NUL-terminated) into key_out. */
DfkStatus dfk_open_clip(const char *instance_id, const DfkClipInfo *info, const DfkSettings *settings,
                        const DfkCallbacks *cb, const char *persisted_key, char *key_out, size_t key_size,
                        char *err, size_t err_size) DFK_NOEXCEPT;

/** server.analyze (force = 0) or server.reanalyze (force != 0). */
DfkStatus dfk_analyze(const char *key, int force, const DfkCallbacks *cb, char *err, size_t err_size) DFK_NOEXCEPT;

/** server.render(key, index) copied into dst (converted to dst's depth; same width/height). */
DfkStatus dfk_render(const char *key, int index, const DfkSettings *settings, const DfkCallbacks *cb,
                     const DfkImage *dst, char *err, size_t err_size) DFK_NOEXCEPT;

/** server.frames_needed: the source frame ranges render(index) reads, as [first, last] index pairs
 * (inclusive): up to `capacity` ranges into ranges[0..2*capacity), the number of ranges into *count.
 * `info` (may be NULL) gives the clip's facts, so that it answers for a clip not opened yet (key ""). */
DfkStatus dfk_frames_needed(const char *key, const DfkClipInfo *info, int index, const DfkSettings *settings,
                            int *ranges, int capacity, int *count, char *err, size_t err_size) DFK_NOEXCEPT;

/** server.status(key) into out ("not analysed" | "analysing 42%" | "analysed" | "failed: ..."). */
DfkStatus dfk_status(const char *key, char *out, size_t out_size) DFK_NOEXCEPT;

/** server.close_instance(instance_id). */
DfkStatus dfk_close_instance(const char *instance_id, char *err, size_t err_size) DFK_NOEXCEPT;

/** server.purge_caches(). */
DfkStatus dfk_purge_caches(char *err, size_t err_size) DFK_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DEFLICKER_OFX_BRIDGE_H */
