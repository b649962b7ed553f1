-- The change log and the audit trail are append-only and written with every write (a Bulk
-- import or `idhub import users` appends two log rows per user). Their foreign keys to
-- tenants cost one trigger and one index probe per appended row (about a fifth of an
-- import's database time, measured in BENCHMARKS.md) and guarded nothing a writer needs:
-- every write that logs also writes its own row of the tenant (users, groups, tokens, …),
-- whose foreign key already refuses a deleted tenant. Deleting a tenant removes its log rows
-- explicitly (store::tenants::delete_tenant), in the same transaction.
ALTER TABLE change_log DROP CONSTRAINT IF EXISTS change_log_tenant_id_fkey;
ALTER TABLE audit_events DROP CONSTRAINT IF EXISTS audit_events_tenant_id_fkey;
