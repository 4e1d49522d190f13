#include "authority/rpc/secret_scanning.h"

#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/synchronization/blocking_counter.h"
#include "authority/core/internal/requests.h"
#include "common/crypto.h"
#include "common/files.h"
#include "common/http.h"
#include "common/log.h"
#include "common/net.h"
#include "common/strings.h"

namespace latchkey {
namespace {

constexpr char kPath[] = "/secret-scanning/github";
constexpr size_t kMaxToken = 1024;
constexpr size_t kMaxField = KeyAuthority::kMaxLeakText;

// Who the audit log names for what a report does.
const Caller kReporter{"", "github-secret-scanning", v1::ROLE_UNSPECIFIED};

}  // namespace

struct GitHubKeys::Key {
  explicit Key(EVP_PKEY* k) : pkey(k) {}
  ~Key() { EVP_PKEY_free(pkey); }
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;
  EVP_PKEY* const pkey;
};

GitHubKeys::~GitHubKeys() = default;

absl::StatusOr<std::unique_ptr<GitHubKeys>> GitHubKeys::Load(std::string path) {
  std::unique_ptr<GitHubKeys> keys(new GitHubKeys(std::move(path)));
  MutexLock lock(&keys->mu_);
  keys->file_ = Identify(keys->path_);  // before the read: a change during it is read again
  absl::StatusOr<KeyMap> read = Read(keys->path_);
  if (!read.ok()) return read.status();
  keys->keys_ = *std::move(read);
  return keys;
}

GitHubKeys::FileId GitHubKeys::Identify(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_dev, st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

absl::StatusOr<GitHubKeys::KeyMap> GitHubKeys::Read(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFileIfExists(path);
  if (!text.ok()) return text.status();
  const auto invalid = [&path](std::string_view why) {
    return absl::InvalidArgumentError(StrCat("--github-keys-file ", path, ": ", why));
  };
  if (text->empty()) return invalid("missing or empty");
  const nlohmann::json doc = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object() || !doc.contains("public_keys") || !doc["public_keys"].is_array()) {
    return invalid("not GitHub's public keys document (an object with a public_keys array)");
  }
  KeyMap keys;
  for (const nlohmann::json& entry : doc["public_keys"]) {
    if (!entry.is_object() || !entry.contains("key_identifier") || !entry.contains("key") ||
        !entry["key_identifier"].is_string() || !entry["key"].is_string()) {
      return invalid("each public key needs a string key_identifier and key");
    }
    const std::string id = entry["key_identifier"].get<std::string>();
    const std::string pem = entry["key"].get<std::string>();
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    EVP_PKEY* pkey = bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr;
    BIO_free(bio);
    if (pkey == nullptr) return invalid(StrCat("key ", id, " is not a PEM public key"));
    auto key = std::make_shared<const Key>(pkey);
    char group[64] = {};
    size_t group_len = 0;
    if (!EVP_PKEY_is_a(pkey, "EC") ||
        EVP_PKEY_get_group_name(pkey, group, sizeof group, &group_len) != 1 ||
        std::string_view(group, group_len) != "prime256v1") {
      return invalid(StrCat("key ", id, " is not an ECDSA NIST P-256 key"));
    }
    keys[id] = std::move(key);
  }
  if (keys.empty()) return invalid("no public keys");
  return keys;
}

void GitHubKeys::Refresh() {
  const FileId now = Identify(path_);
  if (now == file_) return;
  file_ = now;
  absl::StatusOr<KeyMap> read = Read(path_);
  if (!read.ok()) {
    spdlog::warn("GitHub's keys: keeping the {} read before: {}", keys_.size(),
                 read.status().ToString());
    return;
  }
  keys_ = *std::move(read);
  spdlog::info("GitHub's keys: read {} from {}", keys_.size(), path_);
}

absl::Status GitHubKeys::Verify(std::string_view key_id, std::string_view signature,
                                std::string_view body) {
  std::shared_ptr<const Key> key;
  {
    MutexLock lock(&mu_);
    Refresh();
    auto it = keys_.find(std::string(key_id));
    if (it == keys_.end()) {
      return absl::UnauthenticatedError(
          key_id.empty() ? "no Github-Public-Key-Identifier"
                         : "Github-Public-Key-Identifier names no key in --github-keys-file");
    }
    key = it->second;
  }
  std::string der;
  if (signature.empty() ||
      !absl::Base64Unescape(absl::string_view(signature.data(), signature.size()), &der)) {
    return absl::UnauthenticatedError("Github-Public-Key-Signature is missing or not base64");
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool valid =
      ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, key->pkey) == 1 &&
      EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(der.data()), der.size(),
                       reinterpret_cast<const unsigned char*>(body.data()), body.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!valid) return absl::UnauthenticatedError("the signature does not match the body");
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ReportedToken>> ParseReport(std::string_view body) {
  const nlohmann::json doc = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_array()) return absl::InvalidArgumentError("the body is not a JSON array");
  std::vector<ReportedToken> tokens;
  tokens.reserve(doc.size());
  for (const nlohmann::json& item : doc) {
    if (!item.is_object()) return absl::InvalidArgumentError("each item must be an object");
    ReportedToken& t = tokens.emplace_back();
    const auto field = [&item](const char* name, size_t max, bool required,
                               std::string& out) -> absl::Status {
      auto it = item.find(name);
      if (it == item.end() || it->is_null()) {
        if (!required) return absl::OkStatus();
        return absl::InvalidArgumentError(StrCat("an item has no ", name));
      }
      if (!it->is_string()) return absl::InvalidArgumentError(StrCat(name, " must be a string"));
      out = it->get<std::string>();
      return internal::CheckText(out, name, max);
    };
    for (absl::Status s :
         {field("token", kMaxToken, true, t.token), field("type", kMaxField, false, t.type),
          field("url", kMaxField, false, t.url), field("source", kMaxField, false, t.source)}) {
      if (!s.ok()) return s;
    }
  }
  return tokens;
}

absl::StatusOr<std::unique_ptr<SecretScanningServer>> SecretScanningServer::Start(
    const SecretScanningOptions& options, KeyAuthority* authority, WorkQueue* work,
    Registry* metrics) {
  absl::StatusOr<HostPort> address = SplitHostPort(options.listen, "--leak-report-listen");
  if (!address.ok()) return address.status();
  const bool https = !options.tls.cert.empty();
  if (!https && !options.allow_insecure_remote && !IsLocalAddress(options.listen)) {
    return absl::InvalidArgumentError(
        "refusing plain HTTP beyond loopback on --leak-report-listen " + options.listen +
        ": give --tls-cert/--tls-key, or --allow-insecure-remote behind a TLS ingress");
  }
  if (options.github_keys_file.empty()) {
    return absl::InvalidArgumentError(
        "--leak-report-listen needs --github-keys-file (GitHub's secret scanning public keys)");
  }
  std::unique_ptr<SecretScanningServer> self(new SecretScanningServer());
  self->authority_ = authority;
  self->work_ = work;
  absl::StatusOr<std::unique_ptr<GitHubKeys>> keys = GitHubKeys::Load(options.github_keys_file);
  if (!keys.ok()) return keys.status();
  self->keys_ = *std::move(keys);
  self->requests_ = &metrics->AddCounterFamily(
      "latchkey_leak_report_requests_total",
      "Secret scanning reports received (POST /secret-scanning/github), by HTTP status.", {"code"});
  Registry::Family<Counter>& tokens = metrics->AddCounterFamily(
      "latchkey_leak_report_tokens_total",
      "Tokens in signed secret scanning reports, by label (true_positive: latchkey's).", {"label"});
  self->true_positives_ = &tokens.With({"true_positive"});
  self->false_positives_ = &tokens.With({"false_positive"});
  if (https) {
    auto server =
        std::make_unique<httplib::SSLServer>(options.tls.cert.c_str(), options.tls.key.c_str());
    if (!server->is_valid()) {
      return absl::InvalidArgumentError("cannot load --tls-cert/--tls-key as a PEM pair");
    }
    self->server_ = std::move(server);
  } else {
    self->server_ = std::make_unique<httplib::Server>();
  }
  self->server_->set_payload_max_length(options.max_body_bytes);
  self->Route();
  absl::StatusOr<int> port = Bind(self->server_.get(), *address, options.listen);
  if (!port.ok()) return port.status();
  self->port_ = *port;
  self->thread_ = ServeInBackground(self->server_.get());
  spdlog::info("secret scanning reports: POST {}://{}:{}{}", https ? "https" : "http",
               address->host, self->port_, kPath);
  return self;
}

void SecretScanningServer::Route() {
  server_->Post(kPath, [this](const httplib::Request& req, httplib::Response& res) {
    const absl::Status verified =
        keys_->Verify(req.get_header_value("Github-Public-Key-Identifier"),
                      req.get_header_value("Github-Public-Key-Signature"), req.body);
    if (!verified.ok()) {
      res.status = 401;
      res.set_content(std::string(verified.message()) + "\n", "text/plain; charset=utf-8");
      return;
    }
    absl::StatusOr<std::vector<ReportedToken>> tokens = ParseReport(req.body);
    if (!tokens.ok()) {
      res.status = 400;
      res.set_content(std::string(tokens.status().message()) + "\n", "text/plain; charset=utf-8");
      return;
    }
    // Each token is its own mutation, run on the store's threads so that
    // their commits share disk flushes (or etcd round trips).
    std::vector<absl::StatusOr<bool>> issued(tokens->size(), false);
    absl::BlockingCounter done(static_cast<int>(tokens->size()));
    for (size_t i = 0; i < tokens->size(); ++i) {
      work_->Post([this, &tokens, &issued, &done, i] {
        const ReportedToken& t = (*tokens)[i];
        issued[i] = authority_->ReportLeak(kReporter, {t.token, t.url, t.source});
        done.DecrementCount();
      });
    }
    done.Wait();
    nlohmann::json answer = nlohmann::json::array();
    size_t ours = 0;
    for (size_t i = 0; i < tokens->size(); ++i) {
      if (!issued[i].ok()) {
        // GitHub sends the report again; what was done already is not redone.
        spdlog::warn("secret scanning report of {} tokens not answered: {}", tokens->size(),
                     issued[i].status().ToString());
        res.status = 503;
        res.set_content("the store is not available; send the report again\n",
                        "text/plain; charset=utf-8");
        return;
      }
      ours += *issued[i] ? 1 : 0;
      answer.push_back({{"token_hash", HexPrefix(Sha256Bytes((*tokens)[i].token), 32)},
                        {"token_type", (*tokens)[i].type},
                        {"label", *issued[i] ? "true_positive" : "false_positive"}});
    }
    true_positives_->Inc(ours);
    false_positives_->Inc(tokens->size() - ours);
    spdlog::info("secret scanning report: {} tokens, {} of them latchkey's", tokens->size(), ours);
    res.set_content(answer.dump(), "application/json");
  });
  // One line per request: never a header or a body (they hold key values).
  server_->set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    requests_->With({std::to_string(res.status)}).Inc();
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });
}

SecretScanningServer::~SecretScanningServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace latchkey
