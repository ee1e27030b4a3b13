"""The docs site's reference pages, rendered from the code they describe (never copied by hand).

``docs/hooks.py`` calls :func:`reference_pages` when mkdocs builds, so a renamed setting, a new CLI flag, an
API change or a new S3 key shows up in the site without anyone editing a page, and ``mkdocs build --strict``
in the tests fails on a link to something that no longer exists. Each renderer takes what it documents as an
argument (a settings class, a parser, an OpenAPI document) so a test can hand it a changed copy.
"""

from __future__ import annotations

import argparse
import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any, Literal, get_args, get_origin

import annotated_types
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from common.core.settings import environment_names

REPOSITORY = Path(__file__).resolve().parent.parent
GENERATED_NOTE = "<!-- Generated from the code by retrain/reference_docs.py when the site builds. Do not edit. -->"


def _cell(text: object) -> str:
    """Markdown table cells: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin is Literal:
        return " \\| ".join(f"`{value}`" for value in get_args(annotation))
    if origin is None:
        return getattr(annotation, "__name__", str(annotation))
    arguments = [a for a in get_args(annotation) if a is not type(None)]
    if origin is tuple:
        return f"list of {_type_name(arguments[0])}" if arguments else "list"
    names = [_type_name(a) for a in arguments]
    optional = type(None) in get_args(annotation)
    return " or ".join(names) + (" (optional)" if optional else "")


def _valid_range(field: FieldInfo) -> str:
    bounds = []
    for constraint in field.metadata:
        for attribute, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            value = getattr(constraint, attribute, None)
            if value is not None and isinstance(constraint, annotated_types.BaseMetadata):
                bounds.append(f"{symbol} {value}")
        pattern = getattr(constraint, "pattern", None)
        if pattern:
            bounds.append(f"matches `{pattern}`")
    annotation = field.annotation
    for inner in (annotation, *get_args(annotation)):
        if get_origin(inner) is Literal:
            bounds.append("one of " + ", ".join(f"`{v}`" for v in get_args(inner)))
    return "; ".join(bounds)


def _default(field: FieldInfo) -> str:
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None:
        return "unset"
    if isinstance(value, tuple | list):
        return "`" + ",".join(str(v) for v in value) + "`"
    if isinstance(value, Path):
        # Paths default to places in the checkout: shown relative to it, never as the build machine's path
        return f"`./{value.relative_to(REPOSITORY)}`" if value.is_relative_to(REPOSITORY) else f"`{value}`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def settings_table(settings_class: type[BaseSettings]) -> list[str]:
    """One row per field: its environment variable, type, default, valid values and description."""
    lines = ["| variable | type | default | valid values | description |", "|---|---|---|---|---|"]
    for name, field in settings_class.model_fields.items():
        variable = " or ".join(f"`{n.upper()}`" for n in environment_names(settings_class, name).split(" or "))
        parts = (variable, _type_name(field.annotation), _default(field), _valid_range(field), field.description or "")
        lines.append("| " + " | ".join(_cell(part) for part in parts) + " |")
    return lines


def settings_page(system: type[BaseSettings], local_stack: type[BaseSettings]) -> str:
    """Every setting of the system (``RETRAIN_*``) and of the embedded local stack (``RETRAIN_LOCAL_*``)."""
    return "\n".join(
        [
            GENERATED_NOTE,
            "# Settings",
            "",
            "Every component reads one typed settings object (`common.core.settings.Settings`) from the environment, "
            "validated once at start (nothing is read at import): a bad value stops the component with one message "
            "naming the variable. List fields take comma-separated values. AWS region, credentials and endpoints "
            "come from boto3's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...), so the same code talks to AWS "
            "or to the embedded stack without a branch. On AWS the template sets them on every function.",
            "",
            "## The system",
            "",
            *settings_table(system),
            "",
            "## The embedded local stack",
            "",
            "Read by `retrain up`, `retrain demo` and the integration tests (`retrain/stack/config.py`); never on AWS.",
            "",
            *settings_table(local_stack),
            "",
        ]
    )


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers as an action; no public accessor exists
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help_text(parser: argparse.ArgumentParser) -> str:
    """``--help`` as printed, at a fixed width: the page must not depend on the terminal that built the site."""
    formatter = parser.formatter_class(prog=parser.prog, width=100)
    parser._get_formatter = lambda: formatter  # type: ignore[method-assign]  # argparse reads the width only here
    try:
        return parser.format_help()
    finally:
        del parser._get_formatter


def cli_page(parser: argparse.ArgumentParser) -> str:
    """The ``retrain`` command and each subcommand's help, exactly as ``--help`` prints it."""
    lines = [GENERATED_NOTE, "# The `retrain` command", "", "```text", _help_text(parser).rstrip(), "```", ""]
    for name, subparser in _subcommands(parser).items():
        lines += [f"## `retrain {name}`", "", "```text", _help_text(subparser).rstrip(), "```", ""]
    return "\n".join(lines)


def _schema_text(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{schema['$ref'].rsplit('/', 1)[-1]}`"
    if "anyOf" in schema:
        return " or ".join(_schema_text(s) for s in schema["anyOf"])
    text = schema.get("type", "any")
    if "enum" in schema:
        text += " (" + ", ".join(f"`{v}`" for v in schema["enum"]) + ")"
    if "pattern" in schema:
        text += f", matches `{schema['pattern']}`"
    return text


def api_page(openapi: dict[str, Any]) -> str:
    """Every operation of the prediction API: parameters, body, responses; the full document beside it."""
    info = openapi.get("info", {})
    lines = [
        GENERATED_NOTE,
        f"# {info.get('title', 'API')} {info.get('version', '')}".rstrip(),
        "",
        info.get("description", ""),
        "",
        "The machine-readable document is [openapi.json](openapi.json) (what the server itself serves at "
        "`/openapi.json`).",
        "",
    ]
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            lines += [f"## `{method.upper()} {path}`", ""]
            if operation.get("summary"):
                lines += [f"**{operation['summary']}**", ""]
            if operation.get("description"):
                lines += [operation["description"], ""]
            parameters = operation.get("parameters", [])
            if parameters:
                lines += ["| parameter | in | required | schema | description |", "|---|---|---|---|---|"]
                for parameter in parameters:
                    lines.append(
                        "| "
                        + " | ".join(
                            _cell(part)
                            for part in (
                                f"`{parameter['name']}`",
                                parameter.get("in", ""),
                                "yes" if parameter.get("required") else "no",
                                _schema_text(parameter.get("schema", {})),
                                parameter.get("description", ""),
                            )
                        )
                        + " |"
                    )
                lines.append("")
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
            if body:
                lines += [f"Request body: {_schema_text(body.get('schema', {}))}", ""]
            lines += ["| status | meaning |", "|---|---|"]
            for status, response in operation.get("responses", {}).items():
                lines.append(f"| {status} | {_cell(response.get('description', ''))} |")
            lines.append("")
    schemas = openapi.get("components", {}).get("schemas", {})
    if schemas:
        lines += ["## Schemas", ""]
        for name, schema in schemas.items():
            lines += [f"### `{name}`", ""]
            if schema.get("description"):
                lines += [_cell(schema["description"]), ""]
            properties = schema.get("properties", {})
            if properties:
                required = set(schema.get("required", []))
                lines += ["| field | schema | required | description |", "|---|---|---|---|"]
                for field_name, field_schema in properties.items():
                    lines.append(
                        f"| `{field_name}` | {_cell(_schema_text(field_schema))} | "
                        f"{'yes' if field_name in required else 'no'} | {_cell(field_schema.get('description', ''))} |"
                    )
                lines.append("")
    return "\n".join(lines)


# Example values for the key functions' parameters, by parameter name (a key shows its shape with them).
_EXAMPLES: dict[str, object] = {
    "symbol": "BTC",
    "trend": "uptrend",
    "interval": "1d",
    "run_id": "{run_id}",
    "channel": "telegram",
    "number": 1,
    "version": "7",
    "name": "report.md",
}
_EXAMPLE_TIME = datetime(2024, 11, 20, tzinfo=UTC)


def _example_call(function: Callable[..., str]) -> str | None:
    arguments: dict[str, object] = {}
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in _EXAMPLES:
            arguments[parameter.name] = _EXAMPLES[parameter.name]
        elif "datetime" in str(parameter.annotation) or parameter.name in {"bar", "day", "created_at", "at"}:
            arguments[parameter.name] = _EXAMPLE_TIME
        elif parameter.default is not inspect.Parameter.empty:
            continue
        else:
            return None  # a parameter we have no example for: listed without an example
    return function(**arguments)


def s3_layout_page(keys_module: ModuleType) -> str:
    """Every key the system writes, from the functions in ``common.core.keys`` called with example values."""
    lines = [
        GENERATED_NOTE,
        "# S3 layout",
        "",
        inspect.cleandoc(keys_module.__doc__ or "").split("\n\n")[0],
        "",
        "| function | example key | what |",
        "|---|---|---|",
    ]
    prefixes = {name: value for name, value in vars(keys_module).items() if name.endswith("_PREFIX")}
    for name, function in inspect.getmembers(keys_module, inspect.isfunction):
        if function.__module__ != keys_module.__name__ or name.startswith("_"):
            continue
        example = _example_call(function)
        summary = inspect.getdoc(function) or ""
        lines.append(
            f"| `{name}` | {'`' + example + '`' if isinstance(example, str) else ''} | {_cell(summary.split(chr(10))[0])} |"
        )
    lines += ["", "Top-level prefixes: " + ", ".join(f"`{value}`" for value in sorted(prefixes.values())), ""]
    return "\n".join(lines)


def reference_pages() -> dict[str, str]:
    """Path under docs/ -> content, for every generated page (and the OpenAPI document beside the API page)."""
    from common.core import keys
    from common.core.settings import Settings
    from common.serving.api import create_app
    from retrain.cli import build_parser
    from retrain.stack.config import LocalStackConfig

    openapi = create_app().openapi()
    return {
        "reference/settings.md": settings_page(Settings, LocalStackConfig),
        "reference/cli.md": cli_page(build_parser()),
        "reference/api.md": api_page(openapi),
        "reference/openapi.json": json.dumps(openapi, indent=2, sort_keys=True) + "\n",
        "reference/s3-layout.md": s3_layout_page(keys),
    }
