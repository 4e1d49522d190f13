// Giving freed memory back: when a release happens, and that it does.
#include "common/memory_release.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <vector>

namespace latchkey {
namespace {

// A release that counts its calls; the test drives Check itself (interval 0).
struct Counted {
  uint64_t work = 0;
  int releases = 0;
  MemoryRelease release{absl::ZeroDuration(), [this] { return work; }, [this] { ++releases; }};
};

TEST_CASE("freed memory is given back once work pauses, and not while there was none") {
  Counted c;
  c.release.Check();
  REQUIRE(c.releases == 0);  // no work yet
  c.work = 5;
  c.release.Check();
  REQUIRE(c.releases == 0);  // work since the last check: the burst may go on
  c.release.Check();
  REQUIRE(c.releases == 1);  // a check with none: over
  c.release.Check();
  c.release.Check();
  REQUIRE(c.releases == 1);  // nothing left behind since
  c.work = 6;
  c.release.Check();
  c.release.Check();
  REQUIRE(c.releases == 2);
  REQUIRE(c.release.releases() == 2);
}

TEST_CASE("work that never pauses still has its memory given back every so many checks") {
  Counted c;
  for (int i = 1; i < MemoryRelease::kBusyChecks; ++i) {
    ++c.work;
    c.release.Check();
  }
  REQUIRE(c.releases == 0);
  ++c.work;
  c.release.Check();
  REQUIRE(c.releases == 1);
  ++c.work;
  c.release.Check();
  REQUIRE(c.releases == 1);  // counted afresh from the release
}

// Sanitizers bring allocators of their own, which malloc_trim does not reach.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LATCHKEY_OWN_ALLOCATOR 1
#endif
#endif
#ifndef LATCHKEY_OWN_ALLOCATOR
TEST_CASE("a release hands the pages of freed small allocations back to the operating system") {
  // 256 MiB in small allocations, of which one in a thousand stays: what was
  // freed lies between live ones, where malloc gives nothing back on its own.
  constexpr size_t kSize = 240, kCount = (256u << 20) / 256;
  std::vector<void*> kept;
  {
    std::vector<void*> all(kCount);
    for (void*& p : all) {
      p = std::malloc(kSize);
      static_cast<char*>(p)[0] = 1;
    }
    for (size_t i = 0; i < all.size(); ++i) {
      if (i % 1000 == 0) {
        kept.push_back(all[i]);
      } else {
        std::free(all[i]);
      }
    }
  }
  const uint64_t before = ResidentBytes();
  REQUIRE(before > (200u << 20));  // the freed memory is still resident
  MemoryRelease::Trim();
  const uint64_t after = ResidentBytes();
  INFO("resident before " << (before >> 20) << " MiB, after " << (after >> 20) << " MiB");
  REQUIRE(after < before);
  CHECK(before - after > (128u << 20));
  for (void* p : kept) std::free(p);
}
#endif

}  // namespace
}  // namespace latchkey
