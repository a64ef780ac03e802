// FramedTransport: Thrift's TFramedTransport, with maxMessageSize counted per frame.
// Thrift 0.17 counts every byte a framed connection ever consumes against
// TConfiguration::maxMessageSize and never resets the count, so a long-lived connection
// (a peer link, a busy client) is closed after that many bytes in total ("MaxMessageSize
// reached", reported as EOF). A frame carries one message here, so the count restarts at
// each frame. Same thread-safety as TFramedTransport (one thread at a time).
#pragma once

#include <thrift/transport/TBufferTransports.h>

namespace verdict::coordinator::server {

class FramedTransport : public apache::thrift::transport::TFramedTransport {
 public:
  using TFramedTransport::TFramedTransport;

 protected:
  bool readFrame() override {
    resetConsumedMessageSize();
    return TFramedTransport::readFrame();
  }
};

}  // namespace verdict::coordinator::server
