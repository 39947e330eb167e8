"""The verified-token cache stays within its bounds whatever tokens arrive: at most VERIFIED_TOKENS
entries and VERIFIED_BYTES of token text, only tokens up to CACHED_TOKEN_BYTES, expired entries
purged; a token over MAX_TOKEN_BYTES is refused (401) before any decoding. Measured through the
Authenticator (entries, bytes, memory that tracemalloc sees) and through a served worker's RSS."""

from __future__ import annotations

import gc
import time
import tracemalloc
import uuid
from collections.abc import Iterator

import httpx
import jwt
import pytest

from bench.bench import memory_mb, process_tree
from encounters_service import auth
from encounters_service.auth import (
    CACHED_TOKEN_BYTES,
    MAX_TOKEN_BYTES,
    READ_SCOPE,
    VERIFIED_BYTES,
    VERIFIED_FOR_SECONDS,
    VERIFIED_TOKENS,
    Authenticator,
    AuthError,
)
from tests.helpers import SERVICE_ENV, TEST_SETTINGS, Service, as_app, hs_payload
from tests.reliability.test_token_matrix import (  # noqa: F401 (arranged and matrix_client are fixtures)
    ROUTES,
    arranged,
    matrix_client,
)

SETTINGS = TEST_SETTINGS


def sized_token(size: int, expires_in: int = 600) -> str:
    """A valid read token of `size` or `size + 1` characters (base64 skips some lengths), its claims
    padded with many small keys and scopes: the shape that costs the most memory per token byte."""
    now = int(time.time())

    def encoded(keys: int, pad: int) -> str:
        metadata = {"clinician_id": "clin-000000", **{f"k{n}": 0 for n in range(keys)}, "pad": "x" * pad}
        scope = " ".join([READ_SCOPE, *(f"s{n}" for n in range(keys))])
        payload = hs_payload(exp=now + expires_in, metadata=metadata, scope=scope)
        return jwt.encode(payload, SETTINGS.hs_key, algorithm="HS512")

    keys = max(0, (size - len(encoded(0, 0))) // 40)  # a key and a scope take ~20 characters: half the room
    pad = 0
    while len(token := encoded(keys, pad)) < size:
        pad += max(1, (size - len(token)) * 3 // 4)  # 3 bytes of padding, 4 characters of base64
    assert len(token) <= size + 1, (len(token), size)
    return token


def sized_tokens(size: int, count: int, expires_in: int = 600) -> Iterator[str]:
    """`count` distinct valid tokens of one length (`size` or `size + 1`): one token's claims with
    the caller id changed (same length), re-signed."""
    token = sized_token(size, expires_in)
    payload = jwt.decode(token, SETTINGS.hs_key, algorithms=["HS512"], audience=SETTINGS.audience)
    for n in range(count):
        payload["metadata"]["clinician_id"] = f"clin-{n:06d}"
        yield jwt.encode(payload, SETTINGS.hs_key, algorithm="HS512")


def one_token(size: int) -> str:
    return next(sized_tokens(size, 1))


def bearer(token: str) -> str:
    return f"Bearer {token}"


def cache_state(authenticator: Authenticator) -> tuple[int, int]:
    """(entries, bytes), checking that the byte count is the sum of the remembered tokens."""
    verified = authenticator._verified
    assert authenticator._verified_bytes == sum(len(token) for token in verified)
    return len(verified), authenticator._verified_bytes


def test_thousands_of_distinct_tokens_keep_the_cache_within_entries_and_bytes():
    authenticator = Authenticator(SETTINGS)
    small = list(sized_tokens(700, 3 * VERIFIED_TOKENS))
    for token in small:
        assert authenticator.authenticate(bearer(token)).scopes == {READ_SCOPE}
    entries, size = cache_state(authenticator)
    assert entries == VERIFIED_TOKENS and size <= VERIFIED_BYTES
    assert list(authenticator._verified) == small[-VERIFIED_TOKENS:]  # the newest are kept

    large = list(sized_tokens(CACHED_TOKEN_BYTES - 1, 2 * VERIFIED_BYTES // CACHED_TOKEN_BYTES))
    for token in large:
        authenticator.authenticate(bearer(token))
    entries, size = cache_state(authenticator)
    assert entries == VERIFIED_BYTES // len(large[0]) and size <= VERIFIED_BYTES


def retained_bytes(action) -> int:
    """Bytes allocated by `action` that are still held after it (tracemalloc, after a collection)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        action()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_the_memory_a_cache_holds_is_bounded_by_its_byte_bound():
    """Tokens just small enough to be remembered, stuffed with hundreds of claims and scopes: the
    cache holds their text and what the service reads of them, not the decoded claims."""
    authenticator = Authenticator(SETTINGS)
    tokens = list(sized_tokens(CACHED_TOKEN_BYTES - 1, 1000))
    held = retained_bytes(lambda: [authenticator.authenticate(bearer(token)) for token in tokens])
    entries, size = cache_state(authenticator)
    print(f"{entries} remembered tokens, {size} bytes of token text, {held} bytes held")
    assert held < 2 * size + entries * 1024, (held, entries, size)
    assert held < 3 * VERIFIED_BYTES


def test_a_token_over_the_cache_limit_is_verified_each_time_and_not_remembered(monkeypatch):
    authenticator = Authenticator(SETTINGS)
    verifications = []
    decode = authenticator._decode
    monkeypatch.setattr(authenticator, "_decode", lambda token: verifications.append(token) or decode(token))
    token = one_token(CACHED_TOKEN_BYTES + 1)
    for _ in range(3):
        assert authenticator.authenticate(bearer(token)).id == "clin-000000"
    assert len(verifications) == 3 and cache_state(authenticator) == (0, 0)


def test_a_token_over_the_size_limit_is_401_before_any_decoding(monkeypatch):
    authenticator = Authenticator(SETTINGS)
    largest = one_token(MAX_TOKEN_BYTES - 1)
    assert len(largest) <= MAX_TOKEN_BYTES
    assert authenticator.authenticate(bearer(largest)).id == "clin-000000"

    def no_decoding(*args, **kwargs):
        raise AssertionError("a token over the size limit was decoded")

    monkeypatch.setattr(jwt, "get_unverified_header", no_decoding)
    monkeypatch.setattr(auth._JWT, "decode", no_decoding)
    for size in (MAX_TOKEN_BYTES + 1, 400 * 1024):
        token = one_token(size)
        with pytest.raises(AuthError) as refused:
            authenticator.authenticate(bearer(token))
        refusal = (refused.value.status_code, refused.value.message)
        assert refusal == (401, f"token is longer than {MAX_TOKEN_BYTES} bytes")


def test_an_oversize_token_is_401_on_every_route(matrix_client, arranged):  # noqa: F811
    token = one_token(MAX_TOKEN_BYTES + 1)
    answers = [r.send(matrix_client, arranged, {"Authorization": bearer(token)}) for r in ROUTES]
    assert [a.status_code for a in answers] == [401] * len(ROUTES)
    assert {a.json()["message"] for a in answers} == {f"token is longer than {MAX_TOKEN_BYTES} bytes"}


def test_expired_entries_are_purged(monkeypatch):
    authenticator = Authenticator(SETTINGS)
    for token in sized_tokens(700, 100, expires_in=10):  # remembered until 5 s past their expiry
        authenticator.authenticate(bearer(token))
    for token in sized_tokens(800, 100):  # remembered for VERIFIED_FOR_SECONDS
        authenticator.authenticate(bearer(token))
    assert cache_state(authenticator)[0] == 200

    fresh = one_token(900)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 16)
    authenticator.authenticate(bearer(fresh))
    assert cache_state(authenticator)[0] == 101  # the expired hundred are gone

    monkeypatch.setattr(time, "time", lambda: now + VERIFIED_FOR_SECONDS + 1)
    with pytest.raises(AuthError):
        authenticator.authenticate("Bearer not-a-token")  # any call purges, a refused one included
    assert cache_state(authenticator) == (1, len(fresh))


# A served worker (granian, as production runs) before and after many distinct valid tokens.
HUGE_TOKENS = 100  # 400 KB each: the 1,100 of them grew a worker to 760 MB
CACHED_TOKENS = VERIFIED_TOKENS + 500  # the cache fills and turns over
MAX_GROWTH_MB = 48


def test_a_served_worker_stays_small_under_many_distinct_tokens(fresh_database):
    service = Service.start({**SERVICE_ENV, "DATABASE_URL": as_app(fresh_database), "WEB_CONCURRENCY": "1"})
    try:
        service.wait_until_running()
        url = f"{service.base_url}/dhos/v2/encounter?patient_id={uuid.uuid4()}"
        huge = sized_tokens(400 * 1024, HUGE_TOKENS)
        cached = list(sized_tokens(CACHED_TOKEN_BYTES - 1, CACHED_TOKENS))
        with httpx.Client(timeout=30) as http:
            assert http.get(url, headers={"Authorization": bearer(cached[0])}).status_code == 200
            before, _ = memory_mb(process_tree(service.process.pid))
            started = time.monotonic()
            huge_statuses = {http.get(url, headers={"Authorization": bearer(t)}).status_code for t in huge}
            middle = time.monotonic()
            cached_statuses = {http.get(url, headers={"Authorization": bearer(t)}).status_code for t in cached}
            ended = time.monotonic()
            after, _ = memory_mb(process_tree(service.process.pid))
    finally:
        service.stop()
    print(
        f"RSS {before:.0f} MB → {after:.0f} MB after {HUGE_TOKENS} tokens of 400 KB ({middle - started:.1f} s)"
        f" and {CACHED_TOKENS} of 4 KB ({ended - middle:.1f} s)"
    )
    assert huge_statuses <= {401, 431} and cached_statuses == {200}
    assert after - before < MAX_GROWTH_MB, (before, after)
