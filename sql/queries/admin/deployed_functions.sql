-- Which sql/functions files are deployed, with their checksums and when each last changed.
--
-- Returns: one row per file: file_name, sha256, applied_at.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/deployed_functions.sql
SELECT
    file_name,
    sha256,
    applied_at
FROM encounters.deployed_function
ORDER BY file_name;
