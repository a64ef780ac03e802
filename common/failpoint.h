// Failpoints: named sites in the daemons (agent, coordinator) where tests inject a crash or
// an error, enabled by the environment variable VERDICT_FAILPOINT="site:action[,...]" read
// once at start-up. Actions: kill (SIGKILL self), abort, error (the site reports an error),
// sleepN (sleep N ms). Costs one hash lookup per site when the variable is set, nothing
// otherwise. Thread-safe.
#pragma once

namespace verdict {

// Runs the action configured for `site`, if any. Returns true if the action is "error".
bool Failpoint(const char* site);

// True if VERDICT_FAILPOINT names any site: lets a caller skip work done only to decide
// which site it is at.
bool FailpointsEnabled();

}  // namespace verdict
