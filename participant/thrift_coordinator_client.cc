// CoordinatorClient over Thrift: ParticipantRegistryService ("Registry") on any node,
// following NOT_LEADER hints; inquiry falls back to CoordinatorService.GetDecision
// (linearizable) on nodes that do not serve the registry yet.
#include <spdlog/spdlog.h>
#include <thrift/TApplicationException.h>

#include <mutex>

#include "CoordinatorService.h"
#include "ParticipantRegistryService.h"
#include "participant/coordinator_client.h"
#include "participant/rpc_names.h"
#include "thrift/thrift_channel.h"

namespace verdict::participant {

namespace {

class ThriftCoordinatorClient : public CoordinatorClient {
 public:
  ThriftCoordinatorClient(std::vector<std::string> addresses, int timeout_ms)
      : addresses_(std::move(addresses)), timeout_ms_(timeout_ms) {}

  Status Register(const std::string& name, const std::string& address,
                  const std::string& backend) override {
    std::string last = "no coordinator address";
    for (const std::string& target : Targets()) {
      std::string hint;
      for (int hop = 0; hop < 3; ++hop) {
        const std::string& where = hint.empty() ? target : hint;
        rpc::ThriftChannel ch(where, kRegistryServiceName, timeout_ms_);
        Status s = ch.Open();
        if (!s.ok()) {
          last = s.message();
          break;
        }
        try {
          rpc::ParticipantRegistryServiceClient c(ch.protocol());
          rpc::RegisterParticipantRequest req;
          req.name = name;
          req.address = address;
          req.backend = backend;
          rpc::RegisterParticipantResponse r;
          c.RegisterParticipant(r, req);
          if (r.code == rpc::ResultCode::OK) {
            Remember(where);
            return Status::OK();
          }
          last = where + ": " + r.message;
          if (r.code == rpc::ResultCode::NOT_LEADER && r.__isset.leader &&
              !r.leader.address.empty() && r.leader.address != where) {
            hint = r.leader.address;
            continue;
          }
        } catch (const std::exception& e) {
          last = where + ": " + e.what();
        }
        break;
      }
    }
    return Status::Unavailable("registration not accepted: " + last);
  }

  Status Inquire(const BranchKey& key, const std::string& participant,
                 InquiryResult* result) override {
    std::string last = "no coordinator address";
    for (const std::string& target : Targets()) {
      std::string hint;
      for (int hop = 0; hop < 3; ++hop) {
        // A copy: InquireOne() clears `hint` before it uses `where`.
        const std::string where = hint.empty() ? target : hint;
        Status s = InquireOne(where, key, participant, result, &hint);
        if (s.ok()) {
          Remember(where);
          return s;
        }
        last = s.message();
        if (hint.empty() || hint == where) break;
      }
    }
    return Status::Unavailable("no coordinator answered: " + last);
  }

 private:
  // The last node that answered first, then the others.
  std::vector<std::string> Targets() {
    std::lock_guard<std::mutex> l(mu_);
    std::vector<std::string> out;
    if (!preferred_.empty()) out.push_back(preferred_);
    for (const auto& a : addresses_) {
      if (a != preferred_) out.push_back(a);
    }
    return out;
  }
  void Remember(const std::string& a) {
    std::lock_guard<std::mutex> l(mu_);
    preferred_ = a;
  }

  Status InquireOne(const std::string& where, const BranchKey& key, const std::string& participant,
                    InquiryResult* result, std::string* hint) {
    hint->clear();
    {
      rpc::ThriftChannel ch(where, kRegistryServiceName, timeout_ms_);
      VERDICT_RETURN_IF_ERROR(ch.Open());
      try {
        rpc::ParticipantRegistryServiceClient c(ch.protocol());
        rpc::InquireRequest req;
        req.gtid = key.gtid;
        req.participant = participant;
        req.branch = key.branch;
        rpc::InquireResponse r;
        c.Inquire(r, req);
        if (r.code == rpc::ResultCode::OK) {
          switch (r.status) {
            case rpc::TxnStatus::COMMITTED:
              *result = InquiryResult::kCommitted;
              return Status::OK();
            case rpc::TxnStatus::ABORTED:
              *result = InquiryResult::kAborted;
              return Status::OK();
            case rpc::TxnStatus::PRECOMMIT_INTENT:
              *result = InquiryResult::kPrecommitIntent;
              return Status::OK();
            default:
              *result = InquiryResult::kInProgress;
              return Status::OK();
          }
        }
        if (r.code == rpc::ResultCode::NOT_LEADER && r.__isset.leader) *hint = r.leader.address;
        return Status::Unavailable(where + ": " + r.message);
      } catch (const apache::thrift::TApplicationException& e) {
        // The node does not serve the registry (yet): ask for the applied decision.
        spdlog::debug("{} has no Registry service ({}); using GetDecision", where, e.what());
      } catch (const std::exception& e) {
        return Status::Unavailable(where + ": " + e.what());
      }
    }
    rpc::ThriftChannel ch(where, kCoordinatorServiceName, timeout_ms_);
    VERDICT_RETURN_IF_ERROR(ch.Open());
    try {
      rpc::CoordinatorServiceClient c(ch.protocol());
      rpc::GetDecisionRequest req;
      req.gtid = key.gtid;
      req.consistency = rpc::Consistency::LINEARIZABLE;
      rpc::GetDecisionResponse r;
      c.GetDecision(r, req);
      if (r.code == rpc::ResultCode::OK && r.__isset.outcome) {
        *result =
            r.outcome == rpc::Outcome::COMMIT ? InquiryResult::kCommitted : InquiryResult::kAborted;
        return Status::OK();
      }
      if (r.code == rpc::ResultCode::NOT_FOUND) {
        // Undecided: without the registry's inquiry (which aborts unknown gtids through
        // the log first) this is not an answer; keep waiting.
        *result = InquiryResult::kInProgress;
        return Status::OK();
      }
      if (r.code == rpc::ResultCode::NOT_LEADER && r.__isset.leader) *hint = r.leader.address;
      return Status::Unavailable(where + ": " + r.message);
    } catch (const std::exception& e) {
      return Status::Unavailable(where + ": " + e.what());
    }
  }

  const std::vector<std::string> addresses_;
  const int timeout_ms_;
  std::mutex mu_;
  std::string preferred_;  // guarded by mu_
};

}  // namespace

std::unique_ptr<CoordinatorClient> NewThriftCoordinatorClient(std::vector<std::string> addresses,
                                                              int timeout_ms) {
  return std::make_unique<ThriftCoordinatorClient>(std::move(addresses), timeout_ms);
}

}  // namespace verdict::participant
