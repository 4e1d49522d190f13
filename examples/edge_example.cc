// latchkey-edge-example AUTHORITY TOKEN_FILE: validates each line of standard
// input in process with latchkey::edge and prints the verdict and ids, as an
// ingestion service would before routing an event.
#include <fstream>
#include <iostream>
#include <string>

#include "latchkey/edge.h"

namespace {

const char* Name(latchkey::edge::Verdict v) {
  switch (v) {
    case latchkey::edge::Verdict::kValid:
      return "VALID";
    case latchkey::edge::Verdict::kRevoked:
      return "REVOKED";
    case latchkey::edge::Verdict::kExpired:
      return "EXPIRED";
    case latchkey::edge::Verdict::kProjectDisabled:
      return "PROJECT_DISABLED";
    case latchkey::edge::Verdict::kUnknown:
      return "UNKNOWN";
    case latchkey::edge::Verdict::kMalformed:
      return "MALFORMED";
  }
  return "?";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: latchkey-edge-example AUTHORITY TOKEN_FILE < keys\n";
    return 2;
  }
  std::string token;
  std::getline(std::ifstream(argv[2]), token);

  latchkey::edge::Options options;
  options.authority = argv[1];
  options.token = token;
  auto validator = latchkey::edge::Validator::Start(options);
  if (!validator.ok()) {
    std::cerr << "cannot start: " << validator.status() << "\n";
    return 1;
  }
  if (!(*validator)->WaitUntilFresh(absl::Seconds(10))) {
    std::cerr << "the authority did not answer within 10 s\n";
    return 1;
  }
  for (std::string key; std::getline(std::cin, key);) {
    const latchkey::edge::Result r = (*validator)->Validate(key);
    std::cout << Name(r.verdict) << " " << r.key_id() << " " << r.project_id() << "\n";
  }
  return 0;
}
