"""Depth models (registry): ``xdrcdepth`` (student), ``lircdepth`` (baseline), ``cafnet`` (teacher).

Importing this package registers every model; ``build_model(name, **config)`` builds one.
"""

from xdrcdepth_core.models import cafnet, lircdepth, xdrcdepth  # noqa: F401  (register the models)
from xdrcdepth_core.models.registry import MODELS, build_model, list_models, register_model

__all__ = ["MODELS", "build_model", "list_models", "register_model"]
