-- Seeds a large encounters table for plan checks (bench/explain_reads.py), in one statement.
--
-- Four stays per patient, one a year 2015-2018, at hashed locations among 2,000; the last stay
-- of one patient in 50 is still open; one encounter in 53 is deleted; one in 20 of the later
-- stays is a child of the patient's previous stay; one in 10 has a location history row and
-- one in 20 a score system history row. Every row has its own EPR encounter id.
-- Parameters:
--   encounters  integer  how many encounters (a multiple of 4)
-- Returns: one row: the number of encounters written.
-- Example:
--   psql -v encounters=1000000 -f bench/seed_encounters.sql
WITH seeded AS (
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
        CASE WHEN s.visit = 3 AND s.patient % 50 = 0 THEN NULL ELSE s.admitted_at + INTERVAL '3 days' END,
        CASE WHEN s.i % 53 = 0 THEN s.admitted_at + INTERVAL '1 day' END,
        md5('location' || mod(hashint4(s.i)::bigint + 2147483648, 2000))::uuid,
        md5('patient' || s.patient)::uuid,
        md5('record' || s.patient)::uuid,
        md5('product')::uuid,
        'news2',
        CASE WHEN s.visit > 0 AND s.i % 20 = 0 THEN md5('encounter' || (s.i - s.patients))::uuid END,
        s.admitted_at,
        'bench',
        s.admitted_at + INTERVAL '4 days',
        'bench'
    FROM (
        SELECT
            g.i,
            g.i % (:'encounters'::integer / 4) AS patient,
            g.i / (:'encounters'::integer / 4) AS visit,
            :'encounters'::integer / 4 AS patients,
            TIMESTAMPTZ '2015-01-01 08:00Z'
            + (g.i / (:'encounters'::integer / 4)) * INTERVAL '1 year'
            + (g.i % 365) * INTERVAL '1 day' AS admitted_at
        FROM generate_series(0, :'encounters'::integer - 1) AS g (i)
    ) AS s
    RETURNING uuid, admitted_at, location_uuid
),
moves AS (
    INSERT INTO encounters.location_history (encounter_uuid, location_uuid, arrived_at, departed_at, created_by)
    SELECT uuid, md5('previous ward')::uuid, admitted_at, admitted_at + INTERVAL '1 hour', 'bench'
    FROM seeded
    WHERE get_byte(uuid_send(uuid), 0) % 10 = 0
),
scores AS (
    INSERT INTO encounters.score_system_history (
        encounter_uuid, changed_time, score_system, previous_score_system, spo2_scale,
        previous_spo2_scale, created_by, changed_by, modified_by
    )
    SELECT uuid, admitted_at + INTERVAL '2 hours', 'news2', 'news2', 2, 1, 'bench', 'bench', 'bench'
    FROM seeded
    WHERE get_byte(uuid_send(uuid), 1) % 20 = 0
)
SELECT count(*) AS encounters FROM seeded;
