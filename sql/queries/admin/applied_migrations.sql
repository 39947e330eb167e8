-- Which migrations (migrations/NNNN.slug.sql) yoyo has applied to this database.
--
-- Returns: one row per applied migration: migration_id, applied_at_utc. An empty database has no
--   such table (the service then reads "none applied").
-- Example:
--   psql "$PGURL" -v ON_ERROR_STOP=1 -f sql/queries/admin/applied_migrations.sql
SELECT
    migration_id,
    applied_at_utc
FROM public._yoyo_migration
ORDER BY migration_id;
