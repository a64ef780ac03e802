#include "bench/etcd_anchor.h"

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "bench/child_process.h"
#include "bench/json_writer.h"

namespace verdict::bench {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace

double EtcdLoadCap(const std::string& load) {
  if (load == "s") return 150;
  if (load == "m") return 1000;
  if (load == "l") return 8000;
  if (load == "xl") return 15000;
  return kNaN;
}

Status FindAnchorScript(const std::string& source_dir, const std::string& name, std::string* path) {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("VERDICT_ANCHORS"); env != nullptr && *env != '\0') {
    dirs.push_back(env);
  }
  if (!source_dir.empty()) dirs.push_back(source_dir + "/../shared/anchors");
  dirs.push_back("/work/shared/anchors");
  std::string tried;
  for (const auto& dir : dirs) {
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), R_OK) == 0) {
      *path = candidate;
      return Status::OK();
    }
    tried += " " + candidate;
  }
  return Status::NotFound(name + " not found; tried" + tried);
}

Status FindEtcdAnchorScript(const std::string& source_dir, std::string* path) {
  return FindAnchorScript(source_dir, "etcd-baseline.sh", path);
}

Status RunEtcdAnchor(const std::string& script, const std::string& load,
                     std::chrono::seconds timeout, EtcdAnchorResult* result) {
  result->script = script;
  result->load = load;
  result->writes_per_s = kNaN;
  result->slowest_s = kNaN;
  ChildProcess child;
  VERDICT_RETURN_IF_ERROR(child.Start({"/bin/bash", script, load}, "", /*capture_stdout=*/true));
  std::string out;
  bool eof = child.ReadStdoutUntilEof(std::chrono::steady_clock::now() + timeout, &out);
  // After EOF the script is cleaning up (stopping etcd, removing its directory): let it.
  if (eof) child.WaitExit(std::chrono::milliseconds(30000));
  child.Stop(std::chrono::milliseconds(5000));
  if (!eof) {
    return Interrupted() ? Status::Aborted("interrupted")
                         : Status::Timeout("etcd anchor took longer than " +
                                           std::to_string(timeout.count()) + " s");
  }
  if (child.exit_code() == 2) return Status::NotFound("etcd is not installed");
  // The last non-empty line is the JSON object.
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  size_t nl = out.rfind('\n');
  std::string last = nl == std::string::npos ? out : out.substr(nl + 1);
  result->writes_per_s = FlatJsonNumber(last, "etcd_writes_per_s");
  result->slowest_s = FlatJsonNumber(last, "slowest_s");
  if (std::isnan(result->writes_per_s)) {
    return Status::Corruption("no etcd_writes_per_s in '" + last + "' (" + child.ExitDescription() +
                              ")");
  }
  return Status::OK();
}

}  // namespace verdict::bench
