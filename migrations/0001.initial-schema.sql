-- 0001 initial schema: encounters and their histories, merge history, event outbox.
--
-- Purpose: creates the private schema `encounters` (tables) and the API schema
-- `encounters_api` (functions, re-applied by `encounters-service migrate`).
-- Locks: creates new objects only; nothing existing is locked.
-- Rollback: 0001.initial-schema.rollback.sql drops both schemas.
-- Lint: its indexes are built on tables created in this same transaction (empty, unseen by
-- anyone), so CONCURRENTLY is neither needed nor possible; spo2_scale is 1 or 2 (smallint).
-- squawk-ignore-file require-concurrent-index-creation, prefer-bigint-over-smallint

SET LOCAL lock_timeout = '5s';
SET LOCAL statement_timeout = '60s';

CREATE SCHEMA encounters;
COMMENT ON SCHEMA encounters IS 'Encounters service: tables (private; use encounters_api functions to write).';

CREATE SCHEMA encounters_api;
COMMENT ON SCHEMA encounters_api IS 'Encounters service: functions the service and analysts call.';

CREATE TABLE encounters.encounter (
    uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    epr_encounter_id text,
    encounter_type text,
    admitted_at timestamptz NOT NULL,
    discharged_at timestamptz,
    deleted_at timestamptz,
    location_uuid uuid NOT NULL,
    patient_uuid uuid NOT NULL,
    patient_record_uuid uuid NOT NULL,
    dh_product_uuid uuid NOT NULL,
    score_system text,
    spo2_scale smallint NOT NULL DEFAULT 1,
    child_of_encounter_uuid uuid REFERENCES encounters.encounter (uuid),
    created timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    modified timestamptz NOT NULL DEFAULT now(),
    modified_by text NOT NULL,
    CONSTRAINT encounter_epr_id_not_empty CHECK (epr_encounter_id <> ''),
    CONSTRAINT encounter_spo2_scale_valid CHECK (spo2_scale IN (1, 2)),
    CONSTRAINT encounter_not_own_parent CHECK (child_of_encounter_uuid <> uuid)
);
COMMENT ON TABLE encounters.encounter IS 'One hospital stay of one patient. Rows are soft-deleted (deleted_at), never removed.';
COMMENT ON COLUMN encounters.encounter.uuid IS 'Server-made identifier.';
COMMENT ON COLUMN encounters.encounter.epr_encounter_id IS 'Id in the hospital record system (EPR); null for a local encounter, never empty.';
COMMENT ON COLUMN encounters.encounter.encounter_type IS 'Kind of stay, e.g. INPATIENT.';
COMMENT ON COLUMN encounters.encounter.admitted_at IS 'Admission time.';
COMMENT ON COLUMN encounters.encounter.discharged_at IS 'Discharge time; null while the patient is still in.';
COMMENT ON COLUMN encounters.encounter.deleted_at IS 'Soft-delete time; a deleted encounter is left out of every answer unless asked for.';
COMMENT ON COLUMN encounters.encounter.location_uuid IS 'Current location (ward) of the stay.';
COMMENT ON COLUMN encounters.encounter.patient_uuid IS 'Patient of the stay.';
COMMENT ON COLUMN encounters.encounter.patient_record_uuid IS 'Patient record the stay belongs to (moves on a record merge).';
COMMENT ON COLUMN encounters.encounter.dh_product_uuid IS 'Product the stay is recorded under (rendered as dh_product: [{uuid}]).';
COMMENT ON COLUMN encounters.encounter.score_system IS 'Early-warning score system, e.g. news2.';
COMMENT ON COLUMN encounters.encounter.spo2_scale IS 'NEWS2 SpO2 scale (1 or 2).';
COMMENT ON COLUMN encounters.encounter.child_of_encounter_uuid IS 'Parent encounter; null for a top-level encounter. The hierarchy never forms a cycle.';
COMMENT ON COLUMN encounters.encounter.created IS 'When the row was created.';
COMMENT ON COLUMN encounters.encounter.created_by IS 'Caller id that created the row.';
COMMENT ON COLUMN encounters.encounter.modified IS 'When the row last changed.';
COMMENT ON COLUMN encounters.encounter.modified_by IS 'Caller id that last changed the row.';

-- Integrity rules as partial unique indexes: two concurrent writers cannot both win.
CREATE UNIQUE INDEX encounter_live_epr_id_key
ON encounters.encounter (epr_encounter_id)
WHERE deleted_at IS NULL AND epr_encounter_id IS NOT NULL;
COMMENT ON INDEX encounters.encounter_live_epr_id_key IS 'An EPR encounter id is used by at most one non-deleted encounter.';

CREATE UNIQUE INDEX encounter_one_open_local_key
ON encounters.encounter (patient_uuid)
WHERE epr_encounter_id IS NULL
AND child_of_encounter_uuid IS NULL
AND discharged_at IS NULL
AND deleted_at IS NULL;
COMMENT ON INDEX encounters.encounter_one_open_local_key IS 'A patient has at most one open local top-level encounter.';

-- Indexes for the questions the routes ask.
CREATE INDEX encounter_patient_idx
ON encounters.encounter (patient_uuid, admitted_at DESC, created DESC);
COMMENT ON INDEX encounters.encounter_patient_idx IS 'Encounters of a patient, latest first.';

CREATE INDEX encounter_epr_id_idx ON encounters.encounter (epr_encounter_id)
WHERE epr_encounter_id IS NOT NULL;
COMMENT ON INDEX encounters.encounter_epr_id_idx IS 'Look-up by EPR id, deleted encounters included.';

CREATE INDEX encounter_location_current_idx
ON encounters.encounter (location_uuid, discharged_at)
WHERE deleted_at IS NULL AND child_of_encounter_uuid IS NULL;
COMMENT ON INDEX encounters.encounter_location_current_idx IS 'Top-level, non-deleted encounters per location (ward census, open as of a time).';

CREATE INDEX encounter_modified_idx ON encounters.encounter (modified DESC);
COMMENT ON INDEX encounters.encounter_modified_idx IS 'What changed since a time.';

CREATE INDEX encounter_parent_idx ON encounters.encounter (child_of_encounter_uuid)
WHERE child_of_encounter_uuid IS NOT NULL;
COMMENT ON INDEX encounters.encounter_parent_idx IS 'Children of an encounter.';

CREATE INDEX encounter_record_idx ON encounters.encounter (patient_record_uuid);
COMMENT ON INDEX encounters.encounter_record_idx IS 'Encounters of a patient record (record merge).';

CREATE TABLE encounters.location_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    location_uuid uuid NOT NULL,
    arrived_at timestamptz,
    departed_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    CONSTRAINT location_history_departs_after_arrival CHECK (departed_at >= arrived_at)
);
COMMENT ON TABLE encounters.location_history IS 'Where an encounter has been before its current location, one row per stay at a location.';
COMMENT ON COLUMN encounters.location_history.arrived_at IS 'When the patient arrived at the location (admission or the previous move).';
COMMENT ON COLUMN encounters.location_history.departed_at IS 'When the patient left the location.';
COMMENT ON COLUMN encounters.location_history.created_at IS 'When the row was written.';
COMMENT ON COLUMN encounters.location_history.created_by IS 'Caller id that wrote the row.';
CREATE INDEX location_history_encounter_idx
ON encounters.location_history (encounter_uuid, arrived_at, id);

CREATE TABLE encounters.score_system_history (
    uuid uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    changed_time timestamptz NOT NULL,
    score_system text,
    previous_score_system text,
    spo2_scale smallint,
    previous_spo2_scale smallint,
    created timestamptz NOT NULL DEFAULT now(),
    created_by text NOT NULL,
    changed_by text NOT NULL,
    modified timestamptz NOT NULL DEFAULT now(),
    modified_by text NOT NULL
);
COMMENT ON TABLE encounters.score_system_history IS 'Each change of an encounter''s score system or SpO2 scale.';
COMMENT ON COLUMN encounters.score_system_history.changed_time IS 'When the change took effect (systems may correct it).';
COMMENT ON COLUMN encounters.score_system_history.score_system IS 'Score system the change asked for; null if the change did not name one.';
COMMENT ON COLUMN encounters.score_system_history.previous_score_system IS 'Score system before the change.';
COMMENT ON COLUMN encounters.score_system_history.spo2_scale IS 'SpO2 scale the change asked for; null if the change did not name one.';
COMMENT ON COLUMN encounters.score_system_history.previous_spo2_scale IS 'SpO2 scale before the change.';
COMMENT ON COLUMN encounters.score_system_history.changed_by IS 'Caller id that made the change.';
CREATE INDEX score_system_history_encounter_idx
ON encounters.score_system_history (encounter_uuid, changed_time);

CREATE TABLE encounters.merge_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    record_uuid uuid NOT NULL,
    patient_uuid uuid NOT NULL,
    message_uuid uuid NOT NULL,
    merged_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT merge_history_once_per_message UNIQUE (encounter_uuid, message_uuid)
);
COMMENT ON TABLE encounters.merge_history IS 'Record merges an encounter went through: the record and patient it had before, and the merge message.';
COMMENT ON COLUMN encounters.merge_history.record_uuid IS 'Patient record the encounter belonged to before the merge.';
COMMENT ON COLUMN encounters.merge_history.patient_uuid IS 'Patient the encounter belonged to before the merge.';
COMMENT ON COLUMN encounters.merge_history.message_uuid IS 'Merge message; a replay of the same message changes nothing.';
COMMENT ON COLUMN encounters.merge_history.merged_at IS 'When the merge happened.';

CREATE TABLE encounters.outbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    encounter_uuid uuid,
    routing_key text NOT NULL,
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at timestamptz,
    CONSTRAINT outbox_routing_key_not_empty CHECK (routing_key <> '')
);
COMMENT ON TABLE encounters.outbox IS 'Messages for the platform, written in the transaction of the change; the relay publishes them to RabbitMQ.';
COMMENT ON COLUMN encounters.outbox.message_id IS 'Message id sent to the broker, so consumers can de-duplicate.';
COMMENT ON COLUMN encounters.outbox.encounter_uuid IS 'Encounter the message is about (delivery keeps order per encounter).';
COMMENT ON COLUMN encounters.outbox.routing_key IS 'RabbitMQ routing key, e.g. dhos.DM000007.';
COMMENT ON COLUMN encounters.outbox.body IS 'JSON message body.';
COMMENT ON COLUMN encounters.outbox.published_at IS 'When the broker confirmed the message; null while waiting.';
CREATE INDEX outbox_waiting_idx ON encounters.outbox (id) WHERE published_at IS NULL;

CREATE FUNCTION encounters.notify_outbox() RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog
AS $$
BEGIN
    PERFORM pg_notify('encounters_outbox', '');
    RETURN NULL;
END;
$$;
COMMENT ON FUNCTION encounters.notify_outbox() IS 'Wakes the event relay (LISTEN encounters_outbox) when messages are written.';

CREATE TRIGGER outbox_notify
AFTER INSERT ON encounters.outbox
FOR EACH STATEMENT EXECUTE FUNCTION encounters.notify_outbox();

CREATE TABLE encounters.deployed_function (
    file_name text PRIMARY KEY,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE encounters.deployed_function IS 'Each sql/functions file deployed by `encounters-service migrate`, with its checksum.';
