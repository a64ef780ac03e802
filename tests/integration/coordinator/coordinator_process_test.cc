// Process-level tests of verdict-coordinator: real processes on loopback, talking Thrift.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <thrift/protocol/TBinaryProtocol.h>
#include <thrift/protocol/TMultiplexedProtocol.h>
#include <thrift/transport/TBufferTransports.h>
#include <thrift/transport/TSocket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "RaftService.h"
#include "tests/integration/coordinator/cluster_harness.h"

namespace verdict::testing {
namespace {

using namespace std::chrono_literals;

constexpr auto kLeaderTimeout = 20s;

rpc::DecideRequest DecideReq(const std::string& gtid, rpc::Outcome::type outcome,
                             std::vector<std::string> participants = {"p1", "p2"}) {
  rpc::DecideRequest r;
  r.gtid = gtid;
  r.outcome = outcome;
  r.participants = std::move(participants);
  return r;
}

rpc::GetDecisionRequest GetReq(const std::string& gtid,
                               rpc::Consistency::type c = rpc::Consistency::LINEARIZABLE) {
  rpc::GetDecisionRequest r;
  r.gtid = gtid;
  r.consistency = c;
  return r;
}

// The non-empty lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string::npos) nl = text.size();
    if (nl > start) out.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

// Sends raw bytes to HOST:PORT and closes; true if the connection was accepted.
bool SendRaw(int port, const std::string& bytes) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return false;
  }
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
  usleep(50 * 1000);
  close(fd);
  return true;
}

int PortOf(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

class CoordinatorProcessTest : public ::testing::Test {
 protected:
  // Starts a 3-node cluster and returns the leader's id.
  int StartCluster(std::vector<std::string> flags = {}) {
    cluster_ = std::make_unique<CoordinatorCluster>(3, std::move(flags));
    cluster_->StartAll();
    int leader = cluster_->WaitForLeader(kLeaderTimeout);
    EXPECT_NE(leader, 0) << "no leader; node 1 log:\n" << cluster_->Log(1);
    return leader;
  }

  rpc::DecideResponse Decide(int node, const rpc::DecideRequest& req) {
    rpc::DecideResponse resp;
    auto client = cluster_->Client(node);
    EXPECT_TRUE(client != nullptr);
    if (client) {
      EXPECT_TRUE(client->Decide(req, &resp).ok());
    }
    return resp;
  }

  rpc::GetDecisionResponse Get(int node, const rpc::GetDecisionRequest& req) {
    rpc::GetDecisionResponse resp;
    auto client = cluster_->Client(node);
    EXPECT_TRUE(client != nullptr);
    if (client) {
      EXPECT_TRUE(client->GetDecision(req, &resp).ok());
    }
    return resp;
  }

  // Decides through whichever node leads (follows hints, retries): for tests where a
  // leader change under load must not matter.
  rpc::DecideResponse DecideOnAnyLeader(const rpc::DecideRequest& req) {
    rpc::DecideResponse resp;
    Status s = tools::DecideOnLeader(cluster_->Addresses(), req,
                                     std::chrono::steady_clock::now() + 30s, &resp);
    EXPECT_TRUE(s.ok()) << s.ToString();
    return resp;
  }

  int Follower(int leader) const { return leader == 1 ? 2 : 1; }

  std::unique_ptr<CoordinatorCluster> cluster_;
};

TEST_F(CoordinatorProcessTest, Cluster_ElectsExactlyOneLeaderAndAllAgree) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  int leaders = 0;
  for (int id = 1; id <= 3; ++id) {
    rpc::NodeStatus st;
    ASSERT_TRUE(cluster_->NodeStatus(id, &st).ok());
    EXPECT_EQ(st.id, id);
    EXPECT_EQ(st.address, cluster_->Address(id));
    EXPECT_EQ(st.leader.id, leader);
    EXPECT_EQ(st.leader.address, cluster_->Address(leader));
    EXPECT_EQ(st.membership.size(), 3u);
    leaders += st.role == rpc::Role::LEADER;
  }
  EXPECT_EQ(leaders, 1);
}

TEST_F(CoordinatorProcessTest, Decide_OnLeaderIsAppliedAndReadable) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  rpc::DecideResponse d = Decide(leader, DecideReq("tx-1", rpc::Outcome::COMMIT, {"a", "b"}));
  ASSERT_EQ(d.code, rpc::ResultCode::OK) << d.message;
  EXPECT_EQ(d.outcome, rpc::Outcome::COMMIT);
  EXPECT_EQ(d.participants, (std::vector<std::string>{"a", "b"}));
  EXPECT_GT(d.log_index, 0);

  rpc::GetDecisionResponse g = Get(leader, GetReq("tx-1"));
  ASSERT_EQ(g.code, rpc::ResultCode::OK) << g.message;
  EXPECT_EQ(g.outcome, rpc::Outcome::COMMIT);
  EXPECT_EQ(g.log_index, d.log_index);
  EXPECT_EQ(Get(leader, GetReq("tx-unknown")).code, rpc::ResultCode::NOT_FOUND);
}

TEST_F(CoordinatorProcessTest, Decide_SecondDecisionReturnsTheFirst) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  rpc::DecideResponse first = Decide(leader, DecideReq("tx-2", rpc::Outcome::ABORT, {"x"}));
  ASSERT_EQ(first.code, rpc::ResultCode::OK) << first.message;
  EXPECT_EQ(first.outcome, rpc::Outcome::ABORT);
  rpc::DecideResponse second = Decide(leader, DecideReq("tx-2", rpc::Outcome::COMMIT, {"y"}));
  ASSERT_EQ(second.code, rpc::ResultCode::OK) << second.message;
  EXPECT_EQ(second.outcome, rpc::Outcome::ABORT);
  EXPECT_EQ(second.participants, (std::vector<std::string>{"x"}));
  EXPECT_EQ(second.log_index, first.log_index);
  EXPECT_EQ(Get(leader, GetReq("tx-2")).outcome, rpc::Outcome::ABORT);
}

TEST_F(CoordinatorProcessTest, DecideBatch_AnswersEachRequestInOrder) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  auto client = cluster_->Client(leader);
  ASSERT_TRUE(client);
  rpc::DecideBatchRequest batch;
  batch.requests = {DecideReq("b-1", rpc::Outcome::COMMIT), DecideReq("", rpc::Outcome::COMMIT),
                    DecideReq("b-2", rpc::Outcome::ABORT), DecideReq("b-1", rpc::Outcome::ABORT)};
  rpc::DecideBatchResponse resp;
  ASSERT_TRUE(client->DecideBatch(batch, &resp).ok());
  ASSERT_EQ(resp.code, rpc::ResultCode::OK) << resp.message;
  ASSERT_EQ(resp.responses.size(), 4u);
  EXPECT_EQ(resp.responses[0].code, rpc::ResultCode::OK);
  EXPECT_EQ(resp.responses[0].outcome, rpc::Outcome::COMMIT);
  EXPECT_EQ(resp.responses[1].code, rpc::ResultCode::INVALID_ARGUMENT);
  EXPECT_EQ(resp.responses[2].code, rpc::ResultCode::OK);
  EXPECT_EQ(resp.responses[2].outcome, rpc::Outcome::ABORT);
  // The same gtid twice in one batch: the first decision wins for both.
  EXPECT_EQ(resp.responses[3].code, rpc::ResultCode::OK);
  EXPECT_EQ(resp.responses[3].outcome, rpc::Outcome::COMMIT);
  EXPECT_EQ(resp.responses[3].log_index, resp.responses[0].log_index);

  rpc::DecideBatchRequest empty;
  ASSERT_TRUE(client->DecideBatch(empty, &resp).ok());
  EXPECT_EQ(resp.code, rpc::ResultCode::INVALID_ARGUMENT);
}

TEST_F(CoordinatorProcessTest, Follower_AnswersNotLeaderWithHint) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  int follower = Follower(leader);
  rpc::DecideResponse d = Decide(follower, DecideReq("tx-3", rpc::Outcome::COMMIT));
  EXPECT_EQ(d.code, rpc::ResultCode::NOT_LEADER);
  ASSERT_TRUE(d.__isset.leader);
  EXPECT_EQ(d.leader.id, leader);
  EXPECT_EQ(d.leader.address, cluster_->Address(leader));

  rpc::GetDecisionResponse g = Get(follower, GetReq("tx-3"));
  EXPECT_EQ(g.code, rpc::ResultCode::NOT_LEADER);
  EXPECT_EQ(g.leader.id, leader);

  // Once decided on the leader, the follower's own (LOCAL) state catches up.
  ASSERT_EQ(DecideOnAnyLeader(DecideReq("tx-3", rpc::Outcome::COMMIT)).code, rpc::ResultCode::OK);
  rpc::GetDecisionResponse local;
  for (int i = 0; i < 100; ++i) {
    local = Get(follower, GetReq("tx-3", rpc::Consistency::LOCAL));
    if (local.code == rpc::ResultCode::OK) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(local.code, rpc::ResultCode::OK);
  EXPECT_EQ(local.outcome, rpc::Outcome::COMMIT);
}

TEST_F(CoordinatorProcessTest, BadFlags_ExitNonZeroWithOneLine) {
  std::string bin = BinaryPath("verdict-coordinator");
  std::string dir = MakeTempDir("verdict-flags");
  std::string cluster = "1=127.0.0.1:" + std::to_string(FreePort());
  std::string config = dir + "/bad.conf";
  std::ofstream(config) << "id = 1\ncluster = " << cluster << "\nbogus-option = 3\n";
  std::vector<std::vector<std::string>> cases = {
      {bin},
      {bin, "--id", "1", "--cluster", cluster},                     // no --data-dir
      {bin, "--id", "2", "--cluster", cluster, "--data-dir", dir},  // id not in cluster
      {bin, "--id", "1", "--cluster", "1=nohostport", "--data-dir", dir},
      {bin, "--id", "1", "--cluster", "1=h:1,1=h:2", "--data-dir", dir},  // duplicate id
      {bin, "--id", "x", "--cluster", cluster, "--data-dir", dir},
      {bin, "--id", "1", "--cluster", cluster, "--data-dir", dir, "--tick-ms", "0"},
      {bin, "--id", "1", "--cluster", cluster, "--data-dir", dir, "--no-such-flag"},
      {bin, "--config", dir + "/missing.conf"},
      {bin, "--config", config, "--data-dir", dir},  // unknown option in the file
  };
  for (const auto& args : cases) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    ProcessResult r = RunProcess(args, 10s);
    EXPECT_NE(r.exit_code, 0) << cmd;
    EXPECT_NE(r.exit_code, -1) << cmd << " crashed or hung";
    std::vector<std::string> lines = Lines(r.output);
    EXPECT_EQ(lines.size(), 1u) << cmd << "\n" << r.output;
    EXPECT_NE(r.output.find("error"), std::string::npos) << cmd << "\n" << r.output;
  }
  // A good config file is accepted (--help exits 0 without starting).
  std::ofstream(config) << "id = 1\ncluster = " << cluster << "\ntick-ms = 20\n";
  EXPECT_EQ(RunProcess({bin, "--config", config, "--help"}, 10s).exit_code, 0);
  RemoveTree(dir);
}

TEST_F(CoordinatorProcessTest, UnusableDataDir_ExitsNonZeroWithOneLine) {
  std::string bin = BinaryPath("verdict-coordinator");
  std::string dir = MakeTempDir("verdict-datadir");
  std::string cluster = "1=127.0.0.1:" + std::to_string(FreePort());
  auto expect_refused = [&](const std::string& data_dir, const std::string& why) {
    ProcessResult r =
        RunProcess({bin, "--id", "1", "--cluster", cluster, "--data-dir", data_dir}, 20s);
    EXPECT_NE(r.exit_code, 0) << why << "\n" << r.output;
    EXPECT_NE(r.exit_code, -1) << why << " crashed or hung\n" << r.output;
    EXPECT_EQ(Lines(r.output).size(), 1u) << why << "\n" << r.output;
    EXPECT_NE(r.output.find("data dir"), std::string::npos) << why << "\n" << r.output;
  };

  // Not a directory.
  std::ofstream(dir + "/file") << "x";
  expect_refused(dir + "/file", "a regular file");
  expect_refused(dir + "/file/sub", "below a regular file");

  // Locked by a running node.
  cluster_ = std::make_unique<CoordinatorCluster>(1);
  cluster_->StartAll();
  ASSERT_EQ(cluster_->WaitForLeader(kLeaderTimeout), 1) << cluster_->Log(1);
  expect_refused(cluster_->DataDir(1), "locked by another process");

  // Corrupt in the middle of the log: write decisions, stop, flip a byte, restart.
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(Decide(1, DecideReq("c-" + std::to_string(i), rpc::Outcome::COMMIT)).code,
              rpc::ResultCode::OK);
  }
  cluster_->Signal(1, SIGTERM);
  ASSERT_EQ(cluster_->WaitExit(1, 20s), std::optional<int>(0)) << cluster_->Log(1);
  std::string wal;
  for (const auto& e : std::filesystem::directory_iterator(cluster_->DataDir(1))) {
    if (e.path().extension() == ".log") wal = e.path();
  }
  ASSERT_FALSE(wal.empty());
  auto size = std::filesystem::file_size(wal);
  ASSERT_GT(size, 1000u);
  {
    std::fstream f(wal, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(size / 3));
    char c;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(size / 3));
    f.put(static_cast<char>(c ^ 0x5a));
  }
  expect_refused(cluster_->DataDir(1), "corrupt log");
  RemoveTree(dir);
}

TEST_F(CoordinatorProcessTest, Sigterm_EveryNodeExitsZero) {
  int leader = StartCluster();
  ASSERT_NE(leader, 0);
  ASSERT_EQ(DecideOnAnyLeader(DecideReq("tx-4", rpc::Outcome::COMMIT)).code, rpc::ResultCode::OK);
  for (int id = 1; id <= 3; ++id) cluster_->Signal(id, SIGTERM);
  for (int id = 1; id <= 3; ++id) {
    EXPECT_EQ(cluster_->WaitExit(id, 20s), std::optional<int>(0)) << cluster_->Log(id);
    EXPECT_NE(cluster_->Log(id).find("stopped cleanly"), std::string::npos);
  }
}

TEST_F(CoordinatorProcessTest, MalformedInput_IsRefusedAndTheNodeKeepsServing) {
  int leader = StartCluster({"--max-frame-bytes", std::to_string(4 << 20)});
  ASSERT_NE(leader, 0);
  int port = PortOf(cluster_->Address(leader));

  // Garbage on the port: random bytes, a huge frame length, a frame of junk, a cut frame.
  std::string junk;
  for (int i = 0; i < 4096; ++i) junk.push_back(static_cast<char>((i * 7919) & 0xff));
  EXPECT_TRUE(SendRaw(port, junk));
  EXPECT_TRUE(SendRaw(port, std::string("\x7f\xff\xff\xff", 4) + junk));
  EXPECT_TRUE(SendRaw(port, std::string("\x00\x00\x01\x00", 4) + junk.substr(0, 256)));
  EXPECT_TRUE(SendRaw(port, std::string("\x00\x00\x10\x00", 4) + junk.substr(0, 100)));
  EXPECT_TRUE(SendRaw(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));

  // Well-formed Thrift, bad content.
  auto expect_invalid = [&](const rpc::DecideRequest& req, const std::string& why) {
    rpc::DecideResponse r = Decide(leader, req);
    EXPECT_EQ(r.code, rpc::ResultCode::INVALID_ARGUMENT) << why;
    EXPECT_FALSE(r.message.empty()) << why;
  };
  expect_invalid(DecideReq("", rpc::Outcome::COMMIT), "empty gtid");
  expect_invalid(DecideReq("g", static_cast<rpc::Outcome::type>(7)), "unknown outcome");
  expect_invalid(DecideReq(std::string(300, 'g'), rpc::Outcome::COMMIT), "long gtid");
  expect_invalid(DecideReq("g", rpc::Outcome::COMMIT, std::vector<std::string>(2000, "p")),
                 "too many participants");
  expect_invalid(DecideReq("g", rpc::Outcome::COMMIT, {""}), "empty participant");
  rpc::GetDecisionResponse g = Get(leader, GetReq("g", static_cast<rpc::Consistency::type>(9)));
  EXPECT_EQ(g.code, rpc::ResultCode::INVALID_ARGUMENT);

  // A request above the frame limit: the connection is dropped, the node lives on.
  {
    auto client = cluster_->Client(leader);
    ASSERT_TRUE(client);
    rpc::DecideResponse r;
    EXPECT_FALSE(
        client->Decide(DecideReq(std::string(6 << 20, 'g'), rpc::Outcome::COMMIT), &r).ok());
  }

  // Raft messages that make no sense are dropped.
  {
    using namespace apache::thrift;
    auto socket = std::make_shared<transport::TSocket>("127.0.0.1", port);
    auto framed = std::make_shared<transport::TFramedTransport>(socket);
    framed->open();
    auto proto = std::make_shared<protocol::TBinaryProtocol>(framed);
    rpc::RaftServiceClient raft(std::make_shared<protocol::TMultiplexedProtocol>(proto, "Raft"));
    rpc::RaftMessage m;
    m.type = static_cast<rpc::MessageType::type>(99);
    m.to_node = leader;
    rpc::RaftMessage m2;
    m2.type = rpc::MessageType::APPEND;
    m2.to_node = leader;
    m2.term = -5;
    rpc::RaftMessage m3;
    m3.type = rpc::MessageType::VOTE;
    m3.to_node = 77;
    raft.Deliver({m, m2, m3});
    framed->close();
  }

  // Still the leader's one process, still serving.
  std::this_thread::sleep_for(200ms);
  for (int id = 1; id <= 3; ++id) {
    EXPECT_FALSE(cluster_->WaitExit(id, 0ms).has_value()) << "node " << id << " exited";
  }
  EXPECT_NE(cluster_->WaitForLeader(kLeaderTimeout), 0);
  rpc::DecideResponse ok = DecideOnAnyLeader(DecideReq("after-garbage", rpc::Outcome::COMMIT));
  EXPECT_EQ(ok.code, rpc::ResultCode::OK) << ok.message;
}

TEST_F(CoordinatorProcessTest, Snapshot_RestartAndCatchUpKeepEveryDecision) {
  int leader = StartCluster({"--snapshot-entries", "20"});
  ASSERT_NE(leader, 0);
  // One follower misses everything below; it must catch up from a snapshot.
  int lagging = Follower(leader);
  cluster_->Kill(lagging);
  std::map<std::string, rpc::Outcome::type> decided;
  for (int i = 0; i < 150; ++i) {
    std::string gtid = "s-" + std::to_string(i);
    auto outcome = i % 3 ? rpc::Outcome::COMMIT : rpc::Outcome::ABORT;
    rpc::DecideResponse d = DecideOnAnyLeader(DecideReq(gtid, outcome));
    ASSERT_EQ(d.code, rpc::ResultCode::OK) << d.message;
    decided[gtid] = outcome;
  }
  rpc::NodeStatus st;
  ASSERT_TRUE(cluster_->NodeStatus(cluster_->WaitForLeader(kLeaderTimeout), &st).ok());
  EXPECT_GT(st.snapshot_index, 100);
  int64_t commit = st.commit_index;

  auto check_all = [&](const std::string& when) {
    ASSERT_TRUE(cluster_->WaitForApplied(commit, 30s)) << when;
    for (int id = 1; id <= 3; ++id) {
      for (const auto& [gtid, outcome] : decided) {
        rpc::GetDecisionResponse g = Get(id, GetReq(gtid, rpc::Consistency::LOCAL));
        ASSERT_EQ(g.code, rpc::ResultCode::OK) << when << ": node " << id << " " << gtid;
        ASSERT_EQ(g.outcome, outcome) << when << ": node " << id << " " << gtid;
      }
    }
  };
  cluster_->Start(lagging);
  check_all("after the lagging node caught up");

  for (int id = 1; id <= 3; ++id) cluster_->Signal(id, SIGTERM);
  for (int id = 1; id <= 3; ++id) ASSERT_EQ(cluster_->WaitExit(id, 20s), std::optional<int>(0));
  cluster_->StartAll();
  ASSERT_NE(cluster_->WaitForLeader(kLeaderTimeout), 0);
  check_all("after a restart");
}

}  // namespace
}  // namespace verdict::testing
