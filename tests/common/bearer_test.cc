#include "common/bearer.h"

#include <catch2/catch.hpp>
#include <string>

namespace latchkey {
namespace {

TEST_CASE("a bearer token is read in any case of the scheme, and nothing else is one") {
  REQUIRE(BearerToken("Bearer lk_admin_abc") == std::string_view("lk_admin_abc"));
  REQUIRE(BearerToken("bearer lk_admin_abc") == std::string_view("lk_admin_abc"));
  REQUIRE(BearerToken("BEARER x") == std::string_view("x"));
  REQUIRE_FALSE(BearerToken(""));
  REQUIRE_FALSE(BearerToken("Bearer "));  // no token
  REQUIRE_FALSE(BearerToken("Basic dXNlcjpwYXNz"));
  REQUIRE_FALSE(BearerToken("Bearer  two-spaces"));  // a space is not visible ASCII
  REQUIRE_FALSE(BearerToken("Bearer tok\nen"));      // control characters never pass
  REQUIRE_FALSE(
      BearerToken("Bearer tok\x80"
                  "en"));  // nor bytes past ASCII
  REQUIRE(BearerToken("Bearer " + std::string(16 * 1024 - 7, 'a')));
  REQUIRE_FALSE(BearerToken("Bearer " + std::string(16 * 1024 - 6, 'a')));
}

}  // namespace
}  // namespace latchkey
