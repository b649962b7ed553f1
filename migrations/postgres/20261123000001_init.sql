-- idhub initial schema (PostgreSQL). Says the same thing as migrations/sqlite/20261123000001_init.sql.
-- Timestamps are unix microseconds (BIGINT) on both backends; ids are UUIDv7 text; flags are
-- BIGINT 0/1 (sqlx's Any driver maps no SQLite BOOLEAN, and one type keeps one query path).
CREATE TABLE tenants (
    id            TEXT PRIMARY KEY,
    slug          TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    settings      TEXT NOT NULL DEFAULT '{}',
    change_seq    BIGINT NOT NULL DEFAULT 0,
    version       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

CREATE TABLE tenant_hostnames (
    hostname   TEXT NOT NULL,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    CONSTRAINT tenant_hostnames_pkey PRIMARY KEY (hostname)
);
CREATE INDEX tenant_hostnames_tenant_idx ON tenant_hostnames (tenant_id);

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_name       TEXT NOT NULL,
    user_name_norm  TEXT NOT NULL,
    external_id     TEXT,
    display_name    TEXT,
    email           TEXT,
    active          BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    attributes      TEXT NOT NULL DEFAULT '{}',
    version         BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    CONSTRAINT users_user_name_key UNIQUE (tenant_id, user_name_norm)
);
CREATE INDEX users_external_id_idx ON users (tenant_id, external_id);
CREATE INDEX users_email_idx ON users (tenant_id, email);
CREATE INDEX users_tenant_id_idx ON users (tenant_id, id);

CREATE TABLE groups (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    display_name       TEXT NOT NULL,
    display_name_norm  TEXT NOT NULL,
    external_id        TEXT,
    attributes         TEXT NOT NULL DEFAULT '{}',
    version            BIGINT NOT NULL DEFAULT 1,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX groups_display_name_idx ON groups (tenant_id, display_name_norm);
CREATE INDEX groups_external_id_idx ON groups (tenant_id, external_id);
CREATE INDEX groups_tenant_id_idx ON groups (tenant_id, id);

CREATE TABLE group_members (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    member_id    TEXT NOT NULL,
    member_type  TEXT NOT NULL CHECK (member_type IN ('User', 'Group')),
    created_at   BIGINT NOT NULL,
    CONSTRAINT group_members_pkey PRIMARY KEY (group_id, member_id)
);
CREATE INDEX group_members_member_idx ON group_members (tenant_id, member_id);

CREATE TABLE credentials (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    secret      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT credentials_pkey PRIMARY KEY (user_id, kind)
);

CREATE TABLE user_roles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    CONSTRAINT user_roles_pkey PRIMARY KEY (user_id, role)
);

CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    token_prefix  TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    CONSTRAINT tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX tokens_tenant_idx ON tokens (tenant_id, kind);

CREATE TABLE audit_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    occurred_at  BIGINT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_type  TEXT,
    target_id    TEXT,
    outcome      TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT,
    request_id   TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant_time_idx ON audit_events (tenant_id, occurred_at);

CREATE TABLE change_log (
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    seq               BIGINT NOT NULL,
    occurred_at       BIGINT NOT NULL,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    operation         TEXT NOT NULL,
    resource_version  BIGINT NOT NULL,
    CONSTRAINT change_log_pkey PRIMARY KEY (tenant_id, seq)
);
