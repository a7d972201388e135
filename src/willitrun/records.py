"""The names spec classes take from pydantic, or light stand-ins for specs that pydantic already validated.

pydantic's import alone costs about half of a plain estimate's start-up (~85 ms of ~150 ms on the
machine of benchmarks/startup-results.md). The common estimate reads its two specs from the catalog
cache, which stores a spec only after pydantic validated it (catalog/cache.py), so rebuilding them
needs no validator: only the classes' fields, properties and methods.

Spec modules import `BaseModel`, `ConfigDict`, `Field`, `field_validator` and `model_validator` from
here instead of from pydantic. By default they *are* pydantic's. The command-line entry point calls
`enable()` before any spec class is defined, for an estimate whose specs can come from the cache
(cli/__init__.py); the spec classes are then plain classes (`Record`) with pydantic's
construct-without-validation API (`model_construct`, `model_fields`, `model_fields_set`), frozen and
compared field by field as pydantic's frozen models are. Anything that would validate raises
`NeedsPydantic`, and the entry point runs the command again with pydantic (a spec file changed, a
config.json was given): the answer is the same either way, and tests/cli/test_records.py checks
that it is, byte for byte.

Nothing else changes with the mode: the arithmetic reads attributes, properties and methods, which
are the same code in both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # type checkers see pydantic's names; at run time `__getattr__` picks them
    from pydantic import BaseModel as BaseModel
    from pydantic import ConfigDict as ConfigDict
    from pydantic import Field as Field
    from pydantic import field_validator as field_validator
    from pydantic import model_validator as model_validator

_active = False
_resolved: dict[str, Any] = {}
NAMES = ("BaseModel", "ConfigDict", "Field", "field_validator", "model_validator")


# pydantic 2's public BaseModel API that `Record` does not stand in for: reaching one of these
# names on a stand-in means "run again with pydantic", never an AttributeError (an internal error).
PYDANTIC_API = frozenset(
    {
        "model_computed_fields",
        "model_dump_json",
        "model_extra",
        "model_json_schema",
        "model_parametrized_name",
        "model_post_init",
        "model_rebuild",
        "model_validate_json",
        "model_validate_strings",
        "__pydantic_extra__",
        "__pydantic_private__",
        "__pydantic_fields_set__",
    }
)


class NeedsPydantic(Exception):
    """A spec had to be validated (or dumped) while the stand-ins were in use."""


def enable() -> bool:
    """Use the stand-ins for spec classes defined from now on; False if a spec module already took
    pydantic's names (then nothing changes: one process never mixes the two)."""
    global _active
    if _resolved and not _active:
        return False
    _active = True
    return True


def active() -> bool:
    return _active


class Record:
    """A spec object built from already-validated values (pydantic's `model_construct`, without pydantic)."""

    __slots__ = ("__dict__", "__weakref__", "model_fields_set")
    model_fields: ClassVar[dict[str, None]] = {}
    model_config: ClassVar[dict[str, Any]] = {}
    _defaults: ClassVar[dict[str, _Default]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__()
        fields: dict[str, None] = {}
        for klass in reversed(cls.__mro__):
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                text = annotation if isinstance(annotation, str) else repr(annotation)
                if name.startswith("_") or text.startswith(("ClassVar", "typing.ClassVar")) or name == "model_config":
                    continue
                fields[name] = None
        cls.model_fields = fields
        defaults: dict[str, _Default] = {}
        for name in fields:
            for klass in cls.__mro__:
                if name in vars(klass):
                    value = vars(klass)[name]
                    defaults[name] = value if isinstance(value, _Default) else _Default(value)
                    break
        cls._defaults = defaults

    def __init__(self, **data: Any) -> None:
        """pydantic's constructor without its validation: the values given, defaults for the rest. Only
        defaults written in class bodies and values taken from validated specs reach it."""
        self._fill(data)
        object.__setattr__(self, "model_fields_set", set(data))

    def _fill(self, values: dict[str, Any]) -> None:
        missing = [
            n for n in self.model_fields if n not in values and (n not in self._defaults or self._defaults[n].required)
        ]
        if missing:
            raise NeedsPydantic(f"{type(self).__name__}: {', '.join(missing)} missing")
        d = self.__dict__
        for name in self.model_fields:
            d[name] = values[name] if name in values else self._defaults[name].value()

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Any:
        obj = object.__new__(cls)
        obj._fill(values)
        object.__setattr__(obj, "model_fields_set", set(values) if _fields_set is None else set(_fields_set))
        return obj

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Any:
        raise NeedsPydantic(f"{cls.__name__}: validation needs pydantic")

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Any:
        """pydantic's `model_copy`: the same values with `update` applied, not validated (as pydantic
        does not validate them either); the updated names join `model_fields_set`."""
        import copy

        values = copy.deepcopy(self.__dict__) if deep else dict(self.__dict__)
        if update:
            values.update(update)
        obj = object.__new__(type(self))
        obj.__dict__.update(values)
        object.__setattr__(obj, "model_fields_set", set(self.model_fields_set) | set(update or ()))
        return obj

    def model_dump(self, **kwargs: Any) -> Any:
        raise NeedsPydantic(f"{type(self).__name__}: model_dump needs pydantic")

    def __getattr__(self, name: str) -> Any:
        """Any other part of pydantic's model API: the command is run again with pydantic rather than
        failing (`AttributeError` for every other missing name, as usual)."""
        if name in PYDANTIC_API:
            raise NeedsPydantic(f"{type(self).__name__}.{name} needs pydantic")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise TypeError(f"{type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"{type(self).__name__} is frozen")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


class _Default:
    """A field's default as a class body writes it (`= value` or `= Field(...)`), and its numeric and
    length constraints (gt, ge, lt, le, max_length), which catalog/cache.py checks on cached values."""

    __slots__ = ("constraints", "default", "factory", "required")

    def __init__(
        self, default: Any = ..., factory: Callable[[], Any] | None = None, constraints: dict[str, Any] | None = None
    ) -> None:
        self.default, self.factory, self.constraints = default, factory, constraints or {}
        self.required = default is ... and factory is None

    def value(self) -> Any:
        import copy

        return self.factory() if self.factory is not None else copy.deepcopy(self.default)


def _field(default: Any = ..., *args: Any, default_factory: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
    """`Field(...)`: the default, and the bounds a cached value is checked against (catalog/cache.py)."""
    bounds = {k: kwargs[k] for k in ("gt", "ge", "lt", "le", "max_length") if kwargs.get(k) is not None}
    return _Default(default, default_factory, bounds)


def _config_dict(**kwargs: Any) -> dict[str, Any]:
    return dict(kwargs)


def _decorator(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """`field_validator(...)` / `model_validator(...)`: validators do not run on validated values."""
    return lambda function: function


def __getattr__(name: str) -> Any:
    """pydantic's name, or its stand-in after `enable()`; fixed at the first import of each name."""
    if name not in NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _resolved:
        if _active:
            stand_in = {
                "BaseModel": Record,
                "ConfigDict": _config_dict,
                "Field": _field,
                "field_validator": _decorator,
                "model_validator": _decorator,
            }
            _resolved[name] = stand_in[name]
        else:
            import pydantic

            _resolved[name] = getattr(pydantic, name)
    return _resolved[name]
