#include "participant/participant_handler.h"

#include <optional>

#include "participant/thrift_conversions.h"

namespace verdict::participant {

namespace {

static_assert(static_cast<int>(ReplyCode::kAlreadyExists) == rpc::ParticipantCode::ALREADY_EXISTS);
static_assert(static_cast<int>(ReplyCode::kUnavailable) == rpc::ParticipantCode::UNAVAILABLE);

// Fills code/state/message of any response with those fields.
template <typename Response>
void Fill(Response& out, const Reply& r) {
  out.code = ToThrift(r.code);
  out.state = ToThrift(r.state);
  out.message = r.message;
}

template <typename Response>
bool CheckKey(Response& out, const std::string& gtid, const std::string& branch, BranchKey* key) {
  std::string why = ParticipantHandler::CheckId("gtid", gtid);
  if (why.empty()) why = ParticipantHandler::CheckId("branch", branch);
  if (!why.empty()) {
    Fill(out, Reply{ReplyCode::kInvalidArgument, BranchState::kNone, why});
    return false;
  }
  *key = BranchKey{gtid, branch};
  return true;
}

}  // namespace

std::string ParticipantHandler::CheckId(const std::string& what, const std::string& id) {
  if (id.empty()) return what + " is empty";
  if (id.size() > kMaxIdBytes) return what + " is longer than 256 bytes";
  for (char c : id) {
    if (c <= ' ' || c > '~' || c == ':') {
      return what + " must be printable ASCII without spaces or ':'";
    }
  }
  return "";
}

namespace {

// OpenBranch's options (of an OpenBranchRequest or an ExecuteRequest's OpenOptions) as
// OpenArgs; an INVALID_ARGUMENT reply if they are not valid.
template <typename Request>
std::optional<Reply> ToOpenArgs(const Request& req, OpenArgs* a) {
  if (req.protocol != rpc::Protocol::TWO_PC && req.protocol != rpc::Protocol::THREE_PC) {
    return Reply{ReplyCode::kInvalidArgument, BranchState::kNone, "unknown protocol"};
  }
  if (req.timeout_ms < 0 || req.idle_timeout_ms < 0 || req.lock_timeout_ms < 0) {
    return Reply{ReplyCode::kInvalidArgument, BranchState::kNone, "negative timeout"};
  }
  a->protocol = req.protocol == rpc::Protocol::THREE_PC ? Protocol::k3PC : Protocol::k2PC;
  a->timeout_ms = req.timeout_ms;
  a->idle_timeout_ms = req.idle_timeout_ms;
  a->lock_timeout_ms = req.lock_timeout_ms;
  return std::nullopt;
}

}  // namespace

void ParticipantHandler::OpenBranch(rpc::OpenBranchResponse& out,
                                    const rpc::OpenBranchRequest& req) {
  OpenArgs a;
  if (!CheckKey(out, req.gtid, req.branch, &a.key)) return;
  if (std::optional<Reply> bad = ToOpenArgs(req, &a)) return Fill(out, *bad);
  Fill(out, agent_.Open(a));
}

void ParticipantHandler::Execute(rpc::ExecuteResponse& out, const rpc::ExecuteRequest& req) {
  BranchKey key;
  if (!CheckKey(out, req.gtid, req.branch, &key)) return;
  auto invalid = [&](const std::string& why) {
    BranchStatus st = agent_.GetStatus(key);
    Fill(out, Reply{ReplyCode::kInvalidArgument, st.state, why});
  };
  if (req.sql.empty() || req.sql.size() > kMaxSqlBytes) return invalid("sql empty or too long");
  if (req.params.size() > kMaxParams) return invalid("too many parameters");
  if (req.seq < 0) return invalid("negative seq");
  std::vector<SqlValue> params(req.params.size());
  for (size_t i = 0; i < req.params.size(); ++i) {
    if (!FromThrift(req.params[i], &params[i])) {
      return invalid("parameter " + std::to_string(i + 1) + " does not match its type");
    }
  }
  if (req.__isset.open) {
    OpenArgs a;
    a.key = key;
    if (std::optional<Reply> bad = ToOpenArgs(req.open, &a)) return Fill(out, *bad);
    // A branch that exists already (a retried first statement, or past ACTIVE) is left
    // as it is: the statement's own answer follows.
    Reply opened = agent_.Open(a);
    if (opened.code != ReplyCode::kOk && opened.code != ReplyCode::kAlreadyExists) {
      return Fill(out, opened);
    }
  }
  ExecuteReply r = agent_.Execute(key, req.sql, params, req.seq);
  Fill(out, r.reply);
  out.columns = r.result.columns;
  out.rows_affected = r.result.rows_affected;
  out.rows.reserve(r.result.rows.size());
  for (const SqlRow& row : r.result.rows) {
    rpc::SqlRow tr;
    tr.values.reserve(row.size());
    for (const SqlValue& v : row) tr.values.push_back(ToThrift(v));
    out.rows.push_back(std::move(tr));
  }
}

void ParticipantHandler::Prepare(rpc::PrepareResponse& out, const rpc::PrepareRequest& req) {
  BranchKey key;
  out.vote = rpc::Vote::NO;
  if (!CheckKey(out, req.gtid, req.branch, &key)) return;
  if (req.participants.size() > kMaxParticipants) {
    Fill(out, Reply{ReplyCode::kInvalidArgument, BranchState::kNone, "too many participants"});
    return;
  }
  std::vector<PeerRef> peers;
  for (const rpc::PeerBranch& p : req.participants) {
    std::string why = CheckId("participant name", p.name);
    if (why.empty()) why = CheckId("participant branch", p.branch);
    if (why.empty() && p.address.empty()) why = "participant address is empty";
    if (!why.empty()) {
      Fill(out, Reply{ReplyCode::kInvalidArgument, agent_.GetStatus(key).state, why});
      return;
    }
    peers.push_back(FromThrift(p));
  }
  PrepareReply r = agent_.Prepare(key, peers);
  Fill(out, r.reply);
  out.vote = r.vote == Vote::kYes        ? rpc::Vote::YES
             : r.vote == Vote::kReadOnly ? rpc::Vote::READ_ONLY
                                         : rpc::Vote::NO;
}

void ParticipantHandler::Precommit(rpc::BranchResponse& out, const rpc::BranchRequest& req) {
  BranchKey key;
  if (CheckKey(out, req.gtid, req.branch, &key)) Fill(out, agent_.Precommit(key));
}

void ParticipantHandler::Fence(rpc::BranchResponse& out, const rpc::FenceRequest& req) {
  BranchKey key;
  if (CheckKey(out, req.gtid, req.branch, &key)) Fill(out, agent_.Fence(key, req.fencer));
}

void ParticipantHandler::Commit(rpc::BranchResponse& out, const rpc::CommitRequest& req) {
  BranchKey key;
  if (CheckKey(out, req.gtid, req.branch, &key)) Fill(out, agent_.Commit(key, req.one_phase));
}

void ParticipantHandler::Abort(rpc::BranchResponse& out, const rpc::BranchRequest& req) {
  BranchKey key;
  if (CheckKey(out, req.gtid, req.branch, &key)) Fill(out, agent_.Abort(key));
}

void ParticipantHandler::AbortIfUnvoted(rpc::BranchResponse& out, const rpc::BranchRequest& req) {
  BranchKey key;
  if (CheckKey(out, req.gtid, req.branch, &key)) Fill(out, agent_.AbortIfUnvoted(key));
}

void ParticipantHandler::GetBranchStatus(rpc::BranchStatusResponse& out,
                                         const rpc::BranchRequest& req) {
  BranchKey key;
  std::string why = CheckId("gtid", req.gtid);
  if (why.empty()) why = CheckId("branch", req.branch);
  if (!why.empty()) {
    out.code = rpc::ParticipantCode::INVALID_ARGUMENT;
    out.info.state = rpc::BranchState::NONE;
    out.message = why;
    return;
  }
  BranchStatus st = agent_.GetStatus(BranchKey{req.gtid, req.branch});
  out.info = ToThrift(st);
  if (!st.lookup.ok()) {
    // No record, and the database could not say whether it committed: not an answer.
    out.code = rpc::ParticipantCode::UNAVAILABLE;
    out.message =
        "no record of this branch and no answer from the database: " + st.lookup.ToString();
    return;
  }
  out.code =
      st.state == BranchState::kNone ? rpc::ParticipantCode::NOT_FOUND : rpc::ParticipantCode::OK;
}

void ParticipantHandler::ListInDoubt(rpc::ListInDoubtResponse& out) {
  out.code = rpc::ParticipantCode::OK;
  for (const BranchStatus& s : agent_.ListInDoubt()) out.branches.push_back(ToThrift(s));
}

}  // namespace verdict::participant
