"""Logging set-up (LOG_LEVEL, LOG_FORMAT=colour|color|plain|json) and the one-line-per-request log."""

from __future__ import annotations

import json
import logging
import random
import re
import string
import sys
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

from jwt.warnings import InsecureKeyLengthWarning
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from logging import _SysExcInfoType  # typeshed's name for what sys.exc_info() returns

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()
_LEVELS = {"ERROR": logging.ERROR, "WARN": logging.WARNING, "INFO": logging.INFO, "DEBUG": logging.DEBUG}
_COLOURS = {"DEBUG": "\033[36m", "INFO": "\033[32m", "WARNING": "\033[33m", "ERROR": "\033[31m", "CRITICAL": "\033[41m"}
_RESET = "\033[0m"
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What must not reach a text log raw: control characters (C0, DEL, C1), line and paragraph
# separators, bidirectional overrides (they reorder what a terminal shows) and lone surrogates
# (not encodable: the handler would print an error instead of the record).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
# A request id from the caller is kept only if it is this plain; else the service makes one.
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
# What a logged path keeps as it is besides letters and digits: printable ASCII but space and "%".
_PATH_SAFE = string.punctuation.replace("%", "")


def escape(text: str) -> str:
    """`text` with the characters of _UNSAFE written as Python escapes (\\n, \\x1b, \\u2028)."""
    if text.isprintable():  # a fast test (C, no regex) that no character of _UNSAFE is there
        return text
    return _UNSAFE.sub(lambda found: ascii(found.group())[1:-1], text)


def loggable_path(path: str) -> str:
    """The request path with space, "%" and every non-printable or non-ASCII character
    percent-encoded (UTF-8), so that the request line splits into its fields however the path
    was written, and each logged path stands for one path."""
    if path.isascii() and path.isprintable() and " " not in path and "%" not in path:
        return path
    return quote(path, safe=_PATH_SAFE, errors="surrogatepass")


class UtcTimes(logging.Formatter):
    """Record times in ISO 8601 UTC with milliseconds: 2026-12-01T06:47:11.822Z."""

    _second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # strftime and gmtime once a second, not for every record (a request line each).
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"


class JsonFormatter(UtcTimes):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(UtcTimes):
    """The plain format, one record per line at the margin: the message's unsafe characters are
    escaped, and an exception's traceback (whose text may hold a caller's input) follows on
    lines indented by four spaces, each escaped too."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, exc_info: _SysExcInfoType) -> str:
        return _indented(super().formatException(exc_info))

    def formatStack(self, stack_info: str) -> str:
        return _indented(stack_info)


def _indented(text: str) -> str:
    return "\n".join(f"    {escape(line)}" for line in text.splitlines())


class ColourFormatter(TextFormatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        colour = _COLOURS.get(record.levelname, "")
        return f"{colour}{text}{_RESET}" if colour else text


def configure_logging(level: str, log_format: str) -> None:
    formatter = {
        "json": JsonFormatter(),
        "colour": ColourFormatter(_TEXT_FORMAT),
        "plain": TextFormatter(_TEXT_FORMAT),
    }[log_format]
    # No format here uses the caller's file and line, thread or process: skip collecting them
    # for every record (the logging HOWTO's "Optimization"; a tenth of the request line's cost).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    setattr(logging, "logAsyncioTasks", False)  # Python 3.12+: the current task's name (unused before)  # noqa: B010
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # The request line below replaces the servers' own access logs; yoyo's line per migration
    # step (91 on a first start) is detail: `migrate` logs what it applied.
    for noisy in ("uvicorn.access", "granian.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("yoyo").setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    # Python warnings become log records in the chosen format (a raw warning on stderr would
    # break a JSON log). PyJWT warns about a short HMAC key on every token it signs or checks;
    # the service says it once, at start (settings.weak_key_warning).
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


request_log = logging.getLogger("encounters_service.requests")
REQUEST_LINE = "%s %s %s %.1fms request_id=%s"
_INFO = logging.INFO
# Logger.info's record of the request line, but for what changes from one request to the next:
# made once (a record of _RECORD_ARGUMENTS), copied into each request's record.
_RECORD_ARGUMENTS = (request_log.name, _INFO, "(unknown file)", 0, REQUEST_LINE, (), None, "(unknown function)")
_record_template: dict[str, object] = {}
_LOGGING_STARTED: float = vars(logging)["_startTime"]  # what relativeCreated counts from


def _as_configured() -> bool:
    """Whether a record holds nothing that differs from one call to the next but its message's
    arguments and its time: what configure_logging sets (no caller's file, no thread, process
    or task), and records made by the standard factory."""
    return (
        logging._srcfile is None
        and not (logging.logThreads or logging.logProcesses or logging.logMultiprocessing)
        and not getattr(logging, "logAsyncioTasks", False)
        and logging.getLogRecordFactory() is logging.LogRecord
    )


def log_request(fields: dict[str, object]) -> None:
    """The request line, as request_log.info(REQUEST_LINE, *fields.values(), extra={"fields": fields})
    logs it, to the same handlers. Once configure_logging has run, the record is a copy of a
    template with the arguments and the time filled in: Logger.info's making of it (makeRecord,
    LogRecord.__init__: the level's name, basename and splitext of the caller's file, …) was
    a third of the request line's cost, and the request line a tenth of a get by id's CPU."""
    if not request_log.isEnabledFor(_INFO):
        return
    if not _as_configured():
        request_log.info(REQUEST_LINE, *fields.values(), extra={"fields": fields})
        return
    if not _record_template:
        _record_template.update(logging.LogRecord(*_RECORD_ARGUMENTS).__dict__)
    record = logging.LogRecord.__new__(logging.LogRecord)
    attributes = record.__dict__
    attributes.update(_record_template)
    created = time.time()
    attributes["args"] = tuple(fields.values())
    attributes["created"] = created
    attributes["msecs"] = int((created - int(created)) * 1000) + 0.0  # as LogRecord.__init__ has them
    attributes["relativeCreated"] = (created - _LOGGING_STARTED) * 1000
    attributes["fields"] = fields
    request_log.handle(record)


def _new_request_id() -> str:
    """32 random hex digits. An identifier, not a secret: uuid4 (os.urandom, a system call) cost
    ~4% of a get by id; `random` is reseeded in each forked worker."""
    return f"{random.getrandbits(128):032x}"


def request_logging(app: ASGIApp, count: Callable[[Scope, int, float], None] | None = None) -> ASGIApp:
    """ASGI middleware: a request id (the caller's X-Request-ID if it is plain, else a new one),
    echoed in the response header and written in one log line per request with status and duration.
    `count` (metrics.count_request), if given, is called with the scope, the status and the
    duration in seconds of each request, before its line is logged."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:  # the last one, as dict(scope["headers"]) had it, without the dict
            if name == _REQUEST_ID_NAME:
                given = value
        request_id = given.decode() if _REQUEST_ID.fullmatch(given) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (_REQUEST_ID_NAME, request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if count is not None:
                count(scope, status, elapsed)
            elapsed_ms = elapsed * 1000
            fields = {
                "method": escape(scope["method"]),
                "path": loggable_path(scope["path"]),
                "status": status,
                "duration_ms": round(elapsed_ms, 2),
                "request_id": request_id,
            }
            log_request(fields)

    return middleware
