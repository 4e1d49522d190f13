// Listen addresses: "host:port" for TCP or "unix:/path" for a unix socket.
#ifndef LATCHKEY_COMMON_NET_H_
#define LATCHKEY_COMMON_NET_H_

#include <string>
#include <string_view>

namespace latchkey {

// True for unix sockets and for 127.0.0.0/8, [::1] and "localhost" hosts.
bool IsLocalAddress(std::string_view listen);

// True when `listen` names a unix socket ("unix:/path" or "unix:path").
bool IsUnixAddress(std::string_view listen);

}  // namespace latchkey

#endif  // LATCHKEY_COMMON_NET_H_
