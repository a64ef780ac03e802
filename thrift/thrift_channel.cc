#include "thrift/thrift_channel.h"

#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>

#include <string_view>

#include "thrift/framed_transport.h"

namespace verdict::rpc {

Status SplitHostPort(const std::string& address, std::string* host, int* port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
    return Status::InvalidArgument("'" + address + "' is not HOST:PORT");
  }
  std::string h = address.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::string p = address.substr(colon + 1);
  for (char c : p) {
    if (c < '0' || c > '9') return Status::InvalidArgument("'" + address + "': bad port");
  }
  if (p.size() > 5) return Status::InvalidArgument("'" + address + "': bad port");
  int v = std::stoi(p);
  if (v < 1 || v > 65535) return Status::InvalidArgument("'" + address + "': bad port");
  *host = h;
  *port = v;
  return Status::OK();
}

ThriftChannel::~ThriftChannel() { Close(); }

Status ThriftChannel::Open() {
  using namespace apache::thrift;
  std::string host;
  int port = 0;
  const bool local = address_.rfind(kUnixPrefix, 0) == 0;
  if (local && address_.size() == std::string_view(kUnixPrefix).size()) {
    return Status::InvalidArgument("'" + address_ + "': empty socket path");
  }
  if (!local) VERDICT_RETURN_IF_ERROR(SplitHostPort(address_, &host, &port));
  try {
    auto socket = local ? std::make_shared<transport::TSocket>(
                              address_.substr(std::string_view(kUnixPrefix).size()))
                        : std::make_shared<transport::TSocket>(host, port);
    socket->setConnTimeout(timeout_ms_);
    socket->setSendTimeout(timeout_ms_);
    socket->setRecvTimeout(timeout_ms_);
    if (!local) socket->setNoDelay(true);
    transport_ = rpc::FramedTransport::OverSocket(socket);
    transport_->open();
    auto binary = std::make_shared<protocol::TBinaryProtocol>(transport_);
    protocol_ = std::make_shared<protocol::TMultiplexedProtocol>(binary, service_);
  } catch (const std::exception& e) {
    transport_.reset();
    protocol_.reset();
    return Status::Unavailable("cannot connect to " + address_ + ": " + e.what());
  }
  return Status::OK();
}

void ThriftChannel::Close() {
  if (transport_) {
    try {
      transport_->close();
    } catch (...) {
    }
  }
  transport_.reset();
  protocol_.reset();
}

}  // namespace verdict::rpc
