// Backend-independent parts of the store contract: Value helpers and Executor::QueryOne.
#include <algorithm>
#include <cstdio>
#include <iomanip>
#include <sstream>
#include <utility>

#include "store/store.hpp"

namespace evo::store {
namespace {

constexpr size_t kBlobBytesShown = 16;

std::string_view TypeName(const Value& v) {
  switch (v.index()) {
    case 0:
      return "NULL";
    case 1:
      return "integer";
    case 2:
      return "double";
    case 3:
      return "text";
    default:
      return "blob";
  }
}

Status WrongType(std::string_view wanted, const Value& v) {
  return InvalidArgumentError("store value is " + std::string(TypeName(v)) + ", not " +
                              std::string(wanted));
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Blob& blob) {
  os << "Blob(" << blob.bytes.size() << " bytes";
  const size_t shown = std::min(blob.bytes.size(), kBlobBytesShown);
  if (shown > 0) {
    os << ":";
  }
  for (size_t i = 0; i < shown; ++i) {
    char hex[4];
    std::snprintf(hex, sizeof(hex), " %02x", static_cast<unsigned char>(blob.bytes[i]));
    os << hex;
  }
  if (shown < blob.bytes.size()) {
    os << " ...";
  }
  return os << ")";
}

bool IsNull(const Value& v) { return std::holds_alternative<std::nullptr_t>(v); }

StatusOr<int64_t> AsInt64(const Value& v) {
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return *i;
  }
  return WrongType("integer", v);
}

StatusOr<double> AsDouble(const Value& v) {
  if (const auto* d = std::get_if<double>(&v)) {
    return *d;
  }
  if (const auto* i = std::get_if<int64_t>(&v)) {
    return static_cast<double>(*i);
  }
  return WrongType("double", v);
}

StatusOr<std::string> AsText(const Value& v) {
  if (const auto* s = std::get_if<std::string>(&v)) {
    return *s;
  }
  return WrongType("text", v);
}

StatusOr<Blob> AsBlob(const Value& v) {
  if (const auto* b = std::get_if<Blob>(&v)) {
    return *b;
  }
  return WrongType("blob", v);
}

std::string DebugString(const Value& v) {
  std::ostringstream os;
  std::visit(
      [&os](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::nullptr_t>) {
          os << "NULL";
        } else if constexpr (std::is_same_v<T, double>) {
          os << std::setprecision(17) << x;
        } else if constexpr (std::is_same_v<T, std::string>) {
          os << std::quoted(x, '\'', '\'');
        } else {
          os << x;
        }
      },
      v);
  return os.str();
}

StatusOr<Row> Executor::QueryOne(std::string_view sql, const Params& params) {
  EVO_ASSIGN_OR_RETURN(Rows rows, Query(sql, params));
  if (rows.rows.empty()) {
    return NotFoundError("query returned no rows");
  }
  return std::move(rows.rows.front());
}

}  // namespace evo::store
