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

// Reads from the socket as much as has arrived (up to kReadAhead bytes) in one recv, so a
// frame's length and body (and on the server, the request peek before them) cost one
// system call instead of three. Its byte count (see above) restarts with each frame too.
class ReadAheadTransport : public apache::thrift::transport::TBufferedTransport {
 public:
  static constexpr uint32_t kReadAhead = 16 * 1024;
  static constexpr uint32_t kWriteBuffer = 512;  // a frame goes out in one write anyway
  ReadAheadTransport(std::shared_ptr<apache::thrift::transport::TTransport> socket,
                     std::shared_ptr<apache::thrift::TConfiguration> config)
      : TBufferedTransport(std::move(socket), kReadAhead, kWriteBuffer, std::move(config)) {}
  void StartMessage() { resetConsumedMessageSize(); }

  // A read larger than the buffer, with nothing buffered (a big frame's body), goes
  // straight into the caller's memory.
  uint32_t readSlow(uint8_t* buf, uint32_t len) override {
    if (rBase_ == rBound_ && len >= kReadAhead) return transport_->read(buf, len);
    return TBufferedTransport::readSlow(buf, len);
  }
};

class FramedTransport : public apache::thrift::transport::TFramedTransport {
 public:
  using TFramedTransport::TFramedTransport;

  // A framed transport over `socket` (a TSocket), reading ahead through a
  // ReadAheadTransport. `config` null = Thrift's defaults.
  static std::shared_ptr<FramedTransport> OverSocket(
      std::shared_ptr<apache::thrift::transport::TTransport> socket,
      std::shared_ptr<apache::thrift::TConfiguration> config = nullptr) {
    auto read_ahead = std::make_shared<ReadAheadTransport>(std::move(socket), config);
    auto framed = std::make_shared<FramedTransport>(read_ahead, std::move(config));
    framed->read_ahead_ = read_ahead.get();
    return framed;
  }

 protected:
  bool readFrame() override {
    resetConsumedMessageSize();
    if (read_ahead_ != nullptr) read_ahead_->StartMessage();
    return TFramedTransport::readFrame();
  }

 private:
  ReadAheadTransport* read_ahead_ = nullptr;  // the transport under this one, if any
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
    return FramedTransport::OverSocket(std::move(trans), config_);
  }

 private:
  std::shared_ptr<apache::thrift::TConfiguration> config_;
};

}  // namespace verdict::rpc
