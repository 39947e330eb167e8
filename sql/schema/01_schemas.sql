-- Schema snapshot (schemas): Schemas: `encounters` holds the tables (private), `encounters_api` the functions callers use.
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

CREATE SCHEMA encounters;

CREATE SCHEMA encounters_api;
