"""python -m zfsaga.guest [--] COMMAND...: run COMMAND against real ZFS (see guest/run.py)."""
from zfsaga.guest.run import main

raise SystemExit(main())
