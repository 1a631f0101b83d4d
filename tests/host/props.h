// props.h: the host's property sets (typed, multi-dimensional) and the OfxPropertySuiteV1 over them.
#pragma once

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "ofx/ofx_api.h"

enum class PropType { Int, Double, String, Pointer };

/** One property: a type, a fixed dimension (0 = variable) and its values. */
struct Prop {
  PropType type = PropType::Int;
  int fixedDim = 0;
  std::vector<int> ints;
  std::vector<double> doubles;
  std::vector<std::string> strings;
  std::vector<void *> pointers;
  int dimension() const;
};

/** A property set; the opaque OfxPropertySetHandle points at one of these. */
struct OfxPropertySetStruct {
  explicit OfxPropertySetStruct(std::string what = "props") : what(std::move(what)) {}
  OfxPropertySetStruct(const OfxPropertySetStruct &other);
  OfxPropertySetStruct &operator=(const OfxPropertySetStruct &other);  // keeps `what`

  std::string what;  // a label for events: "effect descriptor", "clip Source", "image", ...

  // Host-side declarations: the plugin may only touch declared properties (others are ErrUnknown).
  void declareInt(const char *name, std::vector<int> values, bool variable = false);
  void declareDouble(const char *name, std::vector<double> values, bool variable = false);
  void declareString(const char *name, std::vector<std::string> values, bool variable = false);
  void declarePointer(const char *name, void *value = nullptr);

  // Host-side typed accessors (throw HostError when missing).
  int getInt(const char *name, int index = 0) const;
  double getDouble(const char *name, int index = 0) const;
  std::string getString(const char *name, int index = 0) const;
  void *getPointer(const char *name, int index = 0) const;
  std::vector<double> getDoubles(const char *name) const;
  std::vector<std::string> getStrings(const char *name) const;
  bool has(const char *name) const;
  std::string describe(const char *name) const;  // JSON array of the values
  std::vector<std::string> names() const;

  // Suite-level operations returning OFX statuses.
  template <class T> OfxStatus set(const char *name, int index, T value);
  template <class T> OfxStatus get(const char *name, int index, T *value);
  OfxStatus reset(const char *name);
  OfxStatus dimension(const char *name, int *count);

 private:
  Prop *find(const char *name, PropType type, OfxStatus *status);
  mutable std::recursive_mutex mutex_;
  std::unordered_map<std::string, Prop> props_;
  std::unordered_map<std::string, Prop> defaults_;
};

using PropertySet = OfxPropertySetStruct;

/** The OfxPropertySuiteV1 table served by fetchSuite. */
const OfxPropertySuiteV1 *propertySuite();
