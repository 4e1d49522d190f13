#include "authority/key_store.h"

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

}  // namespace latchkey
