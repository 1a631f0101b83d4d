// host.h: the host's suites, property and param helpers, and RAII holders for OFX handles.
#ifndef DEFLICKER_PLUGIN_HOST_H
#define DEFLICKER_PLUGIN_HOST_H

#include "ofx/ofx_api.h"
#include "../ofx_bridge/bridge.h"

#include <string>
#include <vector>

namespace deflicker_ofx {

/** Suites fetched at OfxActionLoad; the optional ones may be NULL. */
struct Suites {
  const OfxHost *host = nullptr;
  const OfxPropertySuiteV1 *prop = nullptr;
  const OfxImageEffectSuiteV1 *effect = nullptr;
  const OfxParameterSuiteV1 *param = nullptr;
  const OfxMemorySuiteV1 *memory = nullptr;
  const OfxMultiThreadSuiteV1 *thread = nullptr;
  const OfxMessageSuiteV1 *message1 = nullptr;
  const OfxMessageSuiteV2 *message2 = nullptr;
  const OfxProgressSuiteV1 *progress = nullptr;
  const OfxTimeLineSuiteV1 *timeline = nullptr;
};

/** The process-wide suites (set by setHost/OfxSetHost and filled at Load). */
Suites &suites();

/** Fetch the suites from suites().host; false when a mandatory one is missing. */
bool fetch_suites();

/** One line describing the host (name, version, capabilities) for the log. */
std::string describe_host();

// Property helpers: getters return `fallback` when the property is absent.
std::string get_string(OfxPropertySetHandle props, const char *name, int index = 0, const std::string &fallback = "");
int get_int(OfxPropertySetHandle props, const char *name, int index = 0, int fallback = 0);
double get_double(OfxPropertySetHandle props, const char *name, int index = 0, double fallback = 0.0);
std::vector<double> get_doubles(OfxPropertySetHandle props, const char *name);
void set_string(OfxPropertySetHandle props, const char *name, const std::string &value, int index = 0);
void set_int(OfxPropertySetHandle props, const char *name, int value, int index = 0);
void set_double(OfxPropertySetHandle props, const char *name, double value, int index = 0);
void set_strings(OfxPropertySetHandle props, const char *name, const std::vector<const char *> &values);

/** A fetched clip image, released when the holder dies (must stay inside the action). */
class ClipImage {
 public:
  ClipImage(OfxImageClipHandle clip, OfxTime time);
  ~ClipImage();
  ClipImage(const ClipImage &) = delete;
  ClipImage &operator=(const ClipImage &) = delete;
  bool ok() const { return handle_ != nullptr; }
  /** Top-down view of the pixels (row 0 = top); data is NULL when the layout is unsupported. */
  DfkImage view() const;
  /** Hand the image over (to a bridge release callback). */
  OfxPropertySetHandle release() {
    OfxPropertySetHandle h = handle_;
    handle_ = nullptr;
    return h;
  }

 private:
  OfxPropertySetHandle handle_ = nullptr;
};

/** Top-down view of a fetched OFX image: OFX data points at the LOWER-left pixel. */
DfkImage image_view(OfxPropertySetHandle image);

/** Host progress bar: started on the first update, ended when the holder dies. */
class ProgressScope {
 public:
  ProgressScope(OfxImageEffectHandle effect, std::string label) : effect_(effect), label_(std::move(label)) {}
  ~ProgressScope();
  ProgressScope(const ProgressScope &) = delete;
  ProgressScope &operator=(const ProgressScope &) = delete;
  /** Show `fraction`; false only when the user pressed cancel (kOfxStatReplyNo), not when the bar failed. */
  bool update(double fraction);

 private:
  OfxImageEffectHandle effect_;
  std::string label_;
  bool started_ = false;
};

/** An undo/edit block around param changes made by the plugin. */
class EditBlock {
 public:
  EditBlock(OfxParamSetHandle params, const char *name);
  ~EditBlock();
  EditBlock(const EditBlock &) = delete;
  EditBlock &operator=(const EditBlock &) = delete;

 private:
  OfxParamSetHandle params_;
  bool open_ = false;
};

/** Show an error to the user: a persistent message where the host has one; else a dialog, but only
 *  when `may_open_dialog` (a user action on the main thread, never a render thread). */
void post_error(OfxImageEffectHandle effect, const std::string &message, bool may_open_dialog);
/** Clear a persistent message set by post_error (no-op without message suite V2). */
void clear_error(OfxImageEffectHandle effect);

}  // namespace deflicker_ofx

#endif  // DEFLICKER_PLUGIN_HOST_H
