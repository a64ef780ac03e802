#include "participant/postgres/gid.h"

#include <cctype>

namespace verdict::participant::postgres {
namespace {

constexpr size_t kMaxParticipantNameBytes = 64;

bool IsPlain(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Printable ASCII without ':' (the contract of BranchKey and of participant names).
Status ValidateField(std::string_view what, std::string_view field) {
  if (field.empty()) return Status::InvalidArgument(std::string(what) + " is empty");
  for (char c : field) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e || c == ':') {
      return Status::InvalidArgument(std::string(what) +
                                     " contains a byte outside printable ASCII or a ':'");
    }
  }
  return Status::OK();
}

}  // namespace

std::string EncodeGidField(std::string_view field) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(field.size());
  for (char c : field) {
    if (IsPlain(c)) {
      out += c;
    } else {
      const auto u = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

Status DecodeGidField(std::string_view encoded, std::string* field) {
  std::string out;
  out.reserve(encoded.size());
  for (size_t i = 0; i < encoded.size(); ++i) {
    const char c = encoded[i];
    if (c == '%') {
      if (i + 2 >= encoded.size()) {
        return Status::InvalidArgument("truncated %-escape in gid field");
      }
      const int hi = HexValue(encoded[i + 1]);
      const int lo = HexValue(encoded[i + 2]);
      if (hi < 0 || lo < 0) return Status::InvalidArgument("bad %-escape in gid field");
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (IsPlain(c)) {
      out += c;
    } else {
      return Status::InvalidArgument("unexpected byte in gid field");
    }
  }
  *field = std::move(out);
  return Status::OK();
}

Status ValidateParticipantName(std::string_view name) {
  VERDICT_RETURN_IF_ERROR(ValidateField("participant name", name));
  if (name.size() > kMaxParticipantNameBytes) {
    return Status::InvalidArgument("participant name is longer than 64 bytes");
  }
  return Status::OK();
}

Status MakeGid(std::string_view participant, const BranchKey& key, std::string* gid) {
  VERDICT_RETURN_IF_ERROR(ValidateField("participant name", participant));
  VERDICT_RETURN_IF_ERROR(ValidateField("gtid", key.gtid));
  VERDICT_RETURN_IF_ERROR(ValidateField("branch", key.branch));
  std::string out(kGidPrefix);
  out += EncodeGidField(key.gtid);
  out += ':';
  out += EncodeGidField(participant);
  out += ':';
  out += EncodeGidField(key.branch);
  if (out.size() > kMaxGidBytes) {
    return Status::InvalidArgument("prepared-transaction id would be " +
                                   std::to_string(out.size()) + " bytes; PostgreSQL allows " +
                                   std::to_string(kMaxGidBytes) +
                                   " (shorten the gtid, branch or participant name)");
  }
  *gid = std::move(out);
  return Status::OK();
}

bool ParseGid(std::string_view gid, std::string* participant, BranchKey* key) {
  if (gid.substr(0, kGidPrefix.size()) != kGidPrefix) return false;
  std::string_view rest = gid.substr(kGidPrefix.size());
  const size_t a = rest.find(':');
  if (a == std::string_view::npos) return false;
  const size_t b = rest.find(':', a + 1);
  if (b == std::string_view::npos || rest.find(':', b + 1) != std::string_view::npos) {
    return false;
  }
  std::string gtid, name, branch;
  if (!DecodeGidField(rest.substr(0, a), &gtid).ok() ||
      !DecodeGidField(rest.substr(a + 1, b - a - 1), &name).ok() ||
      !DecodeGidField(rest.substr(b + 1), &branch).ok()) {
    return false;
  }
  // Only the canonical encoding is a Verdict gid (MakeGid must give back the same bytes).
  BranchKey parsed{std::move(gtid), std::move(branch)};
  std::string canonical;
  if (!MakeGid(name, parsed, &canonical).ok() || canonical != gid) return false;
  *participant = std::move(name);
  *key = std::move(parsed);
  return true;
}

}  // namespace verdict::participant::postgres
