"""One JSON object a line, each with the request id of the request that logged it."""

import logging
import sys

from asgi_correlation_id import CorrelationIdFilter
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from app.core.errors import SetupError

# uvicorn attaches `color_message`, its message with ANSI colour codes, to some records; as an
# extra it would land in the JSON as `\u001b[32m...`. The plain `message` says the same.
_NOT_LOGGED = (*RESERVED_ATTRS, "color_message")
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def configure_logging(level: str = "INFO") -> None:
    if level.upper() not in logging.getLevelNamesMapping():
        raise SetupError(f"LOG_LEVEL: unknown level {level!r}; use one of {', '.join(_LEVELS)}")
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(CorrelationIdFilter(default_value=None))
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}{correlation_id}",
            style="{",
            rename_fields={
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "correlation_id": "request_id",
            },
            datefmt="%Y-%m-%dT%H:%M:%S%z",
            reserved_attrs=_NOT_LOGGED,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Our access log replaces uvicorn's: one line a request, with the route template.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
        # LOG_LEVEL alone decides, whatever an earlier logging.config call left behind.
        logging.getLogger(name).disabled = False
        logging.getLogger(name).setLevel(logging.NOTSET)
