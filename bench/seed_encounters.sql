-- Seeds an encounters table for the benchmark (bench/bench.py) and plan checks (bench/explain_reads.py), in one
-- statement per share of the rows (bench/bench.py runs one share per CPU at once).
--
-- Deterministic: every value is a hash of the row number, so a seed is the same on every run.
-- Encounter i belongs to patient i % patients, as that patient's stay number i / patients;
-- stays are 90 days apart, the last one in 2026. The last stay of each of the first
-- `open_encounters` patients is open (so there are exactly that many open encounters, of
-- distinct patients); every other stay is discharged after 1 to 10 days. Locations are hashed
-- among `locations`: location k is md5('location' || k)::uuid, patient k md5('patient' || k),
-- encounter i md5('encounter' || i). Every open encounter moved ward once (a location history
-- row), one in 10 others too; one stay in 5 has a score system history row.
-- With `mixed`: one discharged stay in 53 is deleted, and one later discharged stay in 20 is a
-- child of the patient's previous stay.
-- Parameters:
--   encounters       integer  how many encounters
--   patients         integer  how many patients (at most `encounters`)
--   locations        integer  how many locations
--   open_encounters  integer  how many open encounters (at most `patients`)
--   mixed            boolean  true: some deleted and some child encounters
--   part             integer  which share of the rows: those with i % parts = part
--   parts            integer  how many shares (1: every row)
-- Returns: one row: the number of encounters written.
-- Example:
--   psql -v encounters=1000000 -v patients=300000 -v locations=5000 -v open_encounters=12500 \
--     -v mixed=true -v part=0 -v parts=1 -f bench/seed_encounters.sql
WITH stays AS (
    SELECT
        g.i,
        g.i % :'patients'::integer AS patient,
        g.i / :'patients'::integer AS stay,
        mod(hashint4(g.i)::bigint + 2147483648, 1000000) AS hash,
        TIMESTAMPTZ '2026-11-01 08:00Z'
        - ((:'encounters'::integer - 1 - g.i) / :'patients'::integer) * INTERVAL '90 days'
        - mod(hashint4(g.i)::bigint + 2147483648, 30 * 24 * 60) * INTERVAL '1 minute' AS admitted_at,
        g.i % :'patients'::integer < :'open_encounters'::integer
        AND g.i + :'patients'::integer >= :'encounters'::integer AS is_open
    FROM generate_series(0, :'encounters'::integer - 1) AS g (i)
    WHERE g.i % :'parts'::integer = :'part'::integer
),
seeded AS (
    INSERT INTO encounters.encounter (
        uuid, epr_encounter_id, encounter_type, admitted_at, discharged_at, deleted_at,
        location_uuid, patient_uuid, patient_record_uuid, dh_product_uuid, score_system,
        child_of_encounter_uuid, created, created_by, modified, modified_by
    )
    SELECT
        md5('encounter' || s.i)::uuid,
        'EPR-' || s.i,
        'INPATIENT',
        s.admitted_at,
        CASE WHEN NOT s.is_open THEN s.admitted_at + (1 + s.hash % 10) * INTERVAL '1 day' END,
        CASE WHEN :'mixed'::boolean AND NOT s.is_open AND s.i % 53 = 0 THEN s.admitted_at + INTERVAL '1 day' END,
        md5('location' || s.hash % :'locations'::integer)::uuid,
        md5('patient' || s.patient)::uuid,
        md5('record' || s.patient)::uuid,
        md5('product')::uuid,
        'news2',
        CASE WHEN :'mixed'::boolean AND NOT s.is_open AND s.stay > 0 AND s.i % 20 = 0
            THEN md5('encounter' || (s.i - :'patients'::integer))::uuid END,
        s.admitted_at,
        'bench',
        s.admitted_at + (1 + s.hash % 10) * INTERVAL '1 day' + s.i * INTERVAL '1 microsecond',
        'bench'
    FROM stays AS s
    RETURNING uuid, admitted_at, discharged_at
),
moves AS (
    INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)
    SELECT uuid, md5('admissions ward')::uuid, admitted_at, admitted_at + INTERVAL '6 hours', 'bench'
    FROM seeded
    WHERE discharged_at IS NULL OR get_byte(uuid_send(uuid), 0) % 10 = 0
),
scores AS (
    INSERT INTO encounters.score_system_history (
        encounter_uuid, changed_time, score_system, previous_score_system, spo2_scale,
        previous_spo2_scale, created_by, changed_by, modified_by
    )
    SELECT uuid, admitted_at + INTERVAL '2 hours', 'news2', 'news2', 2, 1, 'bench', 'bench', 'bench'
    FROM seeded
    WHERE get_byte(uuid_send(uuid), 1) % 5 = 0
)
SELECT count(*) AS encounters FROM seeded;
