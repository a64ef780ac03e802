// ParticipantRpcServer: serves ParticipantService multiplexed as "Participant" on the
// agent's address (framed transport with a bounded frame size, binary protocol, one thread
// per connection), like the coordinator's server. Start()/Stop() from the owning thread.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/status.h"

namespace apache::thrift {
class TProcessor;
namespace server {
class TThreadedServer;
}
}  // namespace apache::thrift

namespace verdict::participant {

class ParticipantRpcServer {
 public:
  ParticipantRpcServer(std::string host, int port, uint32_t max_frame_bytes,
                       std::shared_ptr<apache::thrift::TProcessor> participant);
  ParticipantRpcServer(const ParticipantRpcServer&) = delete;
  ParticipantRpcServer& operator=(const ParticipantRpcServer&) = delete;
  ~ParticipantRpcServer();

  // Binds and serves; returns once listening, or IOError if the address cannot be bound.
  Status Start();
  // Stops accepting, interrupts connections, joins. Idempotent.
  void Stop();

 private:
  const std::string host_;
  const int port_;
  std::shared_ptr<apache::thrift::server::TThreadedServer> server_;
  std::thread thread_;
};

}  // namespace verdict::participant
