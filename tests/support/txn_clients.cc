#include "tests/support/txn_clients.h"

#include <thrift/Thrift.h>

#include <map>

namespace verdict::test_support {

namespace {

constexpr char kCoordinatorService[] = "Coordinator";
constexpr char kRegistryService[] = "Registry";
constexpr char kParticipantService[] = "Participant";

template <typename Map>
std::string NameOf(const Map& names, int value) {
  auto it = names.find(value);
  if (it == names.end()) return "code(" + std::to_string(value) + ")";
  return it->second;
}

}  // namespace

// ---- TxnClient -------------------------------------------------------------------------

TxnClient::TxnClient(std::string address, int timeout_ms)
    : address_(std::move(address)), timeout_ms_(timeout_ms) {}

TxnClient::~TxnClient() = default;

template <typename Client, typename F>
Status TxnClient::Call(std::unique_ptr<rpc::ThriftChannel>* channel,
                       std::unique_ptr<Client>* client, const char* service, F&& f) {
  if (!*client) {
    auto ch = std::make_unique<rpc::ThriftChannel>(address_, service, timeout_ms_);
    Status s = ch->Open();
    if (!s.ok()) return s;
    *client = std::make_unique<Client>(ch->protocol());
    *channel = std::move(ch);
  }
  try {
    f(**client);
    return Status::OK();
  } catch (const std::exception& e) {
    client->reset();
    channel->reset();
    return Status::Unavailable(address_ + " (" + service + "): " + e.what());
  }
}

Status TxnClient::GetStatus(rpc::NodeStatus* out) {
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.GetStatus(*out); });
}

Status TxnClient::Begin(rpc::Protocol::type protocol, int64_t deadline_ms,
                        rpc::BeginResponse* out) {
  rpc::BeginRequest req;
  req.protocol = protocol;
  req.deadline_ms = deadline_ms;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.Begin(*out, req); });
}

Status TxnClient::RegisterBranch(const std::string& gtid, const std::string& participant,
                                 const std::string& branch, bool read_only,
                                 rpc::RegisterBranchResponse* out) {
  rpc::RegisterBranchRequest req;
  req.gtid = gtid;
  req.participant = participant;
  req.branch = branch;
  req.read_only = read_only;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.RegisterBranch(*out, req); });
}

Status TxnClient::Commit(const std::string& gtid, rpc::TxnOutcomeResponse* out) {
  rpc::TxnRequest req;
  req.gtid = gtid;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.Commit(*out, req); });
}

Status TxnClient::Abort(const std::string& gtid, rpc::TxnOutcomeResponse* out) {
  rpc::TxnRequest req;
  req.gtid = gtid;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.Abort(*out, req); });
}

Status TxnClient::GetTxn(const std::string& gtid, rpc::TxnInfoResponse* out) {
  rpc::TxnRequest req;
  req.gtid = gtid;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.GetTxn(*out, req); });
}

Status TxnClient::ListTxns(bool in_doubt_only, rpc::ListTxnsResponse* out) {
  rpc::ListTxnsRequest req;
  req.in_doubt_only = in_doubt_only;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.ListTxns(*out, req); });
}

Status TxnClient::GetDecision(const std::string& gtid, rpc::Consistency::type consistency,
                              rpc::GetDecisionResponse* out) {
  rpc::GetDecisionRequest req;
  req.gtid = gtid;
  req.consistency = consistency;
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.GetDecision(*out, req); });
}

Status TxnClient::ListHazards(rpc::ListHazardsResponse* out) {
  return Call(&coord_channel_, &coord_, kCoordinatorService,
              [&](rpc::CoordinatorServiceClient& c) { c.ListHazards(*out); });
}

Status TxnClient::ListParticipants(rpc::ListParticipantsResponse* out) {
  return Call(&registry_channel_, &registry_, kRegistryService,
              [&](rpc::ParticipantRegistryServiceClient& c) { c.ListParticipants(*out); });
}

// ---- AgentClient -----------------------------------------------------------------------

AgentClient::AgentClient(std::string address, int timeout_ms)
    : address_(std::move(address)), timeout_ms_(timeout_ms) {}

AgentClient::~AgentClient() = default;

void AgentClient::Disconnect() {
  client_.reset();
  channel_.reset();
}

template <typename F>
Status AgentClient::Call(F&& f) {
  if (!client_) {
    auto ch = std::make_unique<rpc::ThriftChannel>(address_, kParticipantService, timeout_ms_);
    Status s = ch->Open();
    if (!s.ok()) return s;
    client_ = std::make_unique<rpc::ParticipantServiceClient>(ch->protocol());
    channel_ = std::move(ch);
  }
  try {
    f(*client_);
    return Status::OK();
  } catch (const std::exception& e) {
    Disconnect();
    return Status::Unavailable(address_ + " (Participant): " + e.what());
  }
}

Status AgentClient::OpenBranch(const rpc::OpenBranchRequest& request,
                               rpc::OpenBranchResponse* out) {
  return Call([&](rpc::ParticipantServiceClient& c) { c.OpenBranch(*out, request); });
}

Status AgentClient::Execute(const std::string& gtid, const std::string& branch,
                            const std::string& sql, const std::vector<rpc::SqlValue>& params,
                            rpc::ExecuteResponse* out) {
  rpc::ExecuteRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.sql = sql;
  req.params = params;
  return Call([&](rpc::ParticipantServiceClient& c) { c.Execute(*out, req); });
}

Status AgentClient::Commit(const std::string& gtid, const std::string& branch, bool one_phase,
                           rpc::BranchResponse* out) {
  rpc::CommitRequest req;
  req.gtid = gtid;
  req.branch = branch;
  req.one_phase = one_phase;
  return Call([&](rpc::ParticipantServiceClient& c) { c.Commit(*out, req); });
}

Status AgentClient::Abort(const std::string& gtid, const std::string& branch,
                          rpc::BranchResponse* out) {
  rpc::BranchRequest req;
  req.gtid = gtid;
  req.branch = branch;
  return Call([&](rpc::ParticipantServiceClient& c) { c.Abort(*out, req); });
}

Status AgentClient::GetBranchStatus(const std::string& gtid, const std::string& branch,
                                    rpc::BranchStatusResponse* out) {
  rpc::BranchRequest req;
  req.gtid = gtid;
  req.branch = branch;
  return Call([&](rpc::ParticipantServiceClient& c) { c.GetBranchStatus(*out, req); });
}

Status AgentClient::ListInDoubt(rpc::ListInDoubtResponse* out) {
  return Call([&](rpc::ParticipantServiceClient& c) { c.ListInDoubt(*out); });
}

// ---- helpers ---------------------------------------------------------------------------

rpc::SqlValue SqlInt(int64_t v) {
  rpc::SqlValue x;
  x.type = rpc::SqlType::INTEGER;
  x.__set_integer(v);
  return x;
}

std::string ResultCodeName(rpc::ResultCode::type code) {
  return NameOf(rpc::_ResultCode_VALUES_TO_NAMES, code);
}

std::string TxnOutcomeName(rpc::TxnOutcome::type outcome) {
  return NameOf(rpc::_TxnOutcome_VALUES_TO_NAMES, outcome);
}

std::string BranchStateName(rpc::BranchState::type state) {
  return NameOf(rpc::_BranchState_VALUES_TO_NAMES, state);
}

std::string ParticipantCodeName(rpc::ParticipantCode::type code) {
  return NameOf(rpc::_ParticipantCode_VALUES_TO_NAMES, code);
}

}  // namespace verdict::test_support
