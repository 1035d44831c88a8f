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

    logger.remove()
    logger.configure(extra={"saga_id": "-", "verb": "-", "step": "-"})
    level = os.environ.get("ZFSAGA_LOG_LEVEL", "INFO")
    logger.add(sys.stderr, level=level, format=FORMAT, diagnose=False, backtrace=False,
               colorize=False)
    if os.path.exists("/dev/log") and os.environ.get("ZFSAGA_SYSLOG", "1") != "0":
        import logging.handlers

        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.ident = "zfsaga: "
        logger.add(handler, level=level, diagnose=False, backtrace=False,
                   format="saga={extra[saga_id]} verb={extra[verb]} step={extra[step]} | {message}")
    return logger


def get_logger(**bound: str) -> Any:
    """The configured loguru logger, bound to the given context (saga_id, verb, step)."""
    return _configured().bind(**bound)
