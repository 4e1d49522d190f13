// When a process dies of a bug, its stack on stderr.
//
// gRPC's core checks its invariants with GPR_ASSERT, and Debian's build keeps
// even the debug checks on: a failed check logs one line ("ref_counted.h:183]
// assertion failed: prior > 0") and aborts. The line does not say which call,
// channel or reactor it was about, or whose code let it go: only the stack
// does. ReportCrashes() writes the stack, symbolized, to stderr when SIGABRT,
// SIGSEGV, SIGBUS, SIGILL or SIGFPE arrives, then lets the signal's default
// action run (so a core dump is still written where one is configured).
#ifndef LATCHKEY_COMMON_CRASH_H_
#define LATCHKEY_COMMON_CRASH_H_

namespace latchkey {

// Call once, first thing in main(). `argv0` finds the binary's own symbols.
void ReportCrashes(const char* argv0);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_CRASH_H_
