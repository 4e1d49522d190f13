#include "cli/completion.h"

#include <sstream>
#include <vector>

namespace latchkey::cli {
namespace {

// Long and short option names of `app` itself ("--name", "-o").
std::vector<std::string> OptionWords(const CLI::App& app) {
  std::vector<std::string> words;
  for (const CLI::Option* opt : app.get_options()) {
    for (const std::string& l : opt->get_lnames()) words.push_back("--" + l);
    for (const std::string& s : opt->get_snames()) words.push_back("-" + s);
  }
  return words;
}

// One case arm per command path ("/key/list"): its subcommands and options.
void AddCases(const CLI::App& app, const std::string& path, const std::vector<std::string>& global,
              std::ostringstream& cases, std::ostringstream& paths) {
  std::vector<std::string> words = OptionWords(app);
  if (!path.empty()) words.insert(words.end(), global.begin(), global.end());
  for (const CLI::App* sub : app.get_subcommands({})) words.push_back(sub->get_name());
  cases << "    \"" << path << "\") words=\"";
  for (size_t i = 0; i < words.size(); ++i) cases << (i ? " " : "") << words[i];
  cases << "\" ;;\n";
  for (const CLI::App* sub : app.get_subcommands({})) {
    const std::string sub_path = path + "/" + sub->get_name();
    paths << (paths.tellp() > 0 ? "|" : "") << "\"" << sub_path << "\"";
    AddCases(*sub, sub_path, global, cases, paths);
  }
}

}  // namespace

std::string BashCompletion(const CLI::App& app) {
  const std::string name = app.get_name().empty() ? "latchkeyctl" : app.get_name();
  std::vector<std::string> global;  // every level offers these, but --help is its own
  for (const std::string& w : OptionWords(app)) {
    if (w != "--help" && w != "-h") global.push_back(w);
  }
  std::ostringstream cases, paths;
  AddCases(app, "", global, cases, paths);
  std::ostringstream out;
  out << "# bash completion for " << name << ": source <(" << name << " completion bash)\n"
      << "_" << name << "() {\n"
      << "  local cur=${COMP_WORDS[COMP_CWORD]} path= word words\n"
      << "  for word in \"${COMP_WORDS[@]:1:COMP_CWORD-1}\"; do\n"
      << "    case \"$path/$word\" in\n"
      << "      " << paths.str() << ") path=$path/$word ;;\n"
      << "    esac\n"
      << "  done\n"
      << "  case \"$path\" in\n"
      << cases.str() << "  esac\n"
      << "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
      << "}\n"
      << "complete -F _" << name << " " << name << "\n";
  return out.str();
}

}  // namespace latchkey::cli
