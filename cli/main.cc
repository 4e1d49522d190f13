// latchkeyctl: the admin command line over KeyAdmin.
#include <CLI/CLI.hpp>
#include <cstdlib>

#include "cli/ctl.h"

namespace {

using latchkey::cli::Ctl;
using latchkey::cli::Format;
using latchkey::cli::Globals;
using latchkey::cli::KeyOptions;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  Globals g;
  g.authority = Env("LATCHKEY_AUTHORITY", g.authority);
  g.token = Env("LATCHKEY_TOKEN", "");
  g.token_file = Env("LATCHKEY_TOKEN_FILE", g.token_file);
  std::string output = "table";

  CLI::App app{"latchkeyctl: administer latchkey projects, keys and principals"};
  app.require_subcommand(1);
  app.add_option("--authority", g.authority, "authority address [env LATCHKEY_AUTHORITY]")
      ->capture_default_str();
  app.add_option("--token-file", g.token_file,
                 "file holding your token (LATCHKEY_TOKEN, when set, wins)")
      ->capture_default_str();
  app.add_option("--authority-ca", g.tls.ca, "PEM CA to verify the authority (enables TLS)");
  app.add_option("--tls-cert", g.tls.cert, "PEM client certificate (mTLS)");
  app.add_option("--tls-key", g.tls.key, "PEM private key for --tls-cert");
  app.add_option("--output,-o", output, "table or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));

  std::function<int(Ctl&)> run;
  std::string a, b;  // positional arguments of the chosen subcommand
  KeyOptions key;
  std::string grace, confirm, role, sidecar = "127.0.0.1:7710", wait;
  uint64_t revision = 0;
  auto key_options = [&](CLI::App* c) {
    c->add_option("--name", key.name, "what the key is for (1-100 characters)")->required();
    c->add_option("--expires-in", key.expire_in, "e.g. 90m, 720h, 30d");
    c->add_option("--expires-at", key.expire_at, "RFC 3339, e.g. 2027-01-31T00:00:00Z");
  };

  auto* project = app.add_subcommand("project", "create, list, inspect, disable, enable projects");
  project->require_subcommand(1);
  auto* pc = project->add_subcommand("create", "create a project and its legacy API key");
  pc->add_option("NAME", a)->required();
  pc->callback([&] { run = [&](Ctl& c) { return c.ProjectCreate(a); }; });
  project->add_subcommand("list", "list projects")->callback([&] {
    run = [](Ctl& c) { return c.ProjectList(); };
  });
  auto* pg = project->add_subcommand("get", "show a project");
  pg->add_option("PROJECT_ID", a)->required();
  pg->callback([&] { run = [&](Ctl& c) { return c.ProjectGet(a); }; });
  auto* pd = project->add_subcommand("disable", "make every key of the project fail validation");
  pd->add_option("PROJECT_ID", a)->required();
  pd->callback([&] { run = [&](Ctl& c) { return c.ProjectSetAccess(a, false); }; });
  auto* pe = project->add_subcommand("enable", "re-enable API access");
  pe->add_option("PROJECT_ID", a)->required();
  pe->callback([&] { run = [&](Ctl& c) { return c.ProjectSetAccess(a, true); }; });

  auto* k = app.add_subcommand("key", "API keys: generate, list, copy, revoke, rotate");
  k->require_subcommand(1);
  auto* kg = k->add_subcommand("generate", "generate an API key");
  kg->add_option("PROJECT_ID", a)->required();
  key_options(kg);
  kg->callback([&] { run = [&](Ctl& c) { return c.KeyGenerate(a, key); }; });
  auto* kl = k->add_subcommand("list", "list a project's keys (API and secret)");
  kl->add_option("PROJECT_ID", a)->required();
  kl->callback([&] { run = [&](Ctl& c) { return c.KeyList(a); }; });
  auto* kget = k->add_subcommand("get", "show one key: creator, last action, last use");
  kget->add_option("KEY_ID", a)->required();
  kget->callback([&] { run = [&](Ctl& c) { return c.KeyGet(a); }; });
  auto* kv = k->add_subcommand("value", "print an API key's value (MANAGER or ADMIN)");
  kv->add_option("KEY_ID", a)->required();
  kv->callback([&] { run = [&](Ctl& c) { return c.KeyValue(a); }; });
  auto* kr = k->add_subcommand("revoke", "revoke an API key for good");
  kr->add_option("KEY_ID", a)->required();
  auto* wait_opt =
      kr->add_option("--wait", wait, "wait until every connected sidecar applied it (default 5s)")
          ->expected(0, 1)
          ->default_str("5s");
  kr->callback([&] {
    run = [&](Ctl& c) {
      std::optional<absl::Duration> timeout;
      if (wait_opt->count() > 0) {
        absl::Duration d;
        if (!absl::ParseDuration(wait, &d)) {
          std::cerr << "error: --wait takes a duration such as 5s or 500ms\n";
          return 2;
        }
        timeout = d;
      }
      return c.KeyRevoke(a, timeout);
    };
  });
  auto* kro = k->add_subcommand("rotate", "give an API key (the legacy one too) a new value");
  kro->add_option("KEY_ID", a)->required();
  kro->add_option("--grace", grace, "the old value keeps working this long (at most 7d)");
  kro->callback([&] { run = [&](Ctl& c) { return c.KeyRotate(a, grace); }; });

  auto* s = app.add_subcommand("secret", "secret keys: generate, delete");
  s->require_subcommand(1);
  auto* sg = s->add_subcommand("generate", "generate a secret key (shown once)");
  sg->add_option("PROJECT_ID", a)->required();
  key_options(sg);
  sg->callback([&] { run = [&](Ctl& c) { return c.SecretGenerate(a, key); }; });
  auto* sd = s->add_subcommand("delete", "delete a secret key (asks you to type DELETE)");
  sd->add_option("KEY_ID", a)->required();
  sd->add_option("--confirm", confirm, "DELETE, to skip the prompt");
  sd->callback([&] { run = [&](Ctl& c) { return c.SecretDelete(a, confirm); }; });

  auto* au = app.add_subcommand("audit", "a project's audit log (no id: principal changes)");
  au->add_option("PROJECT_ID", a);
  au->callback([&] { run = [&](Ctl& c) { return c.Audit(a); }; });

  auto* pr = app.add_subcommand("principal", "who may call the authority (ADMIN only)");
  pr->require_subcommand(1);
  auto* prc = pr->add_subcommand("create", "create a principal; prints its token once");
  prc->add_option("NAME", a)->required();
  prc->add_option("--role", role, "ADMIN, MANAGER, MEMBER or SIDECAR")->required();
  prc->callback([&] { run = [&](Ctl& c) { return c.PrincipalCreate(a, role); }; });
  pr->add_subcommand("list", "list principals")->callback([&] {
    run = [](Ctl& c) { return c.PrincipalList(); };
  });
  auto* prd = pr->add_subcommand("delete", "delete a principal; its token stops working");
  prd->add_option("PRINCIPAL_ID", a)->required();
  prd->callback([&] { run = [&](Ctl& c) { return c.PrincipalDelete(a); }; });

  app.add_subcommand("whoami", "the principal your token belongs to, and its role")->callback([&] {
    run = [](Ctl& c) { return c.WhoAmI(); };
  });

  auto* pp = app.add_subcommand("propagation", "which sidecars applied a revision");
  pp->add_option("REVISION", revision)->required();
  pp->callback([&] { run = [&](Ctl& c) { return c.Propagation(revision); }; });

  auto* v = app.add_subcommand("validate", "ask a sidecar about a key (exit 4 unless VALID)");
  v->add_option("KEY", a)->required();
  v->add_option("--sidecar", sidecar, "sidecar address")->capture_default_str();
  v->callback([&] { run = [&](Ctl& c) { return c.Validate(a, sidecar); }; });

  auto* h = app.add_subcommand("health", "gRPC health of a daemon (exit 0 when SERVING)");
  h->add_option("ADDRESS", a, "host:port or unix:/path")->required();
  h->callback([&] { run = [&](Ctl& c) { return c.Health(a); }; });

  CLI11_PARSE(app, argc, argv);
  g.format = output == "json" ? Format::kJson : Format::kTable;
  Ctl ctl(g);
  return run(ctl);
}
