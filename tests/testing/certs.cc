#include "tests/testing/certs.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdlib>
#include <memory>

namespace latchkey::testing {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

void Check(bool ok) {
  if (!ok) std::abort();  // test setup cannot go on without its certificates
}

Key NewKey() { return Key(EVP_EC_gen("P-256")); }

std::string ToPem(const Key& key) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

std::string ToPem(const Cert& cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  Check(PEM_write_bio_X509(bio.get(), cert.get()));
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, n);
}

Key KeyFromPem(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

Cert CertFromPem(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return Cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  Check(ext != nullptr && X509_add_ext(cert, ext, -1));
  X509_EXTENSION_free(ext);
}

// A certificate for `key`, not yet signed, valid from a day ago for `days`
// days from now (negative: expired).
Cert NewCert(const std::string& cn, const Key& key, int days) {
  static long serial = 1;
  Cert cert(X509_new());
  Check(X509_set_version(cert.get(), 2));
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -2L * 86400);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 86400);
  Check(X509_set_pubkey(cert.get(), key.get()));
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

}  // namespace

Pem SelfSigned(const std::string& common_name, bool ca) {
  Key key = NewKey();
  Cert cert = NewCert(common_name, key, 30);
  Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())));
  AddExtension(cert.get(), cert.get(), NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  if (ca) AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert.get(), cert.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  Check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0);
  return {ToPem(cert), ToPem(key)};
}

Pem Issue(const Pem& issuer, const std::string& common_name, int valid_days) {
  Key issuer_key = KeyFromPem(issuer.key);
  Cert issuer_cert = CertFromPem(issuer.cert);
  Key key = NewKey();
  Cert cert = NewCert(common_name, key, valid_days);
  Check(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert.get())));
  AddExtension(cert.get(), issuer_cert.get(), NID_basic_constraints, "CA:FALSE");
  AddExtension(cert.get(), issuer_cert.get(), NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
  AddExtension(cert.get(), issuer_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  Check(X509_sign(cert.get(), issuer_key.get(), EVP_sha256()) > 0);
  return {ToPem(cert), ToPem(key)};
}

}  // namespace latchkey::testing
