// The test binaries' main(): Catch2's runner. When a test crashes (a gRPC
// assertion included), Catch2 names the test and the stack follows
// (common/crash.h).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "common/crash.h"

int main(int argc, char** argv) {
  latchkey::ReportCrashes(argv[0]);
  return Catch::Session().run(argc, argv);
}
