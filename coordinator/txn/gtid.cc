#include "coordinator/txn/gtid.h"

namespace verdict::coordinator::txn {

namespace {
// Consumes one decimal number >= 1 without leading zeros from the front of *in.
bool TakeNumber(std::string_view* in, uint64_t* out) {
  size_t n = 0;
  uint64_t v = 0;
  while (n < in->size() && (*in)[n] >= '0' && (*in)[n] <= '9') {
    uint64_t d = static_cast<uint64_t>((*in)[n] - '0');
    if (v > (UINT64_MAX - d) / 10) return false;  // overflow
    v = v * 10 + d;
    ++n;
  }
  if (n == 0 || (*in)[0] == '0') return false;  // empty, zero or a leading zero
  in->remove_prefix(n);
  *out = v;
  return true;
}
}  // namespace

std::string FormatGtid(const Gtid& g) {
  return std::to_string(g.term) + "." + std::to_string(g.node) + "." + std::to_string(g.seq);
}

bool ParseGtid(std::string_view text, Gtid* out) {
  Gtid g;
  if (!TakeNumber(&text, &g.term) || text.empty() || text[0] != '.') return false;
  text.remove_prefix(1);
  if (!TakeNumber(&text, &g.node) || text.empty() || text[0] != '.') return false;
  text.remove_prefix(1);
  if (!TakeNumber(&text, &g.seq) || !text.empty()) return false;
  *out = g;
  return true;
}

}  // namespace verdict::coordinator::txn
