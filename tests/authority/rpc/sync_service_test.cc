// KeySync and KeyAdmin over real gRPC on port 0, assembled by hand around a
// store that records which threads call it: no store call runs on a gRPC
// callback thread, and the watch stream's phases (snapshot, replay, live)
// hand over without a gap or a duplicate.
#include "authority/rpc/sync_service.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <vector>

#include "tests/testing/clients.h"
#include "tests/testing/services.h"

namespace latchkey {
namespace {

using testing::Services;

// How a sidecar follows: Sync (this release) or Watch plus unary
// Acknowledge (the previous release, still served).
enum class Via { kSync, kWatch };

// One stream, read message by message.
class Watcher {
 public:
  Watcher(Services& s, Via via = Via::kSync, uint64_t after_revision = 0,
          const std::string& store_id = "", const std::string& token = "",
          const std::string& sidecar_id = "sc-test", const std::string& resume_session = "") {
    ctx_.AddMetadata("authorization", "Bearer " + (token.empty() ? s.sidecar_token() : token));
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::SyncRequest first;
    v1::WatchRequest& req = *first.mutable_watch();
    req.set_sidecar_id(sidecar_id);
    req.set_after_revision(after_revision);
    req.set_store_id(store_id);
    req.set_session(resume_session);
    if (via == Via::kWatch) {
      reader_ = s.sync().Watch(&ctx_, req);
    } else {
      stream_ = s.sync().Sync(&ctx_);
      stream_->Write(first);  // fails when the call is refused: Finish says why
    }
  }
  ~Watcher() {
    if (finished_) return;
    ctx_.TryCancel();
    v1::WatchResponse ignored;
    while (Read(&ignored)) {
    }
    Finish().ok();
  }

  // The next message that is not a progress tick.
  v1::WatchResponse Next() {
    v1::WatchResponse m;
    do {
      REQUIRE(Read(&m));
      if (first_) session_ = m.session();
      first_ = false;
    } while (m.has_progress());
    return m;
  }
  // Whether the authority took the stream: its first message arrives.
  bool Admitted() {
    v1::WatchResponse m;
    return Read(&m);
  }
  // The receipts session from the stream's first message.
  const std::string& session() const { return session_; }
  // Ends the stream from the client's side, as a killed pod would.
  void Drop() {
    ctx_.TryCancel();
    Finish();
  }
  // Reads through the snapshot; returns its revision and counts its entries.
  uint64_t ReadSnapshot(size_t* entries = nullptr) {
    for (;;) {
      v1::WatchResponse m = Next();
      if (m.has_snapshot_end()) return m.snapshot_end().revision();
      REQUIRE(m.has_snapshot_chunk());
      if (entries) *entries += m.snapshot_chunk().entries_size();
    }
  }
  // Sync only: sends `req` on the stream.
  bool Send(const v1::SyncRequest& req) { return stream_->Write(req); }
  bool Acknowledge(uint64_t revision, const std::string& store_id, bool leaving = false) {
    v1::SyncRequest req;
    req.mutable_acknowledgement()->set_applied_revision(revision);
    req.mutable_acknowledgement()->set_store_id(store_id);
    req.mutable_acknowledgement()->set_leaving(leaving);
    return Send(req);
  }
  // Sync only: closes the sending side, as a sidecar that is leaving does.
  void CloseWrites() { REQUIRE(stream_->WritesDone()); }
  grpc::Status Finish() {
    v1::WatchResponse ignored;
    while (Read(&ignored)) {
    }
    finished_ = true;
    return reader_ ? reader_->Finish() : stream_->Finish();
  }

 private:
  bool Read(v1::WatchResponse* m) { return reader_ ? reader_->Read(m) : stream_->Read(m); }

  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::SyncRequest, v1::WatchResponse>> stream_;
  bool finished_ = false;
  bool first_ = true;
  std::string session_;
};

grpc::StatusCode Acknowledge(Services& s, const std::string& session, uint64_t revision,
                             bool leaving = false, const std::string& token = "") {
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + (token.empty() ? s.sidecar_token() : token));
  v1::AcknowledgeRequest req;
  req.set_sidecar_id("sc-test");
  req.set_session(session);
  req.set_applied_revision(revision);
  req.set_store_id(s.store().store_id());
  req.set_leaving(leaving);
  v1::AcknowledgeResponse resp;
  return s.sync().Acknowledge(&ctx, req, &resp).error_code();
}

TEST_CASE("no store call runs on a gRPC callback thread: admin calls, snapshots, replays, usage") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  const std::string key_id = s.admin().GenerateApiKey(project).key().key_id();
  {
    Watcher w(s, via);
    const uint64_t at = w.ReadSnapshot();
    s.admin().GenerateApiKey(project, "second");
    REQUIRE(w.Next().event().revision() == at + 1);
  }
  {
    Watcher replay(s, via, 1);
    REQUIRE(replay.Next().event().revision() == 2);
  }
  v1::ReportUsageRequest usage;
  usage.set_sidecar_id("sc-test");
  v1::KeyUsage* u = usage.add_usage();
  u->set_key_id(key_id);
  u->set_count(3);
  v1::ReportUsageResponse ignored;
  REQUIRE(
      s.sync().ReportUsage(testing::AuthContext(s.sidecar_token()).get(), usage, &ignored).ok());

  REQUIRE(s.store().calls() > 0);
  REQUIRE(s.store().off_worker_calls() == 0);
}

TEST_CASE("events committed while a snapshot is read arrive once, in order, after it") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 30; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  Watcher w(s, via);
  std::thread writer([&] {
    for (int i = 0; i < 10; ++i) s.admin().GenerateApiKey(project, "during" + std::to_string(i));
  });
  size_t entries = 0;
  uint64_t last = w.ReadSnapshot(&entries);
  writer.join();
  REQUIRE(entries >= 31);  // the legacy key and the 30, at least
  const uint64_t head = s.store().head_revision();
  while (last < head) {
    const uint64_t next = w.Next().event().revision();
    REQUIRE(next == last + 1);
    last = next;
  }
}

TEST_CASE("a watch request with every field left out is a snapshot from the start") {
  // It is zero bytes on the wire: the raw Watch method must parse it as the
  // empty message it is (grpcurl -d '{}' sends exactly this).
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  s.admin().CreateProject("shop");
  Watcher w(s, via, 0, "", "", /*sidecar_id=*/"");
  REQUIRE(w.ReadSnapshot() == s.store().head_revision());
}

TEST_CASE("a resume replays retained events and a trimmed one starts over with a snapshot") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s(/*retention=*/5);
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 10; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  const uint64_t head = s.store().head_revision();
  {
    Watcher recent(s, via, head - 2);
    REQUIRE(recent.Next().event().revision() == head - 1);
    REQUIRE(recent.Next().event().revision() == head);
  }
  {
    Watcher trimmed(s, via, 1);
    REQUIRE(trimmed.ReadSnapshot() == head);
  }
  {
    // Another store's revisions mean nothing here: a snapshot.
    Watcher foreign(s, via, head - 1, "st_other");
    REQUIRE(foreign.ReadSnapshot() == head);
  }
}

TEST_CASE("a deleted principal's open watch streams end UNAUTHENTICATED when it is deleted") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  const v1::CreatePrincipalResponse pod = s.admin().NewPrincipal("leaked-pod", v1::ROLE_SIDECAR);
  Watcher doomed(s, via, 0, "", pod.token());
  Watcher other(s, via);  // another principal's stream goes on
  doomed.ReadSnapshot();
  const uint64_t at = other.ReadSnapshot();

  REQUIRE(s.admin().DeletePrincipal(pod.principal().principal_id()).ok());
  // Ended by the deletion itself (pushed, not polled): without it the stream
  // would run to the watcher's 30 s deadline (DEADLINE_EXCEEDED).
  const grpc::Status ended = doomed.Finish();
  INFO(ended.error_message());
  CHECK(ended.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(other.Next().event().revision() == at + 1);  // the deletion's own revision
}

TEST_CASE(
    "a unary acknowledgement counts only through its own stream's session and up to the head") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  Watcher w(s, Via::kWatch);
  const uint64_t at = w.ReadSnapshot();
  REQUIRE(w.session().size() >= 32);
  const uint64_t revoked = s.admin().GenerateApiKey(project).key().revision();
  REQUIRE(w.Next().event().revision() == revoked);

  // Forgeries: no session, a made-up one, another principal's, a revision
  // that has not happened. None of them counts.
  const std::string other = s.admin().CreatePrincipal("other-pods", v1::ROLE_SIDECAR);
  CHECK(Acknowledge(s, "", revoked) == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Acknowledge(s, "ses_madeup", revoked) == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(Acknowledge(s, w.session(), revoked, false, other) ==
        grpc::StatusCode::FAILED_PRECONDITION);
  const uint64_t head = s.store().head_revision();
  CHECK(Acknowledge(s, w.session(), UINT64_MAX) == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Acknowledge(s, w.session(), head + 1) == grpc::StatusCode::INVALID_ARGUMENT);
  v1::GetPropagationResponse r = s.admin().Receipt(revoked);
  CHECK(r.sidecars_connected() == 1);
  CHECK(r.sidecars_applied() == 0);

  REQUIRE(Acknowledge(s, w.session(), at) == grpc::StatusCode::OK);
  CHECK(s.admin().Receipt(revoked).sidecars_applied() == 0);
  REQUIRE(Acknowledge(s, w.session(), revoked) == grpc::StatusCode::OK);
  CHECK(s.admin().Receipt(revoked).sidecars_applied() == 1);
}

TEST_CASE("two streams with one sidecar id are two sidecars in receipts") {
  Services s;
  Watcher real(s, Via::kWatch), impostor(s, Via::kWatch);
  real.ReadSnapshot();
  const uint64_t at = impostor.ReadSnapshot();
  REQUIRE(real.session() != impostor.session());
  REQUIRE(Acknowledge(s, impostor.session(), at) == grpc::StatusCode::OK);
  v1::GetPropagationResponse r = s.admin().Receipt(at);
  CHECK(r.sidecars_connected() == 2);
  CHECK(r.sidecars_applied() == 1);
  REQUIRE(r.missing_sidecar_ids_size() == 1);
  CHECK(r.missing_sidecar_ids(0) == "sc-test");
}

TEST_CASE("a sidecar whose stream breaks stays missing but one that says goodbye leaves at once") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  Watcher killed(s, via, 0, "", "", "pod-killed"), leaving(s, via, 0, "", "", "pod-leaving");
  killed.ReadSnapshot();
  leaving.ReadSnapshot();
  const std::string killed_session = killed.session();
  killed.Drop();
  if (via == Via::kSync) {
    REQUIRE(leaving.Acknowledge(0, "", /*leaving=*/true));
    leaving.CloseWrites();
    const grpc::Status ended = leaving.Finish();
    INFO(ended.error_message());
    CHECK(ended.ok());  // the authority ends the call once the sidecar closes its side
  } else {
    REQUIRE(Acknowledge(s, leaving.session(), 0, /*leaving=*/true) == grpc::StatusCode::OK);
    leaving.Drop();
  }

  const uint64_t revision = s.admin().GenerateApiKey(project).key().revision();
  REQUIRE(
      testing::Eventually([&] { return s.admin().Receipt(revision).sidecars_connected() == 0; }));
  v1::GetPropagationResponse r = s.admin().Receipt(revision);
  CHECK(r.sidecars_disconnected() == 1);
  CHECK(r.sidecars_applied() == 0);
  REQUIRE(r.missing_sidecars_size() == 1);
  CHECK(r.missing_sidecars(0).sidecar_id() == "pod-killed");
  CHECK(r.missing_sidecars(0).has_disconnected_time());

  // It comes back with its session and takes its own place again.
  Watcher back(s, via, 0, "", "", "pod-killed", killed_session);
  back.ReadSnapshot();
  CHECK(back.session() == killed_session);
  r = s.admin().Receipt(revision);
  CHECK(r.sidecars_connected() == 1);
  CHECK(r.sidecars_disconnected() == 0);
}

TEST_CASE("acknowledgements on a Sync stream count for it alone, never past the head") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  const std::string store = s.store().store_id();
  Watcher w(s, Via::kSync, 0, "", "", "pod-a"), other(s, Via::kSync, 0, "", "", "pod-b");
  const uint64_t at = w.ReadSnapshot();
  other.ReadSnapshot();
  const uint64_t revoked = s.admin().GenerateApiKey(project).key().revision();
  REQUIRE(w.Next().event().revision() == revoked);

  // Neither counts, and neither ends the stream: a revision that has not
  // happened, and one of another store.
  REQUIRE(w.Acknowledge(UINT64_MAX, store));
  REQUIRE(w.Acknowledge(revoked, "st_other"));
  // Acknowledgements are read in order: once this one counts, the two
  // before it have been read.
  REQUIRE(w.Acknowledge(at, store));
  REQUIRE(testing::Eventually([&] { return s.admin().Receipt(at).sidecars_applied() == 1; }));
  v1::GetPropagationResponse r = s.admin().Receipt(revoked);
  CHECK(r.sidecars_connected() == 2);
  CHECK(r.sidecars_applied() == 0);

  REQUIRE(w.Acknowledge(revoked, store));
  REQUIRE(testing::Eventually([&] { return s.admin().Receipt(revoked).sidecars_applied() == 1; }));
  r = s.admin().Receipt(revoked);
  REQUIRE(r.missing_sidecar_ids_size() == 1);
  CHECK(r.missing_sidecar_ids(0) == "pod-b");  // w's acknowledgement is w's alone
  const uint64_t next = s.admin().GenerateApiKey(project, "next").key().revision();
  CHECK(w.Next().event().revision() == next);  // the stream goes on
}

TEST_CASE("sidecars on Sync and on Watch with Acknowledge are counted side by side") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  Watcher current(s, Via::kSync, 0, "", "", "pod-current");
  Watcher previous(s, Via::kWatch, 0, "", "", "pod-previous");
  current.ReadSnapshot();
  previous.ReadSnapshot();
  const uint64_t revoked = s.admin().GenerateApiKey(project).key().revision();
  REQUIRE(current.Next().event().revision() == revoked);
  REQUIRE(previous.Next().event().revision() == revoked);
  REQUIRE(current.Acknowledge(revoked, s.store().store_id()));
  REQUIRE(Acknowledge(s, previous.session(), revoked) == grpc::StatusCode::OK);
  REQUIRE(testing::Eventually([&] { return s.admin().Receipt(revoked).sidecars_applied() == 2; }));
  CHECK(s.admin().Receipt(revoked).sidecars_connected() == 2);
}

TEST_CASE("a Sync call opens with its watch request and carries only acknowledgements after it") {
  Services s;
  // Sends `messages` (after the watch request, when `watch_first`), closes
  // its side and returns how the call ended.
  auto sync = [&](bool watch_first, const std::vector<v1::SyncRequest>& messages) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + s.sidecar_token());
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto stream = s.sync().Sync(&ctx);
    if (watch_first) {
      v1::SyncRequest first;
      first.mutable_watch()->set_sidecar_id("pod-odd");
      stream->Write(first);
    }
    for (const v1::SyncRequest& m : messages) stream->Write(m);
    stream->WritesDone();
    v1::WatchResponse ignored;
    while (stream->Read(&ignored)) {
    }
    return stream->Finish();
  };
  v1::SyncRequest ack, watch, empty;
  ack.mutable_acknowledgement()->set_applied_revision(1);
  watch.mutable_watch();

  grpc::Status ended = sync(false, {ack});
  CHECK(ended.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ended.error_message().find("first SyncRequest") != std::string::npos);
  CHECK(sync(false, {}).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  ended = sync(true, {watch});
  CHECK(ended.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(ended.error_message().find("acknowledgement") != std::string::npos);
  CHECK(sync(true, {empty}).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  // A well-formed call that closes its side ends OK.
  CHECK(sync(true, {ack}).ok());
}

TEST_CASE("an authority at its stream limit refuses one more, and takes one again when one ends") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  SyncServiceOptions options;
  options.max_watchers = 2;
  Services s(100000, options);
  Watcher a(s, via), b(s, via);
  a.ReadSnapshot();
  b.ReadSnapshot();
  Watcher third(s, via);
  const grpc::Status refused = third.Finish();
  REQUIRE(refused.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  REQUIRE(refused.error_message() == "too many watch streams; retry later");
  a.Drop();
  REQUIRE(testing::Eventually([&] { return Watcher(s, via).Admitted(); }));
}

TEST_CASE("watch calls without a sidecar token, or with a too-long id, are refused") {
  const Via via = GENERATE(Via::kSync, Via::kWatch);
  Services s;
  auto refused = [&](const std::string& token, const std::string& sidecar_id) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::SyncRequest first;
    first.mutable_watch()->set_sidecar_id(sidecar_id);
    v1::WatchResponse m;
    if (via == Via::kWatch) {
      auto reader = s.sync().Watch(&ctx, first.watch());
      REQUIRE(!reader->Read(&m));
      return reader->Finish().error_code();
    }
    auto stream = s.sync().Sync(&ctx);
    stream->Write(first);
    REQUIRE(!stream->Read(&m));
    return stream->Finish().error_code();
  };
  REQUIRE(refused("", "sc") == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(refused(s.admin().CreatePrincipal("viewer", v1::ROLE_MEMBER), "sc") ==
          grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(refused(s.sidecar_token(), std::string(129, 'x')) == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace latchkey
