-- Records the checksum of a deployed sql/functions file (used by `encounters-service migrate`).
--
-- Parameters:
--   file_name  text  file name, e.g. encounters_api.create_encounter.sql
--   sha256     text  hex SHA-256 of the file's text
-- Returns: the file name when the file is new or its checksum changed; no row otherwise.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -v file_name=example.sql -v sha256=abc -f sql/queries/admin/record_function.sql
INSERT INTO encounters.deployed_function (file_name, sha256)
VALUES (:'file_name'::text, :'sha256'::text)
ON CONFLICT (file_name) DO UPDATE
    SET sha256 = excluded.sha256, applied_at = now()
    WHERE deployed_function.sha256 <> excluded.sha256
RETURNING file_name;
