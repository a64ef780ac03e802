#include "coordinator/storage/snapshot_file.h"

#include <memory>

#include "common/coding.h"
#include "common/crc32c.h"
#include "coordinator/storage/file_names.h"
#include "coordinator/storage/log_format.h"

namespace verdict::coordinator::storage {
namespace {

std::string BaseName(const std::string& path) {
  size_t pos = path.rfind('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

std::string EncodeHeader(const raft::SnapshotMeta& meta, const std::string& data) {
  const std::string membership = raft::EncodeMembership(meta.membership);
  std::string h;
  h.reserve(format::kSnapshotFixedHeaderSize + membership.size());
  h.append(format::kSnapshotMagic);
  PutFixed32(&h, format::kSnapshotVersion);
  PutFixed64(&h, meta.index);
  PutFixed64(&h, meta.term);
  PutFixed32(&h, static_cast<uint32_t>(membership.size()));
  h.append(membership);
  PutFixed64(&h, data.size());
  PutFixed32(&h, crc32c::Mask(crc32c::Value(data)));
  PutFixed32(&h, crc32c::Mask(crc32c::Value(h)));
  return h;
}

}  // namespace

Status WriteSnapshotFile(Env* env, const std::string& dir, const raft::Snapshot& snapshot) {
  static const std::string kEmpty;
  const std::string& data = snapshot.data ? *snapshot.data : kEmpty;
  const std::string name = SnapshotFileName(snapshot.meta.index, snapshot.meta.term);
  const std::string path = JoinPath(dir, name);
  const std::string tmp = path + std::string(format::kTempSuffix);

  std::unique_ptr<WritableFile> file;
  VERDICT_RETURN_IF_ERROR(env->NewWritableFile(tmp, &file));
  VERDICT_RETURN_IF_ERROR(file->Append(EncodeHeader(snapshot.meta, data)));
  VERDICT_RETURN_IF_ERROR(file->Append(data));
  VERDICT_RETURN_IF_ERROR(file->Sync());
  VERDICT_RETURN_IF_ERROR(file->Close());
  VERDICT_RETURN_IF_ERROR(env->RenameFile(tmp, path));
  return env->SyncDir(dir);
}

Status ReadSnapshotFile(Env* env, const std::string& path, raft::Snapshot* snapshot) {
  std::string contents;
  VERDICT_RETURN_IF_ERROR(env->ReadFile(path, &contents));
  auto corrupt = [&](const std::string& why) {
    return Status::Corruption(path + ": snapshot " + why);
  };
  std::string_view in = contents;
  if (in.size() < format::kSnapshotFixedHeaderSize) return corrupt("file too short");
  if (in.substr(0, 8) != format::kSnapshotMagic) return corrupt("bad magic");
  in.remove_prefix(8);
  uint32_t version = 0, membership_len = 0, data_crc = 0, header_crc = 0;
  uint64_t index = 0, term = 0, data_len = 0;
  GetFixed32(&in, &version);
  GetFixed64(&in, &index);
  GetFixed64(&in, &term);
  GetFixed32(&in, &membership_len);
  if (in.size() < static_cast<uint64_t>(membership_len) + 16) {
    return corrupt("header length out of range");
  }
  std::string_view membership = in.substr(0, membership_len);
  in.remove_prefix(membership_len);
  GetFixed64(&in, &data_len);
  GetFixed32(&in, &data_crc);
  const size_t header_crc_offset = contents.size() - in.size();
  GetFixed32(&in, &header_crc);
  if (crc32c::Unmask(header_crc) != crc32c::Value(contents.data(), header_crc_offset)) {
    return corrupt("header checksum mismatch");
  }
  if (version != format::kSnapshotVersion) {
    return corrupt("unsupported version " + std::to_string(version));
  }
  if (data_len != in.size()) {
    return corrupt("data length " + std::to_string(data_len) + " but " + std::to_string(in.size()) +
                   " bytes present");
  }
  if (crc32c::Unmask(data_crc) != crc32c::Value(in)) return corrupt("data checksum mismatch");
  raft::SnapshotMeta meta;
  meta.index = index;
  meta.term = term;
  if (!raft::DecodeMembership(membership, &meta.membership)) {
    return corrupt("malformed membership");
  }
  uint64_t name_index, name_term;
  if (!ParseSnapshotFileName(BaseName(path), &name_index, &name_term) || name_index != index ||
      name_term != term) {
    return corrupt("header (index " + std::to_string(index) + ", term " + std::to_string(term) +
                   ") does not match the file name");
  }
  contents.erase(0, contents.size() - in.size());  // keep only the data, without a copy
  snapshot->meta = std::move(meta);
  snapshot->data = std::make_shared<const std::string>(std::move(contents));
  return Status::OK();
}

}  // namespace verdict::coordinator::storage
