"""The ZFS layer, one folder: the interface every step and read goes through (`interface`: the
composites, built on `primitives`: one checked call each, through the one boundary where the
`guard` refuses a change outside a saga and the hooks inject faults), the arguments' checks and
the facts about ZFS they rest on (`checks`, `names`), its backends (`real`: libzfs_core for
mutations, the zfs CLI for listings and property reads; `model`: an in-memory ZFS held to the
real one by the same tests; `shared_model`: the model in a file, for the installed scripts'
tests), errors by meaning (`errors`) and the retry of transient errors (`retry`). What changed
between two points of a volume's history: a send stream's reader (`stream`, with its checksum,
`fletcher`), xapi's changed-blocks bitmap of its ranges (`changed`), and the in-process send
that feeds them (`send`, real ZFS only). The steps
beside this folder are built on it; nothing here knows of sagas but that a change must run
inside one (the guard, told by the engine)."""
