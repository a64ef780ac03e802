#include "coordinator/server/fatal.h"

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace verdict::coordinator::server {

void FatalError(std::string_view what) {
  spdlog::critical("fatal: {}; stopping the node", what);
  spdlog::default_logger()->flush();
  std::_Exit(kExitFatal);
}

}  // namespace verdict::coordinator::server
