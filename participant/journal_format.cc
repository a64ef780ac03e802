#include "participant/journal_format.h"

#include "common/coding.h"
#include "common/crc32c.h"

namespace verdict::participant::journal_format {

void EncodeRecord(const JournalRecord& r, std::string* dst) {
  std::string body;
  body.push_back(static_cast<char>(kVersion));
  body.push_back(static_cast<char>(r.state));
  body.push_back(static_cast<char>(r.protocol));
  PutLengthPrefixed(&body, r.key.gtid);
  PutLengthPrefixed(&body, r.key.branch);
  PutFixed64(&body, static_cast<uint64_t>(r.voted_unix_ms));
  PutVarint64(&body, r.participants.size());
  for (const PeerRef& p : r.participants) {
    PutLengthPrefixed(&body, p.name);
    PutLengthPrefixed(&body, p.address);
    PutLengthPrefixed(&body, p.branch);
  }
  PutLengthPrefixed(&body, r.rm_payload);

  std::string header;
  PutFixed32(&header, static_cast<uint32_t>(body.size()));
  uint32_t crc = crc32c::Value(header);
  crc = crc32c::Extend(crc, body.data(), body.size());
  PutFixed32(dst, crc32c::Mask(crc));
  dst->append(header);
  dst->append(body);
}

Status DecodeBody(std::string_view in, JournalRecord* r) {
  if (in.size() < 3) return Status::Corruption("journal record too short");
  if (static_cast<uint8_t>(in[0]) != kVersion) return Status::Corruption("journal version");
  uint8_t state = static_cast<uint8_t>(in[1]);
  uint8_t protocol = static_cast<uint8_t>(in[2]);
  in.remove_prefix(3);
  if ((state < static_cast<uint8_t>(BranchState::kPrepared) ||
       state > static_cast<uint8_t>(BranchState::kAborted)) &&
      state != static_cast<uint8_t>(BranchState::kReadOnly)) {
    return Status::Corruption("journal record state");
  }
  if (protocol != 2 && protocol != 3) return Status::Corruption("journal record protocol");
  r->state = static_cast<BranchState>(state);
  r->protocol = static_cast<Protocol>(protocol);
  std::string_view gtid, branch, payload;
  uint64_t voted, n;
  if (!GetLengthPrefixed(&in, &gtid) || !GetLengthPrefixed(&in, &branch) ||
      !GetFixed64(&in, &voted) || !GetVarint64(&in, &n) || n > in.size()) {
    return Status::Corruption("journal record fields");
  }
  r->key.gtid.assign(gtid);
  r->key.branch.assign(branch);
  r->voted_unix_ms = static_cast<int64_t>(voted);
  r->participants.clear();
  for (uint64_t i = 0; i < n; ++i) {
    std::string_view name, address, pbranch;
    if (!GetLengthPrefixed(&in, &name) || !GetLengthPrefixed(&in, &address) ||
        !GetLengthPrefixed(&in, &pbranch)) {
      return Status::Corruption("journal record participants");
    }
    r->participants.push_back({std::string(name), std::string(address), std::string(pbranch)});
  }
  if (!GetLengthPrefixed(&in, &payload) || !in.empty()) {
    return Status::Corruption("journal record payload");
  }
  r->rm_payload.assign(payload);
  return Status::OK();
}

}  // namespace verdict::participant::journal_format
