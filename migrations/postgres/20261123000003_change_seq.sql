-- Change-log sequence numbers come from a sequence on PostgreSQL: taking them no longer locks
-- the tenant row, so writes of one tenant commit in parallel. Numbers are unique and increase
-- per tenant; they may have gaps (rolled-back writes), and concurrent writers may commit out of
-- number order (readers of the change log use a snapshot watermark for that).
CREATE SEQUENCE change_log_seq;
SELECT setval('change_log_seq', coalesce((SELECT max(change_seq) FROM tenants), 0) + 1, false);
