-- Empties the data tables (encounters, histories, merge history, outbox); keeps the schema and the migration history.
--
-- Returns: one row, one column: null.
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/drop_data.sql
SELECT encounters_api.drop_data();
