// verdictctl's transaction commands (verdictctl_txn.cc): txns, show, resolve, participants,
// hazards. Each prints to stdout and returns the process exit code.
#pragma once

#include <string>
#include <vector>

namespace verdict::tools {

inline constexpr int kExitFailed = 1;    // no answer, or the call failed
inline constexpr int kExitUsage = 2;     // usage or invalid request
inline constexpr int kExitNotFound = 3;  // nothing recorded for the gtid
inline constexpr int kExitRefused = 4;   // resolve refused (already decided, being driven)

int ListTxnsCommand(const std::vector<std::string>& addresses, bool in_doubt, int limit,
                    int timeout_ms);
int ShowCommand(const std::vector<std::string>& addresses, const std::string& gtid, int timeout_ms);
int ResolveCommand(const std::vector<std::string>& addresses, const std::string& gtid, bool commit,
                   const std::string& who, const std::string& why, int timeout_ms);
int ParticipantsCommand(const std::vector<std::string>& addresses, int timeout_ms);
// Every node's hazards (each node reports its own). Exit 0 if none, 1 if any.
int HazardsCommand(const std::vector<std::string>& addresses, int timeout_ms);
// How many hazards each reachable node has seen in all (for `status`).
int64_t CountHazards(const std::vector<std::string>& addresses, int timeout_ms);

}  // namespace verdict::tools
