// props.cpp: typed multi-dimensional property sets and the property suite.
#include "props.h"

#include "common.h"

namespace {

template <class T> struct Slot;
template <> struct Slot<int> {
  static constexpr PropType type = PropType::Int;
  static std::vector<int> &of(Prop &p) { return p.ints; }
};
template <> struct Slot<double> {
  static constexpr PropType type = PropType::Double;
  static std::vector<double> &of(Prop &p) { return p.doubles; }
};
template <> struct Slot<std::string> {
  static constexpr PropType type = PropType::String;
  static std::vector<std::string> &of(Prop &p) { return p.strings; }
};
template <> struct Slot<void *> {
  static constexpr PropType type = PropType::Pointer;
  static std::vector<void *> &of(Prop &p) { return p.pointers; }
};

const char *typeName(PropType t) {
  switch (t) {
    case PropType::Int: return "int";
    case PropType::Double: return "double";
    case PropType::String: return "string";
    case PropType::Pointer: return "pointer";
  }
  return "?";
}

Prop makeProp(PropType type, bool variable, size_t n) {
  Prop p;
  p.type = type;
  p.fixedDim = variable ? 0 : static_cast<int>(n);
  return p;
}

}  // namespace

int Prop::dimension() const {
  switch (type) {
    case PropType::Int: return static_cast<int>(ints.size());
    case PropType::Double: return static_cast<int>(doubles.size());
    case PropType::String: return static_cast<int>(strings.size());
    case PropType::Pointer: return static_cast<int>(pointers.size());
  }
  return 0;
}

OfxPropertySetStruct::OfxPropertySetStruct(const OfxPropertySetStruct &other) {
  std::lock_guard<std::recursive_mutex> lock(other.mutex_);
  what = other.what;
  props_ = other.props_;
  defaults_ = other.defaults_;
}

OfxPropertySetStruct &OfxPropertySetStruct::operator=(const OfxPropertySetStruct &other) {
  if (this == &other) return *this;
  std::scoped_lock lock(mutex_, other.mutex_);
  props_ = other.props_;
  defaults_ = other.defaults_;
  return *this;
}

void OfxPropertySetStruct::declareInt(const char *name, std::vector<int> values, bool variable) {
  Prop p = makeProp(PropType::Int, variable, values.size());
  p.ints = std::move(values);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  props_[name] = defaults_[name] = p;
}

void OfxPropertySetStruct::declareDouble(const char *name, std::vector<double> values, bool variable) {
  Prop p = makeProp(PropType::Double, variable, values.size());
  p.doubles = std::move(values);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  props_[name] = defaults_[name] = p;
}

void OfxPropertySetStruct::declareString(const char *name, std::vector<std::string> values, bool variable) {
  Prop p = makeProp(PropType::String, variable, values.size());
  p.strings = std::move(values);
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  props_[name] = defaults_[name] = p;
}

void OfxPropertySetStruct::declarePointer(const char *name, void *value) {
  Prop p = makeProp(PropType::Pointer, false, 1);
  p.pointers = {value};
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  props_[name] = defaults_[name] = p;
}

Prop *OfxPropertySetStruct::find(const char *name, PropType type, OfxStatus *status) {
  auto it = name ? props_.find(name) : props_.end();
  if (it == props_.end()) {
    *status = kOfxStatErrUnknown;
    return nullptr;
  }
  if (it->second.type != type) {
    emit("bad-prop-type", {{"set", json(what)}, {"name", json(name)}, {"declared", json(typeName(it->second.type))},
                           {"used", json(typeName(type))}});
    *status = kOfxStatErrValue;
    return nullptr;
  }
  *status = kOfxStatOK;
  return &it->second;
}

template <class T> OfxStatus OfxPropertySetStruct::set(const char *name, int index, T value) {
  using Value = std::conditional_t<std::is_same<T, const char *>::value, std::string, T>;
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  OfxStatus status;
  Prop *p = find(name, Slot<Value>::type, &status);
  if (!p) {
    if (status == kOfxStatErrUnknown) emit("unknown-prop", {{"set", json(what)}, {"name", json(name)}});
    return status;
  }
  auto &values = Slot<Value>::of(*p);
  int limit = p->fixedDim ? p->fixedDim : static_cast<int>(values.size()) + 1;
  if (index < 0 || index >= limit) return kOfxStatErrBadIndex;
  if (index == static_cast<int>(values.size())) values.emplace_back();
  values[index] = Value(value);
  return kOfxStatOK;
}

template <class T> OfxStatus OfxPropertySetStruct::get(const char *name, int index, T *value) {
  using Value = std::conditional_t<std::is_same<T, char *>::value, std::string, T>;
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  OfxStatus status;
  Prop *p = find(name, Slot<Value>::type, &status);
  if (!p) return status;
  auto &values = Slot<Value>::of(*p);
  if (!value || index < 0 || index >= static_cast<int>(values.size())) return kOfxStatErrBadIndex;
  if constexpr (std::is_same<T, char *>::value) {
    *value = const_cast<char *>(values[index].c_str());
  } else {
    *value = values[index];
  }
  return kOfxStatOK;
}

OfxStatus OfxPropertySetStruct::reset(const char *name) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto it = name ? defaults_.find(name) : defaults_.end();
  if (it == defaults_.end()) return kOfxStatErrUnknown;
  props_[name] = it->second;
  return kOfxStatOK;
}

OfxStatus OfxPropertySetStruct::dimension(const char *name, int *count) {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto it = name ? props_.find(name) : props_.end();
  if (it == props_.end()) return kOfxStatErrUnknown;
  if (!count) return kOfxStatErrBadIndex;
  *count = it->second.dimension();
  return kOfxStatOK;
}

bool OfxPropertySetStruct::has(const char *name) const {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  return props_.count(name) != 0;
}

std::vector<std::string> OfxPropertySetStruct::names() const {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  std::vector<std::string> out;
  for (const auto &kv : props_) out.push_back(kv.first);
  return out;
}

namespace {
template <class V> V hostGet(const OfxPropertySetStruct &set, const char *name, int index) {
  V value{};
  auto &self = const_cast<OfxPropertySetStruct &>(set);
  using Arg = std::conditional_t<std::is_same<V, std::string>::value, char *, V>;
  Arg raw{};
  if (self.get<Arg>(name, index, &raw) != kOfxStatOK)
    throw HostError(set.what + ": no " + typeName(Slot<V>::type) + " property " + name + "[" + std::to_string(index) + "]");
  value = V(raw);
  return value;
}
}  // namespace

int OfxPropertySetStruct::getInt(const char *name, int index) const { return hostGet<int>(*this, name, index); }
double OfxPropertySetStruct::getDouble(const char *name, int index) const { return hostGet<double>(*this, name, index); }
std::string OfxPropertySetStruct::getString(const char *name, int index) const {
  return hostGet<std::string>(*this, name, index);
}
void *OfxPropertySetStruct::getPointer(const char *name, int index) const { return hostGet<void *>(*this, name, index); }

std::vector<double> OfxPropertySetStruct::getDoubles(const char *name) const {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto it = props_.find(name);
  if (it == props_.end() || it->second.type != PropType::Double) throw HostError(what + ": no double property " + name);
  return it->second.doubles;
}

std::vector<std::string> OfxPropertySetStruct::getStrings(const char *name) const {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto it = props_.find(name);
  if (it == props_.end() || it->second.type != PropType::String) throw HostError(what + ": no string property " + name);
  return it->second.strings;
}

std::string OfxPropertySetStruct::describe(const char *name) const {
  std::lock_guard<std::recursive_mutex> lock(mutex_);
  auto it = props_.find(name);
  if (it == props_.end()) return "null";
  std::vector<Json> items;
  const Prop &p = it->second;
  for (int v : p.ints) items.push_back(json(v));
  for (double v : p.doubles) items.push_back(json(v));
  for (const auto &v : p.strings) items.push_back(json(v));
  for (void *v : p.pointers) items.push_back(json(v ? "<pointer>" : "<null>"));
  return jsonArray(items).text;
}

// ------------------------------------------------------------------ the C suite

namespace {

template <class T> OfxStatus setOne(OfxPropertySetHandle h, const char *name, int index, T value) {
  return h ? h->set<T>(name, index, value) : kOfxStatErrBadHandle;
}

template <class T> OfxStatus getOne(OfxPropertySetHandle h, const char *name, int index, T *value) {
  return h ? h->get<T>(name, index, value) : kOfxStatErrBadHandle;
}

template <class T, class A> OfxStatus setMany(OfxPropertySetHandle h, const char *name, int count, A values) {
  if (!h) return kOfxStatErrBadHandle;
  if (!values || count < 0) return kOfxStatErrBadIndex;
  for (int i = 0; i < count; ++i) {
    OfxStatus st = h->set<T>(name, i, values[i]);
    if (st != kOfxStatOK) return st;
  }
  return kOfxStatOK;
}

template <class T> OfxStatus getMany(OfxPropertySetHandle h, const char *name, int count, T *values) {
  if (!h) return kOfxStatErrBadHandle;
  if (!values || count < 0) return kOfxStatErrBadIndex;
  for (int i = 0; i < count; ++i) {
    OfxStatus st = h->get<T>(name, i, &values[i]);
    if (st != kOfxStatOK) return st;
  }
  return kOfxStatOK;
}

const OfxPropertySuiteV1 kSuite = {
    [](OfxPropertySetHandle h, const char *n, int i, void *v) { return setOne<void *>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int i, const char *v) {
      return v ? setOne<const char *>(h, n, i, v) : kOfxStatErrValue;
    },
    [](OfxPropertySetHandle h, const char *n, int i, double v) { return setOne<double>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int i, int v) { return setOne<int>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int c, void *const *v) { return setMany<void *>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, const char *const *v) { return setMany<const char *>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, const double *v) { return setMany<double>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, const int *v) { return setMany<int>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int i, void **v) { return getOne<void *>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int i, char **v) { return getOne<char *>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int i, double *v) { return getOne<double>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int i, int *v) { return getOne<int>(h, n, i, v); },
    [](OfxPropertySetHandle h, const char *n, int c, void **v) { return getMany<void *>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, char **v) { return getMany<char *>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, double *v) { return getMany<double>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n, int c, int *v) { return getMany<int>(h, n, c, v); },
    [](OfxPropertySetHandle h, const char *n) { return h ? h->reset(n) : kOfxStatErrBadHandle; },
    [](OfxPropertySetHandle h, const char *n, int *c) { return h ? h->dimension(n, c) : kOfxStatErrBadHandle; },
};

}  // namespace

const OfxPropertySuiteV1 *propertySuite() { return &kSuite; }
