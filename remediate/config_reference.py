"""docs/configuration.md, generated from the settings models (``remediate config reference``).
tests/unit/test_config_reference.py fails when the file and the models disagree."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel

from remediate import settings as s

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    ("(top level)", s.Settings, "Keys at the top of remediate.toml."),
    ("[orgs.NAME]", s.OrgConfig, "One org remediate signs in to."),
    ("[orgs.NAME.verify.PLAYBOOK]", s.VerifyLogin,
     "An integration's own credentials, for verify's token request."),
    ("[enforce]", s.EnforceSettings, "Unattended runs."),
    ("[orgs.NAME.enforce] / [enforce.orgs.\"NAME\"]", s.EnforcePolicy,
     "What enforce may change without a person."),
    ("[[enforce.webhooks]] / webhooks = [...]", s.Webhook, "Where enforce notifies."),
]


def _type(annotation: Any) -> str:
    text = str(annotation) if not isinstance(annotation, type) else annotation.__name__
    for prefix in ("typing.", "pathlib.", "remediate.settings."):
        text = text.replace(prefix, "")
    return text.replace("NoneType", "None").replace("|", "\\|")


def _default(info: Any) -> str:
    if info.default_factory is not None:
        value = info.default_factory()
        return "`{}`" if value == {} else "`[]`" if value == [] else "(a table)"
    if info.is_required():
        return "**required**"
    return f"`{info.default!r}`".replace("'", '"')


def render() -> str:
    lines = ["# Configuration reference", "",
             "Generated from remediate/settings.py by `remediate config reference "
             "> docs/configuration.md`; do not edit by hand.", "",
             "remediate reads `remediate.toml` from the working directory (or `--config FILE`, "
             "or `REMEDIATE_CONFIG`). Environment variables override it: `REMEDIATE_` and `__` "
             "between levels, e.g. `REMEDIATE_ORGS__PROD__LOGIN_URL`. `REMEDIATE_ORG` picks the "
             "org when `--org` is not given. Secrets never sit in the file: keys ending in "
             "`_env` name the environment variable that holds one.", ""]
    for title, model, about in SECTIONS:
        lines += [f"## {title}", "", about, "", "| key | type | default |", "|---|---|---|"]
        hints = typing.get_type_hints(model)
        for name, info in model.model_fields.items():
            lines.append(f"| `{name}` | `{_type(hints.get(name, info.annotation))}` | "
                         f"{_default(info)} |")
        lines.append("")
    return "\n".join(lines)
