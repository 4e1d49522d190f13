// How latchkeyctl prints: aligned tables for people, JSON for scripts.
#ifndef LATCHKEY_CLI_OUTPUT_H_
#define LATCHKEY_CLI_OUTPUT_H_

#include <google/protobuf/message.h>

#include <iosfwd>
#include <string>
#include <vector>

#include "latchkey/v1/resources.pb.h"

namespace latchkey::cli {

enum class Format { kTable, kJson };

// Rows of cells under a header, columns padded to their widest cell.
void PrintTable(std::ostream& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);

// The message as JSON (protobuf's mapping: lowerCamelCase names, enums by name).
void PrintJson(std::ostream& out, const google::protobuf::Message& message);

// The message as JSON on one line, for streams of records (JSON lines).
void PrintJsonLine(std::ostream& out, const google::protobuf::Message& message);

// "2026-11-26 06:28:47Z", or "-" when unset.
std::string FormatTime(const google::protobuf::Timestamp& t);

std::vector<std::string> KeyHeader();
std::vector<std::string> KeyRow(const v1::Key& key);
std::vector<std::string> ProjectHeader();
std::vector<std::string> ProjectRow(const v1::Project& p);

}  // namespace latchkey::cli

#endif  // LATCHKEY_CLI_OUTPUT_H_
