"""The Salesforce CLI baseline: an admin's script, one ``sf`` command per check (issue 17, 1b).

What an admin who checks these integrations with the Salesforce CLI would script: log in once
(``sf org login access-token``, non-interactive, the token in ``SF_ACCESS_TOKEN``), then one
command per thing the demo audit looks at, each with ``--json`` and checked for ``status 0``:

* ``sf data query`` for the org (Organization), per user (with its permission set and licence
  assignments as sub-queries), per permission set (by API name or label, platform-truth U1),
  per permission set licence (DeveloperName or MasterLabel, U1) and per profile;
* ``sf data query --use-tooling-api`` per installed package (InstalledSubscriberPackage by
  namespace);
* ``sf org list metadata`` per app metadata type (is the app there: ``app.installed``), then
  ``sf project retrieve start --metadata Type:Name`` per app and per metadata component the
  audit reads (NamedCredential, RemoteSiteSetting, Profile ...), into a temporary project.

The commands are built from the same bound demo playbooks as the other baselines
(``wholeprocess.demo_bindings()``), so a new read in the demo audit shows up here or makes the
runner say it cannot script it. The CLI's config, state and caches live in a temporary HOME
(and XDG dirs) under the runner's work directory, never in the user's home or the repository;
the CLI trusts serve's certificate through ``NODE_EXTRA_CA_CERTS``, as tests/realcli does.
Not part of the product; it imports nothing from remediate when it runs the script.

    python benchmarks/sfcli.py PLAN.json   # REMEDIATE_BENCH_URL, _TOKEN, _CA in the env
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
ALIAS = "bench"
#: What the CLI must never do here or in tests/realcli (which imports this): phone home, check
#: for updates, prompt.
QUIET_ENV = {
    "SF_DISABLE_TELEMETRY": "true", "SFDX_DISABLE_TELEMETRY": "true",
    "SF_AUTOUPDATE_DISABLE": "true", "SFDX_AUTOUPDATE_DISABLE": "true",
    "SF_SKIP_NEW_VERSION_CHECK": "true", "SF_HIDE_RELEASE_NOTES": "true",
    "SF_USE_GENERIC_UNIX_KEYCHAIN": "true", "SFDX_USE_GENERIC_UNIX_KEYCHAIN": "true",
    "FORCE_COLOR": "0", "NO_COLOR": "1",
}
#: The metadata type each app type is listed and retrieved as.
APP_TYPES = {"connected_app": "ConnectedApp", "external_client_app": "ExternalClientApplication"}
USER_SOQL = ("SELECT Id, Username, IsActive, ProfileId, Profile.Name, "
             "Profile.PermissionsApiEnabled, (SELECT Id, PermissionSetId, PermissionSet.Name, "
             "PermissionSet.PermissionsApiEnabled FROM PermissionSetAssignments), "
             "(SELECT Id, PermissionSetLicense.DeveloperName FROM "
             "PermissionSetLicenseAssignments) FROM User WHERE Username = {0}")
PERMISSION_SET_SOQL = ("SELECT Id, Name, Label, License.DeveloperName, PermissionsApiEnabled "
                       "FROM PermissionSet WHERE Name = {0} OR Label = {0}")
LICENSE_SOQL = ("SELECT Id, DeveloperName, MasterLabel, TotalLicenses, UsedLicenses FROM "
                "PermissionSetLicense WHERE DeveloperName = {0} OR MasterLabel = {0}")
PROFILE_SOQL = "SELECT Id, Name, PermissionsApiEnabled FROM Profile WHERE Name = {0}"
PACKAGE_SOQL = ("SELECT SubscriberPackage.Name, SubscriberPackage.NamespacePrefix, "
                "SubscriberPackageVersionId FROM InstalledSubscriberPackage "
                "WHERE SubscriberPackage.NamespacePrefix = {0}")
ORG_SOQL = "SELECT Id, Name, IsSandbox, InstanceName FROM Organization"


def literal(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_sf() -> tuple[Path | None, str]:
    """The ``sf`` launcher, found as tests/realcli/conftest.py finds it (REMEDIATE_SF, then the
    pinned install of tests/realcli/install.sh), else ``sf`` on PATH; or None and why not."""
    explicit = os.environ.get("REMEDIATE_SF")
    if explicit:
        path = Path(explicit)
        return (path, "") if path.exists() else (None, f"REMEDIATE_SF={explicit} does not exist")
    base = Path(os.environ.get("REMEDIATE_REALCLI_DIR")
                or Path(os.environ.get("HOME", "/root")) / ".cache" / "remediate-realcli")
    if (base / "bin" / "sf").exists():
        return base / "bin" / "sf", ""
    on_path = shutil.which("sf")
    if on_path:
        return Path(on_path), ""
    return None, (f"no 'sf' on PATH nor in {base}/bin: run tests/realcli/install.sh to install "
                  "the pinned CLI")


def demo_apps(bindings: dict[str, dict[str, Any]]) -> tuple[list[tuple[str, str]], list[str]]:
    """The apps the bound playbooks' audit reads, as (metadata type, API name), and the names
    of the read kinds this script has no command for (empty for the demo org)."""
    from remediate.orgs import bind_playbooks
    from remediate.steps.base import (
        AppRead,
        LicenseRead,
        MetadataRead,
        ObjectAccessRead,
        OrgRead,
        PackageRead,
        PermissionSetRead,
        ProfileRead,
        UserRead,
    )

    steps, _ = bind_playbooks(bindings, None)
    apps: list[tuple[str, str]] = []
    unscripted: list[str] = []
    scripted = (UserRead, PermissionSetRead, LicenseRead, ProfileRead, PackageRead, MetadataRead,
                OrgRead)
    for step in steps:
        for r in step.kind.reads(step.params):
            if isinstance(r, AppRead) and r.type in APP_TYPES:
                # the first name is the app's API name; the others are display names that
                # listMetadata does not show, so an admin retrieves by the API name
                app = (APP_TYPES[r.type], r.names[0])
                if app not in apps:
                    apps.append(app)
            elif isinstance(r, ObjectAccessRead) and not (r.objects or r.fields
                                                          or r.record_types):
                continue  # nothing to read beyond the permission set itself
            elif not isinstance(r, scripted) and type(r).__name__ not in unscripted:
                unscripted.append(type(r).__name__)
    return apps, unscripted


def check_commands(reads: dict[str, Any], apps: list[tuple[str, str]]) -> list[list[str]]:
    """One ``sf`` command (its arguments) per check, in the order an admin would write them;
    ``reads`` is ``wholeprocess.demo_bindings()[1]``. Each gets ``--target-org`` and
    ``--json`` when it runs."""
    commands: list[list[str]] = [["data", "query", "--query", ORG_SOQL]]
    for soql, key in ((USER_SOQL, "users"), (PERMISSION_SET_SOQL, "permission_sets"),
                      (LICENSE_SOQL, "licenses"), (PROFILE_SOQL, "profiles")):
        commands.extend(["data", "query", "--query", soql.format(literal(name))]
                        for name in reads.get(key, []))
    commands.extend(["data", "query", "--use-tooling-api", "--query",
                     PACKAGE_SOQL.format(literal(namespace))]
                    for namespace in reads.get("packages", []))
    for type_ in dict.fromkeys(t for t, _ in apps):
        commands.append(["org", "list", "metadata", "--metadata-type", type_])
    commands.extend(["project", "retrieve", "start", "--metadata", f"{type_}:{name}"]
                    for type_, name in apps)
    for type_, names in reads.get("metadata", {}).items():
        commands.extend(["project", "retrieve", "start", "--metadata", f"{type_}:{name}"]
                        for name in names)
    return commands


def prepare(work: Path, bindings: dict[str, dict[str, Any]],
            reads: dict[str, Any]) -> tuple[list[str] | None, str]:
    """The command that runs the whole CLI script once (for wholeprocess.py's ``sf_cli`` slot)
    and a line saying what it is, or None and why it is skipped."""
    sf, why = find_sf()
    if sf is None:
        return None, why
    apps, unscripted = demo_apps(bindings)
    if unscripted:
        return None, ("the demo audit reads " + ", ".join(unscripted)
                      + ", which this script has no sf command for")
    base = work / "sfcli"
    home, project = base / "home", base / "project"
    home.mkdir(parents=True, exist_ok=True)
    (project / "force-app").mkdir(parents=True, exist_ok=True)
    (project / "sfdx-project.json").write_text(json.dumps({
        "packageDirectories": [{"path": "force-app", "default": True}],
        "sourceApiVersion": "67.0", "name": "bench"}))
    checks = check_commands(reads, apps)
    plan = base / "plan.json"
    plan.write_text(json.dumps({"sf": str(sf), "home": str(home), "project": str(project),
                                "checks": checks}))
    return ([sys.executable, str(HERE), str(plan)],
            f"{sf}, {len(checks) + 1} commands per run (1 login + {len(checks)} checks)")


def cli_env(sf: str, home: str) -> dict[str, str]:
    """The environment of every ``sf`` command: a private HOME and XDG dirs, no SF_ settings
    from the caller, quiet, trusting serve's CA."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SF_", "SFDX_", "XDG_", "REMEDIATE_"))}
    return {**env, **QUIET_ENV, "HOME": home,
            "XDG_CONFIG_HOME": f"{home}/.config", "XDG_DATA_HOME": f"{home}/.local/share",
            "XDG_CACHE_HOME": f"{home}/.cache", "XDG_STATE_HOME": f"{home}/.local/state",
            "NODE_EXTRA_CA_CERTS": os.environ["REMEDIATE_BENCH_CA"],
            "PATH": f"{Path(sf).parent}{os.pathsep}{env.get('PATH', '')}"}


def _sf(plan: dict[str, Any], env: dict[str, str], args: list[str]) -> dict[str, Any]:
    done = subprocess.run([plan["sf"], *args], capture_output=True, text=True, env=env,
                          cwd=plan["project"], timeout=240, check=False)
    try:
        out: dict[str, Any] = json.loads(done.stdout)
    except ValueError:
        out = {"status": done.returncode or 1, "message": (done.stdout + done.stderr)[-600:]}
    if done.returncode != 0 or out.get("status") != 0:
        raise SystemExit(f"sf {_what(args)} failed (exit {done.returncode}): "
                         f"{out.get('message') or out.get('name') or done.stderr[-600:]}")
    return out


def _what(args: list[str]) -> str:
    """A command named for a message: its words and what it reads (never the token: that is
    only ever in the environment)."""
    words = [a for a in args[:3] if not a.startswith("-")]
    for flag in ("--query", "--metadata", "--metadata-type"):
        if flag in args:
            words.append(args[args.index(flag) + 1][:120])
    return " ".join(words)


def main(path: str) -> int:
    with open(path, encoding="utf-8") as file:
        plan: dict[str, Any] = json.load(file)
    env = cli_env(plan["sf"], plan["home"])
    # The token goes in through the environment, never on a command line.
    _sf(plan, {**env, "SF_ACCESS_TOKEN": os.environ["REMEDIATE_BENCH_TOKEN"]},
        ["org", "login", "access-token", "--instance-url", os.environ["REMEDIATE_BENCH_URL"],
         "--no-prompt", "--alias", ALIAS, "--json"])
    for args in plan["checks"]:
        out = _sf(plan, env, [*args, "--target-org", ALIAS, "--json"])
        result = out.get("result")
        if isinstance(result, dict) and "totalSize" in result:
            shown = f"{result['totalSize']} records"
        elif isinstance(result, dict) and "fileProperties" in result:
            shown = f"{len(result['fileProperties'] or [])} components"
        else:
            shown = f"{len(result) if isinstance(result, list) else 1} rows"
        print(f"sf {_what(args)}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
