#include "common/failpoint.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>

namespace verdict {

namespace {

std::map<std::string, std::string> Parse() {
  std::map<std::string, std::string> out;
  const char* env = std::getenv("VERDICT_FAILPOINT");
  if (env == nullptr) return out;
  std::string spec = env;
  size_t start = 0;
  while (start < spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    size_t colon = item.find(':');
    if (colon != std::string::npos) out[item.substr(0, colon)] = item.substr(colon + 1);
    start = end + 1;
  }
  return out;
}

const std::map<std::string, std::string>& Sites() {
  static const std::map<std::string, std::string> sites = Parse();
  return sites;
}

}  // namespace

bool FailpointsEnabled() { return !Sites().empty(); }

bool Failpoint(const char* site) {
  const auto& sites = Sites();
  if (sites.empty()) return false;
  auto it = sites.find(site);
  if (it == sites.end()) return false;
  const std::string& action = it->second;
  spdlog::warn("failpoint {} hit: {}", site, action);
  spdlog::default_logger()->flush();
  if (action == "kill") {
    kill(getpid(), SIGKILL);
    for (;;) pause();
  }
  if (action == "abort") std::abort();
  if (action == "error") return true;
  if (action.rfind("sleep", 0) == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(action.c_str() + 5)));
  }
  return false;
}

}  // namespace verdict
