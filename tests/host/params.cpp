// params.cpp: parameter descriptors and instances, and the parameter suite.
#include "params.h"

#include <cfloat>
#include <climits>
#include <cstdarg>
#include <cstdlib>

namespace {

struct TypeInfo {
  const char *type;
  int components;
  bool integral;
  bool text;
};

const TypeInfo kTypes[] = {
    {kOfxParamTypeInteger, 1, true, false},     {kOfxParamTypeDouble, 1, false, false},
    {kOfxParamTypeBoolean, 1, true, false},     {kOfxParamTypeChoice, 1, true, false},
    {kOfxParamTypeStrChoice, 1, false, true},   {kOfxParamTypeRGBA, 4, false, false},
    {kOfxParamTypeRGB, 3, false, false},        {kOfxParamTypeDouble2D, 2, false, false},
    {kOfxParamTypeInteger2D, 2, true, false},   {kOfxParamTypeDouble3D, 3, false, false},
    {kOfxParamTypeInteger3D, 3, true, false},   {kOfxParamTypeString, 1, false, true},
    {kOfxParamTypeCustom, 1, false, true},      {kOfxParamTypeGroup, 0, false, false},
    {kOfxParamTypePage, 0, false, false},       {kOfxParamTypePushButton, 0, false, false},
};

const TypeInfo *typeInfo(const std::string &type) {
  for (const auto &t : kTypes)
    if (type == t.type) return &t;
  return nullptr;
}

/** Declare the properties a host gives a parameter descriptor of this type. */
void declareParamProps(PropertySet &p, const std::string &name, const TypeInfo &t) {
  p.declareString(kOfxPropType, {kOfxTypeParameter});
  p.declareString(kOfxPropName, {name});
  p.declareString(kOfxPropLabel, {name});
  p.declareString(kOfxPropShortLabel, {name});
  p.declareString(kOfxPropLongLabel, {name});
  p.declareString(kOfxParamPropType, {t.type});
  p.declareString(kOfxParamPropScriptName, {name});
  p.declareString(kOfxParamPropHint, {""});
  p.declareString(kOfxParamPropParent, {""});
  p.declareInt(kOfxParamPropSecret, {0});
  p.declareInt(kOfxParamPropEnabled, {1});
  p.declareInt(kOfxParamPropCanUndo, {1});
  p.declareInt(kOfxParamPropEvaluateOnChange, {1});
  p.declareInt(kOfxParamPropPersistant, {t.components > 0 ? 1 : 0});
  p.declareString(kOfxParamPropCacheInvalidation, {kOfxParamInvalidateValueChange});
  p.declarePointer(kOfxParamPropDataPtr);
  if (t.components == 0) {
    if (std::string(t.type) == kOfxParamTypeGroup) p.declareInt(kOfxParamPropGroupOpen, {1});
    if (std::string(t.type) == kOfxParamTypePage) p.declareString(kOfxParamPropPageChild, {}, true);
    return;
  }
  p.declareInt(kOfxParamPropAnimates, {t.text ? 0 : 1});
  p.declareInt(kOfxParamPropIsAnimating, {0});
  p.declareInt(kOfxParamPropIsAutoKeying, {0});
  size_t n = static_cast<size_t>(t.components);
  if (t.text) {
    p.declareString(kOfxParamPropDefault, {""});
    p.declareString(kOfxParamPropStringMode, {kOfxParamStringIsSingleLine});
    p.declareInt(kOfxParamPropStringFilePathExists, {1});
    if (std::string(t.type) == kOfxParamTypeStrChoice) p.declareString(kOfxParamPropChoiceOption, {}, true);
  } else if (t.integral) {
    p.declareInt(kOfxParamPropDefault, std::vector<int>(n, 0));
    p.declareInt(kOfxParamPropMin, std::vector<int>(n, INT_MIN));
    p.declareInt(kOfxParamPropMax, std::vector<int>(n, INT_MAX));
    p.declareInt(kOfxParamPropDisplayMin, std::vector<int>(n, INT_MIN));
    p.declareInt(kOfxParamPropDisplayMax, std::vector<int>(n, INT_MAX));
    if (std::string(t.type) == kOfxParamTypeChoice) {
      p.declareString(kOfxParamPropChoiceOption, {}, true);
      p.declareInt(kOfxParamPropChoiceOrder, {}, true);
    }
  } else {
    p.declareDouble(kOfxParamPropDefault, std::vector<double>(n, 0.0));
    p.declareDouble(kOfxParamPropMin, std::vector<double>(n, -DBL_MAX));
    p.declareDouble(kOfxParamPropMax, std::vector<double>(n, DBL_MAX));
    p.declareDouble(kOfxParamPropDisplayMin, std::vector<double>(n, -DBL_MAX));
    p.declareDouble(kOfxParamPropDisplayMax, std::vector<double>(n, DBL_MAX));
    p.declareDouble(kOfxParamPropIncrement, {1.0});
    p.declareInt(kOfxParamPropDigits, {2});
    p.declareString(kOfxParamPropDoubleType, {kOfxParamDoubleTypePlain});
  }
}

}  // namespace

OfxParamStruct::OfxParamStruct(std::string name_, std::string type_)
    : name(std::move(name_)), type(std::move(type_)), props("param " + name) {
  declareParamProps(props, name, *typeInfo(type));
}

OfxParamStruct::OfxParamStruct(const OfxParamStruct &other) : name(other.name), type(other.type), props(other.props) {
  resetToDefault();
}

int OfxParamStruct::components() const { return typeInfo(type)->components; }
bool OfxParamStruct::isString() const { return typeInfo(type)->text; }
bool OfxParamStruct::isIntegral() const { return typeInfo(type)->integral; }

void OfxParamStruct::resetToDefault() {
  if (components() == 0) return;
  if (isString()) {
    setText(props.getString(kOfxParamPropDefault));
  } else if (isIntegral()) {
    std::vector<double> v;
    for (int i = 0; i < components(); ++i) v.push_back(props.getInt(kOfxParamPropDefault, i));
    setNumbers(v);
  } else {
    setNumbers(props.getDoubles(kOfxParamPropDefault));
  }
}

std::vector<double> OfxParamStruct::numbers() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return numbers_;
}

std::string OfxParamStruct::text() const { return textPointer(); }

const char *OfxParamStruct::textPointer() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return texts_.empty() ? "" : texts_.back()->c_str();
}

void OfxParamStruct::setNumbers(const std::vector<double> &values) {
  std::lock_guard<std::mutex> lock(mutex_);
  numbers_ = values;
}

void OfxParamStruct::setText(const std::string &value) {
  std::lock_guard<std::mutex> lock(mutex_);
  texts_.push_back(std::make_unique<std::string>(value));
}

void OfxParamStruct::setFromText(const std::string &value) {
  if (components() == 0) throw HostError("--param " + name + ": a " + type + " has no value", 2);
  if (isString()) return setText(value);
  if (type == kOfxParamTypeChoice) {  // an option label or an index
    auto options = props.getStrings(kOfxParamPropChoiceOption);
    for (size_t i = 0; i < options.size(); ++i)
      if (options[i] == value) return setNumbers({static_cast<double>(i)});
  }
  if (type == kOfxParamTypeBoolean && (value == "true" || value == "false"))
    return setNumbers({value == "true" ? 1.0 : 0.0});
  std::vector<double> v;
  const char *s = value.c_str();
  for (int i = 0; i < components(); ++i) {
    char *end = nullptr;
    double x = std::strtod(s, &end);
    if (end == s) throw HostError("--param " + name + ": cannot read '" + value + "' as " + type, 2);
    v.push_back(isIntegral() ? static_cast<double>(static_cast<long>(x)) : x);
    s = (*end == ',') ? end + 1 : end;
  }
  if (*s) throw HostError("--param " + name + ": trailing text in '" + value + "'", 2);
  setNumbers(v);
}

Json OfxParamStruct::valueJson() const {
  if (components() == 0) return {"null"};
  if (isString()) return json(text());
  std::vector<Json> items;
  for (double x : numbers()) items.push_back(isIntegral() ? json(static_cast<int>(x)) : json(x));
  return items.size() == 1 ? items[0] : jsonArray(items);
}

OfxParamSetStruct::OfxParamSetStruct(const OfxParamSetStruct &other) : descriptor(false), props(other.props) {
  for (const auto &p : other.params) params.push_back(std::make_unique<OfxParamStruct>(*p));
}

OfxParamStruct *OfxParamSetStruct::find(const std::string &name) const {
  for (const auto &p : params)
    if (p->name == name) return p.get();
  return nullptr;
}

// ------------------------------------------------------------------ the C suite (variadic value calls)

namespace {

OfxStatus getValues(OfxParamHandle p, va_list ap) {
  if (!p) return kOfxStatErrBadHandle;
  if (p->components() == 0) return kOfxStatErrUnsupported;
  if (p->isString()) {
    *va_arg(ap, const char **) = p->textPointer();
    return kOfxStatOK;
  }
  std::vector<double> v = p->numbers();
  for (double x : v) {
    if (p->isIntegral()) *va_arg(ap, int *) = static_cast<int>(x);
    else *va_arg(ap, double *) = x;
  }
  return kOfxStatOK;
}

OfxStatus setValues(OfxParamHandle p, va_list ap) {
  if (!p) return kOfxStatErrBadHandle;
  if (p->components() == 0) return kOfxStatErrUnsupported;
  const std::string &action = currentAction();
  // The spec allows CreateInstance too, but hosts load or paste the persisted values around it
  // (a value set there can be overwritten, or mark a fresh project as edited): this host refuses it.
  if (action != kOfxActionInstanceChanged && action != kOfxActionBeginInstanceChanged &&
      action != kOfxActionEndInstanceChanged && action != kOfxActionSyncPrivateData)
    violation("paramSetValue(" + p->name + ") outside InstanceChanged/SyncPrivateData");
  if (p->isString()) {
    const char *s = va_arg(ap, const char *);
    p->setText(s ? s : "");
    return kOfxStatOK;
  }
  std::vector<double> v;
  for (int i = 0; i < p->components(); ++i)
    v.push_back(p->isIntegral() ? static_cast<double>(va_arg(ap, int)) : va_arg(ap, double));
  p->setNumbers(v);
  return kOfxStatOK;
}

/** Zero slope (derivative, factor 0) or value * duration (integral): values are constant in time. */
OfxStatus constantCalculus(OfxParamHandle p, double factor, va_list ap) {
  if (!p) return kOfxStatErrBadHandle;
  if (p->isString() || p->isIntegral() || p->components() == 0) return kOfxStatErrUnsupported;
  for (double x : p->numbers()) *va_arg(ap, double *) = x * factor;
  return kOfxStatOK;
}

// va_start needs each entry point's own last named argument, so every variadic entry forwards here.
#define OFXHOST_FORWARD_VARIADIC(last, call) \
  va_list ap;                                \
  va_start(ap, last);                        \
  OfxStatus st = call;                       \
  va_end(ap);                                \
  return st

OfxStatus paramGetValue(OfxParamHandle p, ...) { OFXHOST_FORWARD_VARIADIC(p, getValues(p, ap)); }
OfxStatus paramGetValueAtTime(OfxParamHandle p, OfxTime time, ...) { OFXHOST_FORWARD_VARIADIC(time, getValues(p, ap)); }
OfxStatus paramGetDerivative(OfxParamHandle p, OfxTime time, ...) {
  OFXHOST_FORWARD_VARIADIC(time, constantCalculus(p, 0.0, ap));
}
OfxStatus paramGetIntegral(OfxParamHandle p, OfxTime t1, OfxTime t2, ...) {
  OFXHOST_FORWARD_VARIADIC(t2, constantCalculus(p, t2 - t1, ap));
}
OfxStatus paramSetValue(OfxParamHandle p, ...) { OFXHOST_FORWARD_VARIADIC(p, setValues(p, ap)); }
OfxStatus paramSetValueAtTime(OfxParamHandle p, OfxTime time, ...) { OFXHOST_FORWARD_VARIADIC(time, setValues(p, ap)); }

OfxStatus paramDefine(OfxParamSetHandle set, const char *type, const char *name, OfxPropertySetHandle *props) {
  if (!set) return kOfxStatErrBadHandle;
  if (!set->descriptor) {
    violation(std::string("paramDefine(") + (name ? name : "") + ") on an instance");
    return kOfxStatErrUnsupported;
  }
  if (!type || !typeInfo(type)) return kOfxStatErrUnknown;
  if (!name || !*name) return kOfxStatErrValue;
  if (set->find(name)) return kOfxStatErrExists;
  set->params.push_back(std::make_unique<OfxParamStruct>(name, type));
  if (props) *props = &set->params.back()->props;
  return kOfxStatOK;
}

OfxStatus paramGetHandle(OfxParamSetHandle set, const char *name, OfxParamHandle *param, OfxPropertySetHandle *props) {
  if (!set) return kOfxStatErrBadHandle;
  OfxParamStruct *p = name ? set->find(name) : nullptr;
  if (!p) return kOfxStatErrUnknown;
  if (param) *param = p;
  if (props) *props = &p->props;
  return kOfxStatOK;
}

const OfxParameterSuiteV1 kSuite = {
    paramDefine,
    paramGetHandle,
    [](OfxParamSetHandle set, OfxPropertySetHandle *props) {
      if (!set || !props) return kOfxStatErrBadHandle;
      *props = &set->props;
      return kOfxStatOK;
    },
    [](OfxParamHandle p, OfxPropertySetHandle *props) {
      if (!p || !props) return kOfxStatErrBadHandle;
      *props = &p->props;
      return kOfxStatOK;
    },
    paramGetValue,
    paramGetValueAtTime,
    paramGetDerivative,
    paramGetIntegral,
    paramSetValue,
    paramSetValueAtTime,
    [](OfxParamHandle p, unsigned int *n) {
      if (!p || !n) return kOfxStatErrBadHandle;
      *n = 0;
      return kOfxStatOK;
    },
    [](OfxParamHandle p, unsigned int, OfxTime *) { return p ? kOfxStatErrBadIndex : kOfxStatErrBadHandle; },
    [](OfxParamHandle p, OfxTime, int, int *) { return p ? kOfxStatFailed : kOfxStatErrBadHandle; },
    [](OfxParamHandle p, OfxTime) { return p ? kOfxStatErrBadIndex : kOfxStatErrBadHandle; },
    [](OfxParamHandle p) { return p ? kOfxStatOK : kOfxStatErrBadHandle; },
    [](OfxParamHandle to, OfxParamHandle from, OfxTime, const OfxRangeD *) {
      if (!to || !from || to->type != from->type) return kOfxStatErrBadHandle;
      to->setNumbers(from->numbers());
      to->setText(from->text());
      return kOfxStatOK;
    },
    [](OfxParamSetHandle set, const char *) { return set ? kOfxStatOK : kOfxStatErrBadHandle; },
    [](OfxParamSetHandle set) { return set ? kOfxStatOK : kOfxStatErrBadHandle; },
};

}  // namespace

const OfxParameterSuiteV1 *parameterSuite() { return &kSuite; }
