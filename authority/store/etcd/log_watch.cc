// The watch of the log (internal/etcd_store_impl.h): one thread per replica
// follows P log/ through P t/ from just after its head, keeps the copy of
// every row that builds read, and publishes each revision, every replica's,
// in order.
#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "authority/store/etcd/internal/etcd_store_impl.h"
#include "common/log.h"
#include "common/strings.h"

namespace latchkey {

using etcdserverpb::RangeRequest;
using etcdserverpb::RangeResponse;

// Builds read this replica's writes not yet in the copy over the copy
// itself; no etcd call. Stale reads are safe: each row read is compared
// when the batch commits, and sets are guarded by a row read first.
absl::StatusOr<std::optional<std::string>> EtcdStore::GetLatest(Table table,
                                                                std::string_view key) const {
  const std::string row = layout_.Row(table, key);
  MutexLock lock(&batch_mu_);
  if (auto it = overlay_.find(row); it != overlay_.end()) return it->second.first;
  if (auto it = copy_.find(row); it != copy_.end()) return it->second;
  return std::nullopt;
}

absl::StatusOr<Page> EtcdStore::ScanLatest(Table table, std::string_view prefix,
                                           std::string_view after, size_t limit) const {
  const std::string base = layout_.Row(table, "");
  const std::string start = ScanStart(table, prefix, after);
  const std::string end = PrefixEnd(layout_.Row(table, prefix));
  MutexLock lock(&batch_mu_);
  auto written = overlay_.lower_bound(start);
  auto copied = copy_.lower_bound(start);
  const auto written_end = overlay_.end();
  const auto copied_end = copy_.end();
  const auto more_written = [&] { return written != written_end && written->first < end; };
  const auto more_copied = [&] { return copied != copied_end && copied->first < end; };
  Page page;
  // Both in key order; where both hold a key, the write wins.
  while (more_written() || more_copied()) {
    const std::string* key;
    const std::string* value;
    if (more_written() && (!more_copied() || written->first <= copied->first)) {
      if (more_copied() && copied->first == written->first) ++copied;
      key = &written->first;
      value = written->second.first ? &*written->second.first : nullptr;
      ++written;
      if (value == nullptr) continue;  // deleted
    } else {
      key = &copied->first;
      value = &copied->second;
      ++copied;
    }
    if (page.rows.size() == limit) {
      page.more = true;
      break;
    }
    page.rows.push_back({key->substr(base.size()), *value});
  }
  return page;
}

// The watcher thread: follows P log/ through P t/ (the log, the meta
// keys, the replicas' rows and the table rows) from just after the head,
// keeps the copy and publishes each revision in order. Reconnects (to the
// next member) when the stream breaks.
void EtcdStore::WatchLog() {
  while (true) {
    size_t member = client_->current();
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("hasleader", "true");
    int64_t from;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      watch_ctx_ = ctx.get();
      watch_member_ = member;
      MutexLock published(&published_mu_);
      from = head_etcd_revision_ + 1;
    }
    auto stream = client_->watch(member).Watch(ctx.get());
    etcdserverpb::WatchRequest req;
    auto* create = req.mutable_create_request();
    create->set_key(layout_.Log());
    create->set_range_end(PrefixEnd(layout_.Rows()));
    create->set_start_revision(from);
    // Progress notifications move the read revision on while nothing
    // changes, so that reads at the head never fall behind a compaction.
    create->set_progress_notify(true);
    absl::Status ended = absl::UnavailableError("watch stream ended");
    if (stream->Write(req)) {
      etcdserverpb::WatchResponse resp;
      while (stream->Read(&resp)) {
        if (resp.compact_revision() != 0) {
          // Cut off for longer than etcd keeps history: catch up from what
          // etcd holds now, then watch on from there.
          ended = CatchUp();
          if (ended.ok()) {
            ended = absl::OutOfRangeError("etcd compacted where the watch was; caught up");
          }
          break;
        }
        if (resp.canceled()) {
          ended = absl::DataLossError(
              StrCat("etcd cancelled the watch of the log: ", resp.cancel_reason()));
          break;
        }
        absl::Status applied = Apply(resp);
        if (!applied.ok()) {
          ended = applied;
          break;
        }
      }
    }
    ctx->TryCancel();
    stream->Finish().ok();  // the reason is in `ended`
    {
      MutexLock lock(&mu_);
      watch_ctx_ = nullptr;
      if (stopping_) return;
      watch_error_ = ended;
    }
    spdlog::warn("etcd store: watch of the log via {} ended ({}); resuming",
                 client_->endpoint(member), ended.ToString());
    client_->MoveOn(member);
    absl::SleepFor(absl::Milliseconds(100));
  }
}

// Waits up to `budget` for the head to reach `revision`, which etcd has
// committed. The watch may be on a member that stopped answering (its
// connection open, so the stream never breaks): it is ended, and WatchLog
// resumes on the current member, when it brings nothing meanwhile for
// kWatchSilence, or for kWatchGrace when calls already left its member
// as gone.
bool EtcdStore::WaitPublished(uint64_t revision, absl::Duration budget) const {
  const absl::Time until = absl::Now() + budget;
  uint64_t seen = head_revision();
  absl::Time moved = absl::Now();  // when the head last moved
  while (head_revision() < revision) {
    const absl::Time now = absl::Now();
    if (now >= until) return false;
    const absl::Duration patience =
        watch_member_ == client_->current() ? kWatchSilence : kWatchGrace;
    if (head_revision() != seen) {
      seen = head_revision();
      moved = now;
    } else if (now - moved >= patience) {
      if (watch_ctx_ != nullptr) {
        spdlog::warn(
            "etcd store: the watch of the log via {} brought nothing for {} while revision {} "
            "is committed; moving it to {}",
            client_->endpoint(watch_member_), absl::FormatDuration(now - moved), revision,
            client_->endpoint(client_->current()));
        watch_ctx_->TryCancel();
      }
      moved = now;
    }
    published_.WaitFor(&mu_, std::min(until, moved + patience) - now,
                       [&] { return head_revision() != seen; });
  }
  return true;
}

// Forgets this replica's committed writes the copy now holds, as of
// `head`. (Pending ones stay: when another replica took their revision,
// their batch is lost and Flush drops them.)
void EtcdStore::DropCopiedWrites(uint64_t head) {
  const uint64_t copied = std::min(head, last_committed_);
  for (auto it = overlay_.begin(); it != overlay_.end();) {
    it = it->second.second <= copied ? overlay_.erase(it) : std::next(it);
  }
}

void EtcdStore::MoveHead(uint64_t revision, int64_t etcd_revision) {
  {
    MutexLock lock(&published_mu_);
    head_etcd_revision_ = std::max(head_etcd_revision_, etcd_revision);
    head_.store(revision, std::memory_order_release);
  }
  NoteCommitted(revision);
}

// What the watch would have brought since the head, read instead: the log
// records after it and every row, at one etcd revision. For a replica whose
// watch start etcd compacted away (docs/design.md, "The etcd store").
absl::Status EtcdStore::CatchUp() {
  RangeRequest head_req;
  head_req.set_key(layout_.Head());
  RangeResponse head_resp;
  if (absl::Status s = client_->Range(head_req, &head_resp); !s.ok()) return s;
  const std::optional<uint64_t> read_head =
      head_resp.kvs_size() == 1 ? ParseHead(head_resp.kvs(0).value()) : std::nullopt;
  if (!read_head) return absl::DataLossError("no readable head revision in etcd");
  const uint64_t head = *read_head;
  const int64_t at = head_resp.header().revision();
  const absl::Status trimmed =
      absl::DataLossError(StrCat("revisions after ", head_revision(),
                                 " left the event log before this replica heard them; restart it"));
  std::vector<internal::LogRecord> missed;
  for (uint64_t next = head_revision() + 1; next <= head;) {
    RangeRequest req;
    req.set_key(layout_.Log(next));
    req.set_range_end(layout_.Log(head + 1));
    req.set_revision(at);
    req.set_limit(1000);
    RangeResponse resp;
    if (absl::Status s = client_->Range(req, &resp); !s.ok()) return s;
    if (resp.kvs_size() == 0) return StopPublishing(trimmed);
    for (const auto& kv : resp.kvs()) {
      internal::LogRecord rec;
      if (!rec.ParseFromString(kv.value())) return absl::DataLossError("log record");
      if (rec.event().revision() != next) return StopPublishing(trimmed);
      ++next;
      missed.push_back(std::move(rec));
    }
  }
  absl::StatusOr<std::map<std::string, std::string>> rows = ReadAll(*client_, layout_.Rows(), at);
  if (!rows.ok()) return rows.status();
  MutexLock lock(&mu_);
  {
    MutexLock batch(&batch_mu_);
    copy_ = *std::move(rows);
    DropCopiedWrites(head);
  }
  // The head first, at once (the rows are all there), then the listener
  // for each revision in order.
  MoveHead(missed.empty() ? head_revision() : missed.back().event().revision(), at);
  // The rows came all at once: which revision wrote which is not known.
  for (const internal::LogRecord& rec : missed) {
    CallCommitListener(listener_, rec.event(), rec.audit(), TableSet::All());
  }
  published_.SignalAll();
  spdlog::warn("etcd store: the watch's start was compacted; caught up to revision {} ({} missed)",
               head, missed.size());
  return absl::OkStatus();
}

// What the log lost, this replica can never publish: it stays so, and
// reports it (Reachable) until it is restarted.
absl::Status EtcdStore::StopPublishing(absl::Status why) {
  MutexLock lock(&published_mu_);
  cannot_publish_ = why;
  return why;
}

// One answer of the watch. etcd never splits the events of one etcd
// revision (one transaction) between answers, so the copy and the head
// move together, a whole batch at a time: a build never sees half of one.
absl::Status EtcdStore::Apply(const etcdserverpb::WatchResponse& resp) {
  MutexLock lock(&mu_);
  const std::string log = layout_.Log(), rows = layout_.Rows();
  std::vector<std::pair<internal::LogRecord, int64_t>> heard;  // and its etcd revision
  // The tables each etcd revision (one batch) wrote.
  absl::flat_hash_map<int64_t, TableSet> written;
  {
    MutexLock batch(&batch_mu_);
    uint64_t head = head_revision();
    for (const auto& e : resp.events()) {
      const std::string& key = e.kv().key();
      if (absl::StartsWith(key, rows)) {
        if (e.type() == mvccpb::Event::PUT) {
          copy_[key] = e.kv().value();
        } else {
          copy_.erase(key);
        }
        const std::string_view row = std::string_view(key).substr(rows.size());
        if (std::optional<Table> t = TableNamed(row.substr(0, row.find('/')))) {
          written[e.kv().mod_revision()].Add(*t);
        }
        continue;
      }
      // The rest: the head, replicas' receipts, log records trimmed.
      if (!absl::StartsWith(key, log) || e.type() != mvccpb::Event::PUT) continue;
      internal::LogRecord rec;
      if (!rec.ParseFromString(e.kv().value())) return absl::DataLossError("log record");
      const uint64_t revision = rec.event().revision();
      if (revision <= head) continue;
      if (revision != head + 1) {
        return absl::InternalError(StrCat("log gap: head ", head, ", next heard ", revision));
      }
      head = revision;
      heard.emplace_back(std::move(rec), e.kv().mod_revision());
    }
    DropCopiedWrites(head);
  }
  // The head moves once, to the last revision heard: the revisions of one
  // batch share one etcd revision, which holds the batch's last state, and
  // the copy already holds the answer's last. Then the listener hears each
  // revision in order.
  if (!heard.empty()) MoveHead(heard.back().first.event().revision(), heard.back().second);
  for (const auto& [rec, etcd_revision] : heard) {
    const auto batch_wrote = written.find(etcd_revision);
    CallCommitListener(listener_, rec.event(), rec.audit(),
                       batch_wrote == written.end() ? TableSet() : batch_wrote->second);
  }
  // A progress notification (no events; etcd sends one only to a watcher
  // that has caught up) says every change of the log up to its revision was
  // heard, so the head's state holds up to there and reads may use it. Not
  // so for other answers: a catch-up batch names the current revision even
  // when more events follow.
  if (resp.events_size() == 0 && !resp.created()) {
    MoveHead(head_revision(), resp.header().revision());
  }
  watch_error_ = absl::OkStatus();
  published_.SignalAll();
  return absl::OkStatus();
}

}  // namespace latchkey
