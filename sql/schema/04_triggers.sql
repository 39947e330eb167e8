-- Schema snapshot (triggers): Trigger plumbing: the outbox wakes the event relay (LISTEN encounters_outbox).
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

CREATE FUNCTION encounters.notify_outbox() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('encounters_outbox', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_notify
AFTER INSERT ON encounters.outbox
FOR EACH STATEMENT EXECUTE FUNCTION encounters.notify_outbox();
