// Certificates made at test time with OpenSSL: a CA, certs it signs
// (optionally already expired), and self-signed ones. PEM strings.
#ifndef LATCHKEY_TESTS_TESTING_CERTS_H_
#define LATCHKEY_TESTS_TESTING_CERTS_H_

#include <string>

namespace latchkey::testing {

struct Pem {
  std::string cert;
  std::string key;
};

// A self-signed certificate; a CA when `ca` is true.
Pem SelfSigned(const std::string& common_name, bool ca);

// A certificate for `common_name` (with SAN IP:127.0.0.1 and DNS:localhost)
// signed by `issuer`. `valid_days` < 0 makes one that has already expired.
Pem Issue(const Pem& issuer, const std::string& common_name, int valid_days = 1);

}  // namespace latchkey::testing

#endif  // LATCHKEY_TESTS_TESTING_CERTS_H_
