"""The saga kinds this zfsaga knows: every `Saga` defined in a module of sagas/ named for its
verb (`<object>_<verb>.py`, sagas/contract.py), registered by its own definition, with the
kinds older versions journaled it under. Nothing lists them by hand: a new saga module is in
the catalog once it exists. Loaded on first use (the mutating verbs', never a read-only's)."""
from __future__ import annotations

import importlib
import pkgutil

from zfsaga.sagas.contract import REGISTRY, Saga

#: What a saga acts on, the first word of its module's name and of its kind.
OBJECTS = ("sr", "volume", "pool")
_loaded = False


def saga_modules() -> list[str]:
    """The modules of sagas/ that define sagas, by the name rule above."""
    import zfsaga.sagas as package

    return sorted(f"{package.__name__}.{info.name}"
                  for info in pkgutil.iter_modules(package.__path__)
                  if info.name.partition("_")[0] in OBJECTS and "_" in info.name)


def _load() -> None:
    global _loaded
    if not _loaded:
        for name in saga_modules():
            importlib.import_module(name)
        _loaded = True


def saga_of(kind: str) -> type[Saga] | None:
    """The saga of `kind` (or of a kind an older version journaled it under); None when this
    zfsaga has no such saga."""
    _load()
    return REGISTRY.get(kind)


#: The engine's name for `saga_of` (sagas/engine.py reads KIND, VERSION, EFFECT, DRAINS and
#: plan from what it returns: a saga class, as it once read a module).
saga_module = saga_of


def kinds() -> list[str]:
    """Every saga's own kind (aliases left out)."""
    _load()
    return sorted({cls.KIND for cls in REGISTRY.values()})


def sagas_of_verb(verb: str) -> list[type[Saga]]:
    """The sagas that serve `verb` ("Volume.revert", "SR.destroy", "zfsaga revert"), each
    declaring it in its VERBS: a verb's saga is found by the verb's name."""
    _load()
    return sorted({cls for cls in REGISTRY.values() if verb in cls.VERBS},
                  key=lambda cls: cls.KIND)
