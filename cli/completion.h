// Shell completion for latchkeyctl, generated from its own command tree so
// it never falls behind a new subcommand or option.
#ifndef LATCHKEY_CLI_COMPLETION_H_
#define LATCHKEY_CLI_COMPLETION_H_

#include <CLI/CLI.hpp>
#include <string>

namespace latchkey::cli {

// A bash script defining and registering `_<name>` for `app`: it completes
// subcommands at every level and the options each one takes (global options
// everywhere, since they fall through).
std::string BashCompletion(const CLI::App& app);

}  // namespace latchkey::cli

#endif  // LATCHKEY_CLI_COMPLETION_H_
