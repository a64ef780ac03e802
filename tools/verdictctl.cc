// verdictctl: the operator's command-line tool for a Verdict coordinator group (DESIGN §7).
//   verdictctl --coordinators HOST:PORT,... status
//   verdictctl --coordinators HOST:PORT,... txns [--in-doubt] [--limit N]
//   verdictctl --coordinators HOST:PORT,... show GTID
//   verdictctl --coordinators HOST:PORT,... resolve GTID --commit|--abort [--why TEXT]
//   verdictctl --coordinators HOST:PORT,... participants | hazards
//   verdictctl --coordinators HOST:PORT,... decide GTID --commit|--abort [--participants a,b]
//   verdictctl --coordinators HOST:PORT,... get GTID [--local]
// Exit codes: 0 success, 1 no answer / not decided in time (hazards: some exist), 2 usage
// or invalid request, 3 (get, show) nothing recorded, 4 (resolve) refused.
#include <thrift/Thrift.h>
#include <unistd.h>

#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "tools/coordinator_client.h"
#include "tools/verdictctl_txn.h"

namespace po = boost::program_options;
using verdict::Status;
using namespace verdict::tools;
namespace rpc = verdict::rpc;

namespace {

[[noreturn]] void Usage(const std::string& message) {
  std::fprintf(stderr, "verdictctl: %s (see --help)\n", message.c_str());
  std::exit(kExitUsage);
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

int Status_(const std::vector<std::string>& addresses, int timeout_ms) {
  std::printf("%-4s %-22s %-13s %8s %10s %10s %10s %8s\n", "ID", "ADDRESS", "ROLE", "TERM",
              "COMMIT", "APPLIED", "LAST", "LEADER");
  int answered = 0;
  std::map<int64_t, std::set<std::string>> leaders;  // leader id -> who says so
  std::map<int64_t, std::string> leader_address;
  for (const std::string& address : addresses) {
    std::unique_ptr<CoordinatorClient> client;
    rpc::NodeStatus st;
    Status s = CoordinatorClient::Connect(address, timeout_ms, &client);
    if (s.ok()) s = client->GetStatus(&st);
    if (!s.ok()) {
      std::printf("%-4s %-22s unreachable (%s)\n", "-", address.c_str(), s.message().c_str());
      continue;
    }
    ++answered;
    std::printf("%-4lld %-22s %-13s %8lld %10lld %10lld %10lld %8s\n",
                static_cast<long long>(st.id), address.c_str(), RoleName(st.role),
                static_cast<long long>(st.term), static_cast<long long>(st.commit_index),
                static_cast<long long>(st.applied_index), static_cast<long long>(st.last_index),
                st.leader.id ? std::to_string(st.leader.id).c_str() : "-");
    if (st.leader.id) {
      leaders[st.leader.id].insert(address);
      leader_address[st.leader.id] = st.leader.address;
    }
  }
  if (answered == 0) {
    std::printf("no coordinator answered\n");
    return kExitFailed;
  }
  if (leaders.empty()) {
    std::printf("leader: none known\n");
  } else if (leaders.size() == 1) {
    auto& [id, who] = *leaders.begin();
    std::printf("leader: node %lld at %s (agreed by %zu of %d answering nodes)\n",
                static_cast<long long>(id), leader_address[id].c_str(), who.size(), answered);
  } else {
    std::printf("leader: nodes disagree:");
    for (auto& [id, who] : leaders) {
      std::printf(" node %lld (per %zu)", static_cast<long long>(id), who.size());
    }
    std::printf("\n");
  }
  if (int64_t hazards = CountHazards(addresses, timeout_ms); hazards > 0) {
    std::printf("HEURISTIC HAZARDS: %lld seen (verdictctl hazards)\n",
                static_cast<long long>(hazards));
  }
  return 0;
}

// "user@host" of whoever runs verdictctl, for resolve's record.
std::string DefaultWho() {
  const char* user = std::getenv("USER");
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = 0;
  return std::string(user && *user ? user : "unknown") + "@" + (host[0] ? host : "localhost");
}

int Decide(const std::vector<std::string>& addresses, const std::string& gtid, bool commit,
           const std::vector<std::string>& participants, int timeout_ms) {
  rpc::DecideRequest req;
  req.gtid = gtid;
  req.outcome = commit ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT;
  req.participants = participants;
  rpc::DecideResponse resp;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  Status s = DecideOnLeader(addresses, req, deadline, &resp);
  if (!s.ok()) {
    std::fprintf(stderr, "verdictctl: %s not decided: %s\n", gtid.c_str(), s.ToString().c_str());
    return kExitFailed;
  }
  if (resp.code == rpc::ResultCode::INVALID_ARGUMENT) {
    std::fprintf(stderr, "verdictctl: invalid request: %s\n", resp.message.c_str());
    return kExitUsage;
  }
  std::printf("%s %s participants=%s index=%lld\n", gtid.c_str(), OutcomeName(resp.outcome),
              Join(resp.participants).c_str(), static_cast<long long>(resp.log_index));
  return 0;
}

int Get(const std::vector<std::string>& addresses, const std::string& gtid, bool local,
        int timeout_ms) {
  rpc::GetDecisionRequest req;
  req.gtid = gtid;
  req.consistency = local ? rpc::Consistency::LOCAL : rpc::Consistency::LINEARIZABLE;
  rpc::GetDecisionResponse resp;
  Status s;
  if (local) {
    std::unique_ptr<CoordinatorClient> client;
    s = CoordinatorClient::Connect(addresses[0], timeout_ms, &client);
    if (s.ok()) s = client->GetDecision(req, &resp);
  } else {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    s = GetDecisionOnLeader(addresses, req, deadline, &resp);
  }
  if (!s.ok()) {
    std::fprintf(stderr, "verdictctl: cannot read %s: %s\n", gtid.c_str(), s.ToString().c_str());
    return kExitFailed;
  }
  switch (resp.code) {
    case rpc::ResultCode::OK:
      std::printf("%s %s participants=%s index=%lld\n", gtid.c_str(), OutcomeName(resp.outcome),
                  Join(resp.participants).c_str(), static_cast<long long>(resp.log_index));
      return 0;
    case rpc::ResultCode::NOT_FOUND:
      std::printf("%s NOT_FOUND\n", gtid.c_str());
      return kExitNotFound;
    case rpc::ResultCode::INVALID_ARGUMENT:
      std::fprintf(stderr, "verdictctl: invalid request: %s\n", resp.message.c_str());
      return kExitUsage;
    default:
      std::fprintf(stderr, "verdictctl: %s: %s %s\n", gtid.c_str(), ResultCodeName(resp.code),
                   resp.message.c_str());
      return kExitFailed;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Failures are reported per call; Thrift's own stderr chatter is noise here.
  apache::thrift::GlobalOutput.setOutputFunction([](const char*) {});
  std::string coordinators, participants;
  std::vector<std::string> positional;
  std::string who, why;
  int timeout_ms = 10000;
  int limit = 1000;
  bool commit = false, abort = false, local = false, in_doubt = false;
  po::options_description desc(
      "Usage: verdictctl --coordinators HOST:PORT,... COMMAND\n"
      "Commands:\n"
      "  status                                    one line per node, and the leader\n"
      "  txns [--in-doubt] [--limit N]             transactions the leader knows, with state\n"
      "                                            and age (in doubt: a branch may be prepared\n"
      "                                            without knowing the outcome)\n"
      "  show GTID                                 one transaction: participants, votes,\n"
      "                                            acknowledgements, retries (exit 3 if none)\n"
      "  resolve GTID --commit|--abort [--why T]   heuristic decision for a transaction with\n"
      "                                            no applied decision, recorded forever\n"
      "  participants                              the registered participant agents\n"
      "  hazards                                   heuristic hazards each node saw (exit 1\n"
      "                                            if any)\n"
      "  decide GTID --commit|--abort [--participants a,b]\n"
      "                                            record a decision; prints the applied one\n"
      "  get GTID [--local]                        the recorded decision (exit 3 if none)\n"
      "Options");
  // clang-format off
  desc.add_options()
      ("help,h", "print this help")
      ("coordinators", po::value(&coordinators), "the coordinator nodes, HOST:PORT,...")
      ("timeout-ms", po::value(&timeout_ms)->default_value(10000),
       "give up after this long (status: per node)")
      ("commit", po::bool_switch(&commit), "decide, resolve: COMMIT")
      ("abort", po::bool_switch(&abort), "decide, resolve: ABORT")
      ("in-doubt", po::bool_switch(&in_doubt), "txns: only transactions in doubt")
      ("limit", po::value(&limit)->default_value(1000), "txns: at most this many")
      ("why", po::value(&why), "resolve: the reason, recorded with the decision")
      ("who", po::value(&who), "resolve: who decides (default: $USER@hostname)")
      ("participants", po::value(&participants), "decide: participant names, a,b,...")
      ("local", po::bool_switch(&local), "get: read the first node's own state, possibly "
                                          "stale, instead of asking the leader");
  // clang-format on
  po::options_description hidden;
  hidden.add_options()("args", po::value(&positional));
  po::options_description all;
  all.add(desc).add(hidden);
  po::positional_options_description pos;
  pos.add("args", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(argc, argv).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    Usage(e.what());
  }
  if (vm.count("help") || positional.empty()) {
    std::cout << desc << "\n";
    return vm.count("help") ? 0 : kExitUsage;
  }
  std::vector<std::string> addresses;
  if (coordinators.empty()) Usage("--coordinators is required");
  Status s = ParseAddressList(coordinators, &addresses);
  if (!s.ok()) Usage("--coordinators: " + s.message());
  if (timeout_ms <= 0) Usage("--timeout-ms must be positive");

  const std::string& command = positional[0];
  if (command == "status") {
    if (positional.size() != 1) Usage("status takes no arguments");
    return Status_(addresses, std::min(timeout_ms, 3000));
  }
  if (command == "decide") {
    if (positional.size() != 2) Usage("decide takes one GTID");
    if (commit == abort) Usage("decide needs exactly one of --commit and --abort");
    std::vector<std::string> names;
    for (size_t start = 0; start < participants.size();) {
      size_t comma = participants.find(',', start);
      if (comma == std::string::npos) comma = participants.size();
      if (comma > start) names.push_back(participants.substr(start, comma - start));
      start = comma + 1;
    }
    return Decide(addresses, positional[1], commit, names, timeout_ms);
  }
  if (command == "txns") {
    if (positional.size() != 1) Usage("txns takes no arguments");
    if (limit < 1) Usage("--limit must be positive");
    return ListTxnsCommand(addresses, in_doubt, limit, timeout_ms);
  }
  if (command == "show") {
    if (positional.size() != 2) Usage("show takes one GTID");
    return ShowCommand(addresses, positional[1], timeout_ms);
  }
  if (command == "resolve") {
    if (positional.size() != 2) Usage("resolve takes one GTID");
    if (commit == abort) Usage("resolve needs exactly one of --commit and --abort");
    if (why.empty()) Usage("resolve needs --why: a heuristic decision is recorded with its reason");
    return ResolveCommand(addresses, positional[1], commit, who.empty() ? DefaultWho() : who, why,
                          timeout_ms);
  }
  if (command == "participants") {
    if (positional.size() != 1) Usage("participants takes no arguments");
    return ParticipantsCommand(addresses, timeout_ms);
  }
  if (command == "hazards") {
    if (positional.size() != 1) Usage("hazards takes no arguments");
    return HazardsCommand(addresses, timeout_ms);
  }
  if (command == "get") {
    if (positional.size() != 2) Usage("get takes one GTID");
    return Get(addresses, positional[1], local, timeout_ms);
  }
  Usage("unknown command '" + command + "'");
}
