#include "engine_fixture.h"

namespace verdict::coordinator::txn {

EngineTest::EngineTest() { Reset(Config()); }

EngineConfig EngineTest::Config() const {
  EngineConfig c;
  c.node_id = 1;
  c.vote_timeout_ms = 1'000;
  c.retry_initial_ms = 10;
  c.retry_max_ms = 80;
  c.proposal_retry_ms = 500;
  c.adopted_precommit_fence_ms = 2'000;
  c.end_batch_max = 4;
  c.end_batch_delay_ms = 5;
  return c;
}

void EngineTest::Reset(EngineConfig config) {
  engine_.reset();
  table_ = std::make_unique<TxnTable>();
  engine_ = std::make_unique<ProtocolEngine>(config, *table_);
  for (const char* p : {"a", "b", "c", "d"}) {
    table_->ApplyCommand(RegisterParticipantCmd{p, std::string(p) + ":1", "sqlite"}, ++index_, 1);
  }
  engine_->Tick(now_);
}

void EngineTest::CommitFirst(size_t n) {
  n = std::min(n, pending_.size());
  std::vector<std::string> batch(pending_.begin(), pending_.begin() + n);
  pending_.erase(pending_.begin(), pending_.begin() + n);
  for (const std::string& data : batch) {
    raft::Entry e{term_, ++index_, raft::EntryType::kNormal, data};
    ApplyResult r;
    ASSERT_TRUE(table_->Apply(e, &r).ok());
    TxnCommand cmd;
    ASSERT_TRUE(DecodeCommand(data, &cmd).ok());
    engine_->OnApplied(cmd, r);
    Drain();
  }
}

void EngineTest::CommitLog() {
  while (!pending_.empty()) CommitFirst(pending_.size());
}

ApplyResult EngineTest::ApplyForeign(const TxnCommand& cmd) {
  ApplyResult r = table_->ApplyCommand(cmd, ++index_, term_);
  engine_->OnApplied(cmd, r);
  Drain();
  return r;
}

std::vector<TxnCommand> EngineTest::PendingCommands() const {
  std::vector<TxnCommand> out;
  for (const std::string& d : pending_) {
    TxnCommand c;
    EXPECT_TRUE(DecodeCommand(d, &c).ok());
    out.push_back(c);
  }
  return out;
}

void EngineTest::Lead(uint64_t term) {
  term_ = term;
  engine_->OnLeadershipChanged(true, term);
  Drain();
}

void EngineTest::NewLeader(uint64_t node_id, uint64_t term) {
  Follow(term);
  EngineConfig c = Config();
  c.node_id = node_id;
  engine_ = std::make_unique<ProtocolEngine>(c, *table_);
  engine_->Tick(now_);
  Lead(term);
}

void EngineTest::Follow(uint64_t term) {
  term_ = term;
  engine_->OnLeadershipChanged(false, term);
  Drain();
}

void EngineTest::Advance(int64_t ms) {
  // In small steps, as a driver's timer would.
  for (int64_t left = ms; left > 0; left -= 5) {
    now_ += std::min<int64_t>(5, left);
    engine_->Tick(now_);
  }
  Drain();
}

std::string EngineTest::Begin(Protocol p, int64_t deadline_ms) {
  std::string g;
  Status s = engine_->Begin(p, deadline_ms, &g);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return g;
}

std::string EngineTest::BeginWith(std::vector<std::string> participants, Protocol p,
                                  int64_t deadline_ms) {
  std::string g = Begin(p, deadline_ms);
  for (const std::string& name : participants) {
    Status s = engine_->RegisterBranch(g, name, "b-" + name, false);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return g;
}

RequestToken EngineTest::Commit(const std::string& gtid) {
  RequestToken t = next_token_++;
  engine_->Commit(t, gtid);
  Drain();
  return t;
}

RequestToken EngineTest::Abort(const std::string& gtid) {
  RequestToken t = next_token_++;
  engine_->Abort(t, gtid);
  Drain();
  return t;
}

RequestToken EngineTest::Inquire(const std::string& gtid, const std::string& participant) {
  RequestToken t = next_token_++;
  engine_->Inquire(t, gtid, BranchRef{participant, "b-" + participant});
  Drain();
  return t;
}

void EngineTest::Reply(MessageKind kind, const std::string& gtid, const std::string& participant,
                       ParticipantCode code, BranchStatus state, Vote vote) {
  ParticipantReply r;
  r.kind = kind;
  r.gtid = gtid;
  r.participant = participant;
  r.branch = "b-" + participant;
  r.code = code;
  r.state = state;
  r.vote = vote;
  engine_->OnReply(r);
  Drain();
}

void EngineTest::VoteAs(const std::string& gtid, const std::string& participant, Vote v) {
  BranchStatus st = v == Vote::kYes  ? BranchStatus::kPrepared
                    : v == Vote::kNo ? BranchStatus::kAborted
                                     : BranchStatus::kCommitted;
  Reply(MessageKind::kPrepare, gtid, participant, ParticipantCode::kOk, st, v);
}

void EngineTest::Ack(MessageKind kind, const std::string& gtid, const std::string& participant,
                     ParticipantCode code, BranchStatus state) {
  Reply(kind, gtid, participant, code, state);
}

void EngineTest::Drain() {
  EngineOutput out = engine_->TakeOutput();
  for (auto& m : out.messages) messages_.push_back(std::move(m));
  for (auto& p : out.proposals) pending_.push_back(std::move(p));
  for (auto& r : out.client_replies) {
    EXPECT_EQ(client_.count(r.token), 0u) << "token answered twice: " << r.token;
    client_[r.token] = r;
  }
  for (auto& r : out.inquiry_replies) {
    EXPECT_EQ(inquiries_.count(r.token), 0u) << "token answered twice: " << r.token;
    inquiries_[r.token] = r;
  }
  for (auto& r : out.admin_replies) admin_.push_back(r);
  for (auto& h : out.hazards) hazards_.push_back(h);
}

std::vector<ParticipantMessage> EngineTest::Sent(MessageKind kind,
                                                 const std::string& participant) const {
  std::vector<ParticipantMessage> out;
  for (const auto& m : messages_) {
    if (m.kind == kind && (participant.empty() || m.to.participant == participant)) {
      out.push_back(m);
    }
  }
  return out;
}

const ClientReply* EngineTest::ClientAnswer(RequestToken tok) const {
  auto it = client_.find(tok);
  return it == client_.end() ? nullptr : &it->second;
}

const InquiryReply* EngineTest::InquiryAnswer(RequestToken tok) const {
  auto it = inquiries_.find(tok);
  return it == inquiries_.end() ? nullptr : &it->second;
}

std::optional<Outcome> EngineTest::LogDecision(const std::string& gtid) const {
  GtidLookup l = table_->Find(gtid);
  if (l.state == GtidState::kEndedCommit) return Outcome::kCommit;
  if (l.state == GtidState::kDecided) return l.record->decision;
  return std::nullopt;
}

}  // namespace verdict::coordinator::txn
