// Gtid: the global transaction id the coordinator leader assigns at Begin, and its text
// form "<term>.<node>.<seq>" (decimal, no leading zeros, each part >= 1), e.g. "7.2.1534".
// Pure value type and functions; thread-safe.
//
// Uniqueness across leader changes: Raft elects at most one leader per term, and a node is
// leader at most once per term (a restarted node rejoins as a follower), so (term, node)
// names one leadership; `seq` counts the Begins of that leadership from 1. The gtid thus
// carries the term of the leader that began it, which the presumed-abort rules of DESIGN
// §3 rely on: a leader of a later term never collects votes for it nor drives it to commit.
//
// The text form is printable ASCII without ':' (what participant agents accept) and sorts
// as (term, node, seq) when compared with GtidKeyLess, which is also the order in which
// the transaction table forgets ended commits (txn_table.h).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

namespace verdict::coordinator::txn {

struct Gtid {
  uint64_t term = 0;
  uint64_t node = 0;
  uint64_t seq = 0;

  friend auto operator<=>(const Gtid&, const Gtid&) = default;
  friend bool operator==(const Gtid&, const Gtid&) = default;
};

// "<term>.<node>.<seq>".
std::string FormatGtid(const Gtid& g);

// Parses the text form. Returns false (and leaves *out unspecified) for anything that is
// not exactly three '.'-separated decimal numbers in [1, 2^64), without sign, spaces or
// leading zeros. Gtids that do not parse (e.g. recorded through the older Decide RPC) are
// still valid keys of the table; they are just not engine-made.
bool ParseGtid(std::string_view text, Gtid* out);

}  // namespace verdict::coordinator::txn
