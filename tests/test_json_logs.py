"""LOG_FORMAT=json: everything `serve` writes, from its first start on a new local database (yoyo's
migrations, the default-key warning, granian's own lines) to its shutdown, is one JSON object per
line, with ISO 8601 UTC times to the millisecond."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from encounters_service.auth import mint_token
from encounters_service.settings import load_settings
from tests.helpers import Service
from tests.test_serve import STARTUP_SECONDS, data_dir  # noqa: F401 (a fixture)

ISO_UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_every_line_is_a_json_record(data_dir):  # noqa: F811 (the fixture)
    service = Service.start({"LOG_FORMAT": "json"}, "--data-dir", str(data_dir))
    try:
        service.wait_until_running(STARTUP_SECONDS)
        token = mint_token(load_settings({}), scopes=["read:send_encounter"], claims={"clinician_id": "c"})
        base = service.base_url
        assert httpx.get(f"{base}/dhos/v1/encounter/{uuid.uuid4()}").status_code == 401
        assert (
            httpx.get(
                f"{base}/dhos/v1/encounter/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 404
        )
        assert httpx.get(f"{base}/no/such/route").status_code == 404
    finally:
        output = service.stop()

    records = []
    for line in output.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON record: {line!r}") from None
    assert all(isinstance(record, dict) and ISO_UTC_MS.match(record["time"]) for record in records), records[:3]
    messages = [record["message"] for record in records]
    assert sum("HS_KEY is not set" in message for message in messages) == 1, messages
    assert not any("InsecureKeyLength" in line or "applying step" in line for line in output.splitlines())
    assert any(message.startswith("migrations applied: 0001") for message in messages)
    assert sum(record.get("status") == 404 for record in records) == 2
    assert token not in output
