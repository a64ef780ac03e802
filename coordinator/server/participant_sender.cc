#include "coordinator/server/participant_sender.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include "ParticipantService.h"
#include "coordinator/server/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::coordinator::server {

namespace {

using txn::MessageKind;
using txn::ParticipantCode;

txn::BranchStatus FromThrift(rpc::BranchState::type s) {
  switch (s) {
    case rpc::BranchState::ACTIVE:
      return txn::BranchStatus::kActive;
    case rpc::BranchState::PREPARED:
      return txn::BranchStatus::kPrepared;
    case rpc::BranchState::PRECOMMITTED:
      return txn::BranchStatus::kPrecommitted;
    case rpc::BranchState::FENCED:
      return txn::BranchStatus::kFenced;
    case rpc::BranchState::COMMITTED:
      return txn::BranchStatus::kCommitted;
    case rpc::BranchState::ABORTED:
      return txn::BranchStatus::kAborted;
    case rpc::BranchState::READ_ONLY:
      // Voted READ_ONLY and left: finished with nothing to commit, as the engine reads a
      // COMMITTED state in answer to PREPARE.
      return txn::BranchStatus::kCommitted;
    default:  // NONE, OUTCOME_UNKNOWN (handled by the caller)
      return txn::BranchStatus::kNone;
  }
}

ParticipantCode FromThrift(rpc::ParticipantCode::type c) {
  int v = static_cast<int>(c);
  if (v < 0 || v > static_cast<int>(ParticipantCode::kAlreadyExists)) {
    return ParticipantCode::kInvalidArgument;
  }
  return static_cast<ParticipantCode>(v);
}

txn::Vote FromThrift(rpc::Vote::type v) {
  switch (v) {
    case rpc::Vote::YES:
      return txn::Vote::kYes;
    case rpc::Vote::NO:
      return txn::Vote::kNo;
    case rpc::Vote::READ_ONLY:
      return txn::Vote::kReadOnly;
  }
  return txn::Vote::kNone;
}

void Fill(const rpc::BranchResponse& r, txn::ParticipantReply* out) {
  out->code = FromThrift(r.code);
  out->state = FromThrift(r.state);
  out->message = r.message;
  if (r.state == rpc::BranchState::OUTCOME_UNKNOWN) {
    // A one-phase commit whose local outcome the agent cannot tell yet: no answer.
    out->code = ParticipantCode::kUnavailable;
  }
}

}  // namespace

struct ParticipantSender::Connection {
  rpc::ThriftChannel channel;
  std::unique_ptr<rpc::ParticipantServiceClient> client;

  Connection(const std::string& address, int timeout_ms)
      : channel(address, kParticipantServiceName, timeout_ms) {}
};

ParticipantSender::ParticipantSender(ParticipantSenderOptions options, Metrics& metrics,
                                     ReplyFn on_reply)
    : options_(options), metrics_(metrics), on_reply_(std::move(on_reply)) {}

ParticipantSender::~ParticipantSender() { Stop(); }

ParticipantSender::Key ParticipantSender::KeyOf(const txn::ParticipantMessage& m) {
  return {m.kind, m.gtid, m.to.participant, m.to.branch};
}

void ParticipantSender::Send(std::vector<txn::ParticipantMessage>&& messages) {
  for (txn::ParticipantMessage& m : messages) {
    if (m.to.address.empty()) {
      metrics_.participant_calls_failed.fetch_add(1, std::memory_order_relaxed);
      txn::ParticipantReply r;
      r.kind = m.kind;
      r.gtid = m.gtid;
      r.participant = m.to.participant;
      r.branch = m.to.branch;
      r.code = ParticipantCode::kUnavailable;
      r.message = "participant '" + m.to.participant + "' is not registered";
      on_reply_(std::move(r));
      continue;
    }
    Agent* agent;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopped_) return;
      agent = &AgentFor(m.to.address);
    }
    std::lock_guard<std::mutex> lock(agent->mu);
    if (agent->queue.size() >= options_.max_queue) {
      metrics_.participant_messages_dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    if (!agent->pending.insert(KeyOf(m)).second) {
      metrics_.participant_messages_coalesced.fetch_add(1, std::memory_order_relaxed);
      continue;  // the same call is queued or in flight
    }
    agent->queue.push_back(std::move(m));
    agent->cv.notify_one();
  }
}

ParticipantSender::Agent& ParticipantSender::AgentFor(const std::string& address) {
  auto& slot = agents_[address];
  if (!slot) {
    slot = std::make_unique<Agent>();
    slot->address = address;
    Agent* a = slot.get();
    for (int i = 0; i < options_.connections_per_agent; ++i) {
      a->workers.emplace_back([this, a] {
        pthread_setname_np(pthread_self(), "participant-tx");
        Work(*a);
      });
    }
  }
  return *slot;
}

void ParticipantSender::Work(Agent& agent) {
  std::unique_ptr<Connection> conn;
  while (true) {
    txn::ParticipantMessage m;
    {
      std::unique_lock<std::mutex> lock(agent.mu);
      agent.cv.wait(lock, [&] { return agent.stopping || !agent.queue.empty(); });
      if (agent.stopping) return;
      m = std::move(agent.queue.front());
      agent.queue.pop_front();
    }
    txn::ParticipantReply reply = Call(agent.address, m, conn);
    {
      std::lock_guard<std::mutex> lock(agent.mu);
      agent.pending.erase(KeyOf(m));
    }
    on_reply_(std::move(reply));
  }
}

txn::ParticipantReply ParticipantSender::Call(const std::string& address,
                                              const txn::ParticipantMessage& m,
                                              std::unique_ptr<Connection>& conn) {
  txn::ParticipantReply out;
  out.kind = m.kind;
  out.gtid = m.gtid;
  out.participant = m.to.participant;
  out.branch = m.to.branch;
  out.code = ParticipantCode::kUnavailable;
  metrics_.participant_calls.fetch_add(1, std::memory_order_relaxed);
  if (!conn) {
    conn = std::make_unique<Connection>(address, options_.rpc_timeout_ms);
    Status s = conn->channel.Open();
    if (!s.ok()) {
      conn.reset();
      metrics_.participant_calls_failed.fetch_add(1, std::memory_order_relaxed);
      out.message = s.ToString();
      return out;
    }
    conn->client = std::make_unique<rpc::ParticipantServiceClient>(conn->channel.protocol());
  }
  try {
    rpc::ParticipantServiceClient& c = *conn->client;
    switch (m.kind) {
      case MessageKind::kPrepare: {
        rpc::PrepareRequest req;
        req.gtid = m.gtid;
        req.branch = m.to.branch;
        for (const txn::PeerBranch& p : m.participants) {
          rpc::PeerBranch pb;
          pb.name = p.participant;
          pb.address = p.address;
          pb.branch = p.branch;
          req.participants.push_back(std::move(pb));
        }
        rpc::PrepareResponse r;
        c.Prepare(r, req);
        out.code = FromThrift(r.code);
        out.state = FromThrift(r.state);
        out.message = r.message;
        if (r.code == rpc::ParticipantCode::OK) out.vote = FromThrift(r.vote);
        break;
      }
      case MessageKind::kPrecommit: {
        rpc::BranchRequest req;
        req.gtid = m.gtid;
        req.branch = m.to.branch;
        rpc::BranchResponse r;
        c.Precommit(r, req);
        Fill(r, &out);
        break;
      }
      case MessageKind::kFence: {
        rpc::FenceRequest req;
        req.gtid = m.gtid;
        req.branch = m.to.branch;
        req.fencer = "coordinator";
        rpc::BranchResponse r;
        c.Fence(r, req);
        Fill(r, &out);
        break;
      }
      case MessageKind::kCommit:
      case MessageKind::kCommitOnePhase: {
        rpc::CommitRequest req;
        req.gtid = m.gtid;
        req.branch = m.to.branch;
        req.one_phase = m.kind == MessageKind::kCommitOnePhase;
        rpc::BranchResponse r;
        c.Commit(r, req);
        Fill(r, &out);
        break;
      }
      case MessageKind::kAbort: {
        rpc::BranchRequest req;
        req.gtid = m.gtid;
        req.branch = m.to.branch;
        rpc::BranchResponse r;
        c.Abort(r, req);
        Fill(r, &out);
        break;
      }
    }
  } catch (const std::exception& e) {
    // Timeout or a broken connection: the call may or may not have run. Unanswered; the
    // engine re-sends (every call is idempotent).
    conn.reset();
    metrics_.participant_calls_failed.fetch_add(1, std::memory_order_relaxed);
    out.code = ParticipantCode::kUnavailable;
    out.state = txn::BranchStatus::kNone;
    out.vote = txn::Vote::kNone;
    out.message = std::string(txn::MessageKindName(m.kind)) + " to " + address + ": " + e.what();
    spdlog::debug("{}", out.message);
  }
  return out;
}

void ParticipantSender::Stop() {
  std::map<std::string, std::unique_ptr<Agent>> agents;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    agents.swap(agents_);
  }
  for (auto& [address, agent] : agents) {
    {
      std::lock_guard<std::mutex> lock(agent->mu);
      agent->stopping = true;
      agent->queue.clear();
    }
    agent->cv.notify_all();
  }
  for (auto& [address, agent] : agents) {
    for (std::thread& t : agent->workers) t.join();
  }
}

}  // namespace verdict::coordinator::server
