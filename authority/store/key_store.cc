#include "authority/store/key_store.h"

#include "common/strings.h"

namespace latchkey {

absl::StatusOr<std::optional<std::string>> Transaction::Get(Table table, std::string_view key) {
  absl::StatusOr<std::optional<std::string>> row = store_.GetLatest(table, key);
  if (row.ok()) reads_.push_back(Precondition{table, std::string(key), *row});
  return row;
}

void Transaction::Finish(Mutation& m) {
  m.revision = revision_;
  m.reads = std::move(reads_);
  reads_.clear();
}

std::string UsageRowKey(std::string_view key_id, std::string_view writer) {
  return StrCat(key_id, "/", writer);
}

std::string UsageWriterOf(std::string_view row_key, std::string_view key_id) {
  if (row_key.size() <= key_id.size() + 1) return "";
  return std::string(row_key.substr(key_id.size() + 1));
}

}  // namespace latchkey
