"""Schemathesis fuzzes every route from the app's own OpenAPI document, against the real app served
over HTTP on a seeded database: positive and negative data (examples, coverage and fuzzing phases),
with a fixed seed and derandomized, so a run repeats. Every response must be documented and match
its schema; negative data must be refused with a 4xx; a request without a token must be refused.

Half of the well-formed uuids schemathesis generates are swapped for uuids the database holds
(chosen by the uuid's own bits, so runs repeat), so that by-id routes, parents, patients and
records meet real rows rather than answering 404 every time.
"""

from __future__ import annotations

import os
import re
from collections import Counter

import schemathesis

from tests.reliability.conftest import OPENAPI, SYSTEM, Seeded, assert_plain_error

# CI runs the fixed seed; FUZZ_SEED and FUZZ_EXAMPLES explore further (a crash found that way gets
# a regression test in test_regressions.py).
SEED = int(os.environ.get("FUZZ_SEED", "20240601"))
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "40"))
MIN_REQUESTS = 1000
CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

schema = schemathesis.openapi.from_dict(
    OPENAPI,
    config=schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "headers": SYSTEM,
            "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True},
            "checks": {
                # Valid-shaped requests may still be refused by a business rule: 400 when neither
                # patient_id nor epr_encounter_id is given, 422 for an unknown parent, and so on.
                "positive_data_acceptance": {"enabled": False},
            },
        }
    ),
)
answered: Counter[tuple[str, int]] = Counter()


@schema.parametrize()
def test_every_route_holds_under_generated_requests(case, seeded_server):
    known = KnownUuids(seeded_server)
    case.path_parameters = known.swapped_in(case.path_parameters)
    case.query = known.swapped_in(case.query)
    case.body = known.swapped_in(case.body)
    # The token given here too: for the routes that document request headers (If-Match, If-None-Match),
    # schemathesis otherwise takes the configured Authorization for a generated one.
    response = case.call_and_validate(
        base_url=seeded_server.base_url, headers=SYSTEM, additional_checks=[error_bodies_show_no_internals]
    )
    answered[case.operation.label, response.status_code] += 1


def error_bodies_show_no_internals(ctx, response, case) -> None:
    # A message may quote a generated header back (If-Match: …, got '<it>'): the fuzzer's text,
    # which may happen to look like an internal name (it draws strings from the test modules).
    if response.status_code >= 400 and response.content:
        assert_plain_error(response.status_code, response.content, sent=[str(v) for v in (case.headers or {}).values()])


def test_the_run_sent_enough_requests_to_every_route_and_none_failed():
    """Runs after the fuzzing above (pytest keeps file order): it counts what was sent."""
    per_route, per_status = Counter(), Counter()
    for (route, status), count in answered.items():
        per_route[route] += count
        per_status[status] += count
    print(f"\nschemathesis: {per_route.total()} requests; answers by status: {sorted(per_status.items())}")
    assert max(per_status) < 500
    assert per_route.total() >= MIN_REQUESTS
    assert set(per_route) == {f"{method.upper()} {path}" for path, item in OPENAPI["paths"].items() for method in item}


class KnownUuids:
    def __init__(self, seeded: Seeded) -> None:
        self.by_name = {
            "encounter_id": seeded.encounters,
            "child_of_encounter_uuid": seeded.encounters,
            "history_id": seeded.histories,
        }
        self.any = seeded.uuids

    def swapped_in(self, value, name: str = ""):
        """`value` with every other canonical uuid in it replaced by a known one (of the kind its name says)."""
        if isinstance(value, dict):
            return {key: self.swapped_in(item, key) for key, item in value.items()}
        if isinstance(value, list):
            return [self.swapped_in(item, name) for item in value]
        if isinstance(value, str) and CANONICAL_UUID.fullmatch(value):
            bits = int(value.replace("-", ""), 16)
            known = self.by_name.get(name, self.any)
            return known[bits // 2 % len(known)] if bits % 2 else value
        return value
