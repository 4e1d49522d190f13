// A process that dies of a bug leaves its stack on stderr.
#include "common/crash.h"

#include <fcntl.h>
#include <grpc/support/log.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "tests/testing/testing.h"

namespace latchkey {
namespace {

// What gRPC's core does when one of its checks fails: log the check, abort.
// Read through volatile, so the compiler cannot see the outcome.
volatile bool g_holds = true;
int* volatile g_nowhere = nullptr;

[[gnu::noinline]] void FailAGrpcCheck() {
  const bool holds = g_holds;
  GPR_ASSERT(holds);
}

[[gnu::noinline]] void DereferenceNull() { *g_nowhere = 1; }

struct Death {
  int signal = 0;
  std::string stderr_text;
};

// Runs `crash` in a child process that reports crashes, and returns how the
// child ended and what it wrote to stderr.
template <typename Crash>
Death DieIn(Crash crash) {
  testing::TempDir dir;
  const std::string path = dir / "stderr";
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, STDERR_FILENO);
    // Catch2's own fatal-signal handlers would report first: the default
    // action is what a daemon starts with.
    for (const int sig : {SIGABRT, SIGSEGV}) std::signal(sig, SIG_DFL);
    ReportCrashes("/proc/self/exe");
    crash();
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  Death death;
  if (WIFSIGNALED(status)) death.signal = WTERMSIG(status);
  death.stderr_text = testing::ReadFile(path);
  return death;
}

TEST_CASE("a failed gRPC check writes the stack that led to it, then aborts as before") {
  const Death death = DieIn([] {
    gpr_log_verbosity_init();  // what grpc_init() does: ERROR lines are printed
    g_holds = false;
    FailAGrpcCheck();
  });
  INFO(death.stderr_text);
  CHECK(death.signal == SIGABRT);
  CHECK(death.stderr_text.find("assertion failed: holds") != std::string::npos);
  CHECK(death.stderr_text.find("*** Aborted") != std::string::npos);
  // The frames named, down to the function that failed the check.
  CHECK(death.stderr_text.find("abort") != std::string::npos);
  CHECK(death.stderr_text.find("FailAGrpcCheck") != std::string::npos);
  CHECK(death.stderr_text.find("*** end of stack") != std::string::npos);
}

// The asan preset (clang) builds with UBSan, which stops the null store
// before the hardware does and aborts (halt_on_error): the stack comes all
// the same, from SIGABRT.
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

TEST_CASE("a segmentation fault writes the faulting function and still ends the process") {
  const Death death = DieIn([] { DereferenceNull(); });
  INFO(death.stderr_text);
  CHECK(death.signal == (kSanitized ? SIGABRT : SIGSEGV));
  CHECK(death.stderr_text.find(kSanitized ? "*** Aborted" : "*** Segmentation fault") !=
        std::string::npos);
  CHECK(death.stderr_text.find("DereferenceNull") != std::string::npos);
}

}  // namespace
}  // namespace latchkey
