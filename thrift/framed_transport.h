// Framed Thrift transport for every Verdict connection, client and server side.
// Thrift 0.17 counts every byte a framed connection ever consumes against
// TConfiguration::maxMessageSize and never resets the count, so a long-lived connection
// (a peer link, a busy client, a coordinator-to-participant link) is closed after that many
// bytes in total ("MaxMessageSize reached", reported as EOF). A frame carries one message
// here, so FramedTransport restarts the count at each frame. Same thread-safety as
// TFramedTransport (one thread at a time); the factory is thread-safe.
#pragma once

#include <thrift/TConfiguration.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdint>
#include <memory>

namespace verdict::rpc {

class FramedTransport : public apache::thrift::transport::TFramedTransport {
 public:
  using TFramedTransport::TFramedTransport;

 protected:
  bool readFrame() override {
    resetConsumedMessageSize();
    return TFramedTransport::readFrame();
  }
};

// Server side: FramedTransport with a frame (and message) size limit; a larger frame
// closes the connection.
class BoundedFramedTransportFactory : public apache::thrift::transport::TTransportFactory {
 public:
  explicit BoundedFramedTransportFactory(uint32_t max_frame_bytes)
      : config_(std::make_shared<apache::thrift::TConfiguration>(
            static_cast<int>(max_frame_bytes), static_cast<int>(max_frame_bytes))) {}
  std::shared_ptr<apache::thrift::transport::TTransport> getTransport(
      std::shared_ptr<apache::thrift::transport::TTransport> trans) override {
    return std::make_shared<FramedTransport>(trans, config_);
  }

 private:
  std::shared_ptr<apache::thrift::TConfiguration> config_;
};

}  // namespace verdict::rpc
