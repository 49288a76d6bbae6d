"""The instruments carecoord knows, read from the Questionnaires shipped beside this module.

Each Questionnaire's canonical is `CANONICAL_BASE + <LOINC panel code>` (the check-in:
`CANONICAL_BASE + "carecoord-check-in"`), so anything that looks at
QuestionnaireResponse.questionnaire recognises an instrument by the canonical's last segment. The
items and answers (codes, and the item scores in the ordinalValue extension) are the
Questionnaire's: one source for what is published and what is scored.

Sources of the codes (also in each file's description and in docs/assessments.md):
- PHQ-9 44249-1: NLM LHC-Forms github.com/lhncbc/lforms test/data/R4/phq9.json
  (commit e4322dddb14a24d5176e6b8212d6a91d5c9f31be).
- GAD-7 69737-5: the LOINC form as exported by LHC-Forms 34.3.0, and a PGHD IG's
  QuestionnaireScoredAssessmentGAD7 (FSH); they differ on 68509-9's "2" (_ALSO_ACCEPTED).
- Hunger Vital Sign 88121-9: HL7/fhir-sdoh-clinicalcare
  input/fsh/instances/SDOHCC-QuestionnaireHungerVitalSign.fsh
  (commit 6604b7ac13b9f0cd80603428f99e5be0672966aa).
- AHC HRSN 96777-8: HL7/US-Core input/examples/*AHC-HRSN* (commit 0c7c679ad6f0f80f0cf973f241d42317
  84818ece) and the CMS tool's answer codes as listed by the NYeC SHIN-NY HRSN IG 1.4.5.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from carecoord.caremodel.terminology import CARECOORD_BASE, CODESYSTEM_BASE, LOINC

CANONICAL_BASE = f"{CARECOORD_BASE}/Questionnaire/"
CHECK_IN_SYSTEM = f"{CODESYSTEM_BASE}check-in"
_ORDINAL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

PHQ9 = "44249-1"
GAD7 = "69737-5"
HVS = "88121-9"
AHC_HRSN = "96777-8"
CHECK_IN = "carecoord-check-in"


@dataclass(frozen=True)
class AnswerOption:
    system: str
    code: str
    display: str
    score: int | None  # the ordinalValue, where the instrument scores the answer


@dataclass(frozen=True)
class Item:
    code: str  # the LOINC item code (or carecoord's, for the check-in)
    system: str
    text: str
    type: str  # "choice" or "integer" (a score carecoord computes)
    answers: tuple[AnswerOption, ...]
    repeats: bool = False

    def answer(self, system: str | None, code: str) -> AnswerOption | None:
        """The option with `code` (and `system`, when the response names one), else None."""
        for option in self.answers:
            if option.code == code and (system is None or system == option.system):
                return option
        return None


@dataclass(frozen=True)
class Instrument:
    key: str  # the LOINC panel code, or "carecoord-check-in"
    title: str
    url: str
    version: str
    items: tuple[Item, ...]

    def item(self, code: str) -> Item | None:
        return next((i for i in self.items if i.code == code), None)


# Answers scored as well as the published ones: GAD-7 item 68509-9's "2" is LA18938-3 "More days
# than not" in LHC-Forms' export of the LOINC form (Questionnaire 13d63616-...), LA6570-1 "More
# than half the days" elsewhere (carecoord publishes that one, as on the other six items).
_ALSO_ACCEPTED: dict[str, tuple[AnswerOption, ...]] = {
    "68509-9": (AnswerOption(LOINC, "LA18938-3", "More days than not", 2),),
}


def _item(raw: Mapping[str, Any]) -> Item:
    coding = raw["code"][0]
    answers = []
    for option in raw.get("answerOption", []):
        vc = option["valueCoding"]
        scores = [e["valueDecimal"] for e in option.get("extension", []) if e["url"] == _ORDINAL]
        answers.append(
            AnswerOption(
                vc["system"], vc["code"], vc["display"], int(scores[0]) if scores else None
            )
        )
    return Item(
        code=coding["code"],
        system=coding["system"],
        text=raw["text"],
        type=raw["type"],
        answers=(*answers, *_ALSO_ACCEPTED.get(coding["code"], ())),
        repeats=bool(raw.get("repeats", False)),
    )


@cache
def questionnaires() -> dict[str, dict[str, Any]]:
    """Each instrument's Questionnaire (FHIR R4 JSON), by key. Do not mutate: shared."""
    folder = resources.files(__package__)
    out: dict[str, dict[str, Any]] = {}
    for key in (PHQ9, GAD7, HVS, AHC_HRSN, CHECK_IN):
        out[key] = json.loads(folder.joinpath(f"{key}.json").read_text(encoding="utf-8"))
    return out


@cache
def _instruments() -> dict[str, Instrument]:
    return {
        key: Instrument(
            key=key,
            title=q["title"],
            url=q["url"],
            version=q["version"],
            items=tuple(_item(i) for i in q["item"]),
        )
        for key, q in questionnaires().items()
    }


class _Instruments(Mapping[str, Instrument]):
    """INSTRUMENTS[key]: loaded on first use (the JSON is read once)."""

    def __getitem__(self, key: str) -> Instrument:
        return _instruments()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_instruments())

    def __len__(self) -> int:
        return len(_instruments())


INSTRUMENTS: Mapping[str, Instrument] = _Instruments()


def recognise(canonical: str | None) -> Instrument | None:
    """The instrument a QuestionnaireResponse.questionnaire names: carecoord's canonical (any
    `|version`), or any canonical whose last path segment is the LOINC panel code (e.g.
    http://loinc.org/q/44249-1) or "carecoord-check-in". None: not an instrument carecoord
    scores."""
    if not canonical:
        return None
    url = canonical.split("|", 1)[0].rstrip("/")
    last = url.rsplit("/", 1)[-1]
    return _instruments().get(last)
