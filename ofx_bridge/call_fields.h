// call_fields.h: the fields of DfkClipInfo and DfkSettings as the server reads them (clip facts and
// deflicker.Settings field names), listed once for both ways of reaching the server: the embedded
// interpreter (bridge.cpp: a Python dict) and the child process (child_client.cpp: a message).
#ifndef DEFLICKER_BRIDGE_CALL_FIELDS_H
#define DEFLICKER_BRIDGE_CALL_FIELDS_H

#include "bridge.h"

#include <string>

namespace dfk {

/** visit(name, value) for every clip fact: integers as long long, the rate as double, flags as bool. */
template <class Visit>
void for_each_clip_fact(const DfkClipInfo &info, Visit &&visit) {
  visit("width", static_cast<long long>(info.width));
  visit("height", static_cast<long long>(info.height));
  visit("channels", static_cast<long long>(info.channels));
  visit("frame_count", static_cast<long long>(info.frame_count));
  visit("fps", info.fps);
  visit("bit_depth", static_cast<long long>(info.bit_depth));
  visit("premultiplied", info.premultiplied != 0);
}

/** visit(name, value) for every setting (none for a null pointer; no method when it is null). */
template <class Visit>
void for_each_setting(const DfkSettings *s, Visit &&visit) {
  if (s == nullptr) return;
  visit("strength", s->strength);
  if (s->method != nullptr) visit("method", std::string(s->method));
  visit("local_refinement", s->local_refinement != 0);
  visit("analysis_size", static_cast<long long>(s->analysis_size));
  visit("keep_slow", static_cast<long long>(s->keep_slow));
}

}  // namespace dfk

#endif  // DEFLICKER_BRIDGE_CALL_FIELDS_H
