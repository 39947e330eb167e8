-- Schema snapshot (indexes): Indexes: the integrity rules (partial unique indexes) and the look-ups the routes make.
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

CREATE UNIQUE INDEX encounter_live_epr_id_key
ON encounters.encounter (epr_encounter_id)
WHERE deleted_at IS NULL AND epr_encounter_id IS NOT NULL;

CREATE UNIQUE INDEX encounter_one_open_local_key
ON encounters.encounter (patient_uuid)
WHERE epr_encounter_id IS NULL
AND child_of_encounter_uuid IS NULL
AND discharged_at IS NULL
AND deleted_at IS NULL;

CREATE INDEX encounter_patient_idx
ON encounters.encounter (patient_uuid, (discharged_at IS NULL) DESC, admitted_at DESC, created DESC, uuid DESC);

CREATE INDEX encounter_epr_id_idx ON encounters.encounter (epr_encounter_id)
WHERE epr_encounter_id IS NOT NULL;

CREATE INDEX encounter_location_current_idx
ON encounters.encounter (location_uuid, discharged_at)
WHERE deleted_at IS NULL AND child_of_encounter_uuid IS NULL;

CREATE INDEX encounter_modified_idx ON encounters.encounter (modified DESC);

CREATE INDEX encounter_parent_idx ON encounters.encounter (child_of_encounter_uuid)
WHERE child_of_encounter_uuid IS NOT NULL;

CREATE INDEX encounter_change_idx ON encounters.encounter ((coalesce(changed_xid, '1'::xid8)), uuid);

CREATE INDEX encounter_record_idx ON encounters.encounter (patient_record_uuid);

CREATE INDEX merge_history_message_idx ON encounters.merge_history (message_uuid);

CREATE INDEX encounter_location_idx ON encounters.encounter (location_uuid);

CREATE INDEX encounter_open_idx ON encounters.encounter (uuid) WHERE discharged_at IS NULL AND deleted_at IS NULL;

CREATE INDEX location_history_encounter_idx
ON encounters.location_history (encounter_uuid, arrived_at, id);

CREATE INDEX location_history_departure_idx
ON encounters.location_history (encounter_uuid, departed_at);

CREATE INDEX location_history_location_idx ON encounters.location_history (location_uuid, encounter_uuid);

CREATE INDEX score_system_history_encounter_idx
ON encounters.score_system_history (encounter_uuid, changed_time);

CREATE INDEX outbox_waiting_idx ON encounters.outbox (id) WHERE published_at IS NULL;
