"""Every ``graft`` command the README shows must parse with the real CLI, so a renamed or removed option fails here.

The README is the first thing a newcomer runs (issue 15: flags that had been renamed, bare ``graft`` in code blocks
while ``make setup`` puts it in ``.venv/bin``). Running every command is an end-to-end job for a person; what can be
checked in milliseconds is that each one *parses*: the subcommand exists, every option exists with the right arity,
Choice / int values are accepted, no stray positional arguments, and (for the complete commands of code blocks)
the required options are given. Nothing is invoked: click's parser only, so no TensorFlow import.

Read from the README: shell lines of ```bash / ```sh blocks (``\\`` continuations joined, ``$(...)`` substitutions
read as commands of their own), inline code spans that start with ``graft``, and ``make demo DEMO_ARGS="..."``
(``make demo`` runs ``graft demo $(DEMO_ARGS)``). Usage notation is read the way a reader does: ``[--x V]`` is
the option given, ``a|b`` is its first alternative; upper-case placeholders that must be numbers are filled in.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from graft.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
BENCH = Path(__file__).resolve().parents[1] / "bench"

# Placeholders the README uses where the option is typed (a number); every other placeholder is a fine string.
NUMBER_PLACEHOLDERS = {"N": "5"}
COMMAND_WORDS = ("graft", ".venv/bin/graft")


@dataclass(frozen=True)
class Shown:
    """One graft invocation shown in the README: where, and its arguments after ``graft``."""

    line: int
    text: str
    argv: tuple[str, ...]
    complete: bool  # from a code block (a whole command), not an inline mention in prose


def _code_block_lines(text: str) -> list[tuple[int, str]]:
    """(line number, shell line) of every ```bash / ```sh block, with backslash continuations joined."""
    out: list[tuple[int, str]] = []
    fence: str | None = None
    pending, start = "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = None if fence is not None else stripped[3:].strip()
            continue
        if fence not in ("bash", "sh"):
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def _inline_spans(text: str) -> list[tuple[int, str]]:
    """Inline code spans outside code blocks (line number, span text)."""
    out: list[tuple[int, str]] = []
    in_block = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            out.extend((number, span) for span in re.findall(r"`([^`]+)`", line))
    return out


def _as_reader_means(command: str) -> str:
    """Usage notation to one concrete command: ``[--x V]`` -> ``--x V``, ``a|b|c`` (no spaces) -> ``a``,
    ``<that folder>`` -> one placeholder word."""
    command = re.sub(r"<([^<>]+)>", lambda m: "<" + m.group(1).replace(" ", "_") + ">", command)
    command = command.replace("[", " ").replace("]", " ")
    return re.sub(r"(?<=[^\s|])(\|[^\s|]+)+", "", command)


def _invocations(segment: str, *, anywhere: bool) -> list[tuple[str, ...]]:
    """The argument lists of each ``graft`` at a command position of one shell segment (pipes, ``&&`` and ``;``
    separate commands; ``#`` starts a comment). ``anywhere`` is False for inline spans: they must start with it."""
    lexer = shlex.shlex(_as_reader_means(segment), posix=True, punctuation_chars="|;&()")
    lexer.whitespace_split = True
    tokens = list(lexer)
    found, at_command = [], True
    for i, token in enumerate(tokens):
        if at_command and token in COMMAND_WORDS and (anywhere or i == 0):
            argv = []
            for arg in tokens[i + 1 :]:
                if arg and set(arg) <= set("|;&()"):
                    break
                argv.append(NUMBER_PLACEHOLDERS.get(arg, arg))
            found.append(tuple(argv))
        at_command = bool(token) and set(token) <= set("|;&()")
    return found


def shown_commands(text: str) -> list[Shown]:
    shown: list[Shown] = []
    for number, line in _code_block_lines(text):
        for segment in [line, *re.findall(r"\$\(([^()]*)\)", line)]:
            shown.extend(
                Shown(number, line.strip(), argv, True) for argv in _invocations(segment, anywhere=True)
            )
    for number, span in _inline_spans(text):
        if span.split(" ", 1)[0] in COMMAND_WORDS and " " in span:
            shown.extend(Shown(number, span, argv, False) for argv in _invocations(span, anywhere=False))
        for demo_args in re.findall(r'^make demo DEMO_ARGS="([^"]*)"$', span):
            shown.append(Shown(number, span, ("demo", *shlex.split(demo_args)), True))
    return shown


def check_parses(argv: tuple[str, ...], *, complete: bool) -> None:
    """Raise click.UsageError (with click's own message) unless graft's CLI accepts ``argv``."""
    ctx = click.Context(main, info_name="graft")
    command: click.Command = main
    args = list(argv)
    while isinstance(command, click.Group):
        if not args or args[0].startswith("-"):
            raise click.UsageError(f"no subcommand after {ctx.command_path!r}", ctx)
        sub = command.get_command(ctx, args[0])
        if sub is None:
            raise click.UsageError(f"no such command {args[0]!r} in {ctx.command_path!r}", ctx)
        ctx = click.Context(sub, info_name=args.pop(0), parent=ctx)
        command = sub
    try:
        opts, extra, _ = command.make_parser(ctx).parse_args(list(args))  # unknown options, missing values
    except click.BadOptionUsage as e:
        if complete or e.option_name != args[-1]:
            raise
        # prose naming an option ("or `graft run --data`") without its value
        opts, extra, _ = command.make_parser(ctx).parse_args([*args, "VALUE"])
    if extra:
        raise click.UsageError(f"unexpected extra arguments {extra}", ctx)
    for param in command.params:
        value = opts.get(param.name)
        if value is None:
            if complete and param.required:
                raise click.MissingParameter(ctx=ctx, param=param)
            continue
        if not isinstance(param.type, click.Path):  # files named in the README need not exist here
            param.type_cast_value(ctx, value)  # Choice, int ranges, nargs


README_TEXT = README.read_text(encoding="utf-8")
SHOWN = shown_commands(README_TEXT)


def test_the_readme_shows_the_commands_it_should():
    """The extraction finds what is there (so the parse test below cannot pass on nothing)."""
    subcommands = {s.argv[0] for s in SHOWN if s.argv}
    assert {
        "run",
        "demo",
        "predict",
        "doctor",
        "runs",
        "report",
        "backbone",
        "compile",
        "submit",
        "schedule",
    } <= (subcommands)
    assert len([s for s in SHOWN if s.complete]) >= 25


@pytest.mark.parametrize("shown", SHOWN, ids=lambda s: f"L{s.line}:{' '.join(s.argv[:3])}")
def test_every_graft_command_in_the_readme_parses(shown: Shown):
    try:
        check_parses(shown.argv, complete=shown.complete)
    except click.UsageError as e:
        pytest.fail(f"README.md line {shown.line}: `{shown.text}` does not parse: {e.format_message()}")


def test_code_blocks_call_the_venv_graft():
    """``make setup`` does not put ``graft`` on PATH: a code block must say ``.venv/bin/graft``."""
    bare = [
        (number, line)
        for number, line in _code_block_lines(README_TEXT)
        for segment in [line, *re.findall(r"\$\(([^()]*)\)", line)]
        if _invocations(segment.replace(".venv/bin/graft", "venv-graft"), anywhere=True)
    ]
    assert not bare, f"bare `graft` in README code blocks (write .venv/bin/graft): {bare}"


def test_bench_modules_named_in_the_readme_exist():
    named = set(re.findall(r"python -m bench (bench_\w+)", README_TEXT))
    assert named, "the README names no bench module"
    missing = sorted(n for n in named if not (BENCH / f"{n}.py").is_file())
    assert not missing, f"README names bench modules that do not exist: {missing}"


def _bench_driver():
    """bench/__main__.py as a module (bench/ is not an installed package; the driver's table code is plain Python)."""
    spec = importlib.util.spec_from_file_location("bench_driver_under_test", BENCH / "__main__.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(BENCH.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH.parent))
    return module


def test_the_readme_bench_table_is_the_committed_results():
    # Every figure of the README's table comes from bench/results/table.json (issue 16): a hand edit, or results
    # committed without the README, fails here.
    driver = _bench_driver()
    table = json.loads((BENCH / "results" / "table.json").read_text())
    block = README_TEXT.split(driver.README_BEGIN, 1)[1].split(driver.README_END, 1)[0]
    assert block.strip("\n").split("\n") == driver.table_lines(table), (
        "README's bench table differs from bench/results/table.json: run `python -m bench --readme`"
    )
    latest = (BENCH / "results" / "latest.md").read_text()
    assert latest == driver.markdown(table), "bench/results/latest.md is not bench/results/table.json's"


def test_sync_readme_rewrites_only_the_table_and_refuses_a_readme_without_markers(tmp_path):
    driver = _bench_driver()
    table = {
        "bench_x": {
            "rows": [{"name": "x / y", "ratio": 0.5, "goal": "<= 1", "detail": "a|b"}],
            "measured": "2026-12-01 10:00",
            "argv": "bench_x",
            "seconds": 60.0,
            "machine": "2 CPU cores",
            "commit": "abc1234",
        }
    }
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{driver.README_BEGIN}\nold row\n{driver.README_END}\nafter\n")
    driver.sync_readme(table, readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{driver.README_END}\nafter\n")
    assert "old row" not in text
    assert "| x / y | 0.500 | <= 1 | yes | a/b |" in text
    assert "at commit abc1234" in text
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="markers are missing"):
        driver.sync_readme(table, readme)
    assert readme.read_text() == "no markers here\n"


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--data", "d", "--backbone", "tiny", "--no-such-option", "1"),
        ("run", "--data", "d", "--bakcbone", "tiny"),
        ("compile", "--config", "x.yaml", "--target", "vertx"),
        ("runs", "--limit", "N"),
        ("backbone", "import", "mobilenet_v1_imagenet", "--size", "100"),
        ("backbone", "nosuch"),
        ("report", "a", "b"),
        ("schema", "infer", "--out", "x.pbtxt"),
        ("config",),
    ],
)
def test_the_check_refuses_what_the_cli_refuses(argv):
    """The checker is not a rubber stamp: a bogus option, a bad choice, a non-number, an unknown subcommand,
    extra arguments and a missing required option all fail it."""
    with pytest.raises(click.UsageError):
        check_parses(argv, complete=True)


def test_usage_notation_and_shell_syntax_are_read_as_a_reader_would():
    shown = shown_commands(
        "```bash\n"
        ".venv/bin/graft backbone import mobilenet_v1_imagenet [--size 224|192|160|128] [--out DIR]  # note\n"
        "gcloud artifacts repositories create graft --location=x\n"
        'gsutil cp -r "$(.venv/bin/graft backbone tiny | tail -1)" gs://b/\n'
        ".venv/bin/graft run --data d \\\n    --backbone tiny --json | python -m json.tool\n"
        "```\n"
        "Prose with `graft runs --limit N` and `another graft run is using …`.\n"
    )
    assert [s.argv for s in shown] == [
        ("backbone", "import", "mobilenet_v1_imagenet", "--size", "224", "--out", "DIR"),
        ("backbone", "tiny"),
        ("run", "--data", "d", "--backbone", "tiny", "--json"),
        ("runs", "--limit", "5"),
    ]


def test_make_leaves_the_tensorflow_log_level_to_graft():
    """The README: without -v TensorFlow's start-up noise is off unless *you* set TF_CPP_MIN_LOG_LEVEL. The
    Makefile used to export it as 2 (which still shows the `Unable to register cuDNN factory` errors), so
    `make demo` printed them."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    recipe = 'envcheck: ; @echo "[$${TF_CPP_MIN_LOG_LEVEL-}]"'
    argv = [make, "-s", "--no-print-directory", "-C", str(README.parent), "--eval", recipe, "envcheck"]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"the Makefile sets TF_CPP_MIN_LOG_LEVEL for its recipes: {out!r}"


def test_every_repository_file_the_readme_names_exists():
    """`tests/x.py`, `components/y.py` ... in backticks: a moved or renamed file leaves the README pointing nowhere."""
    root = README.parent
    named = set(
        re.findall(
            r"`((?:components|pipeline|kubeflow|graft|schemas|bench|tests|tools)/[\w./-]+)`", README_TEXT
        )
    )
    assert len(named) >= 10
    missing = sorted(p for p in named if not (root / p.split("::")[0]).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"
