// Names of the files in a log directory (see log_format.h). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace verdict::coordinator::storage {

std::string SegmentFileName(uint64_t seq);
std::string SnapshotFileName(uint64_t index, uint64_t term);

// Return false if `name` is not exactly a segment / snapshot file name.
bool ParseSegmentFileName(std::string_view name, uint64_t* seq);
bool ParseSnapshotFileName(std::string_view name, uint64_t* index, uint64_t* term);

std::string JoinPath(const std::string& dir, std::string_view name);

}  // namespace verdict::coordinator::storage
