-- Administration (PostgreSQL). Says the same thing as the SQLite migration of the same name.
-- JWT signing keys, sessions with rotating refresh tokens, custom roles and
-- group role assignments, API keys (tokens bound to a user, with permissions), lockout.

-- idhub's JWT signing keys (instance-wide). A retired key no longer signs; it is still
-- published and verifies until `expires_at` (retirement + the longest access-token lifetime).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    alg          TEXT NOT NULL,
    private_key  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT,
    expires_at   BIGINT
);

-- A session is one sign-in: the family of its refresh tokens.
CREATE TABLE sessions (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_method     TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    last_used_at    BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    revoked_at      BIGINT,
    revoked_reason  TEXT,
    ip              TEXT,
    user_agent      TEXT
);
CREATE INDEX sessions_user_idx ON sessions (tenant_id, user_id);

-- Refresh tokens, stored hashed. `used_at` set = rotated; presenting it again is reuse and
-- revokes the whole session.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    used_at     BIGINT
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- Custom roles (the built-in admin, viewer and superadmin are defined in code).
CREATE TABLE roles (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    permissions  TEXT NOT NULL DEFAULT '[]',
    version      BIGINT NOT NULL DEFAULT 1,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT roles_pkey PRIMARY KEY (tenant_id, name)
);

CREATE TABLE group_roles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id   TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    CONSTRAINT group_roles_pkey PRIMARY KEY (group_id, role)
);
CREATE INDEX group_roles_tenant_idx ON group_roles (tenant_id, role);
CREATE INDEX user_roles_tenant_idx ON user_roles (tenant_id, role);

-- API keys are tokens of kind 'api' bound to a user, with a permission list (JSON array).
ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE tokens ADD COLUMN permissions TEXT;
CREATE INDEX tokens_user_idx ON tokens (tenant_id, user_id);

-- Failed sign-ins per account, for lockout.
CREATE TABLE login_failures (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    failures      BIGINT NOT NULL DEFAULT 0,
    locked_until  BIGINT,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT login_failures_pkey PRIMARY KEY (user_id)
);

-- The pull events API reads the change log in (transaction id, seq) order and only up to the
-- oldest transaction still running, so an event committed late is never skipped by a reader's
-- cursor (sequence numbers alone may commit out of order across concurrent writers).
ALTER TABLE change_log ADD COLUMN txid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);
CREATE INDEX change_log_txid_idx ON change_log (tenant_id, txid, seq);
