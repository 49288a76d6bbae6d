"""Resources held as their JSON, validated into fhir.resources only when something reads them.

Per event, the handlers build resources that go straight into a transaction Bundle, and read
search results of which they look at a few elements. A full pydantic round trip per resource
(validate, then `model_dump` back to JSON) was more than half of the service's CPU per event
(bench/results.json, issue 27). Inside `lean()` (HandlerProcessor wraps each event in it):

- `caremodel._build.finish` returns a `LazyResource` over the JSON the builder assembled; the
  builders' shapes are checked against fhir.resources by their tests
  (tests/unit/caremodel/test_lean_builders.py), not again on every event;
- `fhir.models.parse_resource` returns a `LazyResource` over the server's JSON;
- `fhir.models.to_json` of a `LazyResource` not yet validated is a copy of its JSON.

A LazyResource answers `get_resource_type()`, `resource_type` and `id` from the JSON. An element
(a field of its fhir.resources class, e.g. `status`, `subject`) is validated alone, with that
field's own pydantic type, the first time it is read, and kept: the value is the one the
validated model would hold (a CodeableConcept model, a datetime), and the elements nobody reads
are never validated (issue 27: "responses are parsed only as far as the handler reads them";
the resources handlers search for are read for a few elements each). An element that does not
validate, and any other attribute (`model_dump`, an assignment), validate the whole resource
(a server's invalid resource then raises FhirResponseInvalid, as the eager parse does); from then
on it is the validated model, holding the very element objects already handed out (so an edit
made to one of them is kept). `json()` (for reading) is its JSON until a mutable element (a
model, a list) has been handed out; `sendable_json()` (what `fhir.models.to_json` sends) is its
JSON with those elements written back as the model writes them, without validating the rest.
It passes `isinstance` for its fhir.resources class. Outside `lean()` (the public API, the
tests) everything is validated eagerly, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime, time
from decimal import Decimal
from functools import cache
from types import UnionType
from typing import Any, Union, get_args, get_origin

from fhir.resources.R4B.resource import Resource
from fhir_core.types import FhirBase
from pydantic import BaseModel, TypeAdapter, ValidationError

from carecoord.core import json_codec

_LEAN: ContextVar[bool] = ContextVar("carecoord_fhir_lean", default=False)


@contextmanager
def lean(enabled: bool = True) -> Iterator[None]:
    """Within the block (this thread / task), build and parse resources lazily."""
    token = _LEAN.set(enabled)
    try:
        yield
    finally:
        _LEAN.reset(token)


def is_lean() -> bool:
    return _LEAN.get()


_checking = False
mismatches: list[str] = []  # what check_builds found (a handler may swallow the raise)


def check_builds(enabled: bool) -> None:
    """While enabled (the test suite's conftest turns it on), every resource a builder makes in
    `lean()` is also validated and its JSON compared with the validated model's: a mismatch is
    raised and kept in `mismatches`, so the test that ran the builder fails."""
    global _checking
    _checking = enabled


def checking_builds() -> bool:
    return _checking


class LeanBuildMismatch(AssertionError):
    """A builder's lean JSON differs from its validated model's JSON (a bug in the builder)."""


Validator = Callable[[dict[str, Any]], Resource]
_UNIONS = (Union, UnionType)
_IMMUTABLE = (str, int, float, Decimal, date, datetime, time, type(None))  # bool is an int


@cache
def _element(cls: type[Resource], name: str) -> tuple[str, TypeAdapter[Any]] | None:
    """(JSON key, validator) of the element `name` of `cls`; None if it has no such field."""
    field = cls.model_fields.get(name)
    if field is None:
        return None
    return field.alias or name, TypeAdapter(field.rebuild_annotation())


class LazyResource:
    """A resource as JSON until first use; its elements validated one at a time as they are
    read; its validated fhir.resources model once anything else is asked of it."""

    __slots__ = ("_checked", "_cls", "_data", "_elements", "_lent", "_model", "_validate")

    def __init__(self, cls: type[Resource], data: dict[str, Any], validate: Validator) -> None:
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_data", data)
        object.__setattr__(self, "_model", None)
        object.__setattr__(self, "_validate", validate)
        object.__setattr__(self, "_elements", None)  # name -> validated value, once read
        object.__setattr__(self, "_lent", False)  # a mutable element was handed out
        object.__setattr__(self, "_checked", None)  # elements whose JSON has FHIR's shape

    # isinstance(lazy, Task) is True for a lazy Task (isinstance falls back on __class__)
    @property  # type: ignore[misc]
    def __class__(self) -> type[Resource]:  # type: ignore[override]
        cls: type[Resource] = object.__getattribute__(self, "_cls")
        return cls

    def model(self) -> Resource:
        """The validated model (validated once; the JSON is dropped then)."""
        model: Resource | None = self._model
        if model is None:
            model = self._validate(self._data)
            for name, value in (self._elements or {}).items():
                model.__dict__[name] = value  # the objects already handed out, edits and all
            object.__setattr__(self, "_model", model)
            object.__setattr__(self, "_data", None)
            object.__setattr__(self, "_elements", None)
        return model

    def json(self) -> dict[str, Any] | None:
        """The JSON this was made from, while not validated yet and no mutable element of it was
        handed out (do not mutate it)."""
        return None if self._lent else self._data

    def sendable_json(self) -> dict[str, Any] | None:
        """A copy of the JSON to send, while not validated: the mutable elements handed out
        (perhaps edited since) written as fhir.resources writes them, the rest as it came.
        None once validated (then the model's dump is the JSON)."""
        data: dict[str, Any] | None = self._data
        if data is None:
            return None
        out: dict[str, Any] = copy_json(data)
        if not self._lent:
            return out
        lent = {n: v for n, v in (self._elements or {}).items() if not isinstance(v, _IMMUTABLE)}
        part = self._cls.model_construct(**lent)  # the model's own serializer, these alone
        written = part.model_dump(mode="json", exclude_none=True, by_alias=True)
        for name in lent:
            key = (_element(self._cls, name) or (name,))[0]
            out.pop(name, None)
            if key in written:
                out[key] = written[key]
            else:
                out.pop(key, None)
        return out

    def get_resource_type(self) -> str:
        data = self._data
        return str(data["resourceType"]) if data is not None else self.model().get_resource_type()

    @property
    def resource_type(self) -> str:
        return self.get_resource_type()

    @property
    def id(self) -> str | None:
        data = self._data
        if data is not None:
            rid = data.get("id")
            return rid if isinstance(rid, str) else None
        return self.model().id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        data = self._data
        if data is not None and (element := _element(self._cls, name)) is not None:
            elements: dict[str, Any] | None = self._elements
            if elements is not None and name in elements:
                return elements[name]
            key, adapter = element
            try:
                value = adapter.validate_python(data[key] if key in data else data.get(name))
            except ValidationError:
                return getattr(self.model(), name)  # raises as the whole resource's check does
            if elements is None:
                elements = {}
                object.__setattr__(self, "_elements", elements)
            elements[name] = value
            if not isinstance(value, _IMMUTABLE):
                object.__setattr__(self, "_lent", True)
            return value
        return getattr(self.model(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.model(), name, value)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LazyResource):
            other = other.model()
        return self.model() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        state = "validated" if self._data is None else "read in part" if self._elements else "json"
        return f"<lazy {self._cls.__name__} ({state})>"


class _NotJson:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_JSON"


NOT_JSON: Any = _NotJson()  # element_json's "read the attribute instead"


# An element's JSON shape: (0..*, what one value is): None for a primitive, `dict` for any
# object (a contained resource: checked when read as one), else the fields of a complex type.
Shape = tuple[bool, "type[dict[str, Any]] | dict[str, Any] | None"]


@cache
def _json_fields(cls: type[BaseModel]) -> dict[str, Shape]:
    """JSON key -> the shape of that element of `cls` (filled in as the shapes are asked)."""
    out: dict[str, Shape] = {}
    for name, info in cls.model_fields.items():
        hint = _bare(info.annotation)
        many = get_origin(hint) is list
        hint = _bare(get_args(hint)[0]) if many else hint
        model: type[BaseModel] | None = None
        if isinstance(hint, type) and issubclass(hint, FhirBase):
            model = hint.get_model_klass()
        elif isinstance(hint, type) and issubclass(hint, BaseModel):
            model = hint
        if model is None:
            out[info.alias or name] = (many, None)
        elif issubclass(model, Resource):
            out[info.alias or name] = (many, dict)
        else:
            out[info.alias or name] = (many, _LazyFields(model))
    return out


class _LazyFields(dict[str, Any]):
    """A complex type's `_json_fields`, looked up when first needed (types refer to themselves:
    Extension holds Extensions)."""

    def __init__(self, model: type[BaseModel]) -> None:
        super().__init__()
        self.model = model

    def __missing__(self, key: str) -> Any:
        if not self:
            self.update(_json_fields(self.model))
            if key in self:
                return self[key]
        return None


def _bare(hint: Any) -> Any:
    """`X` of `X | None`."""
    if get_origin(hint) in _UNIONS:
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _fits(shape: Shape, value: Any) -> bool:
    """Whether JSON `value` has the shape of an element: lists where 0..*, objects with known
    keys for complex types, no list or object for a primitive (values themselves are not checked
    against their FHIR patterns). A few us where validating is 8-70 (issue 27)."""
    many, one = shape
    if not many:
        return _fits_one(one, value)
    if not isinstance(value, list):
        return False
    for v in value:  # noqa: SIM110 - a loop: all() over a generator costs more, per event
        if v is not None and not _fits_one(one, v):
            return False
    return True


def _fits_one(one: Any, value: Any) -> bool:
    if one is None:
        return not isinstance(value, (list, dict))
    if not isinstance(value, dict):
        return False
    if one is dict:
        return True
    for key, v in value.items():
        inner = one[key]
        if inner is None or (v is not None and not _fits(inner, v)):
            return False
    return True


def element_json(resource: object, name: str) -> Any:
    """The element `name` (its Python field name) of a LazyResource not validated yet, as JSON,
    where it was not handed out as a model (which may have been edited since) and has the JSON
    shape of its type (`_fits`); else NOT_JSON: then read the attribute, which validates it and
    raises FhirResponseInvalid for what is wrong. For readers asked on every
    event (a team's members, a plan's period): validating an element costs 8-70 us."""
    if not isinstance(resource, LazyResource):
        return NOT_JSON
    data = resource._data
    if data is None:
        return NOT_JSON
    element = _element(resource._cls, name)
    if element is None:
        return None  # no such element in this type: absent, as getattr on its model says
    elements = resource._elements
    if elements and name in elements and not isinstance(elements[name], _IMMUTABLE):
        return NOT_JSON
    key = element[0]
    value = data.get(key)
    if value is None:
        return None
    checked: set[str] | None = resource._checked
    if checked is not None and name in checked:
        return value
    if not _fits(_json_fields(resource._cls)[key], value):
        return NOT_JSON
    if checked is None:
        object.__setattr__(resource, "_checked", {name})
    else:
        checked.add(name)
    return value


def copy_json(value: Any) -> Any:
    """A deep copy of JSON (dicts, lists, scalars): cheaper than copy.deepcopy."""
    return json_codec.copy(value)
