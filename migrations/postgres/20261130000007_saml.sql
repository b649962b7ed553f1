-- SAML 2.0 single sign-on: per-tenant SP keys, IdP connections, email-domain routing, pending
-- AuthnRequests, the assertion replay cache, IdP identities linked to users, and a per-connection
-- login-flow log. Everything a node needs to validate a login lives here, so every node of a
-- cluster sees the same pending requests and the same replay cache.

-- SP key pairs of a tenant: the `current` one signs requests and is published first; a
-- `previous` one stays published and decrypts until it is retired (certificate rollover).
CREATE TABLE saml_sp_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('current', 'previous')),
    private_key  TEXT NOT NULL,
    certificate  TEXT NOT NULL,
    not_after    BIGINT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX saml_sp_keys_tenant_idx ON saml_sp_keys (tenant_id, status);

CREATE TABLE saml_connections (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    idp_entity_id         TEXT NOT NULL,
    sso_url               TEXT NOT NULL,
    slo_url               TEXT,
    certificates          TEXT NOT NULL,
    metadata_url          TEXT,
    metadata_status       TEXT,
    metadata_error        TEXT,
    metadata_fetched_at   BIGINT,
    metadata_next_at      BIGINT,
    allow_idp_initiated   BIGINT NOT NULL DEFAULT 0 CHECK (allow_idp_initiated IN (0, 1)),
    clock_skew_secs       BIGINT NOT NULL DEFAULT 60 CHECK (clock_skew_secs BETWEEN 0 AND 600),
    required_signing      TEXT NOT NULL DEFAULT 'either' CHECK (required_signing IN ('response', 'assertion', 'either')),
    want_encrypted        BIGINT NOT NULL DEFAULT 0 CHECK (want_encrypted IN (0, 1)),
    name_id_format        TEXT,
    attribute_mapping     TEXT NOT NULL,
    jit                   BIGINT NOT NULL DEFAULT 1 CHECK (jit IN (0, 1)),
    link_order            TEXT NOT NULL,
    allow_sha1            BIGINT NOT NULL DEFAULT 0 CHECK (allow_sha1 IN (0, 1)),
    active                BIGINT NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    cert_notified         TEXT NOT NULL DEFAULT '{}',
    version               BIGINT NOT NULL DEFAULT 1,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL
);
CREATE INDEX saml_connections_tenant_idx ON saml_connections (tenant_id);
CREATE INDEX saml_connections_refresh_idx ON saml_connections (metadata_next_at);

-- Home-realm discovery: an email domain routes to one connection once an operator verified it.
-- A verified domain belongs to exactly one tenant.
CREATE TABLE saml_domains (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    domain         TEXT NOT NULL,
    connection_id  TEXT NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    verified_at    BIGINT,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, domain)
);
CREATE UNIQUE INDEX saml_domains_verified_idx ON saml_domains (domain) WHERE verified_at IS NOT NULL;

-- AuthnRequests we sent and not yet answered: InResponseTo must name one, once.
CREATE TABLE saml_requests (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    relay_state    TEXT,
    return_to      TEXT,
    oauth_request  TEXT,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    consumed_at    BIGINT
);
CREATE INDEX saml_requests_expiry_idx ON saml_requests (expires_at);

-- Assertion IDs already consumed, kept until the assertion could no longer be valid.
CREATE TABLE saml_replay (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    assertion_id   TEXT NOT NULL,
    connection_id  TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, assertion_id)
);
CREATE INDEX saml_replay_expiry_idx ON saml_replay (expires_at);

-- Which user an IdP subject (NameID) of a connection signed in as.
CREATE TABLE saml_identities (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    name_id        TEXT NOT NULL,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_index  TEXT,
    -- Groups JIT joined for this identity (JSON ids): left when no longer asserted.
    jit_groups     TEXT NOT NULL DEFAULT '[]',
    last_login_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, connection_id, name_id)
);
CREATE INDEX saml_identities_user_idx ON saml_identities (tenant_id, user_id);

-- The last attempts per connection (pruned to 200), for tenant admins debugging their IdP.
CREATE TABLE saml_login_log (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL REFERENCES saml_connections (id) ON DELETE CASCADE,
    at             BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    outcome        TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    reason         TEXT,
    detail         TEXT,
    name_id        TEXT,
    user_id        TEXT,
    in_response_to TEXT,
    assertion_id   TEXT,
    ip             TEXT
);
CREATE INDEX saml_login_log_conn_idx ON saml_login_log (connection_id, at);
