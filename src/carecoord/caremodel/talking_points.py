"""Check-in talking points: conversation starters for a care manager, per chronic condition.

    catalog = load_catalog()                      # the shipped catalog (talking_points.yaml)
    catalog = load_catalog(Path("mine.yaml"))     # the shipped one with a user's file on top
    topics = catalog.matching(conditions)         # the topics for these FHIR Conditions

A topic matches a Condition whose code has an ICD-10-CM coding starting with one of its
prefixes (dots ignored: E11 matches E11.9) or a SNOMED CT coding equal to one of its concept
ids; a topic with `all_patients` (medication adherence) applies to everyone. The prompts are
questions to ask and topics to check, each citing its public source; they are not clinical
advice (docs/talking-points.md). A user's file (CARECOORD_TALKING_POINTS_FILE) has the shipped
file's format: a topic with a shipped id replaces it, `enabled: false` removes it, a new id is
added. Any problem with it is a ConfigError naming the file, the place and the fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from carecoord.caremodel import terminology as t
from carecoord.errors import ConfigError, describe_validation

SHIPPED = "talking_points.yaml"
FIX = (
    "fix the file (format: docs/talking-points.md; topics[] of {id, title, match: {icd10cm, "
    "snomed, all_patients}, prompts: [{text, source: {publisher, title, url}}]}) or unset "
    "CARECOORD_TALKING_POINTS_FILE"
)


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    publisher: str = Field(min_length=1)
    title: str = Field(min_length=1)
    url: str = Field(pattern=r"^https://\S+$")


class Prompt(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(min_length=1, max_length=400)
    source: Source


class Match(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    icd10cm: tuple[str, ...] = ()
    snomed: tuple[str, ...] = ()
    all_patients: bool = False

    @field_validator("icd10cm")
    @classmethod
    def _icd(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not _normal(code)[:1].isalpha() or len(_normal(code)) < 2:
                raise ValueError(f"{code!r} is no ICD-10-CM code prefix (e.g. E11 or I50.2)")
        return value

    @field_validator("snomed")
    @classmethod
    def _sct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not (code.isdigit() and 6 <= len(code) <= 18):
                raise ValueError(f"{code!r} is no SNOMED CT concept id (6 to 18 digits)")
        return value

    def matches(self, condition: Any) -> bool:
        for coding in getattr(getattr(condition, "code", None), "coding", None) or []:
            code = str(coding.code or "")
            if coding.system == t.ICD10CM and any(
                _normal(code).startswith(_normal(p)) for p in self.icd10cm
            ):
                return True
            if coding.system == t.SNOMED and code in self.snomed:
                return True
        return False


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    title: str = Field("", max_length=100)
    match: Match = Match()
    prompts: tuple[Prompt, ...] = ()
    enabled: bool = True  # false: remove the shipped topic of this id (only `id` needed)

    @model_validator(mode="after")
    def _complete(self) -> Self:
        if not self.enabled:
            return self
        if not self.title:
            raise ValueError("has no title: give one, e.g. title: Diabetes")
        m = self.match
        if not (m.icd10cm or m.snomed or m.all_patients):
            raise ValueError("matches nothing: give icd10cm, snomed or all_patients: true")
        return self


class CatalogFile(BaseModel):
    """One file: `topics`, and `sources` (free-form: a place for YAML anchors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: Any = None
    topics: tuple[Topic, ...] = ()

    @field_validator("topics")
    @classmethod
    def _unique(cls, value: tuple[Topic, ...]) -> tuple[Topic, ...]:
        ids = [topic.id for topic in value]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"topic ids given twice: {', '.join(twice)}")
        return value


@dataclass(frozen=True)
class MatchedTopic:
    """A topic for one patient and the Conditions ("Condition/<id>") that brought it."""

    topic: Topic
    conditions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.topic.id,
            "title": self.topic.title,
            "conditions": list(self.conditions),
            "prompts": [
                {"text": p.text, "source": p.source.model_dump()} for p in self.topic.prompts
            ],
        }


@dataclass(frozen=True)
class Catalog:
    topics: tuple[Topic, ...]

    def matching(self, conditions: Iterable[Any]) -> tuple[MatchedTopic, ...]:
        """The enabled topics for these Conditions, in catalog order (entered-in-error ones are
        skipped); `all_patients` topics always."""
        usable = [c for c in conditions if not _entered_in_error(c)]
        out: list[MatchedTopic] = []
        for topic in self.topics:
            if not topic.enabled:
                continue
            hits = tuple(f"Condition/{c.id}" for c in usable if topic.match.matches(c))
            if hits or topic.match.all_patients:
                out.append(MatchedTopic(topic, hits))
        return tuple(out)


def merge(base: Sequence[Topic], overrides: Sequence[Topic]) -> tuple[Topic, ...]:
    """`base` with each override replacing the topic of its id (in place) or appended."""
    by_id = {topic.id: topic for topic in overrides}
    merged = [by_id.pop(topic.id, topic) for topic in base]
    merged += [topic for topic in overrides if topic.id in by_id]
    return tuple(topic for topic in merged if topic.enabled)


@cache
def shipped_catalog() -> Catalog:
    """The catalog shipped as package data (read once)."""
    text = files("carecoord.caremodel").joinpath(SHIPPED).read_text(encoding="utf-8")
    return Catalog(parse_catalog(text, SHIPPED).topics)


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The shipped catalog, with the file at `path` (YAML or JSON) on top; ConfigError if that
    file cannot be read or is not a valid catalog."""
    base = shipped_catalog()
    if path is None:
        return base
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(
            f"talking points file cannot be read ({reason}): give a readable YAML or JSON "
            "file in CARECOORD_TALKING_POINTS_FILE",
            path=where,
        ) from exc
    return Catalog(merge(base.topics, parse_catalog(text, where).topics))


def parse_catalog(text: str, where: str) -> CatalogFile:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or "not YAML"
        raise ConfigError(
            f"talking points file is not valid YAML/JSON ({place}: {problem}): {FIX}", path=where
        ) from exc
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"talking points file must hold a mapping with `topics`: {FIX}", path=where
        )
    try:
        return CatalogFile.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(
            f"invalid talking points file ({describe_validation(exc)}): {FIX}", path=where
        ) from exc


def _normal(code: str) -> str:
    return code.replace(".", "").strip().upper()


def _entered_in_error(condition: Any) -> bool:
    status = getattr(condition, "verificationStatus", None)
    return any(c.code == "entered-in-error" for c in getattr(status, "coding", None) or [])
