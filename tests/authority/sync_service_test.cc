// KeySync and KeyAdmin over real gRPC on port 0, assembled by hand around a
// store that records which threads call it: no store call runs on a gRPC
// callback thread, and the watch stream's phases (snapshot, replay, live)
// hand over without a gap or a duplicate.
#include "authority/sync_service.h"

#include <atomic>
#include <catch2/catch.hpp>

#include "tests/testing/clients.h"
#include "tests/testing/services.h"

namespace latchkey {
namespace {

using testing::Services;

// One watch stream, read message by message.
class Watcher {
 public:
  Watcher(Services& s, uint64_t after_revision = 0, const std::string& store_id = "",
          const std::string& token = "", const std::string& sidecar_id = "sc-test") {
    ctx_.AddMetadata("authorization", "Bearer " + (token.empty() ? s.sidecar_token() : token));
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::WatchRequest req;
    req.set_sidecar_id(sidecar_id);
    req.set_after_revision(after_revision);
    req.set_store_id(store_id);
    reader_ = s.sync().Watch(&ctx_, req);
  }
  ~Watcher() {
    if (finished_) return;
    ctx_.TryCancel();
    v1::WatchResponse ignored;
    while (reader_->Read(&ignored)) {
    }
    reader_->Finish().ok();
  }

  // The next message that is not a progress tick.
  v1::WatchResponse Next() {
    v1::WatchResponse m;
    do {
      REQUIRE(reader_->Read(&m));
      if (first_) session_ = m.session();
      first_ = false;
    } while (m.has_progress());
    return m;
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
  grpc::Status Finish() {
    v1::WatchResponse ignored;
    while (reader_->Read(&ignored)) {
    }
    finished_ = true;
    return reader_->Finish();
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchResponse>> reader_;
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
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  const std::string key_id = s.admin().GenerateApiKey(project).key().key_id();
  {
    Watcher w(s);
    const uint64_t at = w.ReadSnapshot();
    s.admin().GenerateApiKey(project, "second");
    REQUIRE(w.Next().event().revision() == at + 1);
  }
  {
    Watcher replay(s, 1);
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
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 30; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  Watcher w(s);
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

TEST_CASE("a resume replays retained events and a trimmed one starts over with a snapshot") {
  Services s(/*retention=*/5);
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  for (int i = 0; i < 10; ++i) s.admin().GenerateApiKey(project, "k" + std::to_string(i));
  const uint64_t head = s.store().head_revision();
  {
    Watcher recent(s, head - 2);
    REQUIRE(recent.Next().event().revision() == head - 1);
    REQUIRE(recent.Next().event().revision() == head);
  }
  {
    Watcher trimmed(s, 1);
    REQUIRE(trimmed.ReadSnapshot() == head);
  }
  {
    // Another store's revisions mean nothing here: a snapshot.
    Watcher foreign(s, head - 1, "st_other");
    REQUIRE(foreign.ReadSnapshot() == head);
  }
}

TEST_CASE("a deleted principal's open watch streams end UNAUTHENTICATED when it is deleted") {
  Services s;
  const v1::CreatePrincipalResponse pod = s.admin().NewPrincipal("leaked-pod", v1::ROLE_SIDECAR);
  Watcher doomed(s, 0, "", pod.token());
  Watcher other(s);  // another principal's stream goes on
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

TEST_CASE("an acknowledgement counts only through its own stream's session and up to the head") {
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  Watcher w(s);
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
  Watcher real(s), impostor(s);
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
  Services s;
  const std::string project = s.admin().CreateProject("shop").project().project_id();
  Watcher killed(s, 0, "", "", "pod-killed"), leaving(s, 0, "", "", "pod-leaving");
  killed.ReadSnapshot();
  leaving.ReadSnapshot();
  const std::string killed_session = killed.session();
  killed.Drop();
  REQUIRE(Acknowledge(s, leaving.session(), 0, /*leaving=*/true) == grpc::StatusCode::OK);
  leaving.Drop();

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
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + s.sidecar_token());
  v1::WatchRequest req;
  req.set_sidecar_id("pod-killed");
  req.set_session(killed_session);
  auto reader = s.sync().Watch(&ctx, req);
  v1::WatchResponse first;
  REQUIRE(reader->Read(&first));
  CHECK(first.session() == killed_session);
  r = s.admin().Receipt(revision);
  CHECK(r.sidecars_connected() == 1);
  CHECK(r.sidecars_disconnected() == 0);
  ctx.TryCancel();
  while (reader->Read(&first)) {
  }
  reader->Finish().ok();
}

TEST_CASE("watch calls without a sidecar token, or with a too-long id, are refused") {
  Services s;
  auto refused = [&](const std::string& token, const std::string& sidecar_id) {
    grpc::ClientContext ctx;
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    v1::WatchRequest req;
    req.set_sidecar_id(sidecar_id);
    auto reader = s.sync().Watch(&ctx, req);
    v1::WatchResponse m;
    REQUIRE(!reader->Read(&m));
    return reader->Finish().error_code();
  };
  REQUIRE(refused("", "sc") == grpc::StatusCode::UNAUTHENTICATED);
  REQUIRE(refused(s.admin().CreatePrincipal("viewer", v1::ROLE_MEMBER), "sc") ==
          grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(refused(s.sidecar_token(), std::string(129, 'x')) == grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace latchkey
