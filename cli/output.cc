#include "cli/output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <ostream>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/time_util.h"

namespace latchkey::cli {
namespace {

// Display width: UTF-8 continuation bytes take no column.
size_t Width(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

std::string StateName(const v1::Key& key) {
  const char* leaked = key.has_leaked_time() ? " (LEAKED)" : "";
  if (key.state() == v1::KEY_STATE_REVOKED) return std::string("REVOKED") + leaked;
  if (key.has_expire_time() && FromProto(key.expire_time()) <= absl::Now()) {
    return std::string("EXPIRED") + leaked;
  }
  return std::string("ACTIVE") + leaked;
}

}  // namespace

void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size());
  for (size_t i = 0; i < header.size(); ++i) widths[i] = Width(header[i]);
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], Width(row[i]));
    }
  }
  auto line = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < cells.size(); ++i) {
      out << cells[i];
      if (i + 1 < cells.size()) out << std::string(widths[i] - Width(cells[i]) + 2, ' ');
    }
    out << "\n";
  };
  line(header);
  for (const auto& row : rows) line(row);
}

void PrintJson(std::ostream& out, const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = false;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) json = "{}";
  out << json;
  if (json.empty() || json.back() != '\n') out << "\n";
}

void PrintJsonLine(std::ostream& out, const google::protobuf::Message& message) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(message, &json).ok()) json = "{}";
  out << json << "\n";
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%SZ", FromProto(t), absl::UTCTimeZone());
}

std::vector<std::string> KeyHeader() {
  return {"KEY ID",     "KIND",    "NAME",        "STATE",     "HINT",
          "CREATED BY", "CREATED", "LAST ACTION", "LAST USED", "EXPIRES"};
}

std::vector<std::string> KeyRow(const v1::Key& key) {
  std::string kind = key.kind() == v1::SECRET_KEY ? "secret" : "api";
  if (key.legacy()) kind += " (legacy)";
  const v1::KeyAction& last = key.last_action();
  return {key.key_id(),
          kind,
          key.name(),
          StateName(key),
          key.hint(),
          key.created_by(),
          FormatTime(key.create_time()),
          last.action() + " by " + last.actor() + " " + FormatTime(last.time()),
          FormatTime(key.last_used_time()),
          FormatTime(key.expire_time())};
}

std::vector<std::string> ProjectHeader() {
  return {"PROJECT ID", "NAME", "API ACCESS", "LEAK POLICY", "LEGACY KEY", "CREATED BY", "CREATED"};
}

std::vector<std::string> ProjectRow(const v1::Project& p) {
  return {p.project_id(),
          p.name(),
          p.api_access_enabled() ? "enabled" : "DISABLED",
          p.leak_policy() == v1::LEAK_POLICY_REVOKE ? "revoke" : "notify",
          p.legacy_key_id(),
          p.created_by(),
          FormatTime(p.create_time())};
}

}  // namespace latchkey::cli
