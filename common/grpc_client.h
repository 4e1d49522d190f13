// Blocking gRPC client calls whose waiting thread does not poll.
//
// A thread blocked in a synchronous call (ClientReader::Read, Stub::Method)
// waits inside grpc_pollset_work, and gRPC's epoll engine keeps one epoll set
// for the whole process: the waiting thread becomes one of its pollers and
// runs I/O for every other call of the process. In the sidecar that made the
// watch client's reader thread serve part of the Validate traffic, with a
// hand-off (futex wake and context switch) for most calls it picked up
// (docs/design.md, "Who polls"). The calls here go through gRPC's callback
// API instead: gRPC's own callback threads do the I/O and the caller sleeps
// on a condition variable of its own until the answer is there.
#ifndef LATCHKEY_COMMON_GRPC_CLIENT_H_
#define LATCHKEY_COMMON_GRPC_CLIENT_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_callback.h>

#include <functional>
#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "common/mutex.h"

namespace latchkey {

// Holds gRPC's callback threads for the life of the process; idempotent and
// cheap after the first call. CallAndWait, BidiStream::Open and
// EnableServerPlugins call it, so a process that uses them need not.
//
// gRPC as Debian builds it (no background poller) runs every callback-API
// call and callback server of a process on one completion queue and its
// threads, counted by the channels and servers that use it. When the count
// falls to zero gRPC shuts the queue down, joins its threads and frees it. If
// that happens on one of those threads (a callback letting go of the last
// channel, as a stream freed in its OnDone does with its context's channel),
// the thread fails to join itself, goes on reading the freed queue, and the
// process aborts in grpc_cq_internal_unref ("prior > 0"). Held once, the
// count never falls to zero.
void KeepCallbackThreads();

// Makes one unary call and waits for its status. `start` starts the call
// with the callback it is given, as in
//   CallAndWait([&](auto done) { stub->async()->Method(&ctx, &req, &resp, done); });
// `ctx`, `req` and `resp` must outlive the call, as with the synchronous API.
grpc::Status CallAndWait(const std::function<void(std::function<void(grpc::Status)>)>& start);

// A bidirectional stream, read one message at a time the way ClientReader
// reads, with writes that never block: a message sent while another is being
// written waits behind it, and a newer one replaces it. The stream carries
// the latest state (an applied revision), not a log. Use through Open():
//   auto stream = BidiStream<Req, Resp>::Open(
//       [&](grpc::ClientContext* ctx, grpc::ClientBidiReactor<Req, Resp>* r) {
//         ctx->AddMetadata(...);
//         stub->async()->Method(ctx, r);
//       });
//   stream->Send(first);
//   while (stream->Read(&msg)) stream->Send(...);
//   grpc::Status s = stream->Finish();
// context() may be cancelled, and Send and CloseWrites called, from any
// thread until Finish. The stream lives until both the caller's reference and
// gRPC are done with it.
//
// A stream may also take its quick messages where they arrive: `quick`, when
// given, is offered each message on gRPC's callback thread, in order, before
// Read sees it. When it takes the message (returns true) the next read starts
// at once and Read never sees that one; otherwise the message goes to Read as
// usual. It saves the reading thread's wake-up (a futex wake and a task
// switch) for messages that take microseconds to handle; it must not block,
// and it may Send.
template <typename Request, typename Response>
class BidiStream final : public grpc::ClientBidiReactor<Request, Response> {
 public:
  using Reactor = grpc::ClientBidiReactor<Request, Response>;
  using Start = std::function<void(grpc::ClientContext*, Reactor*)>;
  using Quick = std::function<bool(const Response&)>;

  static std::shared_ptr<BidiStream> Open(const Start& start, Quick quick = nullptr) {
    KeepCallbackThreads();
    std::shared_ptr<BidiStream> stream(new BidiStream);
    stream->quick_ = std::move(quick);
    stream->self_ = stream;  // gRPC's reference, dropped by OnDone
    start(&stream->ctx_, stream.get());
    // Two holds, one per side, each kept until the caller is done with that
    // side: without them gRPC could finish the call (OnDone) between two
    // reads, or before a Send from the caller's thread, and the next
    // StartRead or StartWrite would touch a finished call.
    stream->AddMultipleHolds(2);
    stream->StartRead(&stream->incoming_);
    stream->StartCall();
    return stream;
  }

  grpc::ClientContext* context() { return &ctx_; }

  // The next message into `msg`; false when the stream has ended (then call
  // Finish for its status).
  bool Read(Response* msg) {
    bool more;
    {
      MutexLock lock(&mu_);
      changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ready_ || ended_; });
      more = ready_;
      if (more) {
        ready_ = false;
        msg->Swap(&incoming_);
      }
    }
    if (!more) {
      ReleaseReadHold();
      return false;
    }
    this->StartRead(&incoming_);
    return true;
  }

  // Writes `msg` after the write in flight, replacing any message still
  // waiting for it. False, and nothing is sent, once the writing side is
  // closed or a write has failed (the call is ending).
  bool Send(const Request& msg) {
    {
      MutexLock lock(&mu_);
      if (close_wanted_ || finishing_ || write_failed_) return false;
      if (writing_) {
        waiting_ = msg;
        return true;
      }
      writing_ = true;
      outgoing_ = msg;
    }
    this->StartWrite(&outgoing_);
    return true;
  }

  // Closes the writing side once what was sent is written: the server's
  // reads end. Reading goes on.
  void CloseWrites() {
    {
      MutexLock lock(&mu_);
      if (close_wanted_ || finishing_) return;
      close_wanted_ = true;
      if (writing_) return;  // OnWriteDone closes after the write in flight
      writing_ = true;
    }
    this->StartWritesDone();
  }

  // Waits up to `timeout` for every write sent (and the close, if asked for)
  // to be done; true when they all went out.
  bool WaitWritten(absl::Duration timeout) {
    MutexLock lock(&mu_);
    written_.WaitFor(&mu_, timeout, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !writing_ || write_failed_;
    });
    return !writing_ && !write_failed_;
  }

  // Waits for the stream's final status: call it after Read returned false,
  // or after cancelling context() to stop early. A message still waiting to
  // be written is dropped.
  grpc::Status Finish() {
    {
      MutexLock lock(&mu_);
      finishing_ = true;
      written_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !writing_; });
      if (!write_held_) return status_;  // Finish was called before
      write_held_ = false;
    }
    this->RemoveHold();  // may run OnDone here, which takes mu_
    ReleaseReadHold();
    MutexLock lock(&mu_);
    changed_.Wait(&mu_, [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return done_; });
    return status_;
  }

 private:
  BidiStream() = default;

  void ReleaseReadHold() {
    {
      MutexLock lock(&mu_);
      if (!read_held_) return;
      read_held_ = false;
    }
    this->RemoveHold();  // may run OnDone here, which takes mu_
  }

  void OnReadDone(bool ok) override {
    if (ok && quick_ && quick_(incoming_)) {
      this->StartRead(&incoming_);
      return;
    }
    MutexLock lock(&mu_);
    (ok ? ready_ : ended_) = true;
    changed_.SignalAll();
  }

  void OnWriteDone(bool ok) override {
    enum class Next { kWrite, kClose, kNone } next = Next::kNone;
    {
      MutexLock lock(&mu_);
      if (!ok) {
        write_failed_ = true;
        waiting_.reset();
      } else if (waiting_ && !finishing_) {
        outgoing_ = *std::move(waiting_);
        waiting_.reset();
        next = Next::kWrite;
      } else if (close_wanted_ && !finishing_) {
        next = Next::kClose;
      }
      if (next == Next::kNone) {
        writing_ = false;
        written_.SignalAll();
      }
    }
    if (next == Next::kWrite) this->StartWrite(&outgoing_);
    if (next == Next::kClose) this->StartWritesDone();
  }

  void OnWritesDoneDone(bool ok) override {
    MutexLock lock(&mu_);
    if (!ok) write_failed_ = true;
    writing_ = false;
    written_.SignalAll();
  }

  void OnDone(const grpc::Status& status) override {
    // The last reaction: after it gRPC never touches this object again, so
    // it may be the one to free it.
    std::shared_ptr<BidiStream> last = std::move(self_);
    MutexLock lock(&mu_);
    status_ = status;
    done_ = true;
    ended_ = true;
    changed_.SignalAll();
    written_.SignalAll();
  }

  grpc::ClientContext ctx_;
  std::shared_ptr<BidiStream> self_;
  Quick quick_;        // constant once the call starts
  Response incoming_;  // gRPC's between StartRead and OnReadDone
  Request outgoing_;   // gRPC's between StartWrite and OnWriteDone
  Mutex mu_;
  // Two conditions, so that an acknowledgement written does not wake a
  // thread waiting in Read, once per message.
  CondVar changed_;  // what Read and Finish wait for: a message, the end, done_
  CondVar written_;  // writing_ or write_failed_ changed
  bool ready_ ABSL_GUARDED_BY(mu_) = false;  // incoming_ holds a message
  bool ended_ ABSL_GUARDED_BY(mu_) = false;  // no message will come
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool read_held_ ABSL_GUARDED_BY(mu_) = true;
  bool write_held_ ABSL_GUARDED_BY(mu_) = true;
  // A write or the close is in flight. Set by whoever starts one; cleared
  // when the last of a chain (a write, the message waiting behind it, the
  // close) is done.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Request> waiting_ ABSL_GUARDED_BY(mu_);  // sent while writing_
  bool close_wanted_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_GRPC_CLIENT_H_
