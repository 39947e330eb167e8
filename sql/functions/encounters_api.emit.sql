-- encounters_api.emit(routing_key, body, encounter_uuid) → void
-- Records one message for the platform in the outbox, in the caller's transaction: it is
-- published if and only if the change that wrote it commits.
CREATE OR REPLACE FUNCTION encounters_api.emit(
    routing_key text,
    body jsonb,
    encounter_uuid uuid
)
RETURNS void
LANGUAGE sql
VOLATILE
BEGIN ATOMIC
    INSERT INTO encounters.outbox (routing_key, body, encounter_uuid)
    VALUES (emit.routing_key, emit.body, emit.encounter_uuid);
END;

COMMENT ON FUNCTION encounters_api.emit(text, jsonb, uuid) IS
'Records one message (routing key, JSON body, encounter it is about) in the outbox, in the caller''s transaction.';
