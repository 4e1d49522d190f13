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

TableSet TableSet::Of(const std::vector<Write>& writes) {
  TableSet s;
  for (const Write& w : writes) s.Add(w.table);
  return s;
}

std::optional<Table> TableNamed(std::string_view name) {
  for (Table t : kAllTables) {
    if (TableName(t) == name) return t;
  }
  return std::nullopt;
}

namespace {
thread_local int listener_depth = 0;
}  // namespace

void CallCommitListener(const KeyStore::CommitListener& listener, const v1::KeyEvent& event,
                        const v1::AuditEvent& audit, TableSet written) {
  if (!listener) return;
  // Unmarked however the listener leaves (a test's failed assertion throws).
  struct Mark {
    Mark() { ++listener_depth; }
    ~Mark() { --listener_depth; }
  } mark;
  listener(event, audit, written);
}

absl::Status KeyStore::ForEach(
    Table table, std::string_view after, const StoreSnapshot* at,
    absl::FunctionRef<bool(std::string_view key, std::string_view value)> row) const {
  constexpr size_t kPage = 256;
  for (std::string cursor(after);;) {
    absl::StatusOr<Page> page = Scan(table, "", cursor, kPage, at);
    if (!page.ok()) return page.status();
    for (const Row& r : page->rows) {
      if (!row(r.key, r.value)) return absl::OkStatus();
    }
    if (!page->more || page->rows.empty()) return absl::OkStatus();
    cursor = std::move(page->rows.back().key);
  }
}

bool InsideCommitListener() { return listener_depth > 0; }

absl::Status SyncInsideCommitListener() {
  return absl::FailedPreconditionError(
      "Sync from inside the commit listener would wait for the publication the listener holds "
      "up");
}

std::string UsageRowKey(std::string_view key_id, std::string_view writer) {
  return StrCat(key_id, "/", writer);
}

std::string UsageWriterOf(std::string_view row_key, std::string_view key_id) {
  if (row_key.size() <= key_id.size() + 1) return "";
  return std::string(row_key.substr(key_id.size() + 1));
}

}  // namespace latchkey
