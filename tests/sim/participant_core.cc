#include "tests/sim/participant_core.h"

#include <utility>

namespace verdict::sim {

namespace {
using BS = BranchState;
using PC = txn::ParticipantCode;
}  // namespace

const char* BranchStateName(BranchState s) {
  switch (s) {
    case BS::kActive:
      return "ACTIVE";
    case BS::kPrepared:
      return "PREPARED";
    case BS::kPrecommitted:
      return "PRECOMMITTED";
    case BS::kFenced:
      return "FENCED";
    case BS::kCommitted:
      return "COMMITTED";
    case BS::kAborted:
      return "ABORTED";
    case BS::kNone:
      return "NONE";
  }
  return "?";
}

ParticipantCore::ParticipantCore(std::string name, Observer observer)
    : name_(std::move(name)), observer_(std::move(observer)) {}

SimBranch* ParticipantCore::Find(const std::string& gtid) {
  auto it = branches_.find(gtid);
  return it == branches_.end() ? nullptr : &it->second;
}

bool ParticipantCore::Open(const std::string& gtid, txn::Protocol protocol,
                           const std::string& branch) {
  if (branches_.count(gtid) != 0) return false;
  SimBranch& b = branches_[gtid];
  b.protocol = protocol;
  b.branch = branch;
  return true;
}

void ParticipantCore::Set(const std::string& gtid, BranchState to) {
  SimBranch& b = branches_[gtid];
  if (b.branch.empty()) b.branch = "b-" + name_;
  BranchState from = b.state;
  if (from == to) return;
  b.state = to;
  if (observer_) observer_(gtid, from, to);
}

txn::ParticipantReply ParticipantCore::Handle(const txn::ParticipantMessage& m,
                                              const LocalChoice& choice) {
  txn::ParticipantReply r;
  r.kind = m.kind;
  r.gtid = m.gtid;
  r.participant = name_;
  r.branch = m.to.branch;
  SimBranch* b = Find(m.gtid);
  BS s = b ? b->state : BS::kNone;
  auto reply = [&](PC code, BS state, txn::Vote vote = txn::Vote::kNone) {
    r.code = code;
    r.state = state;
    r.vote = vote;
    return r;
  };
  switch (m.kind) {
    case txn::MessageKind::kPrepare:
      if (s == BS::kNone) return reply(PC::kNotFound, s);
      if (s == BS::kActive) {
        b->protocol = m.protocol;
        if (choice.vote == txn::Vote::kNo) {
          Set(m.gtid, BS::kAborted);
          return reply(PC::kOk, BS::kAborted, txn::Vote::kNo);
        }
        if (choice.vote == txn::Vote::kReadOnly) {
          b->read_only = true;
          Set(m.gtid, BS::kCommitted);
          return reply(PC::kOk, BS::kCommitted, txn::Vote::kReadOnly);
        }
        b->peers = m.participants;  // durable with the PREPARED state
        Set(m.gtid, BS::kPrepared);
        return reply(PC::kOk, BS::kPrepared, txn::Vote::kYes);
      }
      if (InDoubt(s) || s == BS::kCommitted) {
        return reply(PC::kOk, s, b->read_only ? txn::Vote::kReadOnly : txn::Vote::kYes);
      }
      return reply(PC::kWrongState, s);
    case txn::MessageKind::kPrecommit:
      if (s == BS::kPrepared ||
          (s == BS::kFenced && mutation_ == ParticipantMutation::kPrecommitWhileFenced)) {
        Set(m.gtid, BS::kPrecommitted);
        return reply(PC::kOk, BS::kPrecommitted);
      }
      if (s == BS::kPrecommitted || s == BS::kCommitted) return reply(PC::kOk, s);
      if (s == BS::kFenced) return reply(PC::kFenced, s);  // FENCED refuses PRECOMMIT
      return reply(PC::kWrongState, s);
    case txn::MessageKind::kFence:
      if (s == BS::kPrepared || s == BS::kFenced) {
        Set(m.gtid, BS::kFenced);
        return reply(PC::kOk, BS::kFenced);
      }
      if (s == BS::kPrecommitted) return reply(PC::kPrecommitted, s);  // refuses FENCE
      return reply(PC::kWrongState, s);
    case txn::MessageKind::kCommit:
      if (InDoubt(s)) {
        Set(m.gtid, BS::kCommitted);
        return reply(PC::kOk, BS::kCommitted);
      }
      if (s == BS::kCommitted) return reply(PC::kOk, s);
      if (s == BS::kNone) return reply(PC::kNotFound, s);
      return reply(PC::kWrongState, s);
    case txn::MessageKind::kCommitOnePhase:
      if (s == BS::kActive) {
        Set(m.gtid, choice.one_phase_ok ? BS::kCommitted : BS::kAborted);
        s = b->state;
        return reply(s == BS::kCommitted ? PC::kOk : PC::kSqlError, s);
      }
      if (InDoubt(s)) {
        Set(m.gtid, BS::kCommitted);
        return reply(PC::kOk, BS::kCommitted);
      }
      if (s == BS::kCommitted) return reply(PC::kOk, s);
      return reply(PC::kWrongState, s);
    case txn::MessageKind::kAbort:
      if (s == BS::kCommitted) return reply(PC::kWrongState, s);
      Set(m.gtid, BS::kAborted);  // unknown: an ABORTED tombstone (presumed abort)
      return reply(PC::kOk, BS::kAborted);
  }
  return reply(PC::kInvalidArgument, s);
}

BranchState ParticipantCore::AbortIfUnvoted(const std::string& gtid, bool* read_only) {
  SimBranch* b = Find(gtid);
  if (b == nullptr || b->state == BS::kActive) Set(gtid, BS::kAborted);
  b = Find(gtid);
  *read_only = b->read_only;
  return b->state;
}

BranchState ParticipantCore::Fence(const std::string& gtid) {
  SimBranch* b = Find(gtid);
  if (b == nullptr) return BS::kNone;
  if (b->state == BS::kPrepared) Set(gtid, BS::kFenced);
  return b->state;
}

void ParticipantCore::Decide(const std::string& gtid, txn::Outcome outcome) {
  SimBranch* b = Find(gtid);
  if (b == nullptr || !InDoubt(b->state)) return;
  Set(gtid, outcome == txn::Outcome::kCommit ? BS::kCommitted : BS::kAborted);
}

void ParticipantCore::Crash() {
  for (auto it = branches_.begin(); it != branches_.end();) {
    if (it->second.state == BS::kActive) {
      it = branches_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace verdict::sim
