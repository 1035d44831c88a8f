"""The saga kinds this zfsaga knows, imported lazily by kind name."""
from __future__ import annotations

import importlib
from types import ModuleType

KINDS = {"vdi.revert": "zfsaga.sagas.revert", "sr.create": "zfsaga.sagas.sr_create",
         "meta.set": "zfsaga.sagas.set_meta", "volume.create": "zfsaga.sagas.volume_create",
         "volume.destroy": "zfsaga.sagas.volume_destroy",
         "volume.resize": "zfsaga.sagas.volume_resize",
         "volume.snapshot": "zfsaga.sagas.volume_snapshot",
         "volume.clone": "zfsaga.sagas.volume_clone", "sr.destroy": "zfsaga.sagas.sr_destroy",
         # Journaled on the host, not on the pool they act on (location.host_state_dir).
         "pool.create": "zfsaga.sagas.pool_create", "pool.import": "zfsaga.sagas.pool_import",
         "pool.export": "zfsaga.sagas.pool_export", "pool.destroy": "zfsaga.sagas.pool_destroy"}


def saga_module(kind: str) -> ModuleType | None:
    path = KINDS.get(kind)
    return importlib.import_module(path) if path else None
