#include "tools/verdictctl_txn.h"

#include <cstdio>
#include <ctime>

#include "ParticipantRegistryService.h"
#include "thrift/thrift_channel.h"
#include "tools/coordinator_client.h"

namespace verdict::tools {

namespace {

using Clock = std::chrono::steady_clock;

Clock::time_point Deadline(int timeout_ms) {
  return Clock::now() + std::chrono::milliseconds(timeout_ms);
}

const char* ProtocolName(rpc::Protocol::type p) {
  return p == rpc::Protocol::THREE_PC ? "3pc" : "2pc";
}

std::string DecisionText(const rpc::TxnInfo& t) {
  if (!t.__isset.decision) return "-";
  return OutcomeName(t.decision);
}

std::string Votes(const rpc::TxnInfo& t) {
  std::string out;
  for (const rpc::BranchDetail& b : t.branches) {
    if (!out.empty()) out += ",";
    out += b.participant + "/" + b.branch;
    if (!b.vote.empty()) out += "=" + b.vote;
  }
  return out.empty() ? "-" : out;
}

std::string UnixTime(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Reports a call that did not reach a final answer; returns the exit code.
int Failed(const char* what, const Status& s) {
  std::fprintf(stderr, "verdictctl: %s: %s\n", what, s.ToString().c_str());
  return kExitFailed;
}

template <typename Response>
bool LeaderFinal(const Response& r) {
  return r.code != rpc::ResultCode::NOT_LEADER && r.code != rpc::ResultCode::UNKNOWN &&
         r.code != rpc::ResultCode::UNAVAILABLE;
}

}  // namespace

int ListTxnsCommand(const std::vector<std::string>& addresses, bool in_doubt, int limit,
                    int timeout_ms) {
  rpc::ListTxnsRequest req;
  req.in_doubt_only = in_doubt;
  req.limit = limit;
  rpc::ListTxnsResponse resp;
  Status s = CallOnLeader(
      addresses, Deadline(timeout_ms), std::min(timeout_ms, 6000), &resp,
      [&](CoordinatorClient& c, rpc::ListTxnsResponse* out) {
        return c.Invoke([&](rpc::CoordinatorServiceClient& cl) { cl.ListTxns(*out, req); });
      },
      LeaderFinal<rpc::ListTxnsResponse>);
  if (!s.ok()) return Failed("cannot list transactions", s);
  if (resp.code != rpc::ResultCode::OK) {
    std::fprintf(stderr, "verdictctl: %s %s\n", ResultCodeName(resp.code), resp.message.c_str());
    return resp.code == rpc::ResultCode::INVALID_ARGUMENT ? kExitUsage : kExitFailed;
  }
  std::printf("%-24s %-5s %-20s %-8s %10s %-8s %s\n", "GTID", "PROTO", "PHASE", "DECISION",
              "AGE_MS", "IN_DOUBT", "BRANCHES");
  for (const rpc::TxnInfo& t : resp.txns) {
    std::printf("%-24s %-5s %-20s %-8s %10lld %-8s %s\n", t.gtid.c_str(), ProtocolName(t.protocol),
                t.phase.c_str(), DecisionText(t).c_str(), static_cast<long long>(t.age_ms),
                t.in_doubt ? "yes" : "no", Votes(t).c_str());
  }
  std::printf("%zu transaction(s)%s%s\n", resp.txns.size(), in_doubt ? " in doubt" : "",
              resp.truncated ? " (truncated: raise --limit)" : "");
  return 0;
}

int ShowCommand(const std::vector<std::string>& addresses, const std::string& gtid,
                int timeout_ms) {
  rpc::TxnRequest req;
  req.gtid = gtid;
  rpc::TxnInfoResponse resp;
  Status s = CallOnLeader(
      addresses, Deadline(timeout_ms), std::min(timeout_ms, 6000), &resp,
      [&](CoordinatorClient& c, rpc::TxnInfoResponse* out) {
        return c.Invoke([&](rpc::CoordinatorServiceClient& cl) { cl.GetTxn(*out, req); });
      },
      LeaderFinal<rpc::TxnInfoResponse>);
  if (!s.ok()) return Failed(("cannot read " + gtid).c_str(), s);
  if (resp.code == rpc::ResultCode::NOT_FOUND) {
    std::printf("%s NOT_FOUND (never begun here, or aborted and forgotten: presumed abort)\n",
                gtid.c_str());
    return kExitNotFound;
  }
  if (resp.code != rpc::ResultCode::OK) {
    std::fprintf(stderr, "verdictctl: %s %s\n", ResultCodeName(resp.code), resp.message.c_str());
    return resp.code == rpc::ResultCode::INVALID_ARGUMENT ? kExitUsage : kExitFailed;
  }
  const rpc::TxnInfo& t = resp.info;
  std::printf("gtid:        %s\n", t.gtid.c_str());
  std::printf("protocol:    %s\n", ProtocolName(t.protocol));
  std::printf("phase:       %s%s\n", t.phase.c_str(),
              t.driven ? " (driven by the leader)" : " (known from the log)");
  std::printf("decision:    %s", DecisionText(t).c_str());
  if (t.__isset.decision && !t.basis.empty()) {
    std::printf(" (basis %s, log index %lld)", t.basis.c_str(),
                static_cast<long long>(t.decision_index));
  } else if (t.__isset.decision) {
    std::printf(" (finished and forgotten; remembered as committed)");
  }
  std::printf("\n");
  if (t.precommit_applied) std::printf("precommit:   applied\n");
  if (!t.reason.empty()) std::printf("reason:      %s\n", t.reason.c_str());
  if (t.driven) {
    std::printf("age:         %lld ms\n", static_cast<long long>(t.age_ms));
    std::printf("deadline in: %lld ms\n", static_cast<long long>(t.deadline_in_ms));
  }
  std::printf("in doubt:    %s\n", t.in_doubt ? "yes" : "no");
  if (t.__isset.heuristic) {
    std::printf("HEURISTIC:   by %s at %s: %s\n", t.heuristic.who.c_str(),
                UnixTime(t.heuristic.when_unix_ms).c_str(), t.heuristic.why.c_str());
  }
  std::printf("branches:    %zu\n", t.branches.size());
  if (!t.branches.empty()) {
    std::printf("  %-16s %-16s %-10s %-9s %-6s %-5s %s\n", "PARTICIPANT", "BRANCH", "VOTE",
                "PRECOMMIT", "FENCED", "ACKED", "ATTEMPTS");
    for (const rpc::BranchDetail& b : t.branches) {
      std::printf("  %-16s %-16s %-10s %-9s %-6s %-5s %d\n", b.participant.c_str(),
                  b.branch.c_str(), b.vote.empty() ? "-" : b.vote.c_str(),
                  b.precommit_acked ? "acked" : "-", b.fenced ? "yes" : "-",
                  b.acknowledged ? "yes" : "-", b.attempts);
    }
  }
  return 0;
}

int ResolveCommand(const std::vector<std::string>& addresses, const std::string& gtid, bool commit,
                   const std::string& who, const std::string& why, int timeout_ms) {
  rpc::ResolveRequest req;
  req.gtid = gtid;
  req.outcome = commit ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT;
  req.who = who;
  req.why = why;
  rpc::ResolveResponse resp;
  Status s = CallOnLeader(
      addresses, Deadline(timeout_ms), std::min(timeout_ms, 6000), &resp,
      [&](CoordinatorClient& c, rpc::ResolveResponse* out) {
        return c.Invoke([&](rpc::CoordinatorServiceClient& cl) { cl.Resolve(*out, req); });
      },
      LeaderFinal<rpc::ResolveResponse>);
  if (!s.ok()) return Failed(("cannot resolve " + gtid).c_str(), s);
  switch (resp.code) {
    case rpc::ResultCode::OK:
      std::printf("%s resolved %s (heuristic, by %s)\n", gtid.c_str(), commit ? "COMMIT" : "ABORT",
                  who.c_str());
      return 0;
    case rpc::ResultCode::WRONG_STATE:
      std::printf("%s not resolved: %s%s%s\n", gtid.c_str(), resp.message.c_str(),
                  resp.__isset.decision ? "; the applied decision is " : "",
                  resp.__isset.decision ? OutcomeName(resp.decision) : "");
      return kExitRefused;
    case rpc::ResultCode::INVALID_ARGUMENT:
      std::fprintf(stderr, "verdictctl: invalid request: %s\n", resp.message.c_str());
      return kExitUsage;
    default:
      std::fprintf(stderr, "verdictctl: %s %s\n", ResultCodeName(resp.code), resp.message.c_str());
      return kExitFailed;
  }
}

int ParticipantsCommand(const std::vector<std::string>& addresses, int timeout_ms) {
  std::string last_error;
  for (const std::string& address : addresses) {
    rpc::ThriftChannel ch(address, "Registry", std::min(timeout_ms, 6000));
    Status s = ch.Open();
    if (!s.ok()) {
      last_error = s.message();
      continue;
    }
    rpc::ListParticipantsResponse resp;
    try {
      rpc::ParticipantRegistryServiceClient client(ch.protocol());
      client.ListParticipants(resp);
    } catch (const std::exception& e) {
      last_error = address + ": " + e.what();
      continue;
    }
    std::printf("%-20s %-24s %s\n", "NAME", "ADDRESS", "BACKEND");
    for (const rpc::ParticipantEntry& p : resp.participants) {
      std::printf("%-20s %-24s %s\n", p.name.c_str(), p.address.c_str(), p.backend.c_str());
    }
    std::printf("%zu participant(s) (as applied on %s)\n", resp.participants.size(),
                address.c_str());
    return 0;
  }
  std::fprintf(stderr, "verdictctl: no coordinator answered: %s\n", last_error.c_str());
  return kExitFailed;
}

namespace {

// Calls ListHazards on every node; `each` sees the ones that answered.
template <typename F>
int ForEachNodeHazards(const std::vector<std::string>& addresses, int timeout_ms, F&& each) {
  int answered = 0;
  for (const std::string& address : addresses) {
    std::unique_ptr<CoordinatorClient> client;
    rpc::ListHazardsResponse resp;
    Status s = CoordinatorClient::Connect(address, std::min(timeout_ms, 3000), &client);
    if (s.ok()) {
      s = client->Invoke([&](rpc::CoordinatorServiceClient& c) { c.ListHazards(resp); });
    }
    if (!s.ok()) continue;
    ++answered;
    each(address, resp);
  }
  return answered;
}

}  // namespace

int HazardsCommand(const std::vector<std::string>& addresses, int timeout_ms) {
  int64_t total = 0;
  int answered = ForEachNodeHazards(
      addresses, timeout_ms, [&](const std::string& address, const rpc::ListHazardsResponse& r) {
        total += r.total;
        for (const rpc::Hazard& h : r.hazards) {
          std::printf("%s node %lld (%s) %s gtid %s branch %s/%s: %s\n",
                      UnixTime(h.when_unix_ms).c_str(), static_cast<long long>(h.node),
                      address.c_str(), h.kind.c_str(), h.gtid.c_str(), h.participant.c_str(),
                      h.branch.c_str(), h.message.c_str());
        }
      });
  if (answered == 0) {
    std::fprintf(stderr, "verdictctl: no coordinator answered\n");
    return kExitFailed;
  }
  std::printf("%lld heuristic hazard(s) on %d answering node(s)\n", static_cast<long long>(total),
              answered);
  return total == 0 ? 0 : kExitFailed;
}

int64_t CountHazards(const std::vector<std::string>& addresses, int timeout_ms) {
  int64_t total = 0;
  ForEachNodeHazards(
      addresses, timeout_ms,
      [&](const std::string&, const rpc::ListHazardsResponse& r) { total += r.total; });
  return total;
}

}  // namespace verdict::tools
