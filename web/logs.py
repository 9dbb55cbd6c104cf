"""`kb serve --log-json`: one JSON object a line (the request log's fields among them), for log collectors."""

from __future__ import annotations

import json
import logging
import time

# Attributes every LogRecord has; anything else on a record was passed in `extra` and is logged too.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_lines(verbose: bool = False) -> None:
    """`kb serve --log-json`: every log line (one per request among them) as one JSON object."""
    from kb.cli import configure_logging

    configure_logging(verbose=verbose)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
