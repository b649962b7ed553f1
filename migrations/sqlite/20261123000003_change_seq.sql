-- PostgreSQL gets a sequence for change-log numbers here. SQLite has one writer at a time, so
-- the per-tenant counter in tenants.change_seq stays: numbers are gap-free and commit in order.
SELECT 1;
