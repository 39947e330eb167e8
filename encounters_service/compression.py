"""Compressed answers, negotiated from Accept-Encoding (RFC 9110 12.5.3), at ASGI level (`compressed`).

An answer of MIN_BYTES or more, sent whole (one body message), without a Content-Encoding or an
ETag of its own, is sent in the coding the request accepts with the highest q-value: zstd, br or
gzip, the server preferring them in that order (and any of them to identity) among equal q-values.
Without Accept-Encoding, or when it accepts none of them, the answer is sent as it is (identity,
even when identity is refused: RFC 9110 prefers that to a 406). Every answer carries
`Vary: Accept-Encoding`, the small ones too, so that a cache keeps each coding apart.

Levels, measured on the census answer (4.0 MB; docs/performance.md "Compression"): zstd 1 (7.5×,
9 ms), brotli quality 1 (6.3×, 13 ms), gzip 1 (5.2×, 30 ms). Bodies of THREAD_BYTES or more are
compressed in a worker thread (all three libraries release the GIL), so that the worker's event
loop goes on serving other requests meanwhile."""

from __future__ import annotations

import asyncio
import re
import threading
import zlib
from collections.abc import Callable
from functools import lru_cache

import brotli
import zstandard
from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

MIN_BYTES = 1024  # smaller answers are never compressed (docs/performance.md "Compression": the threshold)
# Larger answers are compressed off the event loop. The hop to a thread costs 0.1-0.15 ms; zstd
# compresses 1 MB of these answers in about 2 ms, the census (4 MB) in 8-9 ms.
THREAD_BYTES = 1024 * 1024
PREFERENCE = ("zstd", "br", "gzip")  # among codings of equal q-value; identity after all of them
ZSTD_LEVEL, BROTLI_QUALITY, GZIP_LEVEL = 1, 1, 1
GZIP_WBITS = 31  # zlib's gzip container (RFC 1952), with no file name and a zero mtime

# RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 8.4.1.3
_IMPLIED_IDENTITY = 0.0001  # identity not named (nor *): acceptable, after every coding the request names

_VARY = (b"vary", b"Accept-Encoding")  # a field of its own: repeated fields read as one list (RFC 9110 5.3)
_ACCEPT_ENCODING = b"accept-encoding"
_SENT_AS_IS = frozenset((b"content-encoding", b"etag"))  # an ETag names the identity representation
_per_thread = threading.local()


def _zstd(body: bytes) -> bytes:
    # A ZstdCompressor must not be used by two threads at once: one per thread.
    compressor: zstandard.ZstdCompressor | None = getattr(_per_thread, "zstd", None)
    if compressor is None:
        compressor = _per_thread.zstd = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor.compress(body)


def _brotli(body: bytes) -> bytes:
    compressed: bytes = brotli.compress(body, quality=BROTLI_QUALITY)
    return compressed


def _gzip(body: bytes) -> bytes:
    return zlib.compress(body, GZIP_LEVEL, GZIP_WBITS)


ENCODERS: dict[str, Callable[[bytes], bytes]] = {"zstd": _zstd, "br": _brotli, "gzip": _gzip}


def _qvalue(parameters: str) -> float | None:
    """The q of a coding's parameters (1 when absent); None when it is malformed."""
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            value = value.strip()
            return float(value) if _QVALUE.fullmatch(value) else None
    return 1.0


@lru_cache(maxsize=256)
def choose_coding(accept_encoding: str) -> str | None:
    """The coding to send for this Accept-Encoding value (all of the request's fields, joined by
    commas), or None for identity. A coding with a malformed q-value counts as not named; a coding
    named twice has the lower of its q-values (a refusal wins)."""
    named: dict[str, float] = {}
    for item in accept_encoding.split(","):
        coding, _, parameters = item.partition(";")
        coding = coding.strip().lower()
        q = _qvalue(parameters)
        if coding and q is not None:
            coding = _ALIASES.get(coding, coding)
            named[coding] = min(q, named.get(coding, q))
    anything = named.get("*")
    best, best_q = None, named.get("identity", _IMPLIED_IDENTITY if anything is None else anything)
    for coding in PREFERENCE:
        q = named.get(coding, anything or 0.0)
        if q > 0 and (q > best_q or (best is None and q == best_q)):
            best, best_q = coding, q
    return best


def _accept_encoding(scope: Scope) -> str | None:
    values = [value.decode("latin-1") for name, value in scope["headers"] if name == _ACCEPT_ENCODING]
    return ",".join(values) if values else None


def compressed(app: ASGIApp) -> ASGIApp:
    """`app`, with its answers compressed as the request's Accept-Encoding asks (module docstring).

    Measured cost (docs/performance.md "Compression"): about 2 us per answer that is not compressed."""

    async def negotiate(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        start: HTTPResponseStartEvent | None = None

        async def send_encoded(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message  # held until the body shows whether it is compressed
                return
            if start is None:  # the rest of a streamed body, or after it
                await send(message)
                return
            started, start = start, None
            headers = [*started.get("headers", []), _VARY]
            body = message.get("body", b"") if message["type"] == "http.response.body" else b""
            coding = None
            if len(body) >= MIN_BYTES and not message.get("more_body", False):
                sent_as_is = any(name.lower() in _SENT_AS_IS for name, _ in headers)
                accept = None if sent_as_is else _accept_encoding(scope)
                coding = None if accept is None else choose_coding(accept)
            if coding is None:
                await send({**started, "headers": headers})
                await send(message)
                return
            encode = ENCODERS[coding]
            encoded = await asyncio.to_thread(encode, body) if len(body) >= THREAD_BYTES else encode(body)
            headers = [(name, value) for name, value in headers if name.lower() != b"content-length"]
            headers += [(b"content-encoding", coding.encode()), (b"content-length", str(len(encoded)).encode())]
            await send({**started, "headers": headers})
            await send({"type": "http.response.body", "body": encoded, "more_body": False})

        await app(scope, receive, send_encoded)

    return negotiate
