// Self-test of the checkers: deliberate faults in the simulator's own view (a corrupted
// entry, a flipped register, skipped syncs, a forged leader, a lost acknowledgement, and
// hand-made logs) that each checker must report. Returns the number of checkers that
// failed to report their fault (0 = all work).
#pragma once

namespace verdict::sim {

int RunSelfTest(bool verbose);

}  // namespace verdict::sim
