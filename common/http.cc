#include "common/http.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace latchkey {

std::string HttpUrl::origin() const {
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(port);
}

std::string HttpUrl::web_origin() const {
  const bool default_port = port == (tls ? 443 : 80);
  return (tls ? "https://" : "http://") + absl::AsciiStrToLower(host) +
         (default_port ? "" : ":" + std::to_string(port));
}

bool HttpUrl::local() const {
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  return IsLoopbackHost(bracketed ? host.substr(1, host.size() - 2) : host);
}

absl::StatusOr<HttpUrl> ParseHttpUrl(std::string_view url) {
  HttpUrl out;
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError("a URL holds no spaces or control characters");
    }
  }
  // Schemes compare without case (RFC 3986, 3.1).
  auto scheme = [&](std::string_view s) {
    return url.size() >= s.size() && absl::EqualsIgnoreCase(absl::string_view(url.data(), s.size()),
                                                            absl::string_view(s.data(), s.size()));
  };
  std::string_view rest;
  if (scheme("https://")) {
    out.tls = true;
    rest = url.substr(8);
  } else if (scheme("http://")) {
    rest = url.substr(7);
  } else {
    return absl::InvalidArgumentError("a URL starts with https:// (or http://)");
  }
  if (rest.find('#') != std::string_view::npos) {
    return absl::InvalidArgumentError("a URL here has no #fragment");
  }
  const size_t slash = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.path.front() == '?') out.path.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) {
    return absl::InvalidArgumentError("a URL here holds no user name or password");
  }
  out.port = out.tls ? 443 : 80;
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    std::string_view port = authority.substr(colon + 1);
    int n = 0;
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        (n = std::stoi(std::string(port))) < 1 || n > 65535) {
      return absl::InvalidArgumentError("a URL's port is a number from 1 to 65535");
    }
    out.port = n;
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return absl::InvalidArgumentError("a URL names a host");
  // A name or IPv4 address, or an IPv6 address in brackets.
  const bool v6 = authority.front() == '[';
  const std::string_view inside = v6 ? authority.substr(1, authority.size() - 2) : authority;
  const bool well_formed = (!v6 || (authority.size() > 2 && authority.back() == ']')) &&
                           !inside.empty() &&
                           std::all_of(inside.begin(), inside.end(), [v6](char c) {
                             return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                                    c == '.' || (v6 ? c == ':' : c == '-');
                           });
  if (!well_formed) {
    return absl::InvalidArgumentError(
        "a URL's host is a name, an IPv4 address or an IPv6 address in brackets");
  }
  out.host = std::string(authority);
  return out;
}

std::thread ServeInBackground(httplib::Server* server) {
  auto returned = std::make_shared<std::atomic<bool>>(false);  // the loop ended on its own
  std::thread thread([server, returned] {
    server->listen_after_bind();
    returned->store(true);
  });
  while (!server->is_running() && !returned->load()) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return thread;
}

absl::StatusOr<int> Bind(httplib::Server* server, const HostPort& at, std::string_view address) {
  const int port = at.port == 0 ? server->bind_to_any_port(at.host)
                                : (server->bind_to_port(at.host, at.port) ? at.port : -1);
  if (port <= 0) return absl::UnavailableError("cannot listen on " + std::string(address));
  return port;
}

}  // namespace latchkey
