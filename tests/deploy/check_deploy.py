#!/usr/bin/python3
"""deploy/ stays true: every YAML file parses, the manifests hold what
docs/deploy.md promises, and every flag a manifest or systemd unit passes to a
latchkey binary is one that binary accepts (from its --help).

Usage: check_deploy.py DEPLOY_DIR BIN_DIR
"""
import pathlib
import re
import subprocess
import sys

import yaml

deploy, bin_dir = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
failures = []
help_cache = {}


def accepted_flags(binary):
    if binary not in help_cache:
        out = subprocess.run([str(bin_dir / binary), "--help"], capture_output=True, text=True).stdout
        help_cache[binary] = set(re.findall(r"(--[a-z][a-z0-9-]*)", out))
        help_cache[binary] |= set(re.findall(r"^  ([a-z]+) ", out, re.M))  # subcommands
    return help_cache[binary]


def check_command(where, argv):
    binary = pathlib.Path(argv[0]).name
    if not binary.startswith("latchkey"):
        return
    flags = accepted_flags(binary)
    if not flags:
        failures.append(f"{where}: cannot run {binary} --help")
        return
    for arg in argv[1:]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            if flag not in flags:
                failures.append(f"{where}: {binary} has no flag {flag}")
        elif binary == "latchkeyctl" and arg == argv[1] and arg not in flags:
            failures.append(f"{where}: latchkeyctl has no subcommand {arg}")


kinds = set()
for path in sorted(deploy.rglob("*.yaml")):
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as e:
        failures.append(f"{path}: does not parse: {e}")
        continue
    for doc in docs:
        kinds.add(doc["kind"])
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            where = f"{path.name} {doc['kind']}/{doc['metadata']['name']} {c['name']}"
            if "command" in c:
                check_command(where, c["command"] + c.get("args", []))
            for probe in ("readinessProbe", "livenessProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command")
                if cmd:
                    check_command(f"{where} {probe}", cmd)

for path in sorted(deploy.rglob("*.service")):
    text = path.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if line.startswith("ExecStart="):
            check_command(path.name, line[len("ExecStart="):].split())

for kind in ("StatefulSet", "Service", "Deployment", "Secret"):
    if kind not in kinds:
        failures.append(f"deploy/ has no {kind}")
for binary in ("latchkey-authority", "latchkey-sidecar", "latchkey-console"):
    if not (deploy / "systemd" / f"{binary}.service").exists():
        failures.append(f"deploy/systemd has no unit for {binary}")
    if binary not in (deploy / "Dockerfile").read_text():
        failures.append(f"deploy/Dockerfile does not ship {binary}")

for f in failures:
    print("FAIL", f)
print(f"checked {len(list(deploy.rglob('*.yaml')))} YAML files and "
      f"{len(list(deploy.rglob('*.service')))} units: {len(failures)} problems")
sys.exit(1 if failures else 0)
