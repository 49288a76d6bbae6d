"""Where the checkout's files are, for tests at any depth of tests/."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "carecoord"
EXAMPLES = ROOT / "examples"
FIXTURES = ROOT / "tests" / "fixtures"
SAMPLE_DIRECTORY = EXAMPLES / "directory" / "springfield-hsds.json"
