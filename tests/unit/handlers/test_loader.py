"""Handler discovery: built-in modules, extra modules, entry points, enable/disable, config."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from carecoord.errors import ConfigError
from carecoord.handlers.loader import load_handlers

HANDLER_MODULE = """
from carecoord.core.effects import Effects
from carecoord.core.handler import HandlerSpec


def _noop(event, ctx):
    return Effects()


HANDLERS = [
    HandlerSpec(name="{a}", event_types=("t.one",), handle=_noop,
                default_config={{"max_unanswered": 2, "urgent": False, "owner": "lead"}}),
    HandlerSpec(name="{b}", event_types=("t.one", "t.two"), handle=_noop),
]
SINGLE = HandlerSpec(name="{c}", event_types=("t.three",), handle=_noop)
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A module on sys.path with two handlers, and a tiny installed distribution whose
    entry points (group carecoord.handlers) name a single spec from it."""
    tag = uuid.uuid4().hex[:8]
    names = {"mod": f"cc_plugin_{tag}", "a": f"a{tag}", "b": f"b{tag}", "c": f"c{tag}"}
    (tmp_path / f"{names['mod']}.py").write_text(HANDLER_MODULE.format(**names))
    monkeypatch.syspath_prepend(str(tmp_path))
    return names


def install_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> str:
    group = f"carecoord.test.{uuid.uuid4().hex[:8]}"  # a group no other test or package uses
    dist = tmp_path / "eps" / "cc_plugin_dist-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cc-plugin-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\nacme = {value}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "eps"))
    return group


def test_missing_builtin_modules_are_skipped(plugin: dict[str, str]) -> None:
    table = load_handlers(
        builtin_modules=("carecoord.handlers.not_written_yet", plugin["mod"]), group="none"
    )
    assert table.names == (plugin["a"], plugin["b"])
    assert [s.name for s in table.for_type("t.two")] == [plugin["b"]]


def test_builtin_module_with_a_broken_import_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"cc_broken_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text("import a_dependency_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=f"handler module '{name}' cannot be imported"):
        load_handlers(builtin_modules=(name,), group="none")


def test_extra_module_that_does_not_exist_is_an_error() -> None:
    with pytest.raises(ConfigError, match="CARECOORD_HANDLER_MODULES"):
        load_handlers(builtin_modules=(), extra_modules=("cc_no_such_module",), group="none")


def test_entry_point_handlers_are_loaded(
    plugin: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = install_entry_point(tmp_path, monkeypatch, f"{plugin['mod']}:SINGLE")
    table = load_handlers(builtin_modules=(), group=group)
    assert table.names == (plugin["c"],)
    assert table.event_types == {"t.three"}


def test_entry_point_naming_a_module_loads_its_handlers(
    plugin: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = install_entry_point(tmp_path, monkeypatch, plugin["mod"])
    assert load_handlers(builtin_modules=(), group=group).names == (plugin["a"], plugin["b"])


def test_duplicate_names_are_an_error(
    plugin: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = install_entry_point(tmp_path, monkeypatch, plugin["mod"])
    with pytest.raises(ConfigError, match=f"two handlers are named '{plugin['a']}'"):
        load_handlers(builtin_modules=(plugin["mod"],), group=group)


def test_enable_and_disable(plugin: dict[str, str]) -> None:
    mods = (plugin["mod"],)
    only = load_handlers(builtin_modules=mods, group="none", enabled=[plugin["b"]])
    assert only.names == (plugin["b"],)
    assert only.known == (plugin["a"], plugin["b"])
    without = load_handlers(builtin_modules=mods, group="none", disabled=[plugin["b"]])
    assert without.names == (plugin["a"],)
    assert without.for_type("t.two") == []


def test_unknown_names_list_the_known_ones(plugin: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as err:
        load_handlers(builtin_modules=(plugin["mod"],), group="none", disabled=["outreech"])
    msg = str(err.value)
    assert "CARECOORD_HANDLERS_DISABLED names unknown handler(s) outreech" in msg
    assert f"known handlers are {plugin['a']}, {plugin['b']}" in msg


def test_config_merges_over_defaults_with_types_from_defaults(plugin: dict[str, str]) -> None:
    table = load_handlers(
        builtin_modules=(plugin["mod"],),
        group="none",
        config={plugin["a"]: {"max_unanswered": "3", "urgent": "true"}},
    )
    assert table.configs[plugin["a"]] == {"max_unanswered": 3, "urgent": True, "owner": "lead"}


def test_config_typos_and_bad_values_are_errors(plugin: dict[str, str]) -> None:
    mods = (plugin["mod"],)
    with pytest.raises(ConfigError, match=r"has no setting 'max_unansward'.*max_unanswered"):
        load_handlers(
            builtin_modules=mods, group="none", config={plugin["a"]: {"max_unansward": 3}}
        )
    with pytest.raises(ConfigError, match="max_unanswered is invalid: expected int"):
        load_handlers(
            builtin_modules=mods, group="none", config={plugin["a"]: {"max_unanswered": "x"}}
        )
    with pytest.raises(ConfigError, match="unknown handler"):
        load_handlers(builtin_modules=mods, group="none", config={"nobody": {"k": 1}})


def test_bad_entry_point_target_is_an_error(
    plugin: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = install_entry_point(tmp_path, monkeypatch, f"{plugin['mod']}:_noop")
    with pytest.raises(ConfigError, match="must provide a HandlerSpec"):
        load_handlers(builtin_modules=(), group=group)
