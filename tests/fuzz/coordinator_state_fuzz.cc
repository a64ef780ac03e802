// Fuzzes what the coordinator decodes from its log, its snapshots and its peers:
//   - transaction commands and decisions (Raft entry payloads): a payload that decodes
//     re-encodes canonically;
//   - the transaction table applying arbitrary entries: each is applied or refused with
//     Corruption, and a refused one changes nothing; the table's snapshot restores to an
//     equal table;
//   - snapshots of the transaction table and of the decision register given as arbitrary
//     bytes: Restore succeeds and round-trips, or fails and changes nothing;
//   - Raft messages from the wire (thrift/raft.thrift, binary protocol with the server's
//     limits) converted for the Raft core: accepted or refused, never a crash.
#include <spdlog/spdlog.h>
#include <thrift/TConfiguration.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/transport/TBufferTransports.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "coordinator/server/raft_codec.h"
#include "coordinator/txn/decision_register.h"
#include "coordinator/txn/txn_command.h"
#include "coordinator/txn/txn_table.h"
#include "raft_types.h"
#include "tests/fuzz/fuzz_input.h"

namespace verdict::coordinator {
namespace {

void CommandRoundTrip(const std::string& data) {
  txn::TxnCommand cmd;
  if (!txn::DecodeCommand(data, &cmd).ok()) return;
  const std::string encoded = txn::EncodeCommand(cmd);
  txn::TxnCommand again;
  FUZZ_CHECK(txn::DecodeCommand(encoded, &again).ok());
  FUZZ_CHECK(txn::EncodeCommand(again) == encoded);
  (void)txn::DescribeCommand(cmd);
}

void DecideRoundTrip(const std::string& data) {
  txn::DecideCommand cmd;
  if (!txn::DecodeDecide(data, &cmd).ok()) return;
  txn::DecideCommand again;
  FUZZ_CHECK(txn::DecodeDecide(txn::EncodeDecide(cmd), &again).ok());
  FUZZ_CHECK(again == cmd);
}

void CheckSnapshotRoundTrip(const txn::TxnTable& table) {
  const std::string snapshot = table.Serialize();
  txn::TxnTable restored;
  FUZZ_CHECK(restored.Restore(snapshot).ok());
  FUZZ_CHECK(restored == table);
  FUZZ_CHECK(restored.Serialize() == snapshot);
}

// Entries cut from the input: raw bytes, or a valid decision around fuzzed fields.
void ApplyEntries(fuzz::Input* in) {
  txn::TxnTable table;
  uint64_t index = 0;
  while (!in->empty()) {
    raft::Entry e;
    e.term = 1 + in->Byte() % 3;
    e.index = ++index;
    const uint8_t kind = in->Byte();
    if (kind % 8 == 0) {
      e.type = raft::EntryType::kConfChange;
      e.data = in->Bytes(in->Byte() % 16);
    } else if (kind % 8 == 1) {
      txn::DecideCommand d;
      d.gtid = in->Bytes(in->Byte() % 24);
      d.outcome = in->Byte() % 2 ? txn::Outcome::kCommit : txn::Outcome::kAbort;
      for (int n = in->Byte() % 3; n > 0; --n) d.participants.push_back(in->Bytes(in->Byte() % 4));
      e.data = txn::EncodeDecide(d);
    } else {
      e.data = in->Bytes(in->Byte() % 48);
    }
    const std::string before = table.Serialize();
    txn::ApplyResult result;
    Status s = table.Apply(e, &result);
    if (!s.ok()) {
      FUZZ_CHECK(s.IsCorruption());
      FUZZ_CHECK(table.Serialize() == before);  // a refused entry changes nothing
      break;                                    // the driver stops there
    }
    FUZZ_CHECK(table.applied_index() == e.index);
  }
  CheckSnapshotRoundTrip(table);
}

void RestoreTable(const std::string& data) {
  txn::TxnTable table;
  const std::string empty = table.Serialize();
  Status s = table.Restore(data);
  if (!s.ok()) {
    FUZZ_CHECK(s.IsCorruption());
    FUZZ_CHECK(table.Serialize() == empty);
    return;
  }
  CheckSnapshotRoundTrip(table);
  (void)table.Find("g");
}

void RestoreRegister(const std::string& data) {
  txn::DecisionRegister reg;
  const std::string empty = reg.Serialize();
  Status s = reg.Restore(data);
  if (!s.ok()) {
    FUZZ_CHECK(reg.Serialize() == empty);
    return;
  }
  const std::string snapshot = reg.Serialize();
  txn::DecisionRegister again;
  FUZZ_CHECK(again.Restore(snapshot).ok());
  FUZZ_CHECK(again.Serialize() == snapshot);
}

void RaftMessage(const std::string& data) {
  constexpr int kMaxFrameBytes = 64 * 1024;
  auto config = std::make_shared<apache::thrift::TConfiguration>(kMaxFrameBytes, kMaxFrameBytes);
  auto buf = std::make_shared<apache::thrift::transport::TMemoryBuffer>(
      reinterpret_cast<uint8_t*>(const_cast<char*>(data.data())),
      static_cast<uint32_t>(data.size()), apache::thrift::transport::TMemoryBuffer::OBSERVE,
      config);
  apache::thrift::protocol::TBinaryProtocol proto(buf, kMaxFrameBytes, 1 << 20, true, true);
  rpc::RaftMessage wire;
  try {
    wire.read(&proto);
  } catch (const apache::thrift::TException&) {
    return;  // the server closes the connection
  }
  raft::Message m;
  if (!server::MessageFromThrift(std::move(wire), &m).ok()) return;
  rpc::RaftMessage back;
  server::MessageToThrift(raft::Message(m), &back);
  raft::Message again;
  FUZZ_CHECK(server::MessageFromThrift(std::move(back), &again).ok());
  FUZZ_CHECK(again.entries == m.entries);
}

void RunOne(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  switch (in.Byte() % 6) {
    case 0:
      CommandRoundTrip(in.Rest());
      break;
    case 1:
      DecideRoundTrip(in.Rest());
      break;
    case 2:
      ApplyEntries(&in);
      break;
    case 3:
      RestoreTable(in.Rest());
      break;
    case 4:
      RestoreRegister(in.Rest());
      break;
    case 5:
      RaftMessage(in.Rest());
      break;
  }
}

}  // namespace
}  // namespace verdict::coordinator

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = [] {
    spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)quiet;
  verdict::coordinator::RunOne(data, size);
  return 0;
}
