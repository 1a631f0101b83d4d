// common.cpp: JSON encoding and the event printer.
#include "common.h"

#include <cmath>
#include <cstdio>
#include <mutex>

Json json(const std::string &s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return {out + "\""};
}

Json json(const char *s) { return s ? json(std::string(s)) : Json{"null"}; }

Json json(int v) { return {std::to_string(v)}; }

Json json(double v) {
  if (!std::isfinite(v)) return {std::isnan(v) ? "\"nan\"" : (v > 0 ? "\"inf\"" : "\"-inf\"")};
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return {buf};
}

Json jsonArray(const std::vector<Json> &items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + items[i].text;
  return {out + "]"};
}

void emit(const char *event, std::initializer_list<std::pair<const char *, Json>> fields) {
  static std::mutex mutex;
  std::string line = "{\"event\": " + json(event).text;
  for (const auto &f : fields) line += ", " + json(f.first).text + ": " + f.second.text;
  line += "}\n";
  std::lock_guard<std::mutex> lock(mutex);
  std::fputs(line.c_str(), stdout);
  std::fflush(stdout);
}

std::string &currentAction() {
  thread_local std::string action;
  return action;
}

void violation(const std::string &what) {
  emit("violation", {{"what", json(what)}, {"action", json(currentAction())}});
}

std::string &currentActionToken() {
  thread_local std::string token;
  return token;
}

std::string shellQuote(const std::string &s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}
