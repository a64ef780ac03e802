// FramedTransport must serve a long-lived connection: the message size limit applies to
// each frame, not to every byte the connection ever carried (Thrift 0.17 counts the latter).
#include "thrift/framed_transport.h"

#include <gtest/gtest.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TTransportException.h>

#include <memory>
#include <string>
#include <vector>

namespace verdict::rpc {
namespace {

using apache::thrift::TConfiguration;
using apache::thrift::protocol::TBinaryProtocol;
using apache::thrift::transport::TFramedTransport;
using apache::thrift::transport::TMemoryBuffer;
using apache::thrift::transport::TTransportException;

constexpr int kLimit = 4096;
constexpr int kFrames = 20;
const std::string kPayload(1000, 'x');  // 20 frames = 5x the limit in total

// Writes kFrames messages (one string each) into a memory "wire", then reads them back
// through the binary protocol over a `Reader` transport, as a server or client does.
template <typename Reader>
int ReadFramesThrough() {
  auto config = std::make_shared<TConfiguration>(kLimit, kLimit);
  auto wire = std::make_shared<TMemoryBuffer>();
  {
    auto framed = std::make_shared<TFramedTransport>(wire);
    TBinaryProtocol out(framed);
    for (int i = 0; i < kFrames; ++i) {
      out.writeMessageBegin("m", apache::thrift::protocol::T_CALL, i);
      out.writeString(kPayload);
      out.writeMessageEnd();
      framed->flush();
    }
  }
  TBinaryProtocol in(std::make_shared<Reader>(wire, config));
  int frames = 0;
  for (int i = 0; i < kFrames; ++i) {
    std::string name, body;
    apache::thrift::protocol::TMessageType type;
    int32_t seq;
    in.readMessageBegin(name, type, seq);
    in.readString(body);
    in.readMessageEnd();
    if (body != kPayload || seq != i) return -1;
    ++frames;
  }
  return frames;
}

TEST(FramedTransportTest, LongLivedConnection_MoreBytesThanTheLimitInTotal) {
  EXPECT_EQ(ReadFramesThrough<FramedTransport>(), kFrames);
}

TEST(FramedTransportTest, PlainThriftTransport_ClosesSuchAConnection) {
  // The library behaviour FramedTransport exists to avoid; if a Thrift upgrade fixes it,
  // this test says so and FramedTransport can go.
  EXPECT_THROW(ReadFramesThrough<TFramedTransport>(), TTransportException);
}

// OverSocket reads ahead (ReadAheadTransport): several small frames come out of one read,
// a frame larger than the read-ahead buffer is read straight through, and the byte count
// of both layers restarts with each frame.
TEST(FramedTransportTest, ReadAhead_FramesOfEverySizeOnALongLivedConnection) {
  constexpr int kBigLimit = 64 * 1024;
  const size_t sizes[] = {10, 5000, 3 * ReadAheadTransport::kReadAhead / 2, 1, 0, 700};
  auto wire = std::make_shared<TMemoryBuffer>();
  std::vector<std::string> sent;
  {
    TFramedTransport framed(wire);
    for (int round = 0; round < 8; ++round) {  // ~250 KB in all: 4x the limit
      for (size_t size : sizes) {
        std::string body(size, static_cast<char>('a' + sent.size() % 26));
        framed.write(reinterpret_cast<const uint8_t*>(body.data()), static_cast<uint32_t>(size));
        framed.flush();
        sent.push_back(std::move(body));
      }
    }
  }
  auto reader =
      FramedTransport::OverSocket(wire, std::make_shared<TConfiguration>(kBigLimit, kBigLimit));
  for (const std::string& want : sent) {
    std::string got(want.size(), '\0');
    if (!want.empty()) {
      reader->readAll(reinterpret_cast<uint8_t*>(got.data()), static_cast<uint32_t>(got.size()));
    }
    reader->readEnd();
    ASSERT_EQ(got, want);
  }
}

TEST(FramedTransportTest, FrameLargerThanTheLimit_Refused) {
  auto config = std::make_shared<TConfiguration>(kLimit, kLimit);
  auto wire = std::make_shared<TMemoryBuffer>();
  TFramedTransport writer(wire);
  std::string big(kLimit * 2, 'y');
  writer.write(reinterpret_cast<const uint8_t*>(big.data()), static_cast<uint32_t>(big.size()));
  writer.flush();
  FramedTransport reader(wire, config);
  std::string buf(big.size(), '\0');
  EXPECT_THROW(
      reader.readAll(reinterpret_cast<uint8_t*>(buf.data()), static_cast<uint32_t>(buf.size())),
      TTransportException);
}

}  // namespace
}  // namespace verdict::rpc
