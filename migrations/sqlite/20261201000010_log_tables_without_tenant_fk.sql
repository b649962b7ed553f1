-- PostgreSQL drops the tenant foreign keys of change_log and audit_events in this version
-- (see migrations/postgres). SQLite keeps them: its foreign-key checks run in-process and
-- cost next to nothing, and dropping a constraint would mean rebuilding both tables. The
-- explicit deletion of a tenant's log rows (store::tenants::delete_tenant) is harmless here.
SELECT 1;
