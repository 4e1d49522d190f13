// The request checks every KeyAdmin method shares: names, ids, page sizes
// and page tokens (authority/core/internal/requests.h).
#include "authority/core/internal/requests.h"

#include <catch2/catch.hpp>
#include <string>

#include "absl/strings/escaping.h"
#include "authority/internal/records.pb.h"

namespace latchkey::internal {
namespace {

TEST_CASE("names: 1 to 100 characters of UTF-8, no control characters, not blank") {
  REQUIRE(CheckName("ios app", "name").ok());
  REQUIRE(CheckName("Überwachung 監視 🚀", "name").ok());
  REQUIRE(CheckName(std::string(100, 'x'), "name").ok());
  // 100 characters of two bytes each: the limit counts characters.
  std::string umlauts;
  for (int i = 0; i < 100; ++i) umlauts += "ü";
  REQUIRE(CheckName(umlauts, "name").ok());
  REQUIRE(absl::IsInvalidArgument(CheckName(umlauts + "ü", "name")));
  REQUIRE(absl::IsInvalidArgument(CheckName(std::string(101, 'x'), "name")));

  for (const std::string& bad :
       {std::string(), std::string("   "), std::string("a\nb"), std::string("tab\there"),
        std::string("del\x7f"), std::string("nul\0x", 5)}) {
    INFO(absl::CHexEscape(bad));
    absl::Status s = CheckName(bad, "display_name");
    REQUIRE(absl::IsInvalidArgument(s));
    REQUIRE(s.message().find("display_name") != std::string_view::npos);
  }
}

TEST_CASE("names that are not UTF-8 are refused: protobuf could not read them back") {
  for (const std::string& bad : {
           std::string("\xff"),              // never valid
           std::string("caf\xc3"),           // truncated sequence
           std::string("\xc3\x28"),          // bad continuation byte
           std::string("\xc0\xaf"),          // overlong '/'
           std::string("\xed\xa0\x80"),      // UTF-16 surrogate
           std::string("\xf4\x90\x80\x80"),  // above U+10FFFF
           std::string("\x80zz"),            // lone continuation byte
       }) {
    INFO(absl::CHexEscape(bad));
    absl::Status s = CheckName(bad, "name");
    REQUIRE(absl::IsInvalidArgument(s));
    REQUIRE(s.message().find("UTF-8") != std::string_view::npos);
  }
}

TEST_CASE("ids must carry their prefix and length") {
  REQUIRE(CheckId("prj_0123456789abcdefABCD", "prj_", 20, "project_id").ok());
  REQUIRE(absl::IsInvalidArgument(CheckId("", "prj_", 20, "project_id")));
  REQUIRE(absl::IsInvalidArgument(CheckId("key_0123456789abcdefABCD", "prj_", 20, "project_id")));
  REQUIRE(absl::IsInvalidArgument(CheckId("prj_0123456789abcdefABC", "prj_", 20, "project_id")));
  REQUIRE(absl::IsInvalidArgument(CheckId("prj_0123456789abcdefABC!", "prj_", 20, "project_id")));
  REQUIRE(CheckId("x", "prj_", 20, "project_id").message().find("project_id") !=
          std::string_view::npos);
}

TEST_CASE("page sizes: 0 is the default, large is capped, negative is refused") {
  REQUIRE(*PageSize(0) == kDefaultPageSize);
  REQUIRE(*PageSize(7) == 7);
  REQUIRE(*PageSize(kMaxPageSize + 1) == kMaxPageSize);
  REQUIRE(absl::IsInvalidArgument(PageSize(-1).status()));
}

TEST_CASE("page tokens round-trip within their listing and nowhere else") {
  const std::string token = EncodePageToken("keys/prj_1", "key_42");
  REQUIRE(*DecodePageToken(token, "keys/prj_1") == "key_42");
  REQUIRE(DecodePageToken("", "keys/prj_1")->empty());
  // Another listing's token, garbage, and oversized input say the same thing.
  REQUIRE(absl::IsInvalidArgument(DecodePageToken(token, "keys/prj_2").status()));
  REQUIRE(absl::IsInvalidArgument(DecodePageToken("not base64!", "keys/prj_1").status()));
  REQUIRE(absl::IsInvalidArgument(DecodePageToken(std::string(5000, 'A'), "keys/prj_1").status()));
  // A well-formed token that says nothing about where to resume is refused.
  REQUIRE(absl::IsInvalidArgument(
      DecodePageToken(EncodePageToken("keys/prj_1", ""), "keys/prj_1").status()));
  PageToken raw;
  raw.set_scope("keys/prj_1");
  raw.set_after("key_1");
  REQUIRE(*DecodePageToken(absl::WebSafeBase64Escape(raw.SerializeAsString()), "keys/prj_1") ==
          "key_1");
}

}  // namespace
}  // namespace latchkey::internal
