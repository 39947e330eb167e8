"""Compressed answers (encounters_service/compression.py): the coding chosen from Accept-Encoding,
small answers left alone, Vary on every answer, and each coding decoding to exactly the bytes
sent without one; in-process, and once through `serve` (granian) to show the server adds nothing."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable

import brotli
import httpx
import pytest
import zstandard

from encounters_service import compression
from encounters_service.compression import MIN_BYTES, THREAD_BYTES, choose_coding, compressed
from tests.helpers import SERVICE_ENV, Service, as_app, auth
from tests.queries.arrange import WARD_A, WARD_B, insert_encounter

CENSUS = "/dhos/v1/encounter/locations"
DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data),
    "br": brotli.decompress,
    "gzip": lambda data: zlib.decompress(data, 31),
}
CENSUS_ENCOUNTERS = 120  # a census answer of about 100 KB


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        ("zstd", "zstd"),
        ("br", "br"),
        ("gzip", "gzip"),
        ("x-gzip", "gzip"),  # RFC 9110 8.4.1.3
        ("GZip ;  Q=1", "gzip"),  # names and the q are case-insensitive; spaces around ;
        ("gzip, br, zstd", "zstd"),  # equal q: the server's preference, zstd, br, gzip
        ("gzip, br", "br"),
        ("gzip;q=1, zstd;q=0.5", "gzip"),  # the highest q first
        ("zstd;q=0.2, br;q=0.201", "br"),
        ("identity", None),
        ("identity, gzip", "gzip"),  # equal q: any coding before identity
        ("identity;q=1, gzip;q=0.9", None),
        ("gzip;q=0.001", "gzip"),  # identity not named: acceptable, after any named coding
        ("gzip;q=0", None),  # q=0 refuses
        ("zstd;q=0, br;q=0.0, gzip;q=0.000", None),
        ("zstd;q=0, gzip", "gzip"),
        ("*", "zstd"),  # any coding: the server's preference
        ("*;q=0.5, identity", None),
        ("*, zstd;q=0", "br"),  # * stands for the codings not named
        ("*;q=0", None),  # nothing acceptable, identity refused: identity all the same
        ("identity;q=0", None),
        ("", None),  # an empty field: identity only
        ("deflate, compress, exi", None),  # codings this service does not send
        ("gzip;q=2, br;q=0.5x, zstd;q=.5", None),  # malformed q-values: as if not named
        ("gzip;q=0.5;level=9, br;q=0.4", "gzip"),  # other parameters are ignored
        ("gzip, gzip;q=0", None),  # named twice: the refusal wins
        ("gzip,,, ,br;q=0.1", "gzip"),  # empty list items
    ],
)
def test_the_coding_follows_rfc_9110(accept_encoding, coding):
    assert choose_coding(accept_encoding) == coding


def fill_census(db, ward, encounters: int) -> None:
    for _ in range(encounters):
        insert_encounter(db, location_uuid=ward)


def raw_census(client, ward, accept_encoding: str | None, method: str = "POST") -> httpx.Response:
    """The census answer as sent, not decoded (httpx decodes what it advertises itself)."""
    headers = auth()
    if accept_encoding is not None:
        headers["Accept-Encoding"] = accept_encoding
    with client.stream(method, CENSUS, json=[str(ward)], headers=headers) as response:
        response.raw_bytes = b"".join(response.iter_raw())
    assert response.status_code == 200, response.raw_bytes
    return response


@pytest.fixture
def wards(db) -> dict:
    """WARD_A's census of CENSUS_ENCOUNTERS; WARD_B's 2 encounters: just above MIN_BYTES."""
    fill_census(db, WARD_A, CENSUS_ENCOUNTERS)
    fill_census(db, WARD_B, 2)
    return {"census": WARD_A, "small": WARD_B}


@pytest.mark.parametrize("in_a_thread", [False, True], ids=["on the event loop", "in a thread"])
def test_each_coding_decodes_to_exactly_the_identity_bytes(client, wards, monkeypatch, in_a_thread):
    client.headers.pop("accept-encoding")  # httpx's own default: this request sends no Accept-Encoding
    monkeypatch.setattr(asyncio, "to_thread", counted(asyncio.to_thread))
    if in_a_thread:  # the census of a hospital is over THREAD_BYTES; this one is not
        monkeypatch.setattr(compression, "THREAD_BYTES", MIN_BYTES)
    for name, ward in wards.items():
        identity = raw_census(client, ward, None)
        assert "content-encoding" not in identity.headers
        assert identity.headers["vary"] == "Accept-Encoding"
        assert int(identity.headers["content-length"]) == len(identity.raw_bytes)
        assert MIN_BYTES <= len(identity.raw_bytes) < (2 * MIN_BYTES if name == "small" else THREAD_BYTES)
        assert raw_census(client, ward, "identity").raw_bytes == identity.raw_bytes
        for coding, decode in DECODERS.items():
            answer = raw_census(client, ward, coding)
            assert answer.headers["content-encoding"] == coding
            assert answer.headers["vary"] == "Accept-Encoding"
            assert int(answer.headers["content-length"]) == len(answer.raw_bytes) < len(identity.raw_bytes)
            assert decode(answer.raw_bytes) == identity.raw_bytes, (name, coding)
    assert asyncio.to_thread.calls == (2 * len(DECODERS) if in_a_thread else 0)


def counted(function):
    """`function`, counting its calls in .calls."""

    def call(*args, **kwargs):
        call.calls += 1
        return function(*args, **kwargs)

    call.calls = 0
    return call


def test_head_carries_the_get_s_coding_and_length(client, db):
    patient = insert_encounter(db, location_uuid=WARD_A)
    for _ in range(2):
        insert_encounter(db, patient_uuid=patient, discharged_at="2020-01-02T08:00:00Z")
    path = f"/dhos/v2/encounter?patient_id={patient}"
    headers = {**auth(), "Accept-Encoding": "br"}
    with client.stream("GET", path, headers=headers) as get:
        sent = b"".join(get.iter_raw())
    head = client.head(path, headers=headers)
    assert len(brotli.decompress(sent)) >= MIN_BYTES
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    for name in ("content-encoding", "content-length", "vary", "content-type"):
        assert head.headers[name] == get.headers[name], name
    assert int(head.headers["content-length"]) == len(sent)


def test_small_answers_and_errors_are_never_compressed_but_vary(client, db):
    encounter = insert_encounter(db)
    for path, headers, status in (
        (f"/dhos/v1/encounter/{encounter}", auth(), 200),
        (f"/dhos/v1/encounter/{encounter}", {}, 401),
        ("/dhos/v1/encounter/not-a-uuid", auth(), 404),
        ("/running", {}, 200),
    ):
        response = client.get(path, headers={**headers, "Accept-Encoding": "zstd, br, gzip"})
        assert response.status_code == status
        assert len(response.content) < MIN_BYTES
        assert "content-encoding" not in response.headers
        assert response.headers["vary"] == "Accept-Encoding"


def test_unknown_codings_and_refusals_get_identity(client, wards):
    client.headers.pop("accept-encoding")
    identity = raw_census(client, wards["census"], None).raw_bytes
    for accept_encoding in ("deflate", "zstd;q=0, br;q=0, gzip;q=0", "*;q=0", "compress, identity;q=0", ""):
        answer = raw_census(client, wards["census"], accept_encoding)
        assert "content-encoding" not in answer.headers, accept_encoding
        assert answer.raw_bytes == identity


@pytest.mark.parametrize(
    ("extra_headers", "more_body"),
    [([(b"etag", b'"3"')], False), ([(b"content-encoding", b"gzip")], False), ([], True)],
    ids=["an ETag names the identity form", "already encoded", "streamed"],
)
def test_answers_that_are_sent_as_they_are(extra_headers, more_body):
    """With an ETag (a strong validator of the identity bytes), a coding of its own, or a body in
    several messages: not compressed, and still Vary."""
    body = b"[" + b'"x",' * MIN_BYTES + b'"x"]'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra_headers]

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": more_body})
        if more_body:
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    sent = []

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"accept-encoding", b"zstd")]}
    asyncio.run(compressed(app)(scope, None, send))
    assert sent[0]["headers"] == [*headers, (b"vary", b"Accept-Encoding")]
    assert sent[1]["body"] == body


def test_serve_sends_the_bytes_as_compressed(fresh_database, db):
    """Through granian: the Content-Length and bytes the app made, nothing re-encoded on the way."""
    fill_census(db, WARD_A, CENSUS_ENCOUNTERS)
    with Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database), "WEB_CONCURRENCY": "1"}) as service:
        service.wait_until_running()
        with httpx.Client(base_url=service.base_url, headers=auth()) as http:
            http.headers.pop("accept-encoding")
            identity = http.post(CENSUS, json=[str(WARD_A)])
            assert "content-encoding" not in identity.headers
            assert identity.headers["vary"] == "Accept-Encoding"
            for coding, decode in DECODERS.items():
                with http.stream("POST", CENSUS, json=[str(WARD_A)], headers={"Accept-Encoding": coding}) as answer:
                    sent = b"".join(answer.iter_raw())
                assert answer.headers["content-encoding"] == coding
                assert "transfer-encoding" not in answer.headers
                assert int(answer.headers["content-length"]) == len(sent)
                assert decode(sent) == identity.content
