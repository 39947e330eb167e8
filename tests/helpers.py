"""Shared test helpers: the test settings and tokens."""

from __future__ import annotations

import re
from dataclasses import replace

from encounters_service.auth import READ_SCOPE, WRITE_SCOPE, mint_token
from encounters_service.settings import load_settings

TEST_SETTINGS = replace(
    load_settings({}),
    hs_key="test-key-that-is-long-enough-for-hs512-test-key-that-is-long-enough-for-hs512",
    hs_issuer="http://test-issuer/",
    pool_min_size=1,
    pool_max_size=4,
)


def token(*scopes: str, **claims: object) -> str:
    return mint_token(TEST_SETTINGS, scopes=list(scopes), claims=claims)


def auth(*scopes: str, **claims: object) -> dict[str, str]:
    """Authorization header; by default read and write scopes for a clinician."""
    if not scopes:
        scopes = (READ_SCOPE, WRITE_SCOPE)
    if not claims:
        claims = {"clinician_id": "clinician-1"}
    return {"Authorization": f"Bearer {token(*scopes, **claims)}"}


# The response forms of SPEC.md "Data": exactly these keys, datetimes as …T…:…:….mmmZ.
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
COMPACT_KEYS = frozenset(
    {
        "uuid",
        "epr_encounter_id",
        "admitted_at",
        "discharged_at",
        "deleted_at",
        "location_uuid",
        "patient_uuid",
        "patient_record_uuid",
    }
)
FULL_KEYS = COMPACT_KEYS | {
    "encounter_type",
    "score_system",
    "spo2_scale",
    "dh_product",
    "score_system_history",
    "location_history",
    "created",
}
EXPANDED_KEYS = frozenset({"created", "created_by", "modified", "modified_by"})
