"""A name -> class registry, the one mechanism behind ``register_model`` / ``build_model`` and
``register_loss`` / ``build_loss``: a class decorator that records a class under a name (and sets
``cls.name``), the sorted names, and building by name with plain YAML options, each error naming the kind."""

from __future__ import annotations

from typing import Generic, TypeVar

from xdrcdepth_core.cli_args import short_repr

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes of one ``kind`` ("model", "loss"; ``plural`` "models", "losses") by name. ``unknown`` is the
    exception type for a name that is not registered; ``options`` the word the messages use for the keyword
    arguments ("config", "options")."""

    def __init__(self, kind: str, plural: str, unknown: type[Exception] = ValueError, options: str = "options"):
        self.kind, self.plural, self.unknown, self.options = kind, plural, unknown, options
        self.classes: dict[str, T] = {}

    def register(self, name: str):
        """Class decorator: register ``cls`` under ``name`` and set ``cls.name``; a second class under the same
        name is an error."""

        def decorator(cls: T) -> T:
            if name in self.classes and self.classes[name] is not cls:
                raise ValueError(f"{self.kind} name {name!r} is already registered by "
                                 f"{self.classes[name].__qualname__}")
            cls.name = name
            self.classes[name] = cls
            return cls

        return decorator

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self.classes)

    def build(self, name: str, **options):
        """An instance of the class registered as ``name``, built with ``options``."""
        if name not in self.classes:
            raise self.unknown(f"unknown {self.kind} {short_repr(name)}; registered {self.plural}: "
                               f"{', '.join(self.names())}")
        try:
            return self.classes[name](**options)
        except TypeError as exc:
            raise TypeError(f"bad {self.options} for {self.kind} {short_repr(name)}: {exc}") from exc
