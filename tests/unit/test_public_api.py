"""The curated public API: `carecoord.__all__` and `carecoord.testing.__all__` name exactly what
they export, and every `carecoord` name the README and the examples import is exported."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import carecoord
import carecoord.testing

ROOT = Path(__file__).resolve().parents[2]


def _imported_from(text: str, module: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            names.update(a.name for a in node.names)
    return names


def test_all_lists_every_public_name_and_only_those() -> None:
    for module in (carecoord, carecoord.testing):
        public = {n for n in vars(module) if not n.startswith("_") and n != "annotations"}
        exported = set(module.__all__)
        assert exported <= set(vars(module)), module.__name__
        submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
        assert public - submodules - exported == set(), module.__name__


def test_readme_and_examples_import_only_exported_names() -> None:
    sources = [p.read_text() for p in (ROOT / "examples").rglob("*.py")]
    readme = (ROOT / "README.md").read_text()
    sources += re.findall(r"```python\n(.*?)```", readme, re.S)
    for text in sources:
        try:
            ast.parse(text)
        except SyntaxError:  # an abridged README snippet: check its import lines only
            text = "\n".join(line for line in text.splitlines() if line.startswith("from "))
        assert _imported_from(text, "carecoord") <= set(carecoord.__all__)
        assert _imported_from(text, "carecoord.testing") <= set(carecoord.testing.__all__)


def test_the_names_the_issue_promises_are_exported() -> None:
    for name in ("HandlerProcessor", "FhirRateLimited", "Handlers", "HandlerConfig"):
        assert name in carecoord.__all__
    # issue 25: score a QuestionnaireResponse dict; its typed error
    for name in ("score_questionnaire_response", "Assessment", "MalformedAssessment"):
        assert name in carecoord.__all__
    for name in ("InMemoryFhir", "run_handler", "events"):
        assert name in carecoord.testing.__all__
