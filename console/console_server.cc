#include "console/console_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/http.h"
#include "common/net.h"
#include "common/strings.h"
#include "console/web_assets.h"

namespace latchkey::console {
namespace {

// No inline script or style, no eval, nothing from elsewhere, never framed.
constexpr char kContentSecurityPolicy[] =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

httplib::Headers SecurityHeaders(bool https) {
  httplib::Headers headers = {
      {"Content-Security-Policy", kContentSecurityPolicy},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
      {"Cross-Origin-Opener-Policy", "same-origin"},
      {"Cross-Origin-Resource-Policy", "same-origin"},
  };
  if (https) headers.emplace("Strict-Transport-Security", "max-age=31536000");
  return headers;
}

void SetJson(httplib::Response& res, const JsonReply& reply) {
  res.status = reply.http_status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(reply.body, "application/json");
}

constexpr char kSessionCookie[] = "latchkey_session";
// The state of the sign-in this browser began, for the callback to match:
// SameSite=Lax, since the provider's redirect back is a cross-site navigation.
constexpr char kSignInCookie[] = "latchkey_sign_in";

// The value of cookie `name` in a Cookie header, or "".
std::string CookieValue(const std::string& header, std::string_view name) {
  for (absl::string_view part : absl::StrSplit(header, ';')) {
    part = absl::StripAsciiWhitespace(part);
    const std::string prefix = StrCat(name, "=");
    if (absl::StartsWith(part, prefix)) {
      return std::string(part.substr(name.size() + 1));
    }
  }
  return "";
}

// A refusal as the API's JSON shape; `message` names no secret.
JsonReply Refusal(int http_status, std::string_view code, std::string_view message) {
  nlohmann::json body = {{"code", code}, {"message", message}};
  return {http_status, body.dump()};
}

// A short page for a sign-in that went wrong: text only, nothing echoed.
void SetSignInFailure(httplib::Response& res, std::string_view why) {
  res.status = 400;
  res.set_header("Cache-Control", "no-store");
  res.set_content(StrCat("Sign-in failed: ", why, ".\nGo back to the console and try again.\n"),
                  "text/plain; charset=utf-8");
}

}  // namespace

absl::StatusOr<std::unique_ptr<ConsoleServer>> ConsoleServer::Start(const ConsoleOptions& options) {
  absl::StatusOr<HostPort> address = SplitHostPort(options.listen, "--listen");
  if (!address.ok()) return address.status();
  const bool https = !options.tls_cert.empty() || !options.tls_key.empty();
  if (https && (options.tls_cert.empty() || options.tls_key.empty())) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!https && !options.allow_insecure_remote && !IsLocalAddress(options.listen)) {
    return absl::InvalidArgumentError(
        "refusing plain HTTP beyond loopback on " + options.listen +
        ": people paste tokens into this page; give --tls-cert/--tls-key, or "
        "--allow-insecure-remote behind a TLS proxy");
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      ChannelCredentials(options.authority_tls);
  if (!credentials.ok()) return credentials.status();

  std::unique_ptr<ConsoleServer> self(new ConsoleServer());
  self->gateway_ =
      std::make_unique<AdminGateway>(grpc::CreateChannel(options.authority, *credentials));
  if (https) {
    auto server =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!server->is_valid()) {
      return absl::InvalidArgumentError("cannot load --tls-cert/--tls-key as a PEM pair");
    }
    self->server_ = std::move(server);
  } else {
    self->server_ = std::make_unique<httplib::Server>();
  }
  self->server_->set_default_headers(SecurityHeaders(https));
  self->server_->set_payload_max_length(options.max_body_bytes);
  self->Route();

  absl::StatusOr<int> port = Bind(self->server_.get(), *address, options.listen);
  if (!port.ok()) return port.status();
  self->port_ = *port;
  const bool v6 = absl::StrContains(address->host, ':');
  self->url_ = std::string(https ? "https://" : "http://") + (v6 ? "[" : "") + address->host +
               (v6 ? "]" : "") + ":" + std::to_string(self->port_) + "/";
  self->token_sign_in_ = options.token_sign_in;
  self->origin_ = self->url_.substr(0, self->url_.size() - 1);
  if (!options.oidc.issuer_url.empty()) {
    OidcClientOptions oidc = options.oidc;
    if (oidc.redirect_url.empty()) oidc.redirect_url = self->url_ + "oidc/callback";
    absl::StatusOr<HttpUrl> redirect = ParseHttpUrl(oidc.redirect_url);
    if (!redirect.ok() || redirect->path != "/oidc/callback") {
      return absl::InvalidArgumentError(
          "--oidc-redirect-url must be this console's URL with the path /oidc/callback");
    }
    // Behind a proxy the public origin is the redirect URL's.
    self->origin_ = redirect->web_origin();
    self->secure_cookie_ = https || redirect->tls;
    if (!options.oidc_client_secret_file.empty()) {
      absl::StatusOr<std::string> secret = ReadTokenFile(options.oidc_client_secret_file);
      if (!secret.ok()) return secret.status();
      oidc.client_secret = *std::move(secret);
    }
    absl::StatusOr<std::unique_ptr<OidcClient>> client = OidcClient::Create(std::move(oidc));
    if (!client.ok()) return client.status();
    self->sso_ = std::make_unique<SsoSessions>(*std::move(client));
    self->RouteSignIn();
  } else if (!options.token_sign_in) {
    return absl::InvalidArgumentError(
        "--token-sign-in=false needs SSO (--oidc-issuer-url): nobody could sign in");
  }
  self->thread_ = ServeInBackground(self->server_.get());
  return self;
}

void ConsoleServer::Route() {
  server_->Post(
      R"(/api/v1/([A-Za-z]+))", [this](const httplib::Request& req, httplib::Response& res) {
        // JSON only: a cross-site form cannot send it without the browser asking
        // first, and the token must come in a header anyway.
        if (!absl::StartsWith(req.get_header_value("Content-Type"), "application/json")) {
          SetJson(res, {415, R"({"code":"INVALID_ARGUMENT","message":"send application/json"})"});
          return;
        }
        absl::StatusOr<std::string> credential = Credential(req);
        if (!credential.ok()) {
          const bool forbidden = absl::IsPermissionDenied(credential.status());
          SetJson(res, Refusal(forbidden ? 403 : 401,
                               forbidden ? "PERMISSION_DENIED" : "UNAUTHENTICATED",
                               std::string(credential.status().message())));
          return;
        }
        SetJson(res, gateway_->Call(req.matches[1].str(), *credential, req.body));
      });
  // What the sign-in page offers.
  server_->Get("/oidc/config", [this](const httplib::Request&, httplib::Response& res) {
    SetJson(
        res,
        {200, nlohmann::json{{"sso", sso_ != nullptr}, {"tokenSignIn", token_sign_in_}}.dump()});
  });
  server_->Get(R"(/[A-Za-z0-9._-]*)", [](const httplib::Request& req, httplib::Response& res) {
    const WebAsset* asset = FindWebAsset(req.path);
    if (asset == nullptr) {
      res.status = 404;
      res.set_content("not found\n", "text/plain; charset=utf-8");
      return;
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_content(asset->body.data(), asset->body.size(), std::string(asset->content_type));
  });
  // What httplib answers itself (413 past the body limit, 404, 405) is JSON
  // under /api/ too, so the page always reads one shape.
  server_->set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || !absl::StartsWith(req.path, "/api/")) return;
    const char* code = res.status == 413   ? "RESOURCE_EXHAUSTED"
                       : res.status == 404 ? "NOT_FOUND"
                                           : "INVALID_ARGUMENT";
    SetJson(res, {res.status, std::string(R"({"code":")") + code + R"(","message":"HTTP )" +
                                  std::to_string(res.status) + "\"}"});
  });
  // One line per request, at debug: never a header or a body (tokens, keys).
  server_->set_logger([](const httplib::Request& req, const httplib::Response& res) {
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });
}

absl::StatusOr<std::string> ConsoleServer::Credential(const httplib::Request& req) {
  if (req.has_header("Authorization")) {
    if (!token_sign_in_) {
      return absl::UnauthenticatedError("signing in with a token is off here; sign in with SSO");
    }
    return req.get_header_value("Authorization");
  }
  const std::string cookie = CookieValue(req.get_header_value("Cookie"), kSessionCookie);
  if (sso_ == nullptr || cookie.empty()) return std::string();  // UNAUTHENTICATED at the gateway
  // The cookie rides every request to this origin, whoever's page sends it:
  // only this page's own requests may use it (SameSite=Strict aside).
  const std::string origin = req.get_header_value("Origin");
  const bool same_origin =
      origin.empty() ? req.get_header_value("Sec-Fetch-Site") == "same-origin" : origin == origin_;
  if (!same_origin) return absl::PermissionDeniedError("a request from another origin");
  absl::StatusOr<std::string> token = sso_->IdToken(cookie);
  if (!token.ok()) return token.status();
  return "Bearer " + *token;
}

void ConsoleServer::RouteSignIn() {
  server_->Get("/oidc/login", [this](const httplib::Request&, httplib::Response& res) {
    absl::StatusOr<SsoSessions::Started> started = sso_->Begin();
    if (!started.ok()) {
      SetSignInFailure(res, std::string(started.status().message()));
      res.status = 503;
      return;
    }
    res.set_header("Set-Cookie", StrCat(kSignInCookie, "=", started->state,
                                        "; Path=/oidc/callback; Max-Age=600; HttpOnly; "
                                        "SameSite=Lax",
                                        secure_cookie_ ? "; Secure" : ""));
    res.set_header("Cache-Control", "no-store");
    res.set_redirect(started->url);
  });
  server_->Get("/oidc/callback", [this](const httplib::Request& req, httplib::Response& res) {
    if (req.has_param("error")) {
      // The provider's error code (access_denied, ...) is safe to show.
      const std::string error = req.get_param_value("error").substr(0, 64);
      const bool plain = std::all_of(error.begin(), error.end(),
                                     [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
      SetSignInFailure(res, StrCat("the identity provider answered ", plain ? error : "an error"));
      return;
    }
    // A callback link made by someone else (login CSRF: it would sign this
    // browser in as them) lacks this browser's own sign-in cookie.
    const std::string state = req.get_param_value("state");
    if (state.empty() || CookieValue(req.get_header_value("Cookie"), kSignInCookie) != state) {
      SetSignInFailure(res, "this sign-in was not started in this browser");
      return;
    }
    absl::StatusOr<std::string> cookie = sso_->Finish(state, req.get_param_value("code"));
    if (!cookie.ok()) {
      SetSignInFailure(res, std::string(cookie.status().message()));
      return;
    }
    res.headers.emplace("Set-Cookie",
                        StrCat(kSessionCookie, "=", *cookie, "; Path=/; HttpOnly; SameSite=Strict",
                               secure_cookie_ ? "; Secure" : ""));
    res.headers.emplace("Set-Cookie", StrCat(kSignInCookie, "=; Path=/oidc/callback; Max-Age=0"));
    res.set_header("Cache-Control", "no-store");
    res.set_redirect("/");
  });
  server_->Post("/oidc/sign-out", [this](const httplib::Request& req, httplib::Response& res) {
    const std::string origin = req.get_header_value("Origin");
    if (origin != origin_ && req.get_header_value("Sec-Fetch-Site") != "same-origin") {
      SetJson(res, Refusal(403, "PERMISSION_DENIED", "a request from another origin"));
      return;
    }
    sso_->End(CookieValue(req.get_header_value("Cookie"), kSessionCookie));
    res.set_header("Set-Cookie", StrCat(kSessionCookie,
                                        "=; Path=/; Max-Age=0; HttpOnly; "
                                        "SameSite=Strict",
                                        secure_cookie_ ? "; Secure" : ""));
    SetJson(res, {200, "{}"});
  });
}

ConsoleServer::~ConsoleServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace latchkey::console
