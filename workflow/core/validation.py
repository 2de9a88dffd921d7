"""The config schema (`schema/config.schema.yaml`): validation that fills the schema's defaults
in place and names every bad key path.

`workflow.core.config.validate_config` runs this, then the cross-field checks of
`workflow.core.semantics`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schema" / "config.schema.yaml"


class ConfigError(ValueError):
    """A user-facing configuration problem; the message names the key path."""


def _extend_with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    def additional_with_defaults(validator, additional, instance, schema):
        # defaults inside additionalProperties schemas (the per-model mapping)
        if isinstance(instance, dict) and isinstance(additional, dict):
            known = set(schema.get("properties", {}))
            for name, value in instance.items():
                if name in known or not isinstance(value, dict):
                    continue
                for key, sub in additional.get("properties", {}).items():
                    if "default" in sub and key not in value:
                        value[key] = copy.deepcopy(sub["default"])
        yield from validator_class.VALIDATORS["additionalProperties"](
            validator, additional, instance, schema
        )

    return jsonschema.validators.extend(
        validator_class,
        {"properties": set_defaults, "additionalProperties": additional_with_defaults},
    )


_Validator = _extend_with_defaults(jsonschema.Draft202012Validator)


# libyaml's loader where PyYAML has it: the schema (34 kB) loads in ~7 ms instead of ~70, which
# every Snakemake start pays (the paper dry run's budget is 5 s, issue 18)
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema() -> dict:
    with open(SCHEMA_PATH) as f:
        return yaml.load(f, Loader=_LOADER)  # noqa: S506 (a safe loader)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "<top level>"


def check_schema(raw: Mapping[str, Any], source: str = "config") -> dict:
    """A copy of `raw` checked against the schema, with its defaults filled; raises ConfigError
    naming every bad key path."""
    config = copy.deepcopy(dict(raw))
    if isinstance(config.get("checkpoints"), str):  # --config checkpoints=published
        config["checkpoints"] = {"source": config["checkpoints"]}
    fewshot = (config.get("eval") or {}).get("fewshot_steps")
    if isinstance(fewshot, dict):  # YAML `5: [...]` has int keys; JSON (and the schema) strings
        config["eval"]["fewshot_steps"] = {str(k): v for k, v in fewshot.items()}
    validator = _Validator(load_schema())
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key_path(e)}: {e.message}" for e in errors]
        raise ConfigError(f"invalid {source}:\n" + "\n".join(lines))
    # Re-run once so defaults nested under defaults are filled too.
    for _ in validator.iter_errors(config):
        pass
    return config
