// verdict-bank, the demo binary, as the README runs it: --init, transfers under 2PC and 3PC
// on SQLite shards behind 3 real coordinators, also with the leader or an agent killed
// (kill -9) mid-run; its JSON line must report the invariant held, and the shards read
// directly must agree. Bad flags: one line, exit 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "tests/support/agent_process.h"
#include "tests/support/txn_cluster.h"

namespace verdict::test_support {
namespace {

// Runs `cmd` through the shell; returns its exit code and its stdout's last line.
int RunShell(const std::string& cmd, std::string* last_line) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  char buf[4096];
  last_line->clear();
  while (std::fgets(buf, sizeof buf, p) != nullptr) *last_line = buf;
  const int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

// The integer after "key": in a flat JSON object (-1 if absent).
long long Field(const std::string& json, const std::string& key) {
  const size_t at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::stoll(json.substr(at + key.size() + 3));
}

std::string CoordinatorList(TxnCluster& cluster) {
  std::string list;
  for (const std::string& a : cluster.coordinators().Addresses()) {
    list += (list.empty() ? "" : ",") + a;
  }
  return list;
}

TEST(BankTest, TransfersKeepTheTotalUnder2pcAnd3pc) {
  TxnClusterOptions o;
  o.shards = {{"b0", Backend::kSqlite},
              {"b1", Backend::kSqlite},
              {"b2", Backend::kSqlite},
              {"b3", Backend::kSqlite}};
  TxnCluster cluster(nullptr, o);
  Status s = cluster.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  const std::string base = BinDir() + "/verdict-bank --coordinators " + CoordinatorList(cluster) +
                           " --shards b0,b1,b2,b3 --accounts 200 --clients 4 --duration 3";
  for (const char* protocol : {"2pc", "3pc"}) {
    std::string json;
    const std::string init = std::string(protocol) == "2pc" ? " --init" : "";
    const int rc = RunShell(base + " --protocol " + protocol + init, &json);
    EXPECT_EQ(rc, 0) << json << cluster.LogTails();
    EXPECT_NE(json.find("\"invariant\":\"ok\""), std::string::npos) << json;
    EXPECT_GT(Field(json, "committed"), 0) << json;
    EXPECT_EQ(Field(json, "total_expected"), 200 * 1000) << json;
    EXPECT_EQ(Field(json, "total_actual"), 200 * 1000) << json;
    EXPECT_EQ(Field(json, "negative_balances"), 0) << json;
    EXPECT_EQ(Field(json, "in_doubt"), 0) << json;
  }
  // The shards themselves, read outside Verdict, hold the same total.
  Balances b;
  ASSERT_TRUE(cluster.Snapshot(&b).ok());
  EXPECT_EQ(Total(b), 200 * 1000) << ToString(b);
}

// Runs verdict-bank (6 clients for 6 s on 90 accounts over 3 SQLite shards, after --init)
// and, 2 s into it, `disrupt(cluster)`; then the JSON line must report the invariant held
// with nothing in doubt, and the shards read directly must hold the same total.
// With `netns`, each coordinator runs in its own network namespace.
void ExpectBankSurvives(const std::function<void(TxnCluster&)>& disrupt,
                        NetnsTestbed* netns = nullptr) {
  TxnClusterOptions o;
  o.shards = {{"b0", Backend::kSqlite}, {"b1", Backend::kSqlite}, {"b2", Backend::kSqlite}};
  o.netns = netns;
  TxnCluster cluster(nullptr, o);
  Status s = cluster.Start();
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::string json;
  int rc = -1;
  std::thread bank([&] {
    rc = RunShell(BinDir() + "/verdict-bank --coordinators " + CoordinatorList(cluster) +
                      " --shards b0,b1,b2 --accounts 90 --clients 6 --duration 6 --init",
                  &json);
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  disrupt(cluster);
  bank.join();
  EXPECT_EQ(rc, 0) << json << cluster.LogTails();
  EXPECT_NE(json.find("\"invariant\":\"ok\""), std::string::npos) << json;
  EXPECT_GT(Field(json, "committed"), 0) << json;
  EXPECT_EQ(Field(json, "total_actual"), 90 * 1000) << json;
  EXPECT_EQ(Field(json, "in_doubt"), 0) << json;
  Balances b;
  ASSERT_TRUE(cluster.Snapshot(&b).ok());
  EXPECT_EQ(Total(b), 90 * 1000) << ToString(b);
  std::fprintf(stderr, "%s", json.c_str());
}

// The leader is killed (kill -9) while the clients are moving money, and comes back: some
// answers may be UNKNOWN, but once the new leader has finished what the old one decided,
// the money adds up and nothing is in doubt.
TEST(BankTest, LeaderKilledMidRunKeepsTheTotal) {
  ExpectBankSurvives([](TxnCluster& cluster) {
    const int leader = cluster.WaitForLeader(std::chrono::seconds(10));
    ASSERT_GT(leader, 0);
    cluster.coordinators().Kill(leader);
    std::this_thread::sleep_for(std::chrono::seconds(1));
    cluster.StartCoordinator(leader);
  });
}

// A participant agent is killed (kill -9) in the middle of the transfers, with branches
// of its shard open and prepared, and restarted a second later: transfers touching it
// fail or abort meanwhile, its prepared branches are recovered and finished, and the money
// still adds up with nothing in doubt.
TEST(BankTest, AgentKilledMidRunKeepsTheTotal) {
  ExpectBankSurvives([](TxnCluster& cluster) {
    cluster.agent("b1").Kill9();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    Status s = cluster.agent("b1").Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
  });
}

// The leader is paused (SIGSTOP) for longer than an election timeout while the clients
// move money: the others elect a new leader, which finishes what the paused one decided;
// the old leader resumes (SIGCONT), finds a newer term and follows.
TEST(BankTest, LeaderPausedMidRunKeepsTheTotal) {
  ExpectBankSurvives([](TxnCluster& cluster) {
    const int leader = cluster.WaitForLeader(std::chrono::seconds(10));
    ASSERT_GT(leader, 0);
    cluster.coordinators().Signal(leader, SIGSTOP);
    std::this_thread::sleep_for(std::chrono::seconds(2));
    cluster.coordinators().Signal(leader, SIGCONT);
  });
}

// A participant agent is paused (SIGSTOP) past the coordinator's RPC timeouts: calls to it
// time out, transactions touching it abort or wait, and once it resumes every branch it
// holds is finished the way the coordinator decided.
TEST(BankTest, AgentPausedMidRunKeepsTheTotal) {
  ExpectBankSurvives([](TxnCluster& cluster) {
    cluster.agent("b1").Stop();
    std::this_thread::sleep_for(std::chrono::seconds(2));
    cluster.agent("b1").Continue();
  });
}

// Faults mixed, Jepsen-style, while the clients run: an agent killed, the leader paused,
// another agent paused, then everything resumed and restarted.
TEST(BankTest, MixedFaultsMidRunKeepTheTotal) {
  ExpectBankSurvives([](TxnCluster& cluster) {
    cluster.agent("b0").Kill9();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const int leader = cluster.WaitForLeader(std::chrono::seconds(10));
    ASSERT_GT(leader, 0);
    cluster.coordinators().Signal(leader, SIGSTOP);
    cluster.agent("b2").Stop();
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    cluster.agent("b2").Continue();
    Status s = cluster.agent("b0").Start();
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    cluster.coordinators().Signal(leader, SIGCONT);
  });
}

// The leader is cut off the network (its namespace's link goes down) for longer than an
// election timeout while the clients move money: the majority elects a new leader, which
// finishes what the old one decided; the old leader, unable to reach a quorum, steps down
// and, reconnected, follows. Clients and agents talking to it meanwhile time out.
TEST(BankTest, LeaderPartitionedMidRunKeepsTheTotal) {
  NetnsTestbed net;
  Status s = net.Create(6);  // 3 coordinators, 3 agents
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectBankSurvives(
      [&net](TxnCluster& cluster) {
        const int leader = cluster.WaitForLeader(std::chrono::seconds(10));
        ASSERT_GT(leader, 0);
        Status cut = net.Isolate(leader);
        ASSERT_TRUE(cut.ok()) << cut.ToString();
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        Status heal = net.Heal(leader);
        ASSERT_TRUE(heal.ok()) << heal.ToString();
      },
      &net);
}

// Agent b1 is cut off the network mid-run (namespace 5: after 3 coordinators and b0):
// its branches' calls time out, those transactions abort or wait, and its in-doubt
// branches can reach neither the coordinator group nor their peers. Reconnected, it
// learns the outcomes and finishes them.
TEST(BankTest, AgentPartitionedMidRunKeepsTheTotal) {
  NetnsTestbed net;
  Status s = net.Create(6);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ExpectBankSurvives(
      [&net](TxnCluster&) {
        Status cut = net.Isolate(5);
        ASSERT_TRUE(cut.ok()) << cut.ToString();
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        Status heal = net.Heal(5);
        ASSERT_TRUE(heal.ok()) << heal.ToString();
      },
      &net);
}

TEST(BankTest, BadFlagsExitTwoWithOneLine) {
  const std::string bin = BinDir() + "/verdict-bank";
  for (const std::string& args :
       {std::string(""), std::string("--coordinators 127.0.0.1:1"),
        std::string("--coordinators 127.0.0.1:1 --shards a --protocol 4pc"),
        std::string("--coordinators 127.0.0.1:1 --shards a --accounts 1"),
        std::string("--coordinators 127.0.0.1:1 --shards a --bogus")}) {
    std::string err;
    const int rc = RunToExit({"/bin/sh", "-c", bin + " " + args}, &err);
    EXPECT_EQ(rc, 2) << args << ": " << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << args << ": " << err;
  }
}

}  // namespace
}  // namespace verdict::test_support
