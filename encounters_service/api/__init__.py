"""Route handlers, grouped by resource; ROUTES is what the app serves."""

from encounters_service.api import changes, encounter_reads, encounter_writes, fhir, monitoring

ROUTES = [*monitoring.ROUTES, *encounter_writes.ROUTES, *encounter_reads.ROUTES, *changes.ROUTES, *fhir.ROUTES]
