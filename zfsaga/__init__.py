"""zfsaga: a ZFS storage plugin for XAPI whose mutations run as journaled sagas."""
