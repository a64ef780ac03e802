#include "bench/branch_client.h"

#include <chrono>
#include <thread>

#include "bench/decision_client.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::bench {

using apache::thrift::TException;

std::string BranchClient::CodeText(const char* step, rpc::ParticipantCode::type code,
                                   const std::string& message) {
  return std::string(step) + ": code " + std::to_string(static_cast<int>(code)) +
         (message.empty() ? "" : " (" + message + ")");
}

bool BranchClient::IsNoVote(rpc::ParticipantCode::type code) {
  return code == rpc::ParticipantCode::SQL_ERROR || code == rpc::ParticipantCode::LOCK_TIMEOUT ||
         code == rpc::ParticipantCode::UNAVAILABLE || code == rpc::ParticipantCode::WRONG_STATE;
}

BranchClient::~BranchClient() { Close(); }

Status BranchClient::Connect(const std::string& address) {
  Close();
  address_ = address;
  auto channel = std::make_unique<rpc::ThriftChannel>(address, participant::kParticipantServiceName,
                                                      timeout_ms_);
  VERDICT_RETURN_IF_ERROR(channel->Open());
  client_ = std::make_unique<rpc::ParticipantServiceClient>(channel->protocol());
  channel_ = std::move(channel);
  return Status::OK();
}

void BranchClient::Close() {
  client_.reset();
  channel_.reset();
}

BranchClient::Result BranchClient::RunBranch(const std::string& participant_name,
                                             const std::string& gtid, const std::string& sql,
                                             const std::vector<rpc::SqlValue>& params) {
  Result result;
  auto t = std::chrono::steady_clock::now();
  // Records the time since the last step's end as step `i`.
  auto lap = [&](int i) {
    const auto now = std::chrono::steady_clock::now();
    result.step[static_cast<size_t>(i)] = now - t;
    t = now;
  };
  // Ends a branch that will not commit; the agent answers OK whatever its state allows.
  auto abandon = [&](Outcome outcome, std::string why) {
    result.outcome = outcome;
    result.message = std::move(why);
    rpc::BranchRequest abort;
    abort.gtid = gtid;
    abort.branch = kBranch;
    rpc::BranchResponse ignored;
    client_->Abort(ignored, abort);
    return result;
  };
  try {
    // The branch is opened by its first statement (ExecuteRequest.open): one round trip.
    rpc::ExecuteRequest execute;
    execute.gtid = gtid;
    execute.branch = kBranch;
    execute.sql = sql;
    execute.params = params;
    execute.seq = 1;
    execute.open.protocol = rpc::Protocol::TWO_PC;
    execute.__isset.open = true;
    rpc::ExecuteResponse executed;
    client_->Execute(executed, execute);
    lap(0);
    if (executed.code != rpc::ParticipantCode::OK) {
      return abandon(IsNoVote(executed.code) ? Outcome::kVotedNo : Outcome::kRejected,
                     CodeText("Execute", executed.code, executed.message));
    }
    if (executed.rows_affected != 1) {
      return abandon(Outcome::kRejected,
                     "Execute: " + std::to_string(executed.rows_affected) + " rows affected");
    }

    rpc::PrepareRequest prepare;
    prepare.gtid = gtid;
    prepare.branch = kBranch;
    rpc::PeerBranch self;
    self.name = participant_name;
    self.address = address_;
    self.branch = kBranch;
    prepare.participants.push_back(self);
    rpc::PrepareResponse prepared;
    client_->Prepare(prepared, prepare);
    lap(1);
    if (prepared.code != rpc::ParticipantCode::OK || prepared.vote != rpc::Vote::YES) {
      const bool no = prepared.code == rpc::ParticipantCode::OK || IsNoVote(prepared.code);
      return abandon(no ? Outcome::kVotedNo : Outcome::kRejected,
                     CodeText("Prepare", prepared.code, prepared.message) + ", vote " +
                         std::to_string(static_cast<int>(prepared.vote)));
    }

    rpc::CommitRequest commit;
    commit.gtid = gtid;
    commit.branch = kBranch;
    rpc::BranchResponse committed;
    for (int attempt = 0; attempt < kCommitAttempts; ++attempt) {
      client_->Commit(committed, commit);
      if (committed.code != rpc::ParticipantCode::UNAVAILABLE) break;
      ++result.commit_retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    lap(2);
    if (committed.code != rpc::ParticipantCode::OK) {
      // A prepared branch must not be aborted by the bench: it stays in doubt.
      result.outcome = Outcome::kRejected;
      result.message = CodeText("Commit", committed.code, committed.message);
      return result;
    }
  } catch (const TException& e) {
    Close();
    result.outcome = Outcome::kTransport;
    result.message = e.what();
    return result;
  }
  result.outcome = Outcome::kCommitted;
  return result;
}

Status BranchClient::ListInDoubt(rpc::ListInDoubtResponse* response) {
  try {
    client_->ListInDoubt(*response);
  } catch (const TException& e) {
    Close();
    return Status::Unavailable(address_ + ": " + e.what());
  }
  return Status::OK();
}

}  // namespace verdict::bench
