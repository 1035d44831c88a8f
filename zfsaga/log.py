"""Logging for people woken at 3 a.m.: loguru, to stderr and syslog (never stdout, which carries
the SMAPIv3 result), every record bound to the saga id, verb and step, and no variable values in
tracebacks. loguru is imported on first use only: read-only commands never pay for it.
"""
from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any

FORMAT = ("{time:YYYY-MM-DD HH:mm:ss.SSS} {level: <7} zfsaga[{process}] "
          "saga={extra[saga_id]} verb={extra[verb]} step={extra[step]} | {message}")


@lru_cache(maxsize=1)
def _configured() -> Any:
    from loguru import logger

    from zfsaga.warm import loguru_library_dirs

    loguru_library_dirs()  # computed once for the two sinks below (or by the warm server)
    logger.remove()
    logger.configure(extra={"saga_id": "-", "verb": "-", "step": "-"})
    level = os.environ.get("ZFSAGA_LOG_LEVEL", "INFO")
    logger.add(sys.stderr, level=level, format=FORMAT, diagnose=False, backtrace=False,
               colorize=False)
    if os.path.exists("/dev/log") and os.environ.get("ZFSAGA_SYSLOG", "1") != "0":
        import logging.handlers

        # local2 is where xapi's own storage plugins log (it ends in /var/log/SMlog on a
        # host), and "SMAPIv3" the prefix an admin greps for there.
        handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=logging.handlers.SysLogHandler.LOG_LOCAL2)
        handler.ident = f"SMAPIv3: zfsaga[{os.getpid()}]: "
        logger.add(handler, level=level, diagnose=False, backtrace=False,
                   format="saga={extra[saga_id]} verb={extra[verb]} step={extra[step]} | {message}")
    return logger


def get_logger(**bound: str) -> Any:
    """The configured loguru logger, bound to the given context (saga_id, verb, step)."""
    return _configured().bind(**bound)
