"""The README's and docs/' code blocks work as written.

- A ```python block whose first line is `# examples/<path>` is an excerpt: its lines must appear,
  in order and contiguous, in that file (which its own test runs).
- Any other ```python block runs; the blocks of one document share a namespace, in order, like a
  reader typing them into one session (`examples/` and `examples/custom_handler/` importable).
- In a ```sh block (and an indented one), every `carecoord …` line names a real command and only
  options it takes; every `make X` names a Makefile target; every `pip install '…[extra]'` names
  a declared extra.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer.main

from carecoord.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
EXCERPT = re.compile(r"^# (examples/\S+)")


def blocks(language: str) -> Iterator[tuple[Path, int, str]]:
    for doc in DOCUMENTS:
        text = doc.read_text()
        for match in FENCE.finditer(text):
            if match.group(1) == language:
                yield doc, text.count("\n", 0, match.start()) + 1, match.group(2)


def _id(case: tuple[Path, int, str]) -> str:
    return f"{case[0].name}:{case[1]}"


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip("\n").splitlines()]


EXCERPTS = [b for b in blocks("python") if EXCERPT.match(b[2])]
RUNNABLE: dict[Path, list[tuple[int, str]]] = {}
for _doc, _line, _code in blocks("python"):
    if not EXCERPT.match(_code):
        RUNNABLE.setdefault(_doc, []).append((_line, _code))


def test_the_readme_has_runnable_and_excerpted_python() -> None:
    """The README's library and handler sections are checked, not merely displayed."""
    readme = ROOT / "README.md"
    shown = {m.group(1) for d, _, code in EXCERPTS if d == readme and (m := EXCERPT.match(code))}
    assert shown >= {
        "examples/library_quickstart.py",
        "examples/custom_handler/acme_tcm.py",
    }
    assert RUNNABLE.get(readme)


@pytest.mark.parametrize("case", EXCERPTS, ids=[_id(c) for c in EXCERPTS])
def test_an_excerpt_matches_its_example(case: tuple[Path, int, str]) -> None:
    _, _, code = case
    match = EXCERPT.match(code)
    assert match is not None
    shown = _lines(code)[1:]
    source = _lines((ROOT / match.group(1)).read_text())
    spans = (source[i : i + len(shown)] for i in range(len(source) - len(shown) + 1))
    assert shown in spans, f"the block is not a verbatim excerpt of {match.group(1)}"


@pytest.mark.parametrize("doc", sorted(RUNNABLE), ids=[d.name for d in sorted(RUNNABLE)])
def test_python_blocks_run(doc: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for folder in ("examples", "examples/custom_handler"):
        monkeypatch.syspath_prepend(str(ROOT / folder))
    module = ModuleType(f"docs_{doc.stem.replace('-', '_')}")  # pydantic resolves hints in it
    monkeypatch.setitem(sys.modules, module.__name__, module)
    for line, code in RUNNABLE[doc]:
        try:
            exec(compile(code, f"{doc.name}:{line}", "exec"), module.__dict__)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            pytest.fail(f"{doc.name} block at line {line}: {type(exc).__name__}: {exc}")
    sys.modules.pop("acme_tcm", None)


def _shell_lines() -> list[tuple[str, str]]:
    found = []
    for doc, line, code in blocks("sh"):
        for offset, raw in enumerate(code.splitlines()):
            command = raw.split(" #", 1)[0].strip()
            if command:
                found.append((f"{doc.name}:{line + 1 + offset}", command))
    for doc in DOCUMENTS:  # indented blocks, the older style of docs/
        for number, raw in enumerate(doc.read_text().splitlines(), start=1):
            if re.match(r"^    (carecoord|make) (?!\S+: )", raw):  # not output: "carecoord x: …"
                found.append((f"{doc.name}:{number}", raw.split(" #", 1)[0].strip()))
    return found


SHELL = _shell_lines()


def _command(words: list[str]) -> tuple[Any, list[str]]:
    command: Any = typer.main.get_command(app)  # typer's own click: duck-typed
    rest = words
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        sub = command.commands.get(rest[0])
        assert sub is not None, f"`carecoord` has no command {rest[0]!r}"
        command, rest = sub, rest[1:]
    return command, rest


@pytest.mark.parametrize("case", SHELL, ids=[c[0] for c in SHELL])
def test_shell_lines_name_real_commands(case: tuple[str, str]) -> None:
    _, line = case
    words = shlex.split(line.replace("[", " ").replace("]", " "))  # [--optional] parts too
    if words[0] == "carecoord":
        command, rest = _command(words[1:])
        options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        if command.context_settings.get("ignore_unknown_options"):
            return  # e.g. `demo`, which parses its own options
        given = {w.split("=", 1)[0] for w in rest if w.startswith("--")}
        assert given <= options, f"unknown options {sorted(given - options)}"
    elif words[0] == "make":
        makefile = (ROOT / "Makefile").read_text()
        for target in (w for w in words[1:] if "=" not in w):
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"no make target {target}"
    elif words[:2] == ["pip", "install"]:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for spec in words[2:]:
            for extra in re.findall(r"\[([^\]]+)\]", spec):
                for name in extra.split(","):
                    assert name in extras, f"no extra {name!r} in pyproject.toml"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[d.name for d in DOCUMENTS])
def test_relative_links_name_files_that_exist(doc: Path) -> None:
    broken = [
        target
        for target in LINK.findall(doc.read_text())
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert broken == [], f"{doc.name} links to missing files"
