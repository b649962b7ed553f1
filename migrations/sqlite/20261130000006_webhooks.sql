-- Webhooks: each follows its tenant's change log from a cursor (the same order as the events
-- API) and turns matching events into deliveries. A delivery is claimed by one node for a
-- lease (`claimed_until`); a node that dies mid-delivery leaves it to be retried by another.
CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    event_types  TEXT NOT NULL,
    secret       TEXT NOT NULL,
    active       BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    cursor_txid  BIGINT NOT NULL DEFAULT 0,
    cursor_seq   BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant_idx ON webhooks (tenant_id);

CREATE TABLE webhook_deliveries (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id        TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id          TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    payload           TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT NOT NULL,
    claimed_until     BIGINT,
    last_status_code  BIGINT,
    last_error        TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_hook_idx ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    delivery_id   TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at  BIGINT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    duration_ms   BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, attempted_at);
