// params.h: parameters (descriptor and instance) and the OfxParameterSuiteV1 with real C variadics.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common.h"
#include "props.h"

/** A parameter: its type, properties and current value (no animation: one value for all times). */
struct OfxParamStruct {
  OfxParamStruct(std::string name, std::string type);
  OfxParamStruct(const OfxParamStruct &other);

  std::string name, type;
  PropertySet props;

  int components() const;  // values per get/set call (0 for buttons, groups, pages)
  bool isString() const;
  bool isIntegral() const;  // values pass as int (integer, boolean, choice)
  void resetToDefault();
  void setFromText(const std::string &text);  // --param NAME=VALUE
  Json valueJson() const;

  std::vector<double> numbers() const;
  std::string text() const;
  const char *textPointer() const;  // valid for the host's lifetime (old values are kept)
  void setNumbers(const std::vector<double> &values);
  void setText(const std::string &value);

 private:
  mutable std::mutex mutex_;
  std::vector<double> numbers_;
  std::vector<std::unique_ptr<std::string>> texts_;  // every value ever set; the last is current
};

/** An ordered set of parameters (a descriptor's or an instance's). */
struct OfxParamSetStruct {
  explicit OfxParamSetStruct(bool descriptor) : descriptor(descriptor) {}
  OfxParamSetStruct(const OfxParamSetStruct &other);  // instance from descriptor

  bool descriptor;
  PropertySet props{"param set"};
  std::vector<std::unique_ptr<OfxParamStruct>> params;

  OfxParamStruct *find(const std::string &name) const;
};

using Param = OfxParamStruct;
using ParamSet = OfxParamSetStruct;

const OfxParameterSuiteV1 *parameterSuite();
