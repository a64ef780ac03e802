#include "coordinator/storage/file_names.h"

#include "coordinator/storage/log_format.h"

namespace verdict::coordinator::storage {
namespace {

constexpr size_t kHexDigits = 16;

void AppendHex16(std::string* out, uint64_t v) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (int shift = 60; shift >= 0; shift -= 4) out->push_back(kDigits[(v >> shift) & 0xf]);
}

// Consumes exactly 16 lower-case hex digits.
bool ConsumeHex16(std::string_view* in, uint64_t* v) {
  if (in->size() < kHexDigits) return false;
  uint64_t result = 0;
  for (size_t i = 0; i < kHexDigits; ++i) {
    char c = (*in)[i];
    uint64_t d;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint64_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint64_t>(c - 'a' + 10);
    } else {
      return false;
    }
    result = (result << 4) | d;
  }
  in->remove_prefix(kHexDigits);
  *v = result;
  return true;
}

bool ConsumeLiteral(std::string_view* in, std::string_view lit) {
  if (in->substr(0, lit.size()) != lit) return false;
  in->remove_prefix(lit.size());
  return true;
}

}  // namespace

std::string SegmentFileName(uint64_t seq) {
  std::string name(format::kSegmentPrefix);
  AppendHex16(&name, seq);
  name.append(format::kSegmentSuffix);
  return name;
}

std::string SnapshotFileName(uint64_t index, uint64_t term) {
  std::string name(format::kSnapshotPrefix);
  AppendHex16(&name, index);
  name.push_back('-');
  AppendHex16(&name, term);
  name.append(format::kSnapshotSuffix);
  return name;
}

bool ParseSegmentFileName(std::string_view name, uint64_t* seq) {
  return ConsumeLiteral(&name, format::kSegmentPrefix) && ConsumeHex16(&name, seq) &&
         name == format::kSegmentSuffix;
}

bool ParseSnapshotFileName(std::string_view name, uint64_t* index, uint64_t* term) {
  return ConsumeLiteral(&name, format::kSnapshotPrefix) && ConsumeHex16(&name, index) &&
         ConsumeLiteral(&name, "-") && ConsumeHex16(&name, term) && name == format::kSnapshotSuffix;
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string path = dir;
  if (!path.empty() && path.back() != '/') path.push_back('/');
  path.append(name);
  return path;
}

}  // namespace verdict::coordinator::storage
