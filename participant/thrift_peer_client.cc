// PeerClient over Thrift: one short-lived connection per call.
#include "ParticipantService.h"
#include "participant/peer_client.h"
#include "participant/rpc_names.h"
#include "participant/thrift_conversions.h"
#include "thrift/thrift_channel.h"

namespace verdict::participant {

namespace {

class ThriftPeerClient : public PeerClient {
 public:
  explicit ThriftPeerClient(int timeout_ms) : timeout_ms_(timeout_ms) {}

  Status GetState(const PeerRef& peer, const std::string& gtid, BranchState* state) override {
    return Call(peer, [&](rpc::ParticipantServiceClient& c) {
      rpc::BranchStatusResponse r;
      c.GetBranchStatus(r, Request(peer, gtid));
      if (r.code != rpc::ParticipantCode::OK && r.code != rpc::ParticipantCode::NOT_FOUND) {
        return Status::Unavailable("status: " + r.message);
      }
      *state = FromThrift(r.info.state);
      return Status::OK();
    });
  }

  Status Fence(const PeerRef& peer, const std::string& gtid, const std::string& fencer,
               BranchState* state) override {
    return Call(peer, [&](rpc::ParticipantServiceClient& c) {
      rpc::FenceRequest req;
      req.gtid = gtid;
      req.branch = peer.branch;
      req.fencer = fencer;
      rpc::BranchResponse r;
      c.Fence(r, req);
      return Answer(r, state);
    });
  }

  Status Abort(const PeerRef& peer, const std::string& gtid, BranchState* state) override {
    return Call(peer, [&](rpc::ParticipantServiceClient& c) {
      rpc::BranchResponse r;
      c.Abort(r, Request(peer, gtid));
      return Answer(r, state);
    });
  }

  Status AbortIfUnvoted(const PeerRef& peer, const std::string& gtid, BranchState* state) override {
    return Call(peer, [&](rpc::ParticipantServiceClient& c) {
      rpc::BranchResponse r;
      c.AbortIfUnvoted(r, Request(peer, gtid));
      return Answer(r, state);
    });
  }

  Status Commit(const PeerRef& peer, const std::string& gtid) override {
    return Call(peer, [&](rpc::ParticipantServiceClient& c) {
      rpc::CommitRequest req;
      req.gtid = gtid;
      req.branch = peer.branch;
      rpc::BranchResponse r;
      c.Commit(r, req);
      BranchState st;
      return Answer(r, &st);
    });
  }

 private:
  static rpc::BranchRequest Request(const PeerRef& peer, const std::string& gtid) {
    rpc::BranchRequest req;
    req.gtid = gtid;
    req.branch = peer.branch;
    return req;
  }

  // A refusal still tells the state; only UNAVAILABLE/INVALID_ARGUMENT are failures.
  static Status Answer(const rpc::BranchResponse& r, BranchState* state) {
    if (r.code == rpc::ParticipantCode::UNAVAILABLE ||
        r.code == rpc::ParticipantCode::INVALID_ARGUMENT) {
      return Status::Unavailable(r.message);
    }
    *state = FromThrift(r.state);
    return Status::OK();
  }

  template <typename Fn>
  Status Call(const PeerRef& peer, Fn fn) {
    rpc::ThriftChannel ch(peer.address, kParticipantServiceName, timeout_ms_);
    VERDICT_RETURN_IF_ERROR(ch.Open());
    try {
      rpc::ParticipantServiceClient client(ch.protocol());
      return fn(client);
    } catch (const std::exception& e) {
      return Status::Unavailable("peer " + peer.name + " at " + peer.address + ": " + e.what());
    }
  }

  const int timeout_ms_;
};

}  // namespace

std::unique_ptr<PeerClient> NewThriftPeerClient(int timeout_ms) {
  return std::make_unique<ThriftPeerClient>(timeout_ms);
}

}  // namespace verdict::participant
