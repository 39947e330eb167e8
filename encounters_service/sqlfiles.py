"""Named SQL files: sql/queries/<area>/<name>.sql, each one statement with a checked header.

A file uses psql variables with explicit casts (`:'patient_id'::uuid`) so that an analyst can run
the very same file with `psql -v patient_id=… -f …`. At start-up each file is read once, its header
checked against its body, and every `:'name'` rewritten to a server-side `$n` placeholder.

Header format (the comment block at the top of the file):

    -- <what the query answers>
    --
    -- Parameters:
    --   patient_id   uuid         the patient
    --   open_as_of   timestamptz  'infinity' for "now"
    -- Returns: <what a row is>
    -- Example:
    --   psql "$PGURL" -v ON_ERROR_STOP=1 -v patient_id=… -f sql/queries/encounters/latest.sql
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from encounters_service.settings import SQL_DIR

QUERIES_DIR = SQL_DIR / "queries"

_PARAMETER_USE = re.compile(r":'(\w+)'(?:::([\w\[\]]+(?: with time zone)?))?")
_HEADER_PARAMETER = re.compile(r"^--\s{2,}(\w+)\s+([\w\[\]]+)\s*(.*)$")
_LINE_COMMENT = re.compile(r"--[^\n]*")


class SqlFileError(ValueError):
    """A query file whose header and body disagree, or that breaks the file conventions."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    description: str


@dataclass(frozen=True)
class Query:
    name: str  # "area.name"
    path: Path
    summary: str
    parameters: tuple[Parameter, ...]
    sql: str  # with $1..$n placeholders, in the order of `parameters`

    def arguments(self, values: dict[str, object]) -> list[object]:
        """Positional arguments for `sql`, from a dict keyed by parameter name."""
        expected = {p.name for p in self.parameters}
        if set(values) != expected:
            raise SqlFileError(f"{self.name} takes {sorted(expected)}, was given {sorted(values)}")
        return [values[p.name] for p in self.parameters]


def _header_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    return lines


def _header_parameters(header: list[str], where: str) -> tuple[Parameter, ...]:
    try:
        start = next(i for i, line in enumerate(header) if line.strip() == "-- Parameters:")
    except StopIteration:
        return ()
    parameters = []
    for line in header[start + 1 :]:
        match = _HEADER_PARAMETER.match(line)
        if not match:
            break
        parameters.append(Parameter(*match.groups()))
    if not parameters:
        raise SqlFileError(f"{where}: 'Parameters:' lists no parameter")
    return tuple(parameters)


def parse_query(name: str, path: Path, text: str) -> Query:
    """Check one query file's conventions and rewrite its psql variables to $n."""
    where = str(path)
    header = _header_lines(text)
    if not header or not header[0][2:].strip():
        raise SqlFileError(f"{where}: the file must start with a comment saying what it answers")
    for required in ("-- Returns:", "-- Example:"):
        if not any(line.startswith(required) for line in header):
            raise SqlFileError(f"{where}: the header has no '{required[3:]}' line")
    parameters = _header_parameters(header, where)
    declared = {p.name: p for p in parameters}

    body = _LINE_COMMENT.sub("", text).strip()
    if not body.endswith(";") or ";" in body[:-1]:
        raise SqlFileError(f"{where}: the file must hold exactly one statement ending with ';'")
    used = set()
    for match in _PARAMETER_USE.finditer(body):
        variable, cast = match.groups()
        if variable not in declared:
            raise SqlFileError(f"{where}: :'{variable}' is used but not listed under Parameters")
        if cast != declared[variable].type:
            raise SqlFileError(
                f"{where}: :'{variable}' must be cast to its declared type "
                f"::{declared[variable].type} (found {'::' + cast if cast else 'no cast'})"
            )
        used.add(variable)
    unused = set(declared) - used
    if unused:
        raise SqlFileError(f"{where}: listed but unused parameters: {', '.join(sorted(unused))}")

    numbers = {p.name: i for i, p in enumerate(parameters, start=1)}
    sql = _PARAMETER_USE.sub(lambda m: f"${numbers[m.group(1)]}::{m.group(2)}", body)
    return Query(name, path, header[0][2:].strip(), parameters, sql)


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, Query]:
    """Every query file below `directory`, keyed "area.name"; raises SqlFileError on the first bad one."""
    queries = {}
    for path in sorted(directory.rglob("*.sql")):
        name = ".".join(path.relative_to(directory).with_suffix("").parts)
        queries[name] = parse_query(name, path, path.read_text())
    return queries
