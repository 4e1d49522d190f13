// latchkeyctl: the admin command line over KeyAdmin.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "cli/completion.h"
#include "cli/ctl.h"
#include "cli/login.h"
#include "common/crash.h"
#include "common/time_util.h"

namespace {

using latchkey::cli::Ctl;
using latchkey::cli::Format;
using latchkey::cli::Globals;
using latchkey::cli::KeyOptions;

std::string Env(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : fallback;
}

// A subcommand whose --help ends with an example of its use.
CLI::App* Command(CLI::App* parent, const std::string& name, const std::string& description,
                  const std::string& example) {
  CLI::App* c = parent->add_subcommand(name, description);
  c->footer("\nExample:\n  " + example);
  return c;
}

// Parses a --wait value ("5s", "500ms"); nullopt with a message when malformed.
std::optional<absl::Duration> WaitFor(const std::string& text) {
  std::optional<absl::Duration> d = latchkey::ParseDuration(text);
  if (d && *d >= absl::ZeroDuration()) return d;
  std::cerr << "error: --wait takes a duration such as 5s or 500ms\n";
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  latchkey::ReportCrashes(argv[0]);
  Globals g;
  g.authority = Env("LATCHKEY_AUTHORITY", g.authority);
  g.token = Env("LATCHKEY_TOKEN", "");
  g.token_file = Env("LATCHKEY_TOKEN_FILE", g.token_file);
  g.token_file_given = std::getenv("LATCHKEY_TOKEN_FILE") != nullptr;
  g.credentials_path = latchkey::cli::CredentialsPath();
  std::string output = "table";

  CLI::App app{"latchkeyctl: administer latchkey projects, keys and principals"};
  app.name("latchkeyctl");
  app.require_subcommand(1);
  app.fallthrough();  // global options work after the subcommand too
  app.footer(
      "\nExample:\n  latchkeyctl project create \"Web shop\"\n"
      "  latchkeyctl key list prj_3f9a0c2b7d1e -o json");
  app.add_option("--authority", g.authority, "authority address [env LATCHKEY_AUTHORITY]")
      ->capture_default_str();
  app.add_option("--token-file", g.token_file,
                 "file holding your token (LATCHKEY_TOKEN, when set, wins; without either, "
                 "the sign-in of `latchkeyctl login`)")
      ->capture_default_str()
      ->each([&g](const std::string&) { g.token_file_given = true; });
  app.add_option("--authority-ca", g.tls.ca, "PEM CA to verify the authority (enables TLS)");
  app.add_option("--tls-cert", g.tls.cert, "PEM client certificate (mTLS)");
  app.add_option("--tls-key", g.tls.key, "PEM private key for --tls-cert");
  app.add_option("--output,-o", output, "table or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));

  std::function<int(Ctl&)> run;
  std::string a;  // the positional argument of the chosen subcommand
  KeyOptions key;
  std::string grace, confirm, role, sidecar = "127.0.0.1:7710", wait = "5s", unused, value_file;
  std::string interval = "1s";
  bool follow = false, revoke = false;
  uint64_t revision = 0;
  auto key_options = [&](CLI::App* c) {
    c->add_option("--name", key.name, "what the key is for (1-100 characters)")->required();
    c->add_option("--expires-in", key.expire_in, "e.g. 90m, 720h, 30d");
    c->add_option("--expires-at", key.expire_at, "RFC 3339, e.g. 2027-01-31T00:00:00Z");
  };

  auto* project = Command(&app, "project",
                          "create, list, inspect, disable, enable projects; set their leak policy",
                          "latchkeyctl project create \"Web shop\"");
  project->require_subcommand(1);
  auto* pc = Command(project, "create", "create a project and its legacy API key",
                     "latchkeyctl project create \"Web shop\"");
  pc->add_option("NAME", a)->required();
  pc->callback([&] { run = [&](Ctl& c) { return c.ProjectCreate(a); }; });
  Command(project, "list", "list projects", "latchkeyctl project list -o json")->callback([&] {
    run = [](Ctl& c) { return c.ProjectList(); };
  });
  auto* pg = Command(project, "get", "show a project", "latchkeyctl project get prj_3f9a0c2b7d1e");
  pg->add_option("PROJECT_ID", a)->required();
  pg->callback([&] { run = [&](Ctl& c) { return c.ProjectGet(a); }; });
  auto* pd = Command(project, "disable", "make every key of the project fail validation",
                     "latchkeyctl project disable prj_3f9a0c2b7d1e");
  pd->add_option("PROJECT_ID", a)->required();
  pd->callback([&] { run = [&](Ctl& c) { return c.ProjectSetAccess(a, false); }; });
  auto* pe = Command(project, "enable", "re-enable API access",
                     "latchkeyctl project enable prj_3f9a0c2b7d1e");
  pe->add_option("PROJECT_ID", a)->required();
  pe->callback([&] { run = [&](Ctl& c) { return c.ProjectSetAccess(a, true); }; });
  std::string policy;
  auto* pl = Command(project, "set-leak-policy",
                     "what a key value GitHub finds in public does: notify (record it) or "
                     "revoke (record it and stop the value)",
                     "latchkeyctl project set-leak-policy prj_3f9a0c2b7d1e revoke");
  pl->add_option("PROJECT_ID", a)->required();
  pl->add_option("POLICY", policy, "notify or revoke")
      ->required()
      ->check(CLI::IsMember({"notify", "revoke"}));
  pl->callback([&] { run = [&](Ctl& c) { return c.ProjectSetLeakPolicy(a, policy); }; });

  auto* k = Command(&app, "key", "API keys: generate, list, copy, revoke, rotate, find",
                    "latchkeyctl key revoke key_0Hs2k9LmQx7Tb1Ze --wait");
  k->require_subcommand(1);
  auto* kg =
      Command(k, "generate", "generate an API key",
              "latchkeyctl key generate prj_3f9a0c2b7d1e --name \"iOS app\" --expires-in 90d");
  kg->add_option("PROJECT_ID", a)->required();
  key_options(kg);
  kg->callback([&] { run = [&](Ctl& c) { return c.KeyGenerate(a, key); }; });
  auto* kl = Command(k, "list", "list a project's keys (API and secret)",
                     "latchkeyctl key list prj_3f9a0c2b7d1e --unused 30d");
  kl->add_option("PROJECT_ID", a)->required();
  kl->add_option("--unused", unused,
                 "only active keys not used within this long (never-used keys older than it too), "
                 "e.g. 30d");
  kl->callback([&] { run = [&](Ctl& c) { return c.KeyList(a, unused); }; });
  auto* kget = Command(k, "get", "show one key: creator, last action, last use, who still sends it",
                       "latchkeyctl key get key_0Hs2k9LmQx7Tb1Ze");
  kget->add_option("KEY_ID", a)->required();
  kget->callback([&] { run = [&](Ctl& c) { return c.KeyGet(a); }; });
  auto* kv = Command(k, "value", "print an API key's value (MANAGER or ADMIN)",
                     "latchkeyctl key value key_0Hs2k9LmQx7Tb1Ze");
  kv->add_option("KEY_ID", a)->required();
  kv->callback([&] { run = [&](Ctl& c) { return c.KeyValue(a); }; });
  auto* kr = Command(k, "revoke", "revoke an API key for good",
                     "latchkeyctl key revoke key_0Hs2k9LmQx7Tb1Ze --wait");
  kr->add_option("KEY_ID", a)->required();
  auto* wait_opt =
      kr->add_option("--wait", wait, "wait until every connected sidecar applied it (default 5s)")
          ->expected(0, 1)
          ->default_str("5s");
  kr->callback([&] {
    run = [&](Ctl& c) {
      std::optional<absl::Duration> timeout;
      if (wait_opt->count() > 0) {
        timeout = WaitFor(wait);
        if (!timeout) return 2;
      }
      return c.KeyRevoke(a, timeout);
    };
  });
  auto* kro = Command(k, "rotate", "give an API key (the legacy one too) a new value",
                      "latchkeyctl key rotate key_0Hs2k9LmQx7Tb1Ze --grace 24h");
  kro->add_option("KEY_ID", a)->required();
  kro->add_option("--grace", grace, "the old value keeps working this long (at most 7d)");
  kro->callback([&] { run = [&](Ctl& c) { return c.KeyRotate(a, grace); }; });
  auto* kf =
      Command(k, "find", "which key a leaked value belongs to; reads the value from standard input",
              "pbpaste | latchkeyctl key find --revoke");
  kf->add_option("--value-file", value_file, "read the value from this file instead of stdin");
  kf->add_flag("--revoke", revoke, "revoke it too (an API key) and wait for the receipt");
  kf->add_option("--wait", wait, "with --revoke: how long to wait for every sidecar")
      ->capture_default_str();
  kf->callback([&] {
    run = [&](Ctl& c) {
      std::optional<absl::Duration> timeout = WaitFor(wait);
      if (!timeout) return 2;
      return c.KeyFind(std::cin, value_file, revoke, *timeout);
    };
  });

  auto* s = Command(&app, "secret", "secret keys: generate, delete",
                    "latchkeyctl secret generate prj_3f9a0c2b7d1e --name exports");
  s->require_subcommand(1);
  auto* sg = Command(s, "generate", "generate a secret key (shown once)",
                     "latchkeyctl secret generate prj_3f9a0c2b7d1e --name exports");
  sg->add_option("PROJECT_ID", a)->required();
  key_options(sg);
  sg->callback([&] { run = [&](Ctl& c) { return c.SecretGenerate(a, key); }; });
  auto* sd = Command(s, "delete", "delete a secret key (asks you to type DELETE)",
                     "latchkeyctl secret delete key_0Hs2k9LmQx7Tb1Ze");
  sd->add_option("KEY_ID", a)->required();
  sd->add_option("--confirm", confirm, "DELETE, to skip the prompt");
  sd->callback([&] { run = [&](Ctl& c) { return c.SecretDelete(a, confirm); }; });

  auto* au = Command(&app, "audit", "a project's audit log (no id: principal changes, lookups)",
                     "latchkeyctl audit prj_3f9a0c2b7d1e --follow -o json >> audit.jsonl");
  au->add_option("PROJECT_ID", a);
  au->add_flag("--follow,-f", follow,
               "keep printing new events as they are committed (JSON lines with -o json)");
  au->add_option("--interval", interval, "with --follow: how often to ask")->capture_default_str();
  au->callback([&] {
    run = [&](Ctl& c) {
      if (!follow) return c.Audit(a);
      std::optional<absl::Duration> every = latchkey::ParseDuration(interval);
      if (!every || *every <= absl::ZeroDuration()) {
        std::cerr << "error: --interval takes a duration such as 1s or 200ms\n";
        return 2;
      }
      return c.AuditFollow(a, *every, [] { return false; });
    };
  });

  auto* pr = Command(&app, "principal", "who may call the authority (ADMIN only)",
                     "latchkeyctl principal create ci --role MANAGER");
  pr->require_subcommand(1);
  auto* prc = Command(pr, "create", "create a principal; prints its token once",
                      "latchkeyctl principal create ci --role MANAGER");
  prc->add_option("NAME", a)->required();
  prc->add_option("--role", role, "ADMIN, MANAGER, MEMBER or SIDECAR")->required();
  prc->callback([&] { run = [&](Ctl& c) { return c.PrincipalCreate(a, role); }; });
  Command(pr, "list", "list principals", "latchkeyctl principal list")->callback([&] {
    run = [](Ctl& c) { return c.PrincipalList(); };
  });
  auto* prd = Command(pr, "delete", "delete a principal; its token stops working",
                      "latchkeyctl principal delete prn_7Qm2xZ0aLk4s");
  prd->add_option("PRINCIPAL_ID", a)->required();
  prd->callback([&] { run = [&](Ctl& c) { return c.PrincipalDelete(a); }; });

  auto* wh = Command(&app, "webhook", "push key events to a URL, signed (ADMIN only)",
                     "latchkeyctl webhook create https://hooks.example.com/latchkey "
                     "--events key.revoked,key.leaked");
  wh->require_subcommand(1);
  std::string events, webhook_project, webhook_format = "json";
  auto* whc = Command(wh, "create", "register a URL for events; prints its signing secret once",
                      "latchkeyctl webhook create https://hooks.slack.com/services/T0/B0/XYZ "
                      "--events key.leaked --format slack");
  whc->add_option("URL", a, "https://..., or http:// to a loopback address")->required();
  whc->add_option("--events", events,
                  "comma-separated: key.created, key.revoked, key.rotated, key.deleted, "
                  "key.leaked, key.expiring, project.api_access_changed, "
                  "key.rejected_after_revocation")
      ->required();
  whc->add_option("--project", webhook_project, "only this project's events (default: all)");
  whc->add_option("--format", webhook_format, "json or slack")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "slack"}));
  whc->callback([&] {
    run = [&](Ctl& c) { return c.WebhookCreate(a, events, webhook_project, webhook_format); };
  });
  Command(wh, "list", "list webhooks and how their deliveries stand", "latchkeyctl webhook list")
      ->callback([&] { run = [](Ctl& c) { return c.WebhookList(); }; });
  auto* whd = Command(wh, "delete", "delete a webhook; nothing more is sent to it",
                      "latchkeyctl webhook delete whk_4cT9aQ2mZx8LpW1e");
  whd->add_option("WEBHOOK_ID", a)->required();
  whd->callback([&] { run = [&](Ctl& c) { return c.WebhookDelete(a); }; });
  auto* whl = Command(wh, "deliveries", "the latest delivery attempts, newest first",
                      "latchkeyctl webhook deliveries whk_4cT9aQ2mZx8LpW1e");
  whl->add_option("WEBHOOK_ID", a)->required();
  whl->callback([&] { run = [&](Ctl& c) { return c.WebhookDeliveries(a); }; });
  auto* wht = Command(wh, "test", "send a ping event now (exit 1 unless answered 2xx)",
                      "latchkeyctl webhook test whk_4cT9aQ2mZx8LpW1e");
  wht->add_option("WEBHOOK_ID", a)->required();
  wht->callback([&] { run = [&](Ctl& c) { return c.WebhookTest(a); }; });

  auto* ro = Command(&app, "role", "roles for principals, OIDC users and groups (ADMIN only)",
                     "latchkeyctl role bind --group platform --role ADMIN");
  ro->require_subcommand(1);
  Ctl::RoleSubject who;
  std::string role_project;
  auto* rob = Command(ro, "bind", "give a role organization-wide, or in one project with --project",
                      "latchkeyctl role bind --user bob@example.com --project prj_8fK2mQ9xLp3a "
                      "--role MANAGER");
  auto* subject = rob->add_option_group("who", "exactly one of");
  subject->add_option("--principal", who.principal, "a principal's name");
  subject->add_option("--user", who.user, "an OIDC username (its --oidc-username-claim)");
  subject->add_option("--group", who.group, "an OIDC group (in its --oidc-groups-claim)");
  subject->require_option(1);
  rob->add_option("--role", role, "ADMIN, MANAGER or MEMBER")->required();
  rob->add_option("--project", role_project, "only in this project (default: everywhere)");
  rob->callback([&] { run = [&](Ctl& c) { return c.RoleBind(who, role, role_project); }; });
  auto* rol = Command(ro, "list", "list role bindings", "latchkeyctl role list");
  rol->add_option("--project", role_project, "only the bindings in this project");
  rol->callback([&] { run = [&](Ctl& c) { return c.RoleList(role_project); }; });
  auto* rou = Command(ro, "unbind", "delete a role binding; the role it gave is gone at once",
                      "latchkeyctl role unbind rb_4cT9aQ2mZx8L");
  rou->add_option("BINDING_ID", a)->required();
  rou->callback([&] { run = [&](Ctl& c) { return c.RoleUnbind(a); }; });

  std::string issuer, client_id, idp_ca;
  bool no_browser = false;
  auto* li = Command(&app, "login",
                     "sign in with your identity provider (OIDC); later commands act as you",
                     "latchkeyctl login --issuer https://login.example.com --client-id latchkey");
  li->add_option("--issuer", issuer, "the authority's --oidc-issuer-url (default: the last one)");
  li->add_option("--client-id", client_id,
                 "the authority's --oidc-client-id (default: the last one)");
  li->add_option("--ca-file", idp_ca, "PEM CA certificates to trust for the issuer");
  li->add_flag("--no-browser", no_browser, "print the URL to visit; open no browser");
  li->callback(
      [&] { run = [&](Ctl& c) { return c.Login(issuer, client_id, idp_ca, no_browser); }; });
  Command(&app, "logout", "forget the sign-in of latchkeyctl login", "latchkeyctl logout")
      ->callback([&] { run = [](Ctl& c) { return c.Logout(); }; });

  Command(&app, "whoami", "who your credential names: its role, bindings and how it signed in",
          "latchkeyctl whoami")
      ->callback([&] { run = [](Ctl& c) { return c.WhoAmI(); }; });

  auto* pp = Command(&app, "propagation", "which sidecars applied a revision",
                     "latchkeyctl propagation 42");
  pp->add_option("REVISION", revision)->required();
  pp->callback([&] { run = [&](Ctl& c) { return c.Propagation(revision); }; });

  auto* v = Command(&app, "validate", "ask a sidecar about a key (exit 4 unless VALID)",
                    "latchkeyctl validate lkp_… --sidecar 127.0.0.1:7710");
  v->add_option("KEY", a)->required();
  v->add_option("--sidecar", sidecar, "sidecar address")->capture_default_str();
  v->callback([&] { run = [&](Ctl& c) { return c.Validate(a, sidecar); }; });

  auto* h = Command(&app, "health", "gRPC health of a daemon (exit 0 when SERVING)",
                    "latchkeyctl health unix:/var/run/latchkey/validator.sock");
  h->add_option("ADDRESS", a, "host:port or unix:/path")->required();
  h->callback([&] { run = [&](Ctl& c) { return c.Health(a); }; });

  bool completion = false;
  auto* comp = Command(&app, "completion", "print a shell completion script (bash)",
                       "source <(latchkeyctl completion bash)");
  comp->add_option("SHELL", a, "bash")->required()->check(CLI::IsMember({"bash"}));
  comp->callback([&] { completion = true; });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and friends exit 0; every usage error exits 2, as README says.
    return app.exit(e) == 0 ? 0 : 2;
  }
  if (completion) {
    std::cout << latchkey::cli::BashCompletion(app);
    return 0;
  }
  g.format = output == "json" ? Format::kJson : Format::kTable;
  Ctl ctl(g);
  return run(ctl);
}
