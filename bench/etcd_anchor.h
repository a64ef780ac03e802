// The etcd anchor: runs the shared etcd-baseline.sh (a 3-node etcd cluster on loopback,
// fsync on, loaded by `etcdctl check perf`) and reads its write rate, the yardstick for
// Verdict's decision log on the same machine in the same run. Blocking; main thread only.
#pragma once

#include <chrono>
#include <string>

#include "common/status.h"

namespace verdict::bench {

struct EtcdAnchorResult {
  double writes_per_s = 0;  // NaN if the script printed null
  double slowest_s = 0;     // NaN if absent
  std::string script;       // the path run
  std::string load;         // s, m, l or xl
};

// The write rate `etcdctl check perf --load=LOAD` paces its clients at (s 150, m 1,000,
// l 8,000, xl 15,000 writes/s in etcd 3.4): the highest figure the anchor can report.
double EtcdLoadCap(const std::string& load);

// Finds ../shared/anchors/<name>: under $VERDICT_ANCHORS, then `source_dir`/../shared/anchors,
// then /work/shared/anchors. NotFound naming every path tried.
Status FindAnchorScript(const std::string& source_dir, const std::string& name, std::string* path);

// The anchor script: $VERDICT_ANCHORS/etcd-baseline.sh, else <source>/../shared/anchors,
// else /work/shared/anchors. NotFound listing the places tried.
Status FindEtcdAnchorScript(const std::string& source_dir, std::string* path);

// Runs `script load` and parses its last stdout line. NotFound if etcd is not installed
// (exit 2), Timeout after `timeout`, Corruption if no figure could be read.
Status RunEtcdAnchor(const std::string& script, const std::string& load,
                     std::chrono::seconds timeout, EtcdAnchorResult* result);

}  // namespace verdict::bench
