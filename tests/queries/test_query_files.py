"""The query files as analysts use them: headers, examples, and real psql runs.

- Every file in sql/queries loads (the loader checks that its header and body agree) and its
  `-- Example:` names exactly its parameters and the file itself.
- Every example with concrete values (the read queries' all have them) runs verbatim in psql.
- Each read query file, run by psql with `-v name=value -f file`, answers exactly what the service
  answers over HTTP for the same data.
- the analysts' guide (docs/analysts.md) shows a psql example for every read query file, and each runs as written.

The examples run on a database shared by this module (arranged once; nothing here changes it
except the admin example that records a function checksum).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import psycopg
import pytest
from litestar.testing import TestClient

from encounters_service import cursors
from encounters_service.app import create_app
from encounters_service.db import connect_sync
from encounters_service.embedded import find_bindir
from encounters_service.settings import REPO_ROOT
from encounters_service.sqlfiles import load_queries
from tests.conftest import TEMPLATE, create_database, drop_database
from tests.helpers import ROLES, TEST_SETTINGS, as_app, as_role, auth
from tests.queries.arrange import (
    WARD_A,
    WARD_B,
    insert_encounter,
    insert_location_history,
    insert_score_system_history,
)

QUERIES = load_queries()
READ_AREA = "encounters"
READ_FILES = sorted(name.split(".", 1)[1] for name in QUERIES if name.startswith(f"{READ_AREA}."))
PLACEHOLDER = "…"


def psql_binary() -> str:
    bundled = find_bindir() / "psql"
    return str(bundled) if bundled.exists() else "psql"


def example_of(name: str) -> list[str]:
    """The header's example command as argv (continuation lines joined)."""
    lines = QUERIES[name].path.read_text().splitlines()
    start = lines.index("-- Example:") + 1
    command = []
    for line in lines[start:]:
        if not line.startswith("--"):
            break
        command.append(line[2:].strip().removesuffix("\\"))
    return shlex.split(" ".join(command))


def variables_of(argv: list[str]) -> dict[str, str]:
    """The query's own psql variables (not ON_ERROR_STOP, which every example sets)."""
    pairs = [argv[i + 1] for i, arg in enumerate(argv) if arg == "-v"]
    return {name: value for name, value in (pair.split("=", 1) for pair in pairs) if name != "ON_ERROR_STOP"}


def run_psql(conninfo: str, args: list[str]) -> str:
    """psql as an analyst runs it, from the repository root; stdout, or the test fails with stderr."""
    command = [psql_binary(), "-X", "-v", "ON_ERROR_STOP=1", "-d", conninfo, *args]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{shlex.join(command)}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def conninfo(pg_server, template_conninfo) -> Iterator[str]:
    name = f"query_files_{uuid4().hex}"
    yield create_database(pg_server, name, template=TEMPLATE)
    drop_database(pg_server, name)


@pytest.fixture(scope="module")
def ward(conninfo: str) -> dict[str, UUID]:
    """A small ward: open, discharged, deleted and child encounters, with histories, at two wards."""
    with connect_sync(conninfo, autocommit=True) as db:
        return _arrange_ward(db)


def _arrange_ward(db: psycopg.Connection) -> dict[str, UUID]:
    patient, neighbour = uuid4(), uuid4()
    stay = insert_encounter(
        db,
        patient_uuid=patient,
        epr_encounter_id="EPR-2",
        admitted_at="2020-02-01T00:00Z",
        modified="2021-01-03T00:00Z",
    )
    earlier = insert_encounter(
        db,
        patient_uuid=patient,
        epr_encounter_id="EPR-1",
        admitted_at="2020-01-01T00:00Z",
        discharged_at="2020-01-20T00:00Z",
        location_uuid=WARD_B,
        modified="2021-01-02T00:00Z",
    )
    child = insert_encounter(db, patient_uuid=patient, child_of_encounter_uuid=stay, modified="2021-01-04T00:00Z")
    insert_encounter(db, patient_uuid=patient, deleted_at="2020-03-02T00:00Z", admitted_at="2020-03-01T00:00Z")
    insert_encounter(db, patient_uuid=neighbour, modified="2021-01-05T00:00Z")
    insert_location_history(db, stay, arrived_at="2020-02-01T00:00Z", departed_at="2020-02-02T00:00Z")
    insert_score_system_history(db, stay)
    return {"patient": patient, "neighbour": neighbour, "stay": stay, "earlier": earlier, "child": child}


@pytest.fixture(scope="module")
def client(conninfo: str) -> Iterator[TestClient]:
    with TestClient(create_app(TEST_SETTINGS, as_app(conninfo))) as test_client:
        yield test_client


# --- headers and examples ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_example_names_every_parameter_and_the_file_itself(name):
    query = QUERIES[name]
    argv = example_of(name)
    assert argv[:4] == ["psql", "$PGURL", "-v", "ON_ERROR_STOP=1"], argv  # the service's database; stop at an error
    assert set(variables_of(argv)) == {p.name for p in query.parameters}
    assert REPO_ROOT / argv[argv.index("-f") + 1] == query.path


def test_read_query_examples_have_concrete_values():
    assert READ_FILES
    assert [file for file in READ_FILES if PLACEHOLDER in " ".join(example_of(f"{READ_AREA}.{file}"))] == []


@pytest.mark.parametrize("name", sorted(n for n in QUERIES if PLACEHOLDER not in " ".join(example_of(n))))
def test_example_runs_verbatim_in_psql(fresh_database, tmp_path, name):
    """Exactly as written in the header, through a shell, with PGURL naming the database (one of its
    own: some examples write; admin/drop_data.sql empties the tables)."""
    (tmp_path / "psqlrc").write_text("")
    lines = QUERIES[name].path.read_text().splitlines()
    start = lines.index("-- Example:") + 1
    command = "\n".join(
        line[2:].strip() for line in itertools.takewhile(lambda line: line.startswith("--"), lines[start:])
    )
    done = subprocess.run(
        ["bash", "-c", command.replace("psql ", f"{psql_binary()} ", 1)],
        cwd=REPO_ROOT,
        env={**os.environ, "PGURL": fresh_database, "PSQLRC": str(tmp_path / "psqlrc")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"


def test_on_error_stop_turns_a_missing_variable_into_an_error_exit(fresh_database):
    """Why every example sets ON_ERROR_STOP: without it psql prints the error and exits 0."""
    argv = [psql_binary(), "-X", "-d", fresh_database, "-f", str(QUERIES["encounters.latest"].path)]
    plain = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    stopping = subprocess.run(
        [*argv, "-v", "ON_ERROR_STOP=1"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert (plain.returncode, stopping.returncode) == (0, 3)


# --- psql and the service agree ---------------------------------------------------------------


def _ids(*ids: UUID) -> str:
    return "{" + ",".join(map(str, ids)) + "}"


def comparisons(w: dict[str, UUID]) -> dict[str, tuple[dict, tuple[str, str, dict]]]:
    """Per read query file: psql variables, and the HTTP request that should give the same answer."""
    patient, stay = str(w["patient"]), str(w["stay"])
    both_wards, both_patients = [str(WARD_A), str(WARD_B)], [patient, str(w["neighbour"])]
    as_of = "2020-01-10T00:00:00Z"
    return {
        "descendants": (
            {"encounter_id": stay, "show_deleted": "true"},
            ("GET", f"/dhos/v1/encounter/{stay}/children", {"params": {"show_deleted": "true"}}),
        ),
        "by_patient_or_epr_id": (
            {
                "patient_id": patient,
                "epr_encounter_id": "",
                "compact": "false",
                "expanded": "true",
                "show_deleted": "true",
                "show_children": "true",
            },
            (
                "GET",
                "/dhos/v2/encounter",
                {
                    "params": {
                        "patient_id": patient,
                        "expanded": "true",
                        "show_deleted": "true",
                        "show_children": "true",
                    }
                },
            ),
        ),
        "by_patient_open_as_of": (
            {
                "patient_id": patient,
                "epr_encounter_id": "",
                "open_as_of": as_of,
                "compact": "false",
                "expanded": "false",
            },
            ("GET", "/dhos/v2/encounter", {"params": {"patient_id": patient, "open_as_of": as_of}}),
        ),
        "modified_since": (
            {
                "modified_since": "2021-01-02T00:00:00Z",
                "compact": "false",
                "expanded": "true",
                "show_deleted": "false",
                "show_children": "true",
            },
            (
                "GET",
                "/dhos/v2/encounters",
                {"params": {"modified_since": "2021-01-02T00:00:00Z", "expanded": "true", "show_children": "true"}},
            ),
        ),
        "latest": (
            {"patient_id": patient, "open_as_of": "-infinity", "compact": "false"},
            ("GET", "/dhos/v2/encounter/latest", {"params": {"patient_id": patient}}),
        ),
        "latest_per_patient": (
            {"patient_ids": _ids(w["patient"], w["neighbour"]), "open_as_of": "-infinity", "compact": "false"},
            ("POST", "/dhos/v2/encounter/latest", {"json": both_patients}),
        ),
        "open_at_locations": (
            {"location_ids": _ids(WARD_A, WARD_B), "open_as_of": as_of, "compact": "false"},
            ("POST", "/dhos/v1/encounter/locations", {"json": both_wards, "params": {"open_as_of": as_of}}),
        ),
        "open_for_patients": (
            {"patient_ids": _ids(w["patient"], w["neighbour"]), "open_as_of": "infinity", "compact": "true"},
            ("POST", "/dhos/v1/encounter/patients", {"json": both_patients, "params": {"compact": "true"}}),
        ),
        "patient_count_per_location": (
            {"location_ids": _ids(WARD_A, WARD_B), "open_as_of": as_of},
            (
                "POST",
                "/dhos/v1/encounter/locations/patient_count",
                {"json": both_wards, "params": {"open_as_of": as_of}},
            ),
        ),
    }


# The change feed's answer names its last place, which the service hands out as a signed cursor: compared below.
FEED = "changes"


@pytest.mark.parametrize("file", [file for file in READ_FILES if file != FEED])
def test_psql_and_the_service_give_the_same_answer(conninfo, ward, client, file):
    variables, (method, path, arguments) = comparisons(ward)[file]  # every read file has a comparison
    args = [arg for name, value in variables.items() for arg in ("-v", f"{name}={value}")]
    query_file = QUERIES[f"{READ_AREA}.{file}"].path.relative_to(REPO_ROOT)
    printed = run_psql(conninfo, ["-At", *args, "-f", str(query_file)])

    response = client.request(method, path, headers=auth(), **arguments)
    assert response.status_code == 200, response.text
    assert json.loads(printed) == response.json()
    assert response.json() not in ([], {}), "compare on data that gives an answer"


def test_psql_and_the_service_give_the_same_change_feed(conninfo, ward, client):
    """Two pages of two: the same encounters, `more`, and the place the service's cursor signs."""
    place = {"after_transaction": "0", "after_uuid": str(UUID(int=0))}
    cursor = None
    for _ in range(2):
        args = [arg for name, value in {**place, "page_size": "2"}.items() for arg in ("-v", f"{name}={value}")]
        query_file = QUERIES[f"{READ_AREA}.{FEED}"].path.relative_to(REPO_ROOT)
        printed = json.loads(run_psql(conninfo, ["-At", *args, "-f", str(query_file)]))

        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = client.get("/dhos/v2/encounters/changes", params=params, headers=auth())
        assert response.status_code == 200, response.text
        answer = response.json()
        assert printed["encounters"] == answer["encounters"] and len(answer["encounters"]) == 2
        assert printed["more"] is answer["more"] is True
        last = cursors.Place(printed["last_transaction"], UUID(printed["last_uuid"]))
        assert cursors.decode(TEST_SETTINGS.hs_key, answer["cursor"]) == last
        place, cursor = {"after_transaction": last.transaction, "after_uuid": str(last.uuid)}, answer["cursor"]


# --- the analysts' documentation --------------------------------------------------------------

DOCS = REPO_ROOT / "docs" / "analysts.md"


def documented_commands() -> list[str]:
    """The psql commands of the shell blocks of the analysts' guide (continuation lines joined)."""
    commands, block, current = [], False, ""
    for line in DOCS.read_text().splitlines():
        if line.startswith("```"):
            block = line == "```sh"
            continue
        if block and (current or line.startswith("psql ")):
            current += line.removesuffix("\\")
            if not line.endswith("\\"):
                commands.append(current)
                current = ""
    return commands


def test_docs_show_a_runnable_example_for_every_read_query_file(conninfo, ward, tmp_path):
    psqlrc = tmp_path / "psqlrc"
    psqlrc.write_text("\\set ON_ERROR_STOP on\n")  # psql exits 0 after an SQL error without it
    commands = documented_commands()
    shown = {Path(c.split(" -f ")[1].split()[0]).stem for c in commands}
    assert shown == set(READ_FILES)
    for command in commands:
        without_jq = command.removesuffix(" | jq .")
        done = subprocess.run(
            ["bash", "-c", f"set -o pipefail; {without_jq}"],
            cwd=REPO_ROOT,
            env={**os.environ, "PGURL": conninfo, "PSQLRC": str(psqlrc)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        json.loads(done.stdout or "null")


# --- the analyst role (migration 0009) --------------------------------------------------------

# The query files that write, or that only the owner may run: the analyst role is refused each.
REFUSED_TO_ANALYSTS = {
    "admin.drop_data",
    "admin.grant_privileges",
    "admin.record_function",
    "admin.render_documents",
    "relay.claim",
    "relay.mark",
    "relay.prune",
    "writes.create_encounter",
    "writes.create_encounters",
    "writes.merge_encounters",
    "writes.unlink_encounter",
    "writes.undo_merge",
    "writes.update_encounter",
    "writes.update_score_system_history",
}
# ANALYZE by another role than the owner is skipped with a warning, not refused.
OWNER_MAINTENANCE = {"admin.analyze"}
ANALYST_READS = sorted(set(QUERIES) - REFUSED_TO_ANALYSTS - OWNER_MAINTENANCE)


def analyst_variables(name: str, ward: dict[str, UUID]) -> list[str]:
    """A read's variables of the comparisons above (on the ward), else the example's, a placeholder
    (…) replaced by the ward's stay."""
    area, file = name.split(".", 1)
    if area == READ_AREA and file in comparisons(ward):
        variables = comparisons(ward)[file][0]
    else:
        variables = {
            variable: str(ward["stay"]) if value == PLACEHOLDER else value
            for variable, value in variables_of(example_of(name)).items()
        }
    return [arg for variable, value in variables.items() for arg in ("-v", f"{variable}={value}")]


def test_every_query_file_is_either_a_read_or_refused_to_analysts():
    assert set(QUERIES) >= REFUSED_TO_ANALYSTS | OWNER_MAINTENANCE
    assert {f"{READ_AREA}.{file}" for file in READ_FILES} <= set(ANALYST_READS)


@pytest.mark.parametrize("name", ANALYST_READS)
def test_the_analyst_role_runs_every_read_query_file(conninfo, ward, name):
    query_file = QUERIES[name].path.relative_to(REPO_ROOT)
    run_psql(as_role(conninfo, ROLES.analyst), ["-At", *analyst_variables(name, ward), "-f", str(query_file)])


@pytest.mark.parametrize("name", sorted(REFUSED_TO_ANALYSTS | OWNER_MAINTENANCE))
def test_the_analyst_role_is_refused_every_write_query_file(conninfo, ward, name):
    query_file = QUERIES[name].path.relative_to(REPO_ROOT)
    command = [psql_binary(), "-X", "-v", "ON_ERROR_STOP=1", "-d", as_role(conninfo, ROLES.analyst)]
    done = subprocess.run(
        [*command, *analyst_variables(name, ward), "-f", str(query_file)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if name in OWNER_MAINTENANCE:
        assert "WARNING:  permission denied to analyze" in done.stderr or "only table or database owner" in done.stderr
        return
    assert done.returncode == 3, done.stdout + done.stderr
    assert re.search(r"ERROR:  permission denied for (function|table) \w+", done.stderr), done.stderr
