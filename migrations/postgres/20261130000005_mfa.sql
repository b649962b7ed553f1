-- TOTP multi-factor authentication: the secret sealed with the configured secret key
-- (AES-256-GCM), the last accepted time step (a code works once), and hashed backup codes.
CREATE TABLE mfa_totp (
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    secret        TEXT NOT NULL,
    enabled       BIGINT NOT NULL DEFAULT 0 CHECK (enabled IN (0, 1)),
    last_step     BIGINT,
    created_at    BIGINT NOT NULL,
    confirmed_at  BIGINT,
    CONSTRAINT mfa_totp_pkey PRIMARY KEY (user_id)
);

CREATE TABLE mfa_backup_codes (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    used_at    BIGINT,
    CONSTRAINT mfa_backup_codes_pkey PRIMARY KEY (user_id, code_hash)
);
