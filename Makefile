# zfsaga: the two commands are `make demo` and `make test`; both set the host up first.
PY := .venv/bin/python
GUEST := $(PY) -m zfsaga.guest --

.PHONY: setup demo test unit guestboot unit-fallback guestboot-then-fallback realzfs realzfs-more pyzfs-suite powerloss powercut-soak bench install \
	uninstall clean
DESTDIR ?= /
PREFIX ?= /usr
setup:
	tools/setup-host.sh

demo: setup
	$(GUEST) $(PY) -m zfsaga.demo

# The host tier (no ZFS) beside the tier that boots guests itself (the harness's failure
# paths, the power cuts: a guest killed mid-saga and booted again), as the hour needs; then
# the whole real-ZFS tier in one guest boot.
# The host tier calls the installed entry points through the warm server; beside it, the
# same entry-point tests run again with no server (the fallback), after the guest-booting tier.
test: setup
	$(MAKE) -j2 -O unit guestboot-then-fallback
	$(MAKE) realzfs

unit:
	$(PY) -m pytest -m "not realzfs and not guestboot" -q -ra -p no:cacheprovider

guestboot:
	$(PY) -m pytest -m guestboot -q -ra -p no:cacheprovider

# Every test file that calls the installed tree (conftest's destdir, or the hosts of the
# plugin's tests built on it), with no server answering (tests/test_server.py starts servers
# of its own, and tests both ways itself).
ENTRY_TESTS = $(filter-out tests/test_server.py,$(shell grep -lE \
  'destdir|xapi_daemon|from tests.test_(plugin_verbs|cbt_metadata) import' tests/test_*.py))
unit-fallback:
	ZFSAGA_TEST_ENTRY=fallback $(PY) -m pytest -m "not realzfs and not guestboot" -q -ra \
	  -p no:cacheprovider $(ENTRY_TESTS)

guestboot-then-fallback:
	@status=0; $(MAKE) guestboot || status=1; $(MAKE) unit-fallback || status=1; exit $$status

# The guest's own limit stays under CI's hour with the tiers before it.
realzfs:
	$(PY) -m zfsaga.guest --timeout 3300 -- sh tests/guest-tier.sh

# The real tests CI's hour leaves out (each says where CI proves the same), vm-copy included.
realzfs-more: setup
	ZFSAGA_REAL_MORE=1 ZFSAGA_REAL_FLOWS=1 $(GUEST) sh tests/guest-tier.sh

# pyzfs's own shipped suite in the guest, then the real tier (about 12 minutes more).
pyzfs-suite: setup
	ZFSAGA_PYZFS_SUITE=1 $(GUEST) sh tests/guest-tier.sh

# Power loss, in full (CI replays a sample): every flush point of every saga scenario, then the
# same with the journal's SQLite at synchronous=OFF (reported, not counted).
# Every flush point of every saga kind, one guest per kind (a guest's run is bounded: the whole
# catalog in one would outlast it), then again with the journal at synchronous=OFF. Hours.
POWERLOSS_KINDS ?= $(shell $(PY) -c "from tests.saga_scenarios import SCENARIOS; print(*SCENARIOS)")
powerloss: setup
	@status=0; for sync in FULL OFF; do for kind in $(POWERLOSS_KINDS); do \
	  echo "== powerloss: $$kind, synchronous=$$sync"; \
	  $(PY) -m zfsaga.guest --timeout 7000 -- $(PY) -m tests.power_harness --only $$kind \
	    --synchronous $$sync || status=1; \
	done; done; exit $$status

# The guest killed at random moments of random sagas, N times (a boot per cut, ~1 min each).
N ?= 10
SEED ?= 1
powercut-soak: setup
	$(PY) -m tests.test_power_cut $(N) $(SEED)

# Figures, not pass/fail: the saga's cost over the bare ZFS commands, model and real.
bench: setup
	$(GUEST) sh -c "$(PY) bench/saga_overhead.py && $(PY) bench/entry_points.py && $(PY) bench/verbs.py"

# The SR at scale, figures: a saga's start at 100,000 finished sagas against none and the
# journal file under gc (no ZFS in it: natively), then SR.ls at 100 to 10,000 VDIs against
# the listing it makes (the model to 10,000 natively; real ZFS in the guest to 1,000, whose
# making takes minutes there).
.PHONY: bench-scale
bench-scale: setup
	$(PY) bench/scale.py journal
	$(PY) bench/scale.py ls
	$(GUEST) $(PY) bench/scale.py ls --sizes ''

# The tree a dom0 takes as it is (tools/install.py says what goes where); DESTDIR for packaging.
install: setup
	$(PY) tools/install.py install --destdir "$(DESTDIR)" --prefix "$(PREFIX)"

uninstall:
	$(PY) tools/install.py uninstall --destdir "$(DESTDIR)" --prefix "$(PREFIX)"

clean:
	rm -rf .venv *.egg-info .pytest_cache .hypothesis
