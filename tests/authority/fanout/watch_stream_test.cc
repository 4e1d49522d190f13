// The watch stream on its own: its claim/kick state machine driven through a
// sink that completes each write on a thread of its own after a random pause,
// as gRPC's pollers do, with no gRPC in the process path. That is what lets
// the [concurrency] cases here run under ThreadSanitizer (Debian's gRPC is not
// instrumented). The same stream over real gRPC: sync_service_test.cc.
#include "authority/fanout/watch_stream.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "authority/core/key_authority.h"
#include "common/crypto.h"
#include "tests/testing/test_store.h"
#include "tests/testing/testing.h"

namespace latchkey {
namespace {

using testing::ThreadCheckingStore;

// A store, the core that writes it and a hub told of every commit.
class World {
 public:
  explicit World(absl::Duration progress_interval = absl::Milliseconds(50),
                 size_t snapshot_keep_bytes = 0) {
    store_ = testing::OpenTestStore(dir_);
    absl::StatusOr<Sealer> sealer = Sealer::LoadOrCreate(dir_ / "master.key");
    REQUIRE(sealer.ok());
    absl::StatusOr<std::unique_ptr<KeyAuthority>> core =
        KeyAuthority::Create(store_.get(), *sealer, {});
    REQUIRE(core.ok());
    core_ = *std::move(core);
    snapshots_ = std::make_unique<SharedSnapshots>(*store_, snapshot_keep_bytes);
    hub_ = std::make_unique<EventHub>(store_->store_id(), progress_interval,
                                      [this] { return store_->head_revision(); });
    store_->SetCommitListener(
        [this](const v1::KeyEvent& e, const v1::AuditEvent&, TableSet) { hub_->Publish(e); });
  }
  ~World() { store_->SetCommitListener(nullptr); }

  ThreadCheckingStore& store() { return *store_; }
  EventHub& hub() { return *hub_; }
  SharedSnapshots& snapshots() { return *snapshots_; }
  WorkQueue& work() { return work_; }
  uint64_t head() const { return store_->head_revision(); }

  // Mutations, each one revision. Safe from any thread.
  std::string CreateProject(const std::string& name) {
    v1::CreateProjectRequest req;
    req.set_name(name);
    absl::StatusOr<v1::CreateProjectResponse> made = core_->CreateProject(manager_, req);
    if (!made.ok()) failures_.fetch_add(1);
    return made.ok() ? made->project().project_id() : "";
  }
  void GenerateApiKey(const std::string& project_id) {
    v1::GenerateApiKeyRequest req;
    req.set_project_id(project_id);
    req.set_name("ingest");
    if (!core_->GenerateApiKey(manager_, req).ok()) failures_.fetch_add(1);
  }
  void SetApiAccess(const std::string& project_id, bool enabled) {
    v1::SetApiAccessRequest req;
    req.set_project_id(project_id);
    req.set_enabled(enabled);
    if (!core_->SetApiAccess(manager_, req).ok()) failures_.fetch_add(1);
  }
  int failures() const { return failures_.load(); }

 private:
  testing::TempDir dir_;
  std::unique_ptr<ThreadCheckingStore> store_;
  std::unique_ptr<KeyAuthority> core_;
  std::unique_ptr<SharedSnapshots> snapshots_;
  std::unique_ptr<EventHub> hub_;
  WorkQueue work_{4};
  const Caller manager_{"prn_manager", "maria", v1::ROLE_MANAGER};
  std::atomic<int> failures_{0};
};

// Records what a stream writes and completes each write on its own thread.
// Counts breaches of the WatchSink contract instead of asserting: Catch2's
// assertions are not thread-safe.
class TestSink final : public WatchSink {
 public:
  explicit TestSink(unsigned seed) : rng_(seed) {}
  ~TestSink() override { StopCompleting(); }

  void Attach(WatchStream* stream) {
    stream_ = stream;
    completer_ = std::thread([this] { Complete(); });
  }
  // The n-th write (from 0) and every later one fail: the client is gone.
  void FailWritesFrom(int n) {
    MutexLock lock(&mu_);
    fail_from_ = n;
  }
  // While held, writes wait to be completed.
  void Hold(bool held) {
    MutexLock lock(&mu_);
    held_ = held;
    changed_.SignalAll();
  }

  void Write(const grpc::ByteBuffer* bytes) override {
    const v1::WatchResponse message = WireResponse::Decode(*bytes);
    std::vector<grpc::Slice> slices;
    // A slice this small holds its bytes inline, so every copy has its own.
    const bool shareable = bytes->Dump(&slices).ok() && !slices.empty() &&
                           slices.front().size() > GRPC_SLICE_INLINED_SIZE;
    MutexLock lock(&mu_);
    if (writing_ || ended_) breaches_++;
    writing_ = true;
    messages_.push_back(message);
    memory_.push_back(shareable ? slices.front().begin() : nullptr);
    if (message.has_event()) covered_ = message.event().revision();
    if (message.has_snapshot_end()) covered_ = message.snapshot_end().revision();
    changed_.SignalAll();
  }
  void End(absl::Status status) override {
    MutexLock lock(&mu_);
    if (writing_ || ended_) breaches_++;
    ended_ = true;
    ends_++;
    status_ = std::move(status);
    changed_.SignalAll();
  }

  // True once End was called (waiting up to `timeout` for it).
  bool WaitEnded(absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    return changed_.WaitFor(&mu_, timeout,
                            [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ended_; });
  }
  // True once everything up to `revision` was written.
  bool WaitCovered(uint64_t revision, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    return changed_.WaitFor(
        &mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return covered_ >= revision; });
  }
  // True once a progress message was written: the stream is live.
  bool WaitLive(absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    return changed_.WaitFor(&mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      for (const v1::WatchResponse& m : messages_) {
        if (m.has_progress()) return true;
      }
      return false;
    });
  }
  // True once `n` writes were made.
  bool WaitWrites(size_t n, absl::Duration timeout = absl::Seconds(30)) {
    MutexLock lock(&mu_);
    return changed_.WaitFor(
        &mu_, timeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return messages_.size() >= n; });
  }

  // Joins the completion thread; a write it has not completed stays open.
  void StopCompleting() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
      changed_.SignalAll();
    }
    if (completer_.joinable()) completer_.join();
  }

  std::vector<v1::WatchResponse> messages() {
    MutexLock lock(&mu_);
    return messages_;
  }
  // Where in memory each write's bytes began; null for a message small
  // enough to be copied whole.
  std::vector<const uint8_t*> memory() {
    MutexLock lock(&mu_);
    return memory_;
  }
  absl::Status status() {
    MutexLock lock(&mu_);
    return status_;
  }
  int breaches() {
    MutexLock lock(&mu_);
    return breaches_;
  }
  int ends() {
    MutexLock lock(&mu_);
    return ends_;
  }
  bool writing() {
    MutexLock lock(&mu_);
    return writing_;
  }

 private:
  void Complete() {
    for (int completed = 0;; completed++) {
      bool ok;
      {
        MutexLock lock(&mu_);
        changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return stopping_ || (writing_ && !held_);
        });
        if (stopping_) return;
        ok = fail_from_ < 0 || completed < fail_from_;
      }
      const int pause_us = std::uniform_int_distribution<int>(0, 3)(rng_) * 20;
      if (pause_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
      {
        MutexLock lock(&mu_);
        writing_ = false;
      }
      stream_->OnWriteDone(ok);
    }
  }

  WatchStream* stream_ = nullptr;
  std::thread completer_;
  std::minstd_rand rng_;  // completer thread only

  Mutex mu_;
  CondVar changed_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int fail_from_ ABSL_GUARDED_BY(mu_) = -1;
  int breaches_ ABSL_GUARDED_BY(mu_) = 0;
  int ends_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t covered_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::WatchResponse> messages_ ABSL_GUARDED_BY(mu_);
  std::vector<const uint8_t*> memory_ ABSL_GUARDED_BY(mu_);
};

// A stream with its sink, torn down in the order the contract asks: the call
// ended, no completion running, then the stream.
class Watch {
 public:
  Watch(World& world, uint64_t after_revision, unsigned seed, size_t queue_limit = 10000,
        const std::string& principal_id = "prn_test", const std::string& session = "")
      : sink_(seed),
        stream_(std::make_unique<WatchStream>(&world.store(), &world.snapshots(), &world.hub(),
                                              &world.work(), &sink_, principal_id,
                                              "sc-" + std::to_string(seed), queue_limit, session)) {
    sink_.Attach(stream_.get());
    after_revision_ = after_revision;
  }
  ~Watch() {
    if (!sink_.WaitEnded(absl::Milliseconds(1))) {
      sink_.Hold(false);
      stream_->Cancel();
    }
    if (!sink_.WaitEnded()) {
      (void)stream_.release();  // a test already failed; a leak beats a crash
      return;
    }
    sink_.StopCompleting();
  }

  void Start(WatchStream::Admit admit = nullptr) {
    v1::WatchRequest req;
    req.set_after_revision(after_revision_);
    stream_->Start(req, std::move(admit));
  }
  WatchStream& stream() { return *stream_; }
  TestSink& sink() { return sink_; }

 private:
  TestSink sink_;
  std::unique_ptr<WatchStream> stream_;
  uint64_t after_revision_ = 0;
};

// What one stream told its client, checked for the watch contract: a snapshot
// (chunks, then its end) or nothing, then events with contiguous revisions.
struct Told {
  bool snapshot = false;
  uint64_t first_event = 0;    // 0: none
  uint64_t last_covered = 0;   // the snapshot's revision or the last event's
  std::set<std::string> keys;  // digests the client holds at the end
};

Told Replay(const std::vector<v1::WatchResponse>& messages) {
  Told told;
  bool in_snapshot = false;
  for (const v1::WatchResponse& m : messages) {
    if (m.has_progress()) continue;
    if (m.has_snapshot_chunk()) {
      REQUIRE(told.last_covered == 0);  // chunks come first
      in_snapshot = told.snapshot = true;
      for (const v1::KeyEntry& e : m.snapshot_chunk().entries()) told.keys.insert(e.digest());
    } else if (m.has_snapshot_end()) {
      REQUIRE(in_snapshot);
      in_snapshot = false;
      told.last_covered = m.snapshot_end().revision();
    } else {
      REQUIRE(m.has_event());
      REQUIRE_FALSE(in_snapshot);
      const uint64_t rev = m.event().revision();
      if (told.first_event == 0) {
        told.first_event = rev;
      } else {
        REQUIRE(rev == told.last_covered + 1);
      }
      if (told.snapshot) REQUIRE(rev == told.last_covered + 1);
      told.last_covered = rev;
      for (const v1::KeyEntry& e : m.event().upserts()) told.keys.insert(e.digest());
      for (const std::string& d : m.event().removed_digests()) told.keys.erase(d);
    }
  }
  return told;
}

TEST_CASE("snapshots and replays hand over to live events with no gap while commits race them",
          "[concurrency]") {
  World world(absl::Milliseconds(1));  // progress ticks race the writes too
  for (int p = 0; p < 3; p++) {
    const std::string project = world.CreateProject("seed-" + std::to_string(p));
    for (int k = 0; k < 30; k++) world.GenerateApiKey(project);
  }
  const uint64_t seeded = world.head();
  world.store().Arm();

  // Writers run where the authority runs mutations: on the work queue.
  std::atomic<int> writers_left{2};
  for (int w = 0; w < 2; w++) {
    world.work().Post([&world, &writers_left, w] {
      const std::string project = world.CreateProject("racing-" + std::to_string(w));
      for (int k = 0; k < 30; k++) {
        world.GenerateApiKey(project);
        if (k % 10 == 0) world.SetApiAccess(project, k % 20 != 0);
      }
      writers_left.fetch_sub(1);
    });
  }
  std::vector<std::unique_ptr<Watch>> watches;
  for (unsigned i = 0; i < 6; i++) {
    const uint64_t after = i % 2 == 0 ? 0 : seeded - i;  // snapshots and replays
    watches.push_back(std::make_unique<Watch>(world, after, i + 1));
    watches.back()->Start();
  }
  while (writers_left.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(world.failures() == 0);
  const uint64_t head = world.head();
  for (auto& w : watches) REQUIRE(w->sink().WaitCovered(head));

  // A reference client that starts after everything: the set all must hold.
  Watch reference(world, 0, 100);
  reference.Start();
  REQUIRE(reference.sink().WaitCovered(head));
  const std::set<std::string> expected = Replay(reference.sink().messages()).keys;
  REQUIRE(expected.size() == 3 * 31 + 2 * 31);

  world.hub().CloseAll(absl::UnavailableError("stopping"));
  for (size_t i = 0; i < watches.size(); i++) {
    TestSink& sink = watches[i]->sink();
    REQUIRE(sink.WaitEnded());
    CHECK(sink.ends() == 1);
    CHECK(sink.breaches() == 0);
    CHECK(absl::IsUnavailable(sink.status()));
    const Told told = Replay(sink.messages());
    CHECK(told.last_covered == head);
    if (i % 2 == 0) {
      CHECK(told.snapshot);
      CHECK(told.keys == expected);
    } else {
      CHECK_FALSE(told.snapshot);
      CHECK(told.first_event == seeded - i + 1);
    }
  }
  // Snapshots and replays read the store only on the work queue, whichever
  // thread (a completion, the hub) found the stream idle.
  CHECK(world.store().calls() > 0);
  CHECK(world.store().off_worker_calls() == 0);
}

TEST_CASE("a stream ends exactly once, after its last write, when close, cancel and failures race",
          "[concurrency]") {
  World world(absl::Milliseconds(1));
  const std::string project = world.CreateProject("toggled");
  std::minstd_rand rng(7);
  for (unsigned round = 0; round < 40; round++) {
    Watch watch(world, round % 3 == 0 ? 0 : world.head(), round);
    watch.sink().FailWritesFrom(std::uniform_int_distribution<int>(-1, 6)(rng));
    const int cancel_after_us = std::uniform_int_distribution<int>(0, 400)(rng);
    const int close_after_us = std::uniform_int_distribution<int>(0, 400)(rng);
    watch.Start();
    std::thread writer([&] {
      for (int i = 0; i < 4; i++) world.SetApiAccess(project, i % 2 == 1);
    });
    std::thread canceller([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(cancel_after_us));
      watch.stream().Cancel();
    });
    std::thread closer([&] {
      std::this_thread::sleep_for(std::chrono::microseconds(close_after_us));
      watch.stream().Close(absl::UnavailableError("stopping"));
    });
    writer.join();
    canceller.join();
    closer.join();
    REQUIRE(watch.sink().WaitEnded());
    CHECK(watch.sink().ends() == 1);
    CHECK(watch.sink().breaches() == 0);
    const absl::Status status = watch.sink().status();
    CHECK((absl::IsCancelled(status) || absl::IsUnavailable(status)));
  }
  CHECK(world.failures() == 0);
}

TEST_CASE("every delivered event is written while writes complete on another thread",
          "[concurrency]") {
  World world(absl::Hours(1));  // no progress ticks: events alone wake the stream
  uint64_t rev = world.head();
  Watch watch(world, rev, 1);
  watch.Start();
  auto deliver = [&] {
    v1::WatchResponse m;
    m.mutable_event()->set_revision(++rev);
    watch.stream().Deliver(WireResponse::Encode(m));  // as the hub does: one thread, in order
  };
  // Rounds of two events, the second at a random moment of the first one's
  // write; each round waits until the second is written. (The narrowest race,
  // an event arriving between the writer finding the queue empty and letting
  // go of the claim, is covered by the kick; timing alone rarely reaches it.)
  std::minstd_rand rng(3);
  for (int round = 0; round < 3000; round++) {
    deliver();
    const auto gap = std::chrono::nanoseconds(std::uniform_int_distribution<int>(0, 80000)(rng));
    for (auto until = std::chrono::steady_clock::now() + gap;
         std::chrono::steady_clock::now() < until;) {
    }
    deliver();
    if (!watch.sink().WaitCovered(rev, absl::Seconds(2))) FAIL("revision " << rev << " stuck");
  }
  CHECK(watch.sink().breaches() == 0);
}

TEST_CASE("every stream writes the bytes the hub encoded once, the first with its session") {
  World world(absl::Milliseconds(5));  // a progress message shows a stream is live
  const std::string project = world.CreateProject("shared");
  Watch plain(world, world.head(), 1);
  Watch with_session(world, world.head(), 2, 10000, "prn_test", "ses_second");
  plain.Start();
  with_session.Start();
  REQUIRE(plain.sink().WaitLive());
  REQUIRE(with_session.sink().WaitLive());
  world.SetApiAccess(project, false);
  world.SetApiAccess(project, true);
  REQUIRE(plain.sink().WaitCovered(world.head()));
  REQUIRE(with_session.sink().WaitCovered(world.head()));

  // Where each stream's write of each event began in memory.
  auto events = [](Watch& w) {
    const std::vector<v1::WatchResponse> messages = w.sink().messages();
    const std::vector<const uint8_t*> memory = w.sink().memory();
    std::map<uint64_t, const uint8_t*> at;
    for (size_t i = 0; i < messages.size(); i++) {
      if (messages[i].has_event()) at[messages[i].event().revision()] = memory[i];
    }
    return at;
  };
  const std::map<uint64_t, const uint8_t*> a = events(plain);
  const std::map<uint64_t, const uint8_t*> b = events(with_session);
  REQUIRE(a.size() == 2);
  REQUIRE(b.size() == 2);
  for (const auto& [revision, at] : a) {
    CHECK(at != nullptr);
    CHECK(b.at(revision) == at);  // one encoding for both streams
  }
  // The session went on the first message only, whatever it was.
  CHECK(plain.sink().messages()[0].session().empty());
  CHECK(with_session.sink().messages()[0].session() == "ses_second");
  for (size_t i = 1; i < with_session.sink().messages().size(); i++) {
    CHECK(with_session.sink().messages()[i].session().empty());
  }
}

TEST_CASE("streams that begin a snapshot together share it: one read, the same bytes") {
  World world(absl::Hours(1));
  for (int p = 0; p < 12; p++) {  // 600 keys
    const std::string project = world.CreateProject("burst-" + std::to_string(p));
    for (int k = 0; k < 49; k++) world.GenerateApiKey(project);
  }
  REQUIRE(world.failures() == 0);
  const uint64_t head = world.head();
  Watch first(world, 0, 1);
  Watch second(world, 0, 2);
  first.sink().Hold(true);  // the first is still reading when the second begins
  first.Start();
  REQUIRE(first.sink().WaitWrites(1));
  second.Start();
  REQUIRE(second.sink().WaitCovered(head));
  first.sink().Hold(false);
  REQUIRE(first.sink().WaitCovered(head));

  CHECK(world.snapshots().begun() == 1);
  const Told a = Replay(first.sink().messages());
  const Told b = Replay(second.sink().messages());
  CHECK(a.snapshot);
  CHECK(a.keys.size() == 600);
  CHECK(b.keys == a.keys);
  const std::vector<const uint8_t*> at_a = first.sink().memory();
  const std::vector<const uint8_t*> at_b = second.sink().memory();
  REQUIRE(at_a.size() >= 3);  // the projects, the keys (chunks of 512 KiB), the end
  REQUIRE(at_b.size() == at_a.size());
  for (size_t i = 0; i < at_a.size(); i++) CHECK(at_a[i] == at_b[i]);
}

TEST_CASE("a stream that joins a snapshot behind the head replays the events since") {
  World world(absl::Hours(1));
  const std::string project = world.CreateProject("moving");
  for (int k = 0; k < 10; k++) world.GenerateApiKey(project);
  const uint64_t snapshot_at = world.head();
  Watch first(world, 0, 1);
  first.sink().Hold(true);
  first.Start();
  REQUIRE(first.sink().WaitWrites(1));
  world.GenerateApiKey(project);  // after the snapshot being read
  world.SetApiAccess(project, false);
  Watch second(world, 0, 2);
  second.Start();
  REQUIRE(second.sink().WaitCovered(world.head()));

  CHECK(world.snapshots().begun() == 1);
  const Told told = Replay(second.sink().messages());
  CHECK(told.snapshot);
  CHECK(told.first_event == snapshot_at + 1);
  CHECK(told.last_covered == world.head());
  CHECK(told.keys.size() == 12);
  first.sink().Hold(false);
  REQUIRE(first.sink().WaitCovered(world.head()));
  CHECK(Replay(first.sink().messages()).keys == told.keys);
}

TEST_CASE("a stream that begins after a kept snapshot sends it, then the events since") {
  World world(absl::Hours(1), /*snapshot_keep_bytes=*/1 << 20);
  const std::string project = world.CreateProject("rolling");
  for (int k = 0; k < 10; k++) world.GenerateApiKey(project);
  const uint64_t snapshot_at = world.head();
  {
    Watch first(world, 0, 1);
    first.Start();
    REQUIRE(first.sink().WaitCovered(snapshot_at));
  }  // gone before the next pod starts
  world.GenerateApiKey(project);
  world.SetApiAccess(project, false);
  Watch later(world, 0, 2);
  later.Start();
  REQUIRE(later.sink().WaitCovered(world.head()));

  CHECK(world.snapshots().begun() == 1);
  const Told told = Replay(later.sink().messages());
  CHECK(told.snapshot);
  CHECK(told.first_event == snapshot_at + 1);
  CHECK(told.last_covered == world.head());
  CHECK(told.keys.size() == 12);
}

TEST_CASE("a client more than the queue limit behind is ended RESOURCE_EXHAUSTED") {
  World world(absl::Hours(1));  // no progress ticks: they would take queue slots
  const std::string project = world.CreateProject("busy");
  Watch watch(world, world.head(), 1, /*queue_limit=*/3);
  watch.sink().Hold(true);
  watch.Start();
  bool enabled = true;
  auto toggle = [&] { world.SetApiAccess(project, enabled = !enabled); };  // one event each
  toggle();  // written, held: the client reads slowly
  REQUIRE(watch.sink().WaitWrites(1));
  for (int i = 0; i < 3; i++) toggle();  // queued: at the limit
  CHECK_FALSE(watch.sink().WaitEnded(absl::Milliseconds(50)));
  toggle();  // one more than the client may lag by
  // The end waits for the outstanding write: nothing is written after it, and
  // nothing queued is written at all.
  CHECK_FALSE(watch.sink().WaitEnded(absl::Milliseconds(50)));
  watch.sink().Hold(false);
  REQUIRE(watch.sink().WaitEnded());
  CHECK(absl::IsResourceExhausted(watch.sink().status()));
  CHECK(watch.sink().messages().size() == 1);
  CHECK(watch.sink().breaches() == 0);
}

TEST_CASE("a failed write ends the stream CANCELLED and nothing more is written") {
  World world;
  const std::string project = world.CreateProject("gone");
  Watch watch(world, world.head(), 1);
  watch.sink().FailWritesFrom(1);
  watch.Start();
  for (int i = 0; i < 5; i++) world.SetApiAccess(project, i % 2 == 1);
  REQUIRE(watch.sink().WaitEnded());
  CHECK(absl::IsCancelled(watch.sink().status()));
  CHECK(watch.sink().messages().size() == 2);  // the one that went, the one that failed
  CHECK(watch.sink().breaches() == 0);
}

TEST_CASE("Close ends an idle stream UNAVAILABLE, and a busy one once its write completes") {
  World world;
  const std::string project = world.CreateProject("closing");
  SECTION("idle") {
    Watch watch(world, world.head(), 1);
    watch.Start();
    world.SetApiAccess(project, false);
    REQUIRE(watch.sink().WaitWrites(1));
    watch.stream().Close(absl::UnavailableError("stopping"));
    REQUIRE(watch.sink().WaitEnded());
    CHECK(absl::IsUnavailable(watch.sink().status()));
  }
  SECTION("a write outstanding") {
    Watch watch(world, world.head(), 1);
    watch.sink().Hold(true);
    watch.Start();
    world.SetApiAccess(project, false);
    REQUIRE(watch.sink().WaitWrites(1));
    watch.stream().Close(absl::UnavailableError("stopping"));
    CHECK_FALSE(watch.sink().WaitEnded(absl::Milliseconds(50)));
    CHECK(watch.sink().writing());
    watch.sink().Hold(false);
    REQUIRE(watch.sink().WaitEnded());
    CHECK(absl::IsUnavailable(watch.sink().status()));
    CHECK(watch.sink().breaches() == 0);
  }
}

TEST_CASE("a resume from a revision ahead of this store's head is refused before any write") {
  World world;
  world.CreateProject("one");
  Watch watch(world, world.head() + 1000, 1);
  watch.Start();
  REQUIRE(watch.sink().WaitEnded());
  CHECK(absl::IsFailedPrecondition(watch.sink().status()));
  CHECK(watch.sink().messages().empty());
}

TEST_CASE("admit runs once the stream is in the hub, and a refusal ends it before any write") {
  World world;
  world.CreateProject("one");
  SECTION("refused") {
    Watch watch(world, 0, 1);
    size_t subscribers_when_asked = 0;
    watch.Start([&] {
      subscribers_when_asked = world.hub().size();
      return absl::UnauthenticatedError("principal deleted");
    });
    REQUIRE(watch.sink().WaitEnded());
    CHECK(subscribers_when_asked == 1);
    CHECK(absl::IsUnauthenticated(watch.sink().status()));
    CHECK(watch.sink().messages().empty());
  }
  SECTION("admitted") {
    Watch watch(world, 0, 1);
    watch.Start([] { return absl::OkStatus(); });
    REQUIRE(watch.sink().WaitCovered(world.head()));
    CHECK(Replay(watch.sink().messages()).snapshot);
  }
}

TEST_CASE("the hub ends only the streams of the principal it is told of, with its status") {
  World world;
  Watch gone(world, 0, 1, 10000, "prn_gone");
  Watch stays(world, 0, 2, 10000, "prn_stays");
  gone.Start();
  stays.Start();
  REQUIRE(gone.sink().WaitCovered(world.head()));
  REQUIRE(stays.sink().WaitCovered(world.head()));
  world.hub().ClosePrincipal("prn_gone", absl::UnauthenticatedError("principal deleted"));
  REQUIRE(gone.sink().WaitEnded());
  CHECK(absl::IsUnauthenticated(gone.sink().status()));
  const std::string project = world.CreateProject("after");
  CHECK(stays.sink().WaitCovered(world.head()));
  CHECK(stays.sink().ends() == 0);
}

}  // namespace
}  // namespace latchkey
