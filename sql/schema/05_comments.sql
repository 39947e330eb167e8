-- Schema snapshot (comments): Comments on every schema, table, column and index: what each one means.
-- The current schema as one declarative picture; migrations/ is how databases get here.
-- tests/migrations/test_schema_parity.py fails if this snapshot and the migrations disagree.

COMMENT ON SCHEMA encounters IS 'Encounters service: tables (private; use encounters_api functions to write).';

COMMENT ON SCHEMA encounters_api IS 'Encounters service: functions the service and analysts call.';

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

COMMENT ON COLUMN encounters.encounter.document IS
'Derived: the full JSON form of the encounter (encounters_api.encounter_json), rendered by trigger on every change '
'of the encounter or its histories. Never written directly; any UPDATE of the row re-renders it.';

COMMENT ON COLUMN encounters.encounter.changed_xid IS
'Derived: the transaction (pg_current_xact_id) that last changed the encounter''s stored document or modified/modified_by; '
'null when last written before migration 0004 (the feed takes it for 1). Set by trigger encounter_track_change.';

COMMENT ON COLUMN encounters.encounter.version IS
'Derived: 1 at creation, 1 more for each transaction that changed the encounter''s full form (its stored document); '
'null when last changed before migration 0005 (1). The ETag of the API; set by trigger encounter_track_change.';

COMMENT ON COLUMN encounters.encounter.versioned_xid IS
'Derived: the transaction (pg_current_xact_id) that made the current version; null when made before migration 0005. '
'Set by trigger encounter_track_change (one version per transaction).';

COMMENT ON INDEX encounters.encounter_live_epr_id_key IS 'An EPR encounter id is used by at most one non-deleted encounter.';

COMMENT ON INDEX encounters.encounter_one_open_local_key IS 'A patient has at most one open local top-level encounter.';

COMMENT ON INDEX encounters.encounter_patient_idx IS 'Encounters of a patient, latest first (the open one first).';

COMMENT ON INDEX encounters.encounter_epr_id_idx IS 'Look-up by EPR id, deleted encounters included.';

COMMENT ON INDEX encounters.encounter_location_current_idx IS 'Top-level, non-deleted encounters per location (ward census, open as of a time).';

COMMENT ON INDEX encounters.encounter_modified_idx IS 'What changed since a time.';

COMMENT ON INDEX encounters.encounter_parent_idx IS 'Children of an encounter.';

COMMENT ON INDEX encounters.encounter_record_idx IS 'Encounters of a patient record (record merge).';

COMMENT ON INDEX encounters.encounter_change_idx IS 'The change feed: encounters in the order of the transactions that last changed them (null: 1, before 0004).';

COMMENT ON INDEX encounters.merge_history_message_idx IS 'A merge''s encounters, by its message (merge undo).';

COMMENT ON INDEX encounters.location_history_departure_idx IS 'Latest departure of an encounter (where a move''s stay begins).';

COMMENT ON TABLE encounters.encounter_history IS
'Every version of every encounter as it was (trigger encounter_keep_version); from migration 0006 on.';

COMMENT ON COLUMN encounters.encounter_history.version IS 'The version (encounter.version when it was made).';

COMMENT ON COLUMN encounters.encounter_history.modified IS 'The encounter''s modified when the version was made.';

COMMENT ON COLUMN encounters.encounter_history.modified_by IS 'The encounter''s modified_by when the version was made.';

COMMENT ON COLUMN encounters.encounter_history.document IS 'The full form of that version (encounter.document then).';

COMMENT ON INDEX encounters.encounter_location_idx IS 'Encounters per current location, children and deleted ones included (FHIR search by location).';

COMMENT ON INDEX encounters.encounter_open_idx IS 'Open encounters (FHIR search by location and status in-progress: those that stayed there before).';

COMMENT ON INDEX encounters.location_history_location_idx IS 'Encounters that stayed at a location before their current one (FHIR search by location).';

COMMENT ON TABLE encounters.location_history IS 'Where an encounter has been before its current location, one row per stay at a location.';

COMMENT ON COLUMN encounters.location_history.arrived_at IS 'When the patient arrived at the location (admission or the previous move).';

COMMENT ON COLUMN encounters.location_history.departed_at IS 'When the patient left the location.';

COMMENT ON COLUMN encounters.location_history.created_at IS 'When the row was written.';

COMMENT ON COLUMN encounters.location_history.created_by IS 'Caller id that wrote the row.';

COMMENT ON TABLE encounters.score_system_history IS 'Each change of an encounter''s score system or SpO2 scale.';

COMMENT ON COLUMN encounters.score_system_history.changed_time IS 'When the change took effect (systems may correct it).';

COMMENT ON COLUMN encounters.score_system_history.score_system IS 'Score system the change asked for; null if the change did not name one.';

COMMENT ON COLUMN encounters.score_system_history.previous_score_system IS 'Score system before the change.';

COMMENT ON COLUMN encounters.score_system_history.spo2_scale IS 'SpO2 scale the change asked for; null if the change did not name one.';

COMMENT ON COLUMN encounters.score_system_history.previous_spo2_scale IS 'SpO2 scale before the change.';

COMMENT ON COLUMN encounters.score_system_history.changed_by IS 'Caller id that made the change.';

COMMENT ON TABLE encounters.merge_history IS 'Record merges an encounter went through: the record and patient it had before, and the merge message.';

COMMENT ON COLUMN encounters.merge_history.record_uuid IS 'Patient record the encounter belonged to before the merge.';

COMMENT ON COLUMN encounters.merge_history.patient_uuid IS 'Patient the encounter belonged to before the merge.';

COMMENT ON COLUMN encounters.merge_history.message_uuid IS 'Merge message; a replay of the same message changes nothing.';

COMMENT ON COLUMN encounters.merge_history.merged_at IS 'When the merge happened.';

COMMENT ON COLUMN encounters.merge_history.parent_record_uuid IS
'Patient record the merge moved the encounter to; null for merges recorded before migration 0007.';

COMMENT ON COLUMN encounters.merge_history.parent_patient_uuid IS
'Patient the merge moved the encounter to; null for merges recorded before migration 0007.';

COMMENT ON TABLE encounters.merge_undo IS
'Merges undone, per encounter moved back: the record and patient it had before the undo (encounters_api.undo_merge).';

COMMENT ON COLUMN encounters.merge_undo.message_uuid IS 'The message of the merge undone (its merge_history row).';

COMMENT ON COLUMN encounters.merge_undo.record_uuid IS 'Patient record the encounter belonged to before the undo.';

COMMENT ON COLUMN encounters.merge_undo.patient_uuid IS 'Patient the encounter belonged to before the undo.';

COMMENT ON COLUMN encounters.merge_undo.undone_at IS 'When the merge was undone.';

COMMENT ON TABLE encounters.outbox IS 'Messages for the platform, written in the transaction of the change; the relay publishes them to RabbitMQ.';

COMMENT ON COLUMN encounters.outbox.message_id IS 'Message id sent to the broker, so consumers can de-duplicate.';

COMMENT ON COLUMN encounters.outbox.encounter_uuid IS 'Encounter the message is about (delivery keeps order per encounter).';

COMMENT ON COLUMN encounters.outbox.routing_key IS 'RabbitMQ routing key, e.g. dhos.DM000007.';

COMMENT ON COLUMN encounters.outbox.body IS 'JSON message body.';

COMMENT ON COLUMN encounters.outbox.published_at IS 'When the broker confirmed the message; null while waiting.';

COMMENT ON FUNCTION encounters.notify_outbox() IS 'Wakes the event relay (LISTEN encounters_outbox) when messages are written.';

COMMENT ON FUNCTION encounters.stored_histories(text) IS
'The two history arrays of a stored document, as JSON text: the triggers copy them instead of rendering them again.';

COMMENT ON FUNCTION encounters.with_visits_appended(json, text) IS
'A stored document with location history entries (JSON text, in order) appended to its location_history.';

COMMENT ON FUNCTION encounters.forget_written_document() IS
'Clears encounter.document when a statement (not the history triggers) writes it, so that it is rendered over '
'(trigger encounter_direct_document_write, which fires before encounter_document).';

COMMENT ON FUNCTION encounters.render_encounter_document() IS
'Renders encounter.document from the row being written: in full when it is null (a new row, or its histories '
'changed), else the row alone with the stored histories copied in (trigger encounter_document).';

COMMENT ON FUNCTION encounters.touch_encounter_documents() IS
'Brings the documents of the encounters whose history rows a statement wrote up to date: appends a move''s '
'entry, else has them rendered again (triggers *_encounter_document).';

COMMENT ON FUNCTION encounters.track_encounter_change() IS
'Keeps encounter.version (1 more per transaction that changes the stored document), versioned_xid and changed_xid '
'(the writing transaction, when the document or modified/modified_by changes); trigger encounter_track_change.';

COMMENT ON FUNCTION encounters.keep_encounter_version() IS
'Stores the version a write leaves the encounter at, when its transaction made it (trigger encounter_keep_version).';

COMMENT ON TABLE encounters.deployed_function IS 'Each sql/functions file deployed by `encounters-service migrate`, with its checksum.';

COMMENT ON TABLE encounters.database_role IS
'The roles of least privilege (migration 0009): who owns the schema, who the service and analysts connect as.';

COMMENT ON COLUMN encounters.database_role.purpose IS 'owner (migrations), app (serve and relay) or analyst (reads).';

COMMENT ON COLUMN encounters.database_role.role_name IS 'The PostgreSQL role.';
