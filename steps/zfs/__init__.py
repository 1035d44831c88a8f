"""The ZFS layer, one folder: the interface every step and read goes through (`interface`),
its backends (`real`: libzfs_core for mutations, the zfs CLI for listings and property reads;
`model`: an in-memory ZFS held to the real one by the same tests; `shared_model`: the model in a
file, for the installed scripts' tests), errors by meaning (`errors`), ZFS's naming rules
(`names`) and the retry of transient errors (`retry`). The steps beside this folder are built on
it; nothing here knows of sagas."""
