// common.h: the host's error type and its machine-readable event lines (one JSON object per line).
#pragma once

#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

/** A fatal host error: main() prints "ofxhost: error: <what>" and exits with `code`. */
struct HostError : std::runtime_error {
  explicit HostError(const std::string &what, int code = 1) : std::runtime_error(what), code(code) {}
  int code;
};

/** A JSON value already encoded (use json() / json(int) / raw arrays). */
struct Json {
  std::string text;
};

Json json(const std::string &s);
Json json(const char *s);
Json json(int v);
Json json(double v);
Json jsonArray(const std::vector<Json> &items);

/** Print one event line {"event": name, key: value, ...} to stdout (thread-safe, flushed). */
void emit(const char *event, std::initializer_list<std::pair<const char *, Json>> fields);

/** The OFX action this thread is inside ("" outside any), for rule checks. */
std::string &currentAction();

/** Report a breach of an OFX rule by the plugin (an event, never fatal). */
void violation(const std::string &what);

/** A token unique to the action invocation this thread is inside (images are tied to it). */
std::string &currentActionToken();

/** `s` quoted for /bin/sh. */
std::string shellQuote(const std::string &s);
