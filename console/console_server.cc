#include "console/console_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "common/http.h"
#include "common/net.h"
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
        SetJson(res, gateway_->Call(req.matches[1].str(), req.get_header_value("Authorization"),
                                    req.body));
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

ConsoleServer::~ConsoleServer() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace latchkey::console
