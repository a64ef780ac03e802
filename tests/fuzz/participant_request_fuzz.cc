// Fuzzes the participant agent through its wire protocol: the same server stack as
// verdict-participant (framed transport with the frame limit, strict binary protocol with
// its limits, multiplexed ParticipantService, ParticipantHandler) over an Agent whose
// journal lives in a MemEnv and whose database, coordinator and clock are test doubles.
//
// The first byte picks a mode. Raw: the rest is the byte stream of one connection
// (malformed frames, truncated messages, unknown methods, hostile lengths). Scripted: the
// rest is a program of calls built with the generated client (ids from a small set so that
// calls collide, some invalid), occasionally with a corrupted byte, mixed with timer
// ticks, clock jumps, coordinator decisions and crash-restarts (power cut: unsynced
// journal bytes are lost). After every reply the harness checks, per branch:
//   - it is never seen COMMITTED and ABORTED (unless forgotten after the retention and
//     opened again);
//   - a branch that voted YES is, after a crash, still in doubt or decided, never gone;
//   - a branch that voted YES follows the coordinator's decision once there is one.
#include <spdlog/spdlog.h>
#include <thrift/TConfiguration.h>
#include <thrift/processor/TMultiplexedProcessor.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ParticipantService.h"
#include "common/mem_env.h"
#include "participant/agent.h"
#include "participant/branch_journal.h"
#include "participant/participant_handler.h"
#include "participant/rpc_names.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/unit/participant/agent_fakes.h"
#include "thrift/framed_transport.h"

namespace verdict::participant {
namespace {

using apache::thrift::TException;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::protocol::TMultiplexedProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TMemoryBuffer;

constexpr char kDir[] = "/agent";
constexpr uint32_t kMaxFrameBytes = 64 * 1024;  // as --max-frame-bytes, smaller
constexpr int kRetentionMs = 60000;

const char* const kGtids[] = {"g1", "g2", "g3", "", "bad:id"};
const char* const kBranches[] = {"a", "b", "", "c"};

// The fake database, with commit evidence as both real resource managers keep it: a commit
// marker written in the same local transaction as the branch's changes (prepared or
// one-phase).
class FuzzResourceManager : public testing::FakeResourceManager {
 public:
  using FakeResourceManager::FakeResourceManager;
  Status CommitPrepared(const BranchKey& key) override {
    Status s = FakeResourceManager::CommitPrepared(key);
    if (s.ok()) AddCommitEvidence(key);
    return s;
  }
  Status CommitOnePhase(const BranchKey& key) override {
    Status s = FakeResourceManager::CommitOnePhase(key);
    if (s.ok()) AddCommitEvidence(key);
    return s;
  }
};

// One agent incarnation over durable state (env, rm) that outlives it.
struct Incarnation {
  Incarnation(MemEnv* env, FuzzResourceManager* rm, testing::FakeCoordinator* coord,
              testing::FakePeers* peers, testing::FakeClock* clock) {
    FUZZ_CHECK(OpenFileBranchJournal(env, kDir, /*sync=*/true, &journal).ok());
    AgentOptions options;
    options.name = "p";
    options.address = "127.0.0.1:1";
    options.decided_retention_ms = kRetentionMs;
    options.commit_evidence_retention_ms = 0;
    options.journal_compact_bytes = 2048;  // compaction happens
    agent = std::make_unique<Agent>(options, *rm, *journal, *coord, *peers, clock);
    recovered = agent->Recover();
    auto mux = std::make_shared<apache::thrift::TMultiplexedProcessor>();
    mux->registerProcessor(kParticipantServiceName,
                           std::make_shared<rpc::ParticipantServiceProcessor>(
                               std::make_shared<ParticipantHandler>(*agent)));
    processor = mux;
  }

  // Serves `request` as one connection would: process() until the bytes run out or the
  // connection would be closed. Returns what the server wrote.
  std::string Serve(const std::string& request) {
    auto config = std::make_shared<apache::thrift::TConfiguration>(
        static_cast<int>(kMaxFrameBytes), static_cast<int>(kMaxFrameBytes));
    auto in_buf = std::make_shared<TMemoryBuffer>(
        reinterpret_cast<uint8_t*>(const_cast<char*>(request.data())),
        static_cast<uint32_t>(request.size()), TMemoryBuffer::OBSERVE, config);
    auto in =
        std::make_shared<TBinaryProtocol>(std::make_shared<rpc::FramedTransport>(in_buf, config),
                                          static_cast<int32_t>(kMaxFrameBytes), 1 << 20,
                                          /*strict_read=*/true, /*strict_write=*/true);
    auto out_buf = std::make_shared<TMemoryBuffer>();
    auto out = std::make_shared<TBinaryProtocol>(std::make_shared<TFramedTransport>(out_buf));
    try {
      for (int i = 0; i < 64 && in_buf->available_read() > 0; ++i) {
        if (!processor->process(in, out, nullptr)) break;
      }
    } catch (const TException&) {
      // The server closes the connection; nothing else may happen.
    }
    return out_buf->getBufferAsString();
  }

  std::unique_ptr<BranchJournal> journal;
  std::unique_ptr<Agent> agent;
  Status recovered;
  std::shared_ptr<apache::thrift::TProcessor> processor;
};

// What the harness has seen of one branch.
struct Seen {
  BranchState decided = BranchState::kNone;  // kCommitted / kAborted once seen
  // No later than the decision: when the branch was last seen undecided (the agent may
  // have decided it on any tick since, and forgets it decided_retention_ms after that).
  int64_t decided_at_ms = 0;
  int64_t undecided_at_ms = 0;
  bool voted_yes = false;  // and not seen decided since
  bool journaled = false;  // seen in doubt: from then on it has a journal record
};

class Harness {
 public:
  explicit Harness(bool durable_prepare) : durable_prepare_(durable_prepare), rm_(durable_prepare) {
    FUZZ_CHECK(env_.CreateDirIfMissing(kDir).ok());
    Start();
    req_ = std::make_shared<TMemoryBuffer>();
    resp_ = std::make_shared<TMemoryBuffer>();
    auto out = std::make_shared<TMultiplexedProtocol>(
        std::make_shared<TBinaryProtocol>(std::make_shared<TFramedTransport>(req_)),
        kParticipantServiceName);
    auto in = std::make_shared<TBinaryProtocol>(std::make_shared<TFramedTransport>(resp_));
    client_ = std::make_unique<rpc::ParticipantServiceClient>(in, out);
  }

  void RunRaw(const std::string& bytes) {
    current_->Serve(bytes);
    CheckStillServes();
  }

  void RunScript(fuzz::Input* in) {
    while (!in->empty()) {
      const uint8_t op = in->Byte();
      const std::string gtid = kGtids[in->Byte() % 5];
      const std::string branch = kBranches[in->Byte() % 4];
      corrupt_at_ = in->Byte() % 16 == 0 ? in->Byte() : -1;
      if (trace_) {
        // FUZZ_TRACE=2 also dumps every branch's state: GetStatus may adopt a branch the
        // database holds prepared, so that changes the run.
        for (const auto& [key, seen] : trace_states_ ? seen_ : decltype(seen_){}) {
          std::fprintf(stderr, "    [%s/%s=%s]", key.first.c_str(), key.second.c_str(),
                       BranchStateName(current_->agent->GetStatus({key.first, key.second}).state));
        }
        std::fprintf(stderr, "\nop %d %s/%s%s (t=%lld)\n", op % 16, gtid.c_str(), branch.c_str(),
                     corrupt_at_ >= 0 ? " corrupted" : "", static_cast<long long>(clock_.NowMs()));
      }
      if (op % 16 <= 10) {  // a call naming the branch: it cannot exist before this
        Seen fresh;
        fresh.undecided_at_ms = clock_.NowMs();
        seen_.try_emplace({gtid, branch}, fresh);
      }
      switch (op % 16) {
        case 0: {
          rpc::OpenBranchRequest r;
          r.gtid = gtid;
          r.branch = branch;
          r.protocol = in->Byte() % 2 ? rpc::Protocol::TWO_PC : rpc::Protocol::THREE_PC;
          r.timeout_ms = in->Byte() * 1000;
          r.idle_timeout_ms = in->Byte() * 1000 - 1000;
          rpc::OpenBranchResponse resp;
          if (Call([&] { client_->send_OpenBranch(r); }, [&] { client_->recv_OpenBranch(resp); })) {
            Observe(gtid, branch, resp.state);
          }
          break;
        }
        case 1:
        case 2: {
          rpc::ExecuteRequest r;
          r.gtid = gtid;
          r.branch = branch;
          r.sql = in->Byte() % 8 == 0 ? std::string() : "UPDATE t SET v = ? WHERE k = ?";
          r.params.resize(in->Byte() % 3);
          for (rpc::SqlValue& v : r.params) {
            v.type = static_cast<rpc::SqlType::type>(in->Byte() % 6);  // 5 is no type
            if (in->Byte() % 2) v.__set_integer(in->Byte());
            if (in->Byte() % 2) v.__set_bytes(in->Bytes(in->Byte() % 4));
          }
          r.seq = in->Byte() % 4;
          if (op % 16 == 2) {
            r.__isset.open = true;
            r.open.protocol = in->Byte() % 2 ? rpc::Protocol::TWO_PC : rpc::Protocol::THREE_PC;
          }
          rpc::ExecuteResponse resp;
          if (Call([&] { client_->send_Execute(r); }, [&] { client_->recv_Execute(resp); })) {
            if (trace_) std::fprintf(stderr, "  execute: %d %s\n", resp.code, resp.message.c_str());
            Observe(gtid, branch, resp.state);
          }
          break;
        }
        case 3: {
          rpc::PrepareRequest r;
          r.gtid = gtid;
          r.branch = branch;
          for (int n = in->Byte() % 3; n > 0; --n) {
            rpc::PeerBranch p;
            // p is this agent (its other branches answer termination); q never answers.
            const bool self = in->Byte() % 4 != 0;
            p.name = self ? "p" : "q";
            p.address = self ? "127.0.0.1:1" : "127.0.0.1:2";
            p.branch = kBranches[in->Byte() % 4];
            r.participants.push_back(p);
            listed_[gtid].insert({p.name, p.branch});
          }
          rpc::PrepareResponse resp;
          if (Call([&] { client_->send_Prepare(r); }, [&] { client_->recv_Prepare(resp); })) {
            Observe(gtid, branch, resp.state);
            if (resp.code == rpc::ParticipantCode::OK && resp.vote == rpc::Vote::YES) {
              FUZZ_CHECK(InDoubtOrDecided(ToState(resp.state)));
              Seen& s = seen_[{gtid, branch}];
              if (s.decided == BranchState::kNone) s.voted_yes = true;
            }
          }
          break;
        }
        case 4:
        case 5: {
          rpc::BranchRequest r;
          r.gtid = gtid;
          r.branch = branch;
          rpc::BranchResponse resp;
          const bool precommit = op % 16 == 4;
          meddled_.insert(gtid);
          if (Call(
                  [&] { precommit ? client_->send_Precommit(r) : client_->send_Abort(r); },
                  [&] { precommit ? client_->recv_Precommit(resp) : client_->recv_Abort(resp); })) {
            Observe(gtid, branch, resp.state);
          }
          break;
        }
        case 6: {
          rpc::FenceRequest r;
          r.gtid = gtid;
          r.branch = branch;
          r.fencer = in->Byte() % 2 ? "coordinator" : "q";
          meddled_.insert(gtid);
          rpc::BranchResponse resp;
          if (Call([&] { client_->send_Fence(r); }, [&] { client_->recv_Fence(resp); })) {
            Observe(gtid, branch, resp.state);
          }
          break;
        }
        case 7: {
          rpc::CommitRequest r;
          r.gtid = gtid;
          r.branch = branch;
          r.one_phase = in->Byte() % 2;
          meddled_.insert(gtid);
          rpc::BranchResponse resp;
          if (Call([&] { client_->send_Commit(r); }, [&] { client_->recv_Commit(resp); })) {
            Observe(gtid, branch, resp.state);
          }
          break;
        }
        case 8:
        case 9: {
          rpc::BranchRequest r;
          r.gtid = gtid;
          r.branch = branch;
          if (op % 16 == 8) {
            meddled_.insert(gtid);
            rpc::BranchResponse resp;
            if (Call([&] { client_->send_AbortIfUnvoted(r); },
                     [&] { client_->recv_AbortIfUnvoted(resp); })) {
              Observe(gtid, branch, resp.state);
            }
          } else {
            rpc::BranchStatusResponse resp;
            if (Call([&] { client_->send_GetBranchStatus(r); },
                     [&] { client_->recv_GetBranchStatus(resp); })) {
              if (resp.code == rpc::ParticipantCode::OK) Observe(gtid, branch, resp.info.state);
            }
          }
          break;
        }
        case 10: {
          rpc::ListInDoubtResponse resp;
          if (Call([&] { client_->send_ListInDoubt(); },
                   [&] { client_->recv_ListInDoubt(resp); })) {
            for (const rpc::BranchInfo& b : resp.branches) {
              FUZZ_CHECK(InDoubtOrDecided(ToState(b.state)) ||
                         b.state == rpc::BranchState::OUTCOME_UNKNOWN);
              Observe(b.gtid, b.branch, b.state);
            }
          }
          break;
        }
        case 11:
        case 12:  // time passes
          clock_.Advance(static_cast<int64_t>(in->Byte()) * (op % 16 == 11 ? 100 : 1000));
          current_->agent->Tick();
          break;
        case 13:  // the coordinator decides, if it could have: commit needs every YES seen
          Decide(gtid, in->Byte() % 2 == 0);
          current_->agent->Tick();
          break;
        case 14:
          Crash();
          break;
        case 15:  // a whole connection's worth of raw bytes
          current_->Serve(in->Bytes(in->Byte()));
          break;
      }
    }
    Crash();
    CheckStillServes();
  }

 private:
  static BranchState ToState(rpc::BranchState::type s) { return static_cast<BranchState>(s); }
  static bool InDoubtOrDecided(BranchState s) {
    return s == BranchState::kPrepared || s == BranchState::kPrecommitted ||
           s == BranchState::kFenced || s == BranchState::kCommitted || s == BranchState::kAborted;
  }

  void Start() {
    current_ = std::make_unique<Incarnation>(&env_, &rm_, &coordinator_, &peers_, &clock_);
    FUZZ_CHECK(current_->recovered.ok());
    peers_.Add("127.0.0.1:1", current_->agent.get());
  }

  // Sends one request (a byte corrupted if so scripted), serves it and, if a reply came
  // back, reads it. False if there is no well-formed reply to check.
  template <typename Send, typename Recv>
  bool Call(Send send, Recv recv) {
    req_->resetBuffer();
    send();
    std::string bytes = req_->getBufferAsString();
    const bool corrupted = corrupt_at_ >= 0 && !bytes.empty();
    if (corrupted) bytes[static_cast<size_t>(corrupt_at_) % bytes.size()] ^= 0x5a;
    const std::string reply = current_->Serve(bytes);
    resp_->resetBuffer(reinterpret_cast<uint8_t*>(const_cast<char*>(reply.data())),
                       static_cast<uint32_t>(reply.size()), TMemoryBuffer::COPY);
    try {
      recv();
    } catch (const TException&) {
      FUZZ_CHECK(corrupted);  // a well-formed request always gets a well-formed reply
      return false;
    }
    // A corrupted request that still parsed may have named another branch: not checked.
    return !corrupted;
  }

  void Observe(const std::string& gtid, const std::string& branch, rpc::BranchState::type st) {
    Observe(gtid, branch, ToState(st));
  }

  void Observe(const std::string& gtid, const std::string& branch, BranchState st) {
    if (trace_)
      std::fprintf(stderr, "  %s/%s: %s\n", gtid.c_str(), branch.c_str(), BranchStateName(st));
    Seen& s = seen_[{gtid, branch}];
    const int64_t now = clock_.NowMs();
    if (!durable_prepare_ && (st == BranchState::kPrepared || st == BranchState::kPrecommitted ||
                              st == BranchState::kFenced)) {
      // With a durable-prepare database (PostgreSQL) a 2PC branch's records are written
      // lazily; after a crash the database alone answers for it.
      s.journaled = true;
    }
    const bool may_be_forgotten =
        s.decided != BranchState::kNone && now - s.decided_at_ms >= kRetentionMs;
    if (st == BranchState::kCommitted || st == BranchState::kAborted) {
      if (s.decided != BranchState::kNone && s.decided != st) {
        FUZZ_CHECK(may_be_forgotten);
      }
      auto d = decisions_.find(gtid);
      if (s.voted_yes && d != decisions_.end() && meddled_.count(gtid) == 0) {
        FUZZ_CHECK(st == (d->second ? BranchState::kCommitted : BranchState::kAborted));
      }
      if (s.decided != st) s.decided_at_ms = s.undecided_at_ms;
      s.decided = st;
      s.voted_yes = false;
    } else if (st == BranchState::kActive && s.decided != BranchState::kNone) {
      FUZZ_CHECK(may_be_forgotten);  // opened again: only after it was forgotten
      s = Seen{};
      s.undecided_at_ms = now;
    } else if (s.decided == BranchState::kNone) {
      s.undecided_at_ms = now;
    }
  }

  void Decide(const std::string& gtid, bool commit) {
    if (decisions_.count(gtid) > 0) return;
    if (commit) {  // every listed participant voted YES (q never does)
      for (const auto& [name, branch] : listed_[gtid]) {
        if (name != "p" || !seen_[{gtid, branch}].voted_yes) return;
      }
    }
    bool any = false;
    for (const auto& [key, s] : seen_) {
      if (key.first != gtid) continue;
      if (commit && !s.voted_yes) return;  // commit needs every branch prepared
      any = any || s.voted_yes;
    }
    if (!any) return;
    decisions_[gtid] = commit;
    coordinator_.Set(gtid, commit ? InquiryResult::kCommitted : InquiryResult::kAborted);
  }

  // kill -9 and a power cut: what was not synced is lost; the database (rm_) keeps what it
  // holds. Every branch that voted YES must come back in doubt or decided.
  void Crash() {
    env_.PowerCut();
    current_.reset();
    Start();
    for (auto& [key, s] : seen_) {
      // A branch never seen in doubt may have no journal record (an abort before the
      // vote, a one-phase commit): forgotten with the crash, it may be opened again. Its
      // history starts over, unknown.
      if (!s.journaled) {
        s = Seen{};
        s.undecided_at_ms = std::numeric_limits<int64_t>::min() / 2;
      }
    }
    for (auto& [key, s] : seen_) {
      if (!s.voted_yes) continue;
      BranchStatus st = current_->agent->GetStatus({key.first, key.second});
      FUZZ_CHECK(st.lookup.ok());
      FUZZ_CHECK(InDoubtOrDecided(st.state));
      Observe(key.first, key.second, st.state);
    }
  }

  void CheckStillServes() {
    rpc::ListInDoubtResponse resp;
    corrupt_at_ = -1;
    FUZZ_CHECK(
        Call([&] { client_->send_ListInDoubt(); }, [&] { client_->recv_ListInDoubt(resp); }));
    FUZZ_CHECK(resp.code == rpc::ParticipantCode::OK);
  }

  const bool durable_prepare_;
  MemEnv env_;
  FuzzResourceManager rm_;
  testing::FakeCoordinator coordinator_;
  testing::FakePeers peers_;
  testing::FakeClock clock_;
  std::unique_ptr<Incarnation> current_;
  std::shared_ptr<TMemoryBuffer> req_, resp_;
  std::unique_ptr<rpc::ParticipantServiceClient> client_;
  int corrupt_at_ = -1;
  const bool trace_ = std::getenv("FUZZ_TRACE") != nullptr;  // prints every call and state
  const bool trace_states_ = trace_ && std::string(std::getenv("FUZZ_TRACE")) == "2";
  std::map<std::pair<std::string, std::string>, Seen> seen_;
  std::map<std::string, bool> decisions_;                                        // gtid -> commit
  std::map<std::string, std::set<std::pair<std::string, std::string>>> listed_;  // in PREPAREs
  std::set<std::string> meddled_;  // gtids sent calls only a coordinator or peer sends
};

void RunOne(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint8_t mode = in.Byte();
  Harness h(/*durable_prepare=*/mode & 2);
  if (mode % 4 == 0) {
    h.RunRaw(in.Rest());
  } else {
    h.RunScript(&in);
  }
}

}  // namespace
}  // namespace verdict::participant

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(std::getenv("FUZZ_TRACE") ? spdlog::level::debug : spdlog::level::off);
    return true;
  }();
  (void)quiet;
  verdict::participant::RunOne(data, size);
  return 0;
}
