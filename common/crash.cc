#include "common/crash.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <iterator>

#include "absl/debugging/symbolize.h"

namespace latchkey {
namespace {

constexpr int kCrashSignals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE};

// Only async-signal-safe calls from here on: write(2), and absl::Symbolize,
// which reads the ELF files itself instead of allocating.
void Write(const char* text) {
  size_t left = strlen(text);
  while (left > 0) {
    const ssize_t n = write(STDERR_FILENO, text, left);
    if (n <= 0) return;
    text += n;
    left -= static_cast<size_t>(n);
  }
}

void WriteFrame(int index, void* pc) {
  char line[64];
  // "  #12 0x00007f0123456789 ", by hand: snprintf is not signal-safe.
  char* p = line;
  *p++ = ' ';
  *p++ = ' ';
  *p++ = '#';
  if (index >= 10) *p++ = static_cast<char>('0' + index / 10 % 10);
  *p++ = static_cast<char>('0' + index % 10);
  *p++ = ' ';
  *p++ = '0';
  *p++ = 'x';
  const auto address = reinterpret_cast<uintptr_t>(pc);
  for (int shift = 60; shift >= 0; shift -= 4) {
    *p++ = "0123456789abcdef"[(address >> shift) & 0xf];
  }
  *p++ = ' ';
  *p = '\0';
  Write(line);
  // The return address points after the call: look up the call itself.
  char name[1024];
  if (absl::Symbolize(static_cast<char*>(pc) - 1, name, sizeof(name))) {
    Write(name);
  } else {
    Write("?");
  }
  Write("\n");
}

void OnCrash(int sig) {
  Write("*** ");
  Write(strsignal(sig));
  Write(": the stack of the thread that received it:\n");
  // backtrace() unwinds by the .eh_frame tables, which every Debian library
  // has, so frames inside gRPC and Abseil (built without frame pointers) are
  // found; it unwinds through the signal frame into the code that crashed.
  void* frames[64];
  const int n = backtrace(frames, static_cast<int>(std::size(frames)));
  for (int i = 0; i < n; ++i) WriteFrame(i, frames[i]);
  Write("*** end of stack\n");
  // The default action next: the process ends as it would have (core dump
  // included) once this handler returns into the pending signal.
  signal(sig, SIG_DFL);
  raise(sig);
}

}  // namespace

void ReportCrashes(const char* argv0) {
  absl::InitializeSymbolizer(argv0);
  // backtrace() loads libgcc's unwinder on its first call, which allocates:
  // do that now, not in the handler.
  void* warm[1];
  backtrace(warm, 1);
  struct sigaction action {};
  action.sa_handler = OnCrash;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  for (const int sig : kCrashSignals) sigaction(sig, &action, nullptr);
}

}  // namespace latchkey
