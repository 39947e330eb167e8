-- Schema snapshot (tables): Tables, with their constraints (keys, foreign keys, CHECKs).
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

-- (noqa: the linter cannot parse a column's COMPRESSION, and leaves this statement alone.)
CREATE TABLE encounters.encounter (  -- noqa: PRS
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
    document json COMPRESSION lz4,
    changed_xid xid8,
    version bigint,
    versioned_xid xid8,
    CONSTRAINT encounter_epr_id_not_empty CHECK (epr_encounter_id <> ''),
    CONSTRAINT encounter_spo2_scale_valid CHECK (spo2_scale IN (1, 2)),
    CONSTRAINT encounter_not_own_parent CHECK (child_of_encounter_uuid <> uuid)
);

-- (noqa: the linter cannot parse a column's COMPRESSION, and leaves this statement alone.)
CREATE TABLE encounters.encounter_history (  -- noqa: PRS
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    version bigint NOT NULL,
    modified timestamptz NOT NULL,
    modified_by text NOT NULL,
    document json COMPRESSION lz4 NOT NULL,
    PRIMARY KEY (encounter_uuid, version)
);

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

CREATE TABLE encounters.merge_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    encounter_uuid uuid NOT NULL REFERENCES encounters.encounter (uuid),
    record_uuid uuid NOT NULL,
    patient_uuid uuid NOT NULL,
    message_uuid uuid NOT NULL,
    merged_at timestamptz NOT NULL DEFAULT now(),
    parent_record_uuid uuid,
    parent_patient_uuid uuid,
    CONSTRAINT merge_history_once_per_message UNIQUE (encounter_uuid, message_uuid)
);

CREATE TABLE encounters.merge_undo (
    encounter_uuid uuid NOT NULL,
    message_uuid uuid NOT NULL,
    record_uuid uuid NOT NULL,
    patient_uuid uuid NOT NULL,
    undone_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (encounter_uuid, message_uuid),
    CONSTRAINT merge_undo_of_a_merge FOREIGN KEY (encounter_uuid, message_uuid)
    REFERENCES encounters.merge_history (encounter_uuid, message_uuid)
);

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

CREATE TABLE encounters.deployed_function (
    file_name text PRIMARY KEY,
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE encounters.database_role (
    purpose text PRIMARY KEY,
    role_name name NOT NULL UNIQUE,
    CONSTRAINT database_role_purpose CHECK (purpose IN ('owner', 'app', 'analyst'))
);
