# zfsaga: the two commands are `make demo` and `make test`; both set the host up first.
PY := .venv/bin/python
GUEST := $(PY) -m zfsaga.guest --

.PHONY: setup demo test unit guestboot realzfs pyzfs-suite bench clean
setup:
	tools/setup-host.sh

demo: setup
	$(GUEST) $(PY) -m zfsaga.demo

# Host tier first (fast, no ZFS), the harness's own failure paths (one short boot), then the
# whole real-ZFS tier in one guest boot.
test: setup unit guestboot realzfs

unit:
	$(PY) -m pytest -m "not realzfs and not guestboot" -q -ra -p no:cacheprovider

guestboot:
	$(PY) -m pytest -m guestboot -q -ra -p no:cacheprovider

realzfs:
	$(GUEST) sh tests/guest-tier.sh

# pyzfs's own shipped suite in the guest, then the real tier (about 12 minutes more).
pyzfs-suite: setup
	ZFSAGA_PYZFS_SUITE=1 $(GUEST) sh tests/guest-tier.sh

# Figures, not pass/fail: the saga's cost over the bare ZFS commands, model and real.
bench: setup
	$(GUEST) $(PY) bench/saga_overhead.py

clean:
	rm -rf .venv *.egg-info .pytest_cache .hypothesis
