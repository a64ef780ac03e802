// libverdict: Client and Transaction over Thrift (thrift/coordinator.thrift,
// thrift/participant.thrift). The coordinator leader is found by following NOT_LEADER
// hints and trying every node; connections are kept and reopened after a transport error.
#include "verdict/client.h"

#include <chrono>
#include <thread>

#include "CoordinatorService.h"
#include "ParticipantRegistryService.h"
#include "ParticipantService.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::sdk {

using Clock = std::chrono::steady_clock;
using Code = Status::Code;
using participant::kCoordinatorServiceName;
using participant::kParticipantServiceName;
using participant::kRegistryServiceName;

std::string Status::ToString() const {
  static const char* const kNames[] = {"OK",          "InvalidArgument", "NotFound",
                                       "Unavailable", "Aborted",         "Unknown",
                                       "SqlError",    "LockTimeout",     "WrongState"};
  std::string s = kNames[static_cast<int>(code_)];
  if (!message_.empty()) s += ": " + message_;
  return s;
}

Value Value::Integer(int64_t v) {
  Value x;
  x.type_ = Type::kInteger;
  x.integer_ = v;
  return x;
}
Value Value::Real(double v) {
  Value x;
  x.type_ = Type::kReal;
  x.real_ = v;
  return x;
}
Value Value::Text(std::string v) {
  Value x;
  x.type_ = Type::kText;
  x.bytes_ = std::move(v);
  return x;
}
Value Value::Blob(std::string v) {
  Value x;
  x.type_ = Type::kBlob;
  x.bytes_ = std::move(v);
  return x;
}
bool Value::operator==(const Value& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::kNull:
      return true;
    case Type::kInteger:
      return integer_ == o.integer_;
    case Type::kReal:
      return real_ == o.real_;
    default:
      return bytes_ == o.bytes_;
  }
}

const char* OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kCommitted:
      return "COMMITTED";
    case Outcome::kAborted:
      return "ABORTED";
    case Outcome::kUnknown:
      return "UNKNOWN";
  }
  return "?";
}

namespace {

constexpr char kBranch[] = "b";  // one branch per participant and transaction

rpc::SqlValue ToThrift(const Value& v) {
  rpc::SqlValue out;
  switch (v.type()) {
    case Value::Type::kNull:
      out.type = rpc::SqlType::SQL_NULL;
      break;
    case Value::Type::kInteger:
      out.type = rpc::SqlType::INTEGER;
      out.__set_integer(v.integer());
      break;
    case Value::Type::kReal:
      out.type = rpc::SqlType::REAL;
      out.__set_real(v.real());
      break;
    case Value::Type::kText:
      out.type = rpc::SqlType::TEXT;
      out.__set_bytes(v.bytes());
      break;
    case Value::Type::kBlob:
      out.type = rpc::SqlType::BLOB;
      out.__set_bytes(v.bytes());
      break;
  }
  return out;
}

Value FromThrift(const rpc::SqlValue& v) {
  switch (v.type) {
    case rpc::SqlType::INTEGER:
      return Value::Integer(v.integer);
    case rpc::SqlType::REAL:
      return Value::Real(v.real);
    case rpc::SqlType::TEXT:
      return Value::Text(v.bytes);
    case rpc::SqlType::BLOB:
      return Value::Blob(v.bytes);
    default:
      return Value::Null();
  }
}

// One kept connection to one service of one node.
template <typename ThriftClient>
struct Link {
  std::unique_ptr<rpc::ThriftChannel> channel;
  std::unique_ptr<ThriftClient> client;
  std::string address;

  // Runs f(client); a transport failure closes the link and returns kUnavailable.
  template <typename F>
  Status Call(const std::string& to, const char* service, int timeout_ms, F&& f) {
    if (client == nullptr || address != to) {
      client.reset();
      channel = std::make_unique<rpc::ThriftChannel>(to, service, timeout_ms);
      verdict::Status s = channel->Open();
      if (!s.ok()) {
        channel.reset();
        return Status(s.code() == verdict::Status::Code::kInvalidArgument ? Code::kInvalidArgument
                                                                          : Code::kUnavailable,
                      s.message());
      }
      client = std::make_unique<ThriftClient>(channel->protocol());
      address = to;
    }
    try {
      f(*client);
      return Status::OK();
    } catch (const std::exception& e) {
      client.reset();
      channel.reset();
      return Status(Code::kUnavailable, to + ": " + e.what());
    }
  }
};

Status FromParticipant(rpc::ParticipantCode::type code, const std::string& participant,
                       const std::string& message) {
  const std::string text = participant + ": " + message;
  switch (code) {
    case rpc::ParticipantCode::OK:
      return Status::OK();
    case rpc::ParticipantCode::INVALID_ARGUMENT:
      return Status(Code::kInvalidArgument, text);
    case rpc::ParticipantCode::SQL_ERROR:
      return Status(Code::kSqlError, text);
    case rpc::ParticipantCode::LOCK_TIMEOUT:
      return Status(Code::kLockTimeout, text);
    case rpc::ParticipantCode::UNAVAILABLE:
      return Status(Code::kUnavailable, text);
    case rpc::ParticipantCode::NOT_FOUND:
      return Status(Code::kNotFound, text);
    default:
      return Status(Code::kWrongState, text);  // e.g. the branch aborted on its deadline
  }
}

}  // namespace

struct Client::Impl {
  ClientOptions options;
  size_t next = 0;     // the coordinator tried next when the leader is unknown
  std::string leader;  // the last known leader's address ("" = unknown)
  Link<rpc::CoordinatorServiceClient> coordinator;
  Link<rpc::ParticipantRegistryServiceClient> registry;
  std::map<std::string, std::string> participants;                    // name -> address
  std::map<std::string, Link<rpc::ParticipantServiceClient>> agents;  // by participant

  // Calls the leader: `call(link, response)` makes one call and returns its transport
  // status; `response` must have `code` and `leader`. Follows NOT_LEADER hints, and tries
  // every node on UNAVAILABLE or a transport error, until a response with another code
  // (returned as OK) or leader_wait_ms (kUnavailable). With `retry_unknown`, an UNKNOWN
  // answer is retried too (idempotent calls).
  template <typename Response, typename CallFn>
  Status OnLeader(Response* out, CallFn&& call, bool retry_unknown = false) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.leader_wait_ms);
    int backoff_ms = 20;
    int hops = 0;
    std::string last = "no coordinator answered";
    while (true) {
      const std::string target = leader.empty() ? options.coordinators[next] : leader;
      Status s = call(target, out);
      bool follow = false;
      if (s.ok()) {
        if (out->code == rpc::ResultCode::NOT_LEADER) {
          last = target + ": not the leader";
          if (out->__isset.leader && out->leader.id != 0 && !out->leader.address.empty() &&
              out->leader.address != target &&
              hops < static_cast<int>(options.coordinators.size())) {
            leader = out->leader.address;
            follow = true;
            ++hops;
          }
        } else if (out->code == rpc::ResultCode::UNAVAILABLE ||
                   (retry_unknown && out->code == rpc::ResultCode::UNKNOWN)) {
          last = target + ": " + std::to_string(static_cast<int>(out->code));
        } else {
          leader = target;
          return Status::OK();
        }
      } else {
        last = s.message();
      }
      if (Clock::now() >= deadline) return Status(Code::kUnavailable, last);
      if (!follow) {
        leader.clear();
        next = (next + 1) % options.coordinators.size();
        hops = 0;
        if (next == 0 || (s.ok() && out->code == rpc::ResultCode::UNKNOWN)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
          backoff_ms = std::min(backoff_ms * 2, 500);
        }
      }
    }
  }

  template <typename F>
  Status Coordinator(const std::string& to, F&& f) {
    return coordinator.Call(to, kCoordinatorServiceName, options.rpc_timeout_ms, f);
  }

  Status RefreshParticipants() {
    rpc::ListParticipantsResponse r;
    Status s = OnLeader(&r, [&](const std::string& to, rpc::ListParticipantsResponse* out) {
      return registry.Call(
          to, kRegistryServiceName, options.rpc_timeout_ms,
          [&](rpc::ParticipantRegistryServiceClient& c) { c.ListParticipants(*out); });
    });
    if (!s.ok()) return s;
    if (r.code != rpc::ResultCode::OK) {
      return Status(Code::kUnavailable, "ListParticipants answered " + std::to_string(r.code));
    }
    participants.clear();
    for (const rpc::ParticipantEntry& p : r.participants) participants[p.name] = p.address;
    return Status::OK();
  }

  Status AgentAddress(const std::string& name, std::string* address) {
    auto it = participants.find(name);
    if (it == participants.end()) {
      Status s = RefreshParticipants();
      if (!s.ok()) return s;
      it = participants.find(name);
      if (it == participants.end()) {
        return Status(Code::kNotFound, "no participant named '" + name +
                                           "' is registered with the coordinator group");
      }
    }
    *address = it->second;
    return Status::OK();
  }
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Status Client::Connect(const ClientOptions& options, std::unique_ptr<Client>* out) {
  if (options.coordinators.empty()) {
    return Status(Code::kInvalidArgument, "no coordinator address given");
  }
  for (const std::string& a : options.coordinators) {
    std::string host;
    int port;
    verdict::Status s = rpc::SplitHostPort(a, &host, &port);
    if (!s.ok()) return Status(Code::kInvalidArgument, s.message());
  }
  if (options.rpc_timeout_ms <= 0 || options.leader_wait_ms <= 0) {
    return Status(Code::kInvalidArgument, "rpc_timeout_ms and leader_wait_ms must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  Status s = impl->RefreshParticipants();
  if (!s.ok()) return s;
  out->reset(new Client(std::move(impl)));
  return Status::OK();
}

Status Client::Participants(std::map<std::string, std::string>* out) {
  Status s = impl_->RefreshParticipants();
  if (s.ok()) *out = impl_->participants;
  return s;
}

Status Client::ListInDoubt(std::vector<std::string>* gtids) {
  rpc::ListTxnsRequest req;
  req.in_doubt_only = true;
  req.limit = 100000;
  rpc::ListTxnsResponse r;
  Status s = impl_->OnLeader(
      &r,
      [&](const std::string& to, rpc::ListTxnsResponse* o) {
        return impl_->Coordinator(to,
                                  [&](rpc::CoordinatorServiceClient& c) { c.ListTxns(*o, req); });
      },
      /*retry_unknown=*/true);
  if (!s.ok()) return s;
  if (r.code != rpc::ResultCode::OK) return Status(Code::kUnavailable, "ListTxns: " + r.message);
  gtids->clear();
  for (const rpc::TxnInfo& t : r.txns) gtids->push_back(t.gtid);
  return Status::OK();
}

Status Client::Begin(const TxnOptions& options, std::unique_ptr<Transaction>* out) {
  if (options.deadline_ms < 0) return Status(Code::kInvalidArgument, "negative deadline_ms");
  rpc::BeginRequest req;
  req.protocol =
      options.protocol == Protocol::kThreePhase ? rpc::Protocol::THREE_PC : rpc::Protocol::TWO_PC;
  req.deadline_ms = options.deadline_ms;
  rpc::BeginResponse r;
  Status s = impl_->OnLeader(
      &r,
      [&](const std::string& to, rpc::BeginResponse* o) {
        return impl_->Coordinator(to, [&](rpc::CoordinatorServiceClient& c) { c.Begin(*o, req); });
      },
      /*retry_unknown=*/true);
  if (!s.ok()) return s;
  if (r.code != rpc::ResultCode::OK) {
    return Status(Code::kInvalidArgument, "Begin refused: " + r.message);
  }
  out->reset(new Transaction(impl_.get(), r.gtid, options, r.deadline_ms));
  return Status::OK();
}

Status Client::GetOutcome(const std::string& gtid, Outcome* out) {
  rpc::TxnRequest req;
  req.gtid = gtid;
  rpc::TxnInfoResponse r;
  Status s = impl_->OnLeader(
      &r,
      [&](const std::string& to, rpc::TxnInfoResponse* o) {
        return impl_->Coordinator(to, [&](rpc::CoordinatorServiceClient& c) { c.GetTxn(*o, req); });
      },
      /*retry_unknown=*/true);
  if (!s.ok()) return s;
  *out = Outcome::kUnknown;
  if (r.code == rpc::ResultCode::NOT_FOUND) return Status(Code::kNotFound, r.message);
  if (r.code != rpc::ResultCode::OK) return Status(Code::kInvalidArgument, r.message);
  if (r.info.__isset.decision) {
    *out = r.info.decision == rpc::Outcome::COMMIT ? Outcome::kCommitted : Outcome::kAborted;
  }
  return Status::OK();
}

Transaction::Transaction(Client::Impl* client, std::string gtid, TxnOptions options,
                         int64_t deadline_ms)
    : client_(client), gtid_(std::move(gtid)), options_(options), deadline_ms_(deadline_ms) {}

Transaction::~Transaction() {
  if (!finished_) Abort();
}

Status Transaction::Execute(const std::string& participant, const std::string& sql,
                            const std::vector<Value>& params, Result* result) {
  if (finished_) return Status(Code::kWrongState, "the transaction is already finished");
  Client::Impl& c = *client_;
  std::string address;
  Status s = c.AgentAddress(participant, &address);
  if (!s.ok()) return s;
  const bool first = statements_.count(participant) == 0;
  if (first) {
    // The coordinator learns of the branch before it holds anything: if this client dies,
    // the transaction still aborts it by its deadline.
    rpc::RegisterBranchRequest req;
    req.gtid = gtid_;
    req.participant = participant;
    req.branch = kBranch;
    rpc::RegisterBranchResponse r;
    s = c.OnLeader(&r, [&](const std::string& to, rpc::RegisterBranchResponse* o) {
      return c.Coordinator(to,
                           [&](rpc::CoordinatorServiceClient& cl) { cl.RegisterBranch(*o, req); });
    });
    if (!s.ok()) return s;
    if (r.code == rpc::ResultCode::NOT_FOUND) {
      return Status(Code::kAborted, "the coordinator no longer runs " + gtid_ + ": " + r.message);
    }
    if (r.code != rpc::ResultCode::OK) {
      return Status(Code::kWrongState, "RegisterBranch(" + participant + "): " + r.message);
    }
  }
  rpc::ExecuteRequest req;
  req.gtid = gtid_;
  req.branch = kBranch;
  req.sql = sql;
  req.params.reserve(params.size());
  for (const Value& v : params) req.params.push_back(ToThrift(v));
  req.seq = statements_[participant] + 1;
  if (first) {
    req.open.protocol = options_.protocol == Protocol::kThreePhase ? rpc::Protocol::THREE_PC
                                                                   : rpc::Protocol::TWO_PC;
    req.open.timeout_ms = deadline_ms_;
    req.__isset.open = true;
  }
  rpc::ExecuteResponse r;
  auto& link = c.agents[participant];
  // A statement is deduplicated by its seq: resending it once after a transport error
  // cannot run it twice.
  for (int attempt = 0; attempt < 2; ++attempt) {
    s = link.Call(address, kParticipantServiceName, c.options.rpc_timeout_ms,
                  [&](rpc::ParticipantServiceClient& a) { a.Execute(r, req); });
    if (s.ok()) break;
  }
  if (!s.ok()) return s;
  statements_[participant] = req.seq;
  s = FromParticipant(r.code, participant, r.message);
  if (!s.ok()) return s;
  if (result != nullptr) {
    result->columns = r.columns;
    result->rows_affected = r.rows_affected;
    result->rows.clear();
    result->rows.reserve(r.rows.size());
    for (const rpc::SqlRow& row : r.rows) {
      std::vector<Value> values;
      values.reserve(row.values.size());
      for (const rpc::SqlValue& v : row.values) values.push_back(FromThrift(v));
      result->rows.push_back(std::move(values));
    }
  }
  return Status::OK();
}

Status Transaction::Commit(Outcome* outcome) {
  if (finished_) return Status(Code::kWrongState, "the transaction is already finished");
  Client::Impl& c = *client_;
  rpc::TxnRequest req;
  req.gtid = gtid_;
  rpc::TxnOutcomeResponse r;
  Status s = c.OnLeader(&r, [&](const std::string& to, rpc::TxnOutcomeResponse* o) {
    return c.Coordinator(to, [&](rpc::CoordinatorServiceClient& cl) { cl.Commit(*o, req); });
  });
  *outcome = Outcome::kUnknown;
  if (!s.ok()) return s;  // no leader: the request may not have arrived (retry Commit)
  finished_ = true;
  if (r.code == rpc::ResultCode::UNKNOWN) return Status(Code::kOk, r.message);
  if (r.code != rpc::ResultCode::OK) {
    return Status(Code::kInvalidArgument, "Commit refused: " + r.message);
  }
  switch (r.outcome) {
    case rpc::TxnOutcome::COMMITTED:
      *outcome = Outcome::kCommitted;
      return Status::OK();
    case rpc::TxnOutcome::ABORTED:
      *outcome = Outcome::kAborted;
      return Status(Code::kOk, r.reason);
    default:
      return Status(Code::kOk, r.reason);
  }
}

Status Transaction::Abort() {
  if (finished_) return Status::OK();
  Client::Impl& c = *client_;
  rpc::TxnRequest req;
  req.gtid = gtid_;
  rpc::TxnOutcomeResponse r;
  Status s = c.OnLeader(
      &r,
      [&](const std::string& to, rpc::TxnOutcomeResponse* o) {
        return c.Coordinator(to, [&](rpc::CoordinatorServiceClient& cl) { cl.Abort(*o, req); });
      },
      /*retry_unknown=*/true);
  if (!s.ok()) return s;
  finished_ = true;
  if (r.code == rpc::ResultCode::OK && r.outcome == rpc::TxnOutcome::COMMITTED) {
    return Status(Code::kWrongState, gtid_ + " is already committed");
  }
  return Status::OK();
}

}  // namespace verdict::sdk
