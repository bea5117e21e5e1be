"""MkDocs hook: the parts of the site generated from the code at build time, never by hand.

A page asks for them with a marker comment on a line of its own (indented, e.g. in a tab,
the output is indented alike):

- ``<!-- worldmodels:cli -->``: every subcommand's usage and options, from
  ``worldmodels.cli.build_parser()`` (the parser the ``worldmodels`` command runs);
- ``<!-- worldmodels:config SECTION ... -->``: a table of each config section's keys, types,
  defaults and field docstrings (``worldmodels.config``; ``top`` is the tree's own keys);
- ``<!-- worldmodels:presets METHOD -->``: the preset values a method's YAML file ships
  (``envs`` and ``named`` for the env presets and the named ones), comments dropped.

An unknown marker, section or method fails the build, so a renamed one cannot go stale.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import html
import inspect
import itertools
import json
import os
import re
import textwrap
from typing import Any

import yaml
from mkdocs.exceptions import PluginError

MARKER = re.compile(r"^([ \t]*)<!-- worldmodels:(\w+)((?: [\w.-]+)*) -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    def expand(match: re.Match[str]) -> str:
        indent = match.group(1)
        return textwrap.indent(generate(match), indent) if indent else generate(match)

    def generate(match: re.Match[str]) -> str:
        kind, args = match.group(2), match.group(3).split()
        try:
            if kind == "cli" and not args:
                return cli_reference()
            if kind == "config" and args:
                return "\n\n".join(config_table(name) for name in args)
            if kind == "presets" and len(args) == 1:
                return preset_block(args[0])
        except (KeyError, ValueError) as exc:
            raise PluginError(f"{page.file.src_uri}: {match.group(0)}: {exc}") from exc
        raise PluginError(f"{page.file.src_uri}: unknown marker {match.group(0)}")

    return MARKER.sub(expand, markdown)


# -- text -------------------------------------------------------------------------------------


def md_text(text: str) -> str:
    """Plain text for a Markdown table cell: one line, HTML and pipes escaped, except inside
    backtick code spans (which Markdown shows verbatim)."""
    text = " ".join(text.split())
    parts = re.split(r"(``?[^`]+``?)", text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 1:  # a code span: single backticks, pipes escaped for the table
            out.append("`" + part.strip("`").replace("|", "\\|") + "`")
        else:
            out.append(html.escape(part, quote=False).replace("|", "\\|").replace("*", "\\*"))
    return "".join(out)


def code(value: str) -> str:
    return "`" + value.replace("|", "\\|") + "`"


# -- the command line -------------------------------------------------------------------------


def cli_reference() -> str:
    from worldmodels.cli import build_parser

    os.environ["COLUMNS"] = "76"  # argparse wraps usage lines to the terminal's width
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in subs._choices_actions}
    lines = [
        "## `worldmodels`",
        "",
        usage_block(parser),
        "",
        md_text(parser.description or ""),
        "",
        "| command | what it does |",
        "|---|---|",
    ]
    for name in subs.choices:
        lines.append(f"| [`{name}`](#worldmodels-{name}) | {md_text(helps[name])} |")
    lines += ["", options_tables(parser, with_help=True)]
    for name, sub in subs.choices.items():
        lines += [
            "",
            f"## `worldmodels {name}` {{#worldmodels-{name}}}",
            "",
            md_text(sub.description or helps[name]),
            "",
            usage_block(sub),
            "",
            options_tables(sub),
        ]
    return "\n".join(lines)


def usage_block(parser: argparse.ArgumentParser) -> str:
    usage = parser.format_usage().strip().removeprefix("usage: ")
    return "```text\n" + textwrap.dedent(usage) + "\n```"


def options_tables(parser: argparse.ArgumentParser, with_help: bool = False) -> str:
    """One table per argument group; ``-h`` only where asked (every command has it)."""
    formatter = parser._get_formatter()
    skip = (argparse._SubParsersAction,) + (() if with_help else (argparse._HelpAction,))
    out = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS and not isinstance(a, skip)
        ]
        if not actions:
            continue
        title = (group.title or "options").capitalize()
        out += [f"**{title}**", "", "| option | description |", "|---|---|"]
        for action in actions:
            out.append(f"| {option_cell(action)} | {help_cell(formatter, action)} |")
        out.append("")
    return "\n".join(out)


def option_cell(action: argparse.Action) -> str:
    if not action.option_strings:  # a positional argument
        return code(action.metavar or action.dest)
    value = ""
    if action.nargs != 0:
        if action.choices is not None:
            value = " {" + ",".join(str(c) for c in action.choices) + "}"
        else:
            value = " " + (action.metavar or action.dest.upper())
    return ", ".join(code(flag + value) for flag in action.option_strings)


def help_cell(formatter: argparse.HelpFormatter, action: argparse.Action) -> str:
    text = md_text(formatter._expand_help(action)) if action.help else ""
    quiet = (None, False, [], argparse.SUPPRESS)
    if action.option_strings and action.nargs != 0 and action.default not in quiet:
        text += f" Default: {code(str(action.default))}."
    if action.required and action.option_strings:
        text += " Required."
    if isinstance(action, argparse._AppendAction) and "repeat" not in text.lower():
        text += " Repeatable."
    return text.strip()


# -- the config tree --------------------------------------------------------------------------


def section_class(name: str) -> type:
    import worldmodels.cli  # noqa: F401  (imports every method, which registers its section)
    from worldmodels.config.schema import SECTIONS, Config

    if name in SECTIONS:
        return SECTIONS[name]
    default = getattr(Config(), name, None)
    if not dataclasses.is_dataclass(default):
        raise KeyError(f"no config section {name!r}")
    return type(default)


def field_docs(cls: type) -> dict[str, str]:
    """Each field's docstring: the string literal right after its annotated assignment."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(nxt.value.value)
    return docs


def yaml_value(value: Any) -> str:
    if dataclasses.is_dataclass(value):
        return "…"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


def config_table(name: str) -> str:
    from worldmodels.config.schema import Config

    if name == "top":
        cls, caption = Config, "The tree's own keys (`--set seed=1`):"
        fields = [
            f
            for f in dataclasses.fields(Config)
            if not dataclasses.is_dataclass(getattr(Config(), f.name)) and f.name != "sections"
        ]
    else:
        cls, caption = section_class(name), f"Section `{name}` (`--set {name}.KEY=VALUE`):"
        fields = list(dataclasses.fields(cls))
    default = cls()
    docs = field_docs(cls)
    lines = [caption, "", "| key | type | default | description |", "|---|---|---|---|"]
    for f in fields:
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        value = yaml_value(getattr(default, f.name))
        lines.append(
            f"| {code(f.name)} | {code(kind)} | {code(value) if value else ''} "
            f"| {md_text(docs.get(f.name, ''))} |"
        )
    return "\n".join(lines)


# -- presets ----------------------------------------------------------------------------------


def preset_block(method: str) -> str:
    from worldmodels.config.presets import env_presets, method_files, named_presets

    if method == "envs":
        data: dict[str, Any] = env_presets()
    elif method == "named":
        data = named_presets()
    else:
        files = method_files()
        if method not in files:
            raise KeyError(f"no preset file for method {method!r}")
        parts = ("defaults", "sized", "envs", "presets")
        data = {k: v for k, v in files[method].items() if k in parts and v}
    return "```yaml\n" + "\n".join(yaml_lines(data, "")) + "\n```"


def yaml_lines(data: dict[str, Any], indent: str, width: int = 76) -> list[str]:
    """Nested mappings as blocks, a mapping of plain values as one flow mapping wrapped at
    ``width`` (as the preset files are written by hand)."""
    out = []
    for key, value in data.items():
        if isinstance(value, dict) and any(isinstance(v, dict) for v in value.values()):
            out.append(f"{indent}{key}:")
            out += yaml_lines(value, indent + "  ", width)
        elif isinstance(value, dict):
            line = f"{indent}{key}: {{"
            hang = " " * len(line)
            items = [f"{k}: {inline(v)}" for k, v in value.items()]
            for i, item in enumerate(items):
                if i and len(line) + len(item) + 2 > width:
                    out.append(line + ",")
                    line = hang + item
                else:
                    line += (", " if i else "") + item
            out.append(line + "}")
        else:
            out.append(f"{indent}{key}: {inline(value)}")
    return out


def inline(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()
