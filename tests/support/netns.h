// NetnsTestbed: network namespaces for real-process partition tests. Namespace i (1..n)
// holds one process (e.g. coordinator i) at 10.A.B.i on a bridge in the test's own
// namespace, which has 10.A.B.254 (for processes that stay outside: agents, clients).
// Isolate(i) cuts namespace i off from everything (its bridge port goes down); Heal(i)
// reconnects it. Needs root and iproute2 (`ip`); everything is removed on destruction.
// Not thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/status.h"

namespace verdict::test_support {

class NetnsTestbed {
 public:
  NetnsTestbed() = default;
  ~NetnsTestbed();  // deletes the namespaces and the bridge
  NetnsTestbed(const NetnsTestbed&) = delete;
  NetnsTestbed& operator=(const NetnsTestbed&) = delete;

  // Creates `n` namespaces and the bridge. IOError (with ip's output) if that fails.
  Status Create(int n);
  int size() const { return n_; }

  // The address of namespace i, and of the test's side of the bridge.
  std::string Host(int i) const;
  std::string BridgeHost() const;
  // Prepended to a command line to run it inside namespace i (`ip netns exec NAME`).
  std::vector<std::string> Prefix(int i) const;

  Status Isolate(int i);
  Status Heal(int i);

 private:
  std::string Namespace(int i) const;
  std::string HostSide(int i) const;  // the bridge port of namespace i
  Status Ip(const std::vector<std::string>& args);

  int n_ = 0;
  std::string tag_;     // unique per testbed: names of namespaces and links
  std::string subnet_;  // "10.A.B."
  std::string bridge_;
};

}  // namespace verdict::test_support
