"""Pool steps, for an SR on devices: make the pool, import it, export it, destroy it. Their
sagas journal on the host (zfsaga/location.py, `host_state_dir`), never on the pool they act
on: a journal cannot record the making of the filesystem it lives on, nor survive its export.

A pool is known by its guid where one exists (ImportPool, ExportPool, DestroyPool guard with
it: a pool's name can be reused by another pool), and the pool zfsaga made carries
`org.zfsaga:made-pool` on its root, set in the same `zpool create`: the ownership tag of the
step that made it, and the mark that lets detach export and destroy destroy it."""
from __future__ import annotations

from typing import Any

from zfsaga.steps.base import OWNER, Foreign, Probe, Step, StepContext, half_born
from zfsaga.steps.srs import MADE_POOL, SR_MARK


class CreatePool(Step):
    """Args: pool, devices, layout, ashift (None: ZFS's choice from the devices), props (set
    on the root as it is made). Compensation: destroy the pool, while it is this step's."""

    FACTS = ("guid", "pool_guid", "mark")

    def tag(self, ctx: StepContext) -> str:
        return ctx.owner_tag(self.name)[OWNER]

    def probe(self, ctx: StepContext) -> Probe:
        pool = self.arg(ctx, "pool")
        if ctx.zfs.pool_guid(pool) is None:
            return "absent"
        got = ctx.zfs.get_props(pool, [MADE_POOL, "creation"])
        if got[MADE_POOL].local == self.tag(ctx):
            return "done"
        # A power cut between zpool create's two transactions leaves the pool without its
        # root properties (zfs_ioc_pool_create sets them after spa_create): the act remakes it.
        bare = {OWNER: got[MADE_POOL], "creation": got["creation"]}
        return "absent" if half_born(self, ctx, bare) else "foreign"

    def act(self, ctx: StepContext) -> None:
        pool = self.arg(ctx, "pool")
        if import_left_behind(self, ctx):
            found = self.probe(ctx)
            if found == "done":
                return  # made whole before the cut: the re-probe takes it as this step's
            if found == "foreign":
                ctx.zfs.export_pool(pool)  # left as it was found
                raise Foreign(pool, "a pool of that name, not made by this saga, is on the "
                                    "devices: refusing")
        if ctx.zfs.pool_guid(pool) is not None:  # only a half-born one of ours gets here
            ctx.zfs.destroy_pool(pool)
        ctx.zfs.create_pool(pool, self.arg(ctx, "devices"), self.arg(ctx, "layout"),
                            props={**self.arg(ctx, "props"), MADE_POOL: self.tag(ctx)},
                            ashift=self.arg(ctx, "ashift", None))

    def facts(self, ctx: StepContext) -> dict[str, Any]:
        pool = self.arg(ctx, "pool")
        guid = ctx.zfs.get_props(pool, ["guid"])["guid"].value
        return {"guid": guid, "pool_guid": ctx.zfs.pool_guid(pool), "mark": {SR_MARK: guid}}

    def effect(self, ctx: StepContext) -> str | None:
        return f"pool {self.arg(ctx, 'pool')}" if self.probe(ctx) == "done" else None


def import_left_behind(step: CreatePool, ctx: StepContext) -> bool:
    """Import the pool a power cut in the step's `zpool create` may have left on its devices
    without the host importing it at boot (the host imports what its cache file lists, a file
    the kernel writes after the pool's labels, on a filesystem that may not have committed
    it); then the probe can read whose it is. Only for a step a dead process was acting on (no
    read on a live saga's path) whose pool is not imported; returns whether one was."""
    from zfsaga.steps.zfs.errors import ZfsError

    pool = step.arg(ctx, "pool")
    if step.name not in ctx.cut_off or ctx.zfs.pool_guid(pool) is not None:
        return False
    devices = step.arg(ctx, "devices")
    left = [p["guid"] for p in ctx.zfs.importable_pools(devices) if p["name"] == pool]
    if len(left) != 1:
        return False  # none (nothing was made), or several: not a guess to act on
    try:
        ctx.zfs.import_pool(left[0], devices)
    except ZfsError as exc:
        if exc.transient:
            raise
        # Cut before the pool's first transaction landed: its devices carry the labels of
        # a pool being made, which an import's search lists and cannot import ("one or more
        # devices is currently unavailable") and a create (never forced) makes a pool over.
        return False
    return True


class ImportPool(Step):
    """Args: pool, pool_guid, devices (searched first). Compensation: export it again."""

    def probe(self, ctx: StepContext) -> Probe:
        found = ctx.zfs.pool_guid(self.arg(ctx, "pool"))
        if found is None:
            return "absent"
        return "done" if found == self.arg(ctx, "pool_guid") else "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.import_pool(self.arg(ctx, "pool_guid"), self.arg(ctx, "devices"))


class ExportPool(Step):
    """Args: pool, pool_guid, devices. Compensation: import it again."""

    guards = True  # exports by name: the pool there must be the one resolved

    def probe(self, ctx: StepContext) -> Probe:
        found = ctx.zfs.pool_guid(self.arg(ctx, "pool"))
        if found is None:
            return "done"
        return "absent" if found == self.arg(ctx, "pool_guid") else "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.export_pool(self.arg(ctx, "pool"))


class DestroyPool(Step):
    """Args: pool, pool_guid, made (the root's made-pool mark when the saga began). The pivot:
    a destroyed pool cannot be brought back."""

    kind = "pivot"
    guards = True

    def probe(self, ctx: StepContext) -> Probe:
        pool = self.arg(ctx, "pool")
        found = ctx.zfs.pool_guid(pool)
        if found is None:
            return "done"
        if found != self.arg(ctx, "pool_guid"):
            return "foreign"
        made = ctx.zfs.get_props(pool, [MADE_POOL])[MADE_POOL].local
        return "absent" if made and made == self.arg(ctx, "made") else "foreign"

    def act(self, ctx: StepContext) -> None:
        ctx.zfs.destroy_pool(self.arg(ctx, "pool"))
