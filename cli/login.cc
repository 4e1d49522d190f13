#include "cli/login.h"

#include <httplib.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/http.h"
#include "common/mutex.h"
#include "common/oidc_client.h"
#include "common/strings.h"

namespace latchkey::cli {

namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

absl::Status LogInAgain(std::string_view why) {
  return absl::UnauthenticatedError(StrCat(why, "; run `latchkeyctl login` again"));
}

std::unique_ptr<OidcClient> ClientFor(const SavedLogin& login, const std::string& redirect) {
  OidcClientOptions options;
  options.issuer_url = login.issuer;
  options.client_id = login.client_id;
  options.redirect_url = redirect;
  options.ca_file = login.ca_file;
  absl::StatusOr<std::unique_ptr<OidcClient>> client = OidcClient::Create(options);
  return client.ok() ? *std::move(client) : nullptr;
}

constexpr char kSignedIn[] =
    "<!doctype html><title>latchkey</title><p>Signed in to latchkeyctl. You can close this tab.";

}  // namespace

std::string CredentialsPath() {
  std::string dir = EnvOr("LATCHKEY_CONFIG_DIR", "");
  if (dir.empty()) {
    const std::string xdg = EnvOr("XDG_CONFIG_HOME", EnvOr("HOME", ".") + "/.config");
    dir = xdg + "/latchkey";
  }
  return dir + "/credentials.json";
}

absl::StatusOr<std::optional<SavedLogin>> LoadLogin(const std::string& path) {
  absl::StatusOr<std::string> text = ReadPrivateFile(path);
  if (!text.ok()) return text.status();
  if (text->empty()) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("id_token") || !j["id_token"].is_string()) {
    return absl::DataLossError(StrCat(path, " is not a saved latchkeyctl login"));
  }
  auto str = [&j](const char* name) {
    auto it = j.find(name);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  SavedLogin login;
  login.issuer = str("issuer");
  login.client_id = str("client_id");
  login.id_token = str("id_token");
  login.refresh_token = str("refresh_token");
  login.ca_file = str("ca_file");
  auto expiry = j.find("expiry");
  login.expiry = expiry != j.end() && expiry->is_number_integer()
                     ? absl::FromUnixSeconds(expiry->get<int64_t>())
                     : absl::InfinitePast();
  return login;
}

absl::Status SaveLogin(const std::string& path, const SavedLogin& login) {
  std::error_code ignored;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ignored);
  const nlohmann::json j = {{"issuer", login.issuer},
                            {"client_id", login.client_id},
                            {"id_token", login.id_token},
                            {"refresh_token", login.refresh_token},
                            {"expiry", absl::ToUnixSeconds(login.expiry)},
                            {"ca_file", login.ca_file}};
  return WritePrivateFile(path, j.dump(2) + "\n");
}

absl::StatusOr<std::string> CurrentIdToken(const std::string& path) {
  absl::StatusOr<std::optional<SavedLogin>> saved = LoadLogin(path);
  if (!saved.ok()) return saved.status();
  if (!saved->has_value()) return absl::NotFoundError("not logged in");
  SavedLogin login = **saved;
  if (login.expiry - absl::Now() > absl::Minutes(1)) return login.id_token;
  if (login.refresh_token.empty()) return LogInAgain("your sign-in has ended");
  // The redirect URL is not used by a refresh; any loopback one passes.
  std::unique_ptr<OidcClient> client = ClientFor(login, "http://127.0.0.1/callback");
  if (client == nullptr) return LogInAgain("the saved sign-in names no usable issuer");
  absl::StatusOr<OidcTokens> renewed = client->Refresh(login.refresh_token);
  if (!renewed.ok()) {
    // Unreachable provider: the token still works until its end.
    if (absl::IsUnavailable(renewed.status()) && login.expiry > absl::Now()) {
      return login.id_token;
    }
    return LogInAgain("the identity provider would not renew your sign-in");
  }
  login.id_token = renewed->id_token;
  login.refresh_token = renewed->refresh_token;
  login.expiry = renewed->expiry;
  if (absl::Status s = SaveLogin(path, login); !s.ok()) return s;
  return login.id_token;
}

absl::StatusOr<SavedLogin> Login(const LoginOptions& options,
                                 const std::function<void(const std::string& url)>& open) {
  httplib::Server server;
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0) return absl::UnavailableError("cannot listen on a loopback port");
  OidcClientOptions client_options;
  client_options.issuer_url = options.issuer;
  client_options.client_id = options.client_id;
  client_options.client_secret = options.client_secret;
  client_options.ca_file = options.ca_file;
  client_options.redirect_url = StrCat("http://127.0.0.1:", port, "/callback");
  absl::StatusOr<std::unique_ptr<OidcClient>> client = OidcClient::Create(client_options);
  if (!client.ok()) return client.status();
  absl::StatusOr<AuthorizationRequest> request = (*client)->Begin();
  if (!request.ok()) return request.status();

  absl::Notification done;
  Mutex mu;  // httplib may run two requests at once
  absl::StatusOr<OidcTokens> tokens =
      absl::DeadlineExceededError(StrCat("no sign-in within ", absl::FormatDuration(options.wait)));
  server.Get("/callback", [&](const httplib::Request& req, httplib::Response& res) {
    MutexLock lock(&mu);
    if (done.HasBeenNotified()) return;
    // Another page's request to this port (it does not know the state) is
    // ignored; the provider's comes back with it.
    if (req.get_param_value("state") != request->state) {
      res.status = 400;
      return;
    }
    if (req.has_param("error")) {
      tokens = absl::UnauthenticatedError("the identity provider refused the sign-in");
    } else {
      tokens = (*client)->Exchange(req.get_param_value("code"), *request);
    }
    res.set_content(tokens.ok() ? kSignedIn : "Sign-in failed; see latchkeyctl.",
                    "text/html; charset=utf-8");
    done.Notify();
  });
  std::thread serving = ServeInBackground(&server);
  open(request->url);
  done.WaitForNotificationWithTimeout(options.wait);
  server.stop();
  serving.join();
  MutexLock lock(&mu);
  if (!tokens.ok()) return tokens.status();
  return SavedLogin{options.issuer,        options.client_id, tokens->id_token,
                    tokens->refresh_token, tokens->expiry,    options.ca_file};
}

}  // namespace latchkey::cli
