#include "coordinator/server/raft_codec.h"

#include <memory>
#include <string>
#include <utility>

namespace verdict::coordinator::server {

namespace {

constexpr int kMaxMessageType = static_cast<int>(raft::MessageType::kReadIndexResp);

int64_t I64(uint64_t v) { return static_cast<int64_t>(v); }

bool U64(int64_t v, uint64_t* out) {
  if (v < 0) return false;
  *out = static_cast<uint64_t>(v);
  return true;
}

}  // namespace

size_t MessageToThrift(raft::Message&& m, rpc::RaftMessage* out) {
  size_t bytes = 64 + m.context.size();
  out->type = static_cast<rpc::MessageType::type>(m.type);
  out->from_node = I64(m.from);
  out->to_node = I64(m.to);
  out->term = I64(m.term);
  out->log_term = I64(m.log_term);
  out->index = I64(m.index);
  out->commit = I64(m.commit);
  out->reject = m.reject;
  out->reject_hint = I64(m.reject_hint);
  out->hint_term = I64(m.hint_term);
  out->context = std::move(m.context);
  out->entries.resize(m.entries.size());
  for (size_t i = 0; i < m.entries.size(); ++i) {
    raft::Entry& e = m.entries[i];
    rpc::Entry& t = out->entries[i];
    t.term = I64(e.term);
    t.index = I64(e.index);
    t.type = static_cast<rpc::EntryType::type>(e.type);
    bytes += 24 + e.data.size();
    t.data = std::move(e.data);
  }
  if (m.snapshot) {
    rpc::Snapshot s;
    s.meta.index = I64(m.snapshot->meta.index);
    s.meta.term = I64(m.snapshot->meta.term);
    for (const auto& [id, address] : m.snapshot->meta.membership.voters) {
      rpc::NodeAddress a;
      a.id = I64(id);
      a.address = address;
      s.meta.voters.push_back(std::move(a));
    }
    if (m.snapshot->data) s.data = *m.snapshot->data;
    bytes += s.data.size();
    out->__set_snapshot(std::move(s));
  }
  return bytes;
}

Status MessageFromThrift(rpc::RaftMessage&& in, raft::Message* out) {
  int type = static_cast<int>(in.type);
  if (type < 0 || type > kMaxMessageType) {
    return Status::InvalidArgument("unknown Raft message type " + std::to_string(type));
  }
  raft::Message m;
  m.type = static_cast<raft::MessageType>(type);
  m.reject = in.reject;
  if (!U64(in.from_node, &m.from) || !U64(in.to_node, &m.to) || !U64(in.term, &m.term) ||
      !U64(in.log_term, &m.log_term) || !U64(in.index, &m.index) || !U64(in.commit, &m.commit) ||
      !U64(in.reject_hint, &m.reject_hint) || !U64(in.hint_term, &m.hint_term)) {
    return Status::InvalidArgument("negative number in Raft message");
  }
  m.context = std::move(in.context);
  m.entries.resize(in.entries.size());
  for (size_t i = 0; i < in.entries.size(); ++i) {
    rpc::Entry& t = in.entries[i];
    raft::Entry& e = m.entries[i];
    if (t.type != rpc::EntryType::NORMAL && t.type != rpc::EntryType::CONF_CHANGE) {
      return Status::InvalidArgument("unknown entry type in Raft message");
    }
    if (!U64(t.term, &e.term) || !U64(t.index, &e.index)) {
      return Status::InvalidArgument("negative entry term or index in Raft message");
    }
    e.type = static_cast<raft::EntryType>(t.type);
    e.data = std::move(t.data);
  }
  if (in.__isset.snapshot) {
    raft::Snapshot s;
    if (!U64(in.snapshot.meta.index, &s.meta.index) || !U64(in.snapshot.meta.term, &s.meta.term)) {
      return Status::InvalidArgument("negative snapshot index or term in Raft message");
    }
    for (const rpc::NodeAddress& a : in.snapshot.meta.voters) {
      uint64_t id;
      if (!U64(a.id, &id) || id == raft::kNoNode ||
          !s.meta.membership.voters.emplace(id, a.address).second) {
        return Status::InvalidArgument("malformed snapshot membership in Raft message");
      }
    }
    s.data = std::make_shared<const std::string>(std::move(in.snapshot.data));
    m.snapshot = std::move(s);
  }
  *out = std::move(m);
  return Status::OK();
}

}  // namespace verdict::coordinator::server
