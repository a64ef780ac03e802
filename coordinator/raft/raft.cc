#include "coordinator/raft/raft.h"  // implementation in progress
