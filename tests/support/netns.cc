#include "tests/support/netns.h"

#include <unistd.h>

#include <atomic>
#include <chrono>

#include "tests/integration/coordinator/cluster_harness.h"

namespace verdict::test_support {

namespace {
std::atomic<int> g_testbeds{0};
}  // namespace

NetnsTestbed::~NetnsTestbed() {
  for (int i = 1; i <= n_; ++i) Ip({"netns", "del", Namespace(i)});
  if (!bridge_.empty()) Ip({"link", "del", bridge_});
}

Status NetnsTestbed::Create(int n) {
  // Interface names are at most 15 characters; the subnet comes from the pid too, so that
  // parallel test binaries do not collide.
  const int pid = static_cast<int>(getpid());
  tag_ = std::to_string(pid % 100000) + "x" + std::to_string(g_testbeds++ % 10);
  subnet_ = "10.2" + std::to_string(10 + pid % 40) + "." + std::to_string((pid / 40) % 250) + ".";
  bridge_ = "vb" + tag_;
  VERDICT_RETURN_IF_ERROR(Ip({"link", "add", bridge_, "type", "bridge"}));
  VERDICT_RETURN_IF_ERROR(Ip({"addr", "add", BridgeHost() + "/24", "dev", bridge_}));
  VERDICT_RETURN_IF_ERROR(Ip({"link", "set", bridge_, "up"}));
  for (int i = 1; i <= n; ++i) {
    const std::string ns = Namespace(i);
    const std::string inside = "vn" + tag_ + std::to_string(i);
    VERDICT_RETURN_IF_ERROR(Ip({"netns", "add", ns}));
    n_ = i;
    VERDICT_RETURN_IF_ERROR(
        Ip({"link", "add", HostSide(i), "type", "veth", "peer", "name", inside}));
    VERDICT_RETURN_IF_ERROR(Ip({"link", "set", inside, "netns", ns}));
    VERDICT_RETURN_IF_ERROR(Ip({"link", "set", HostSide(i), "master", bridge_}));
    VERDICT_RETURN_IF_ERROR(Ip({"link", "set", HostSide(i), "up"}));
    VERDICT_RETURN_IF_ERROR(Ip({"-n", ns, "addr", "add", Host(i) + "/24", "dev", inside}));
    VERDICT_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", inside, "up"}));
    VERDICT_RETURN_IF_ERROR(Ip({"-n", ns, "link", "set", "lo", "up"}));
  }
  return Status::OK();
}

std::string NetnsTestbed::Host(int i) const { return subnet_ + std::to_string(i); }
std::string NetnsTestbed::BridgeHost() const { return subnet_ + "254"; }
std::string NetnsTestbed::Namespace(int i) const {
  return "verdict-" + tag_ + "-" + std::to_string(i);
}
std::string NetnsTestbed::HostSide(int i) const { return "vh" + tag_ + std::to_string(i); }

std::vector<std::string> NetnsTestbed::Prefix(int i) const {
  return {"/usr/sbin/ip", "netns", "exec", Namespace(i)};
}

Status NetnsTestbed::Isolate(int i) { return Ip({"link", "set", HostSide(i), "down"}); }
Status NetnsTestbed::Heal(int i) { return Ip({"link", "set", HostSide(i), "up"}); }

Status NetnsTestbed::Ip(const std::vector<std::string>& args) {
  std::vector<std::string> cmd = {"/usr/sbin/ip"};
  cmd.insert(cmd.end(), args.begin(), args.end());
  testing::ProcessResult r = testing::RunProcess(cmd, std::chrono::seconds(10));
  if (r.exit_code == 0) return Status::OK();
  std::string line;
  for (const std::string& a : cmd) line += (line.empty() ? "" : " ") + a;
  return Status::IOError(line + ": exit " + std::to_string(r.exit_code) + ": " + r.output);
}

}  // namespace verdict::test_support
