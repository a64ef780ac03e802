// The PostgreSQL prepared-transaction id (gid) of a Verdict branch:
//   verdict:<gtid>:<participant>:<branch>
// Prepared-transaction ids are unique per SERVER, not per database, so the participant name
// is part of the gid: two participants that are databases of one server never collide.
// Each field is percent-encoded: bytes outside [A-Za-z0-9._-] become %XX, so a gid holds
// only [A-Za-z0-9._-:%], needs no quoting care, and splits unambiguously on ':'. A gid is
// at most kMaxGidBytes (PostgreSQL's GIDSIZE is 200 including the terminating NUL).
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/status.h"
#include "participant/resource_manager.h"

namespace verdict::participant::postgres {

inline constexpr std::string_view kGidPrefix = "verdict:";
inline constexpr size_t kMaxGidBytes = 199;

// Percent-encodes one gid field (see above). Never fails.
std::string EncodeGidField(std::string_view field);
// Inverse of EncodeGidField. InvalidArgument on a malformed escape or a ':'.
Status DecodeGidField(std::string_view encoded, std::string* field);

// Checks a participant name: non-empty, at most 64 bytes, printable ASCII without ':'.
Status ValidateParticipantName(std::string_view name);

// The gid of `key` on participant `participant`. InvalidArgument if a field is empty,
// contains a byte outside printable ASCII or ':', or the gid would exceed kMaxGidBytes.
Status MakeGid(std::string_view participant, const BranchKey& key, std::string* gid);

// Parses a gid made by MakeGid. Returns false for any other string (not a Verdict gid,
// malformed encoding).
bool ParseGid(std::string_view gid, std::string* participant, BranchKey* key);

}  // namespace verdict::participant::postgres
