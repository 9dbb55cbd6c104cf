"""Write the two reference pages that come from the code itself, so they cannot drift from it.

    .venv/bin/python docs/generate.py          # rewrites docs/configuration.md and docs/cli.md

docs/configuration.md is made from kb/settings.py (every field, its variable, default and help) and
docs/cli.md from kb/cli.py's parser (every command, argument and flag, with its help). The docs test
(tests/unit/test_docs.py) fails when a committed page differs from what this writes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from kb.cli import make_parser  # noqa: E402
from kb.settings import describe  # noqa: E402


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def configuration_md() -> str:
    lines = [
        "# Configuration",
        "",
        "Every setting kb reads. Environment variables override the defaults; a command's flags (`--index-dir`,",
        "`--model`, `kb serve --host/--port`, `kb build --corpus-dir`) override both. This page is generated from",
        "`kb/settings.py` by `python docs/generate.py`, and a test fails when it is out of date.",
        "",
        "| variable | default | meaning |",
        "| --- | --- | --- |",
    ]
    for _, env, default, help in describe():
        shown = f"`{default}`" if str(default) != "" else "(none)"
        lines.append(f"| `{env}` | {shown} | {_cell(help)} |")
    return "\n".join(lines) + "\n"


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.dest.upper() if action.nargs is None else action.dest.upper() + ' ...'}`"
    flag = ", ".join(f"`{option}`" for option in action.option_strings)
    if action.nargs != 0 and action.choices:
        flag += f" `{{{','.join(map(str, action.choices))}}}`"
    elif action.nargs != 0:
        flag += f" `{action.metavar or action.dest.upper()}`"
    return flag


def commands() -> dict[str, argparse.ArgumentParser]:
    """The `kb` subcommands by name, in the order the parser lists them."""
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def cli_md() -> str:
    lines = [
        "# The command line",
        "",
        "`make run` puts `kb` at `.venv/bin/kb`. Known failures print one sentence (`kb: ...`) and exit 1; a",
        "usage error exits 2. This page is generated from `kb/cli.py` (and `kb serve` from `web/serve.py`) by",
        "`python docs/generate.py`, and a test fails when it is out of date.",
        "",
    ]
    parser = make_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help for choice in sub._choices_actions}
    for name, command in sub.choices.items():
        summary = helps.get(name) or ""
        lines += [f"## `kb {name}`", "", summary[:1].upper() + summary[1:] + ".", "", "| argument | meaning |",
                  "| --- | --- |"]
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            meaning = action.help or ""
            if action.default not in (None, False, argparse.SUPPRESS) and "default" not in meaning:
                meaning += f" (default: {action.default})"
            lines.append(f"| {_flags(action)} | {_cell(meaning)} |")
        lines.append("")
    return "\n".join(lines)


PAGES = {"configuration.md": configuration_md, "cli.md": cli_md}


def main() -> None:
    for name, make in PAGES.items():
        (DOCS / name).write_text(make(), encoding="utf-8")
        print(f"wrote docs/{name}")


if __name__ == "__main__":
    main()
