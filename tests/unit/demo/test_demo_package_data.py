"""The demo's sample community directory ships inside the package (so `carecoord demo` runs from
an installed wheel); examples/directory keeps the same file for `carecoord directory import`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carecoord.demo.runner import directory_json
from support.paths import ROOT

EXAMPLE = ROOT / "examples" / "directory" / "springfield-hsds.json"
PACKAGED = ROOT / "src" / "carecoord" / "demo" / "samples" / "springfield-hsds.json"


def test_the_packaged_sample_is_the_examples_one() -> None:
    assert PACKAGED.read_bytes() == EXAMPLE.read_bytes()


def test_the_demo_reads_the_packaged_sample_by_default() -> None:
    assert directory_json() == json.loads(PACKAGED.read_text(encoding="utf-8"))


def test_the_demo_reads_a_directory_it_is_given(tmp_path: Path) -> None:
    mine = tmp_path / "mine.json"
    mine.write_text('{"services": []}', encoding="utf-8")
    assert directory_json(mine) == {"services": []}
    with pytest.raises(SystemExit, match="is not there"):
        directory_json(tmp_path / "missing.json")
