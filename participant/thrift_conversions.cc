#include "participant/thrift_conversions.h"

namespace verdict::participant {

rpc::SqlValue ToThrift(const SqlValue& v) {
  rpc::SqlValue out;
  switch (v.type) {
    case SqlType::kNull:
      out.type = rpc::SqlType::SQL_NULL;
      break;
    case SqlType::kInteger:
      out.type = rpc::SqlType::INTEGER;
      out.__set_integer(v.integer);
      break;
    case SqlType::kReal:
      out.type = rpc::SqlType::REAL;
      out.__set_real(v.real);
      break;
    case SqlType::kText:
      out.type = rpc::SqlType::TEXT;
      out.__set_bytes(v.bytes);
      break;
    case SqlType::kBlob:
      out.type = rpc::SqlType::BLOB;
      out.__set_bytes(v.bytes);
      break;
  }
  return out;
}

bool FromThrift(const rpc::SqlValue& in, SqlValue* out) {
  switch (in.type) {
    case rpc::SqlType::SQL_NULL:
      *out = SqlValue::Null();
      return true;
    case rpc::SqlType::INTEGER:
      if (!in.__isset.integer) return false;
      *out = SqlValue::Integer(in.integer);
      return true;
    case rpc::SqlType::REAL:
      if (!in.__isset.real) return false;
      *out = SqlValue::Real(in.real);
      return true;
    case rpc::SqlType::TEXT:
      *out = SqlValue::Text(in.bytes);
      return true;
    case rpc::SqlType::BLOB:
      *out = SqlValue::Blob(in.bytes);
      return true;
  }
  return false;
}

rpc::BranchState::type ToThrift(BranchState s) {
  switch (s) {
    case BranchState::kActive:
      return rpc::BranchState::ACTIVE;
    case BranchState::kPrepared:
      return rpc::BranchState::PREPARED;
    case BranchState::kPrecommitted:
      return rpc::BranchState::PRECOMMITTED;
    case BranchState::kFenced:
      return rpc::BranchState::FENCED;
    case BranchState::kCommitted:
      return rpc::BranchState::COMMITTED;
    case BranchState::kAborted:
      return rpc::BranchState::ABORTED;
    case BranchState::kNone:
      return rpc::BranchState::NONE;
    case BranchState::kReadOnly:
      return rpc::BranchState::READ_ONLY;
    case BranchState::kOutcomeUnknown:
      return rpc::BranchState::OUTCOME_UNKNOWN;
  }
  return rpc::BranchState::NONE;
}

BranchState FromThrift(rpc::BranchState::type s) {
  switch (s) {
    case rpc::BranchState::READ_ONLY:
      return BranchState::kReadOnly;
    case rpc::BranchState::OUTCOME_UNKNOWN:
      return BranchState::kOutcomeUnknown;
    case rpc::BranchState::ACTIVE:
      return BranchState::kActive;
    case rpc::BranchState::PREPARED:
      return BranchState::kPrepared;
    case rpc::BranchState::PRECOMMITTED:
      return BranchState::kPrecommitted;
    case rpc::BranchState::FENCED:
      return BranchState::kFenced;
    case rpc::BranchState::COMMITTED:
      return BranchState::kCommitted;
    case rpc::BranchState::ABORTED:
      return BranchState::kAborted;
    default:
      return BranchState::kNone;
  }
}

rpc::ParticipantCode::type ToThrift(ReplyCode c) {
  return static_cast<rpc::ParticipantCode::type>(static_cast<int>(c));
}

rpc::Protocol::type ToThrift(Protocol p) {
  return p == Protocol::k3PC ? rpc::Protocol::THREE_PC : rpc::Protocol::TWO_PC;
}

rpc::PeerBranch ToThrift(const PeerRef& p) {
  rpc::PeerBranch out;
  out.name = p.name;
  out.address = p.address;
  out.branch = p.branch;
  return out;
}

PeerRef FromThrift(const rpc::PeerBranch& p) { return PeerRef{p.name, p.address, p.branch}; }

rpc::BranchInfo ToThrift(const BranchStatus& s) {
  rpc::BranchInfo out;
  out.gtid = s.key.gtid;
  out.branch = s.key.branch;
  out.state = ToThrift(s.state);
  out.protocol = ToThrift(s.protocol);
  for (const PeerRef& p : s.participants) out.participants.push_back(ToThrift(p));
  out.age_ms = s.age_ms;
  return out;
}

}  // namespace verdict::participant
