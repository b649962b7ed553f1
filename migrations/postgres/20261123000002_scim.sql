-- SCIM: soft delete (per-tenant setting) hides a resource without removing it, and tenant
-- extension schemas.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;
ALTER TABLE groups ADD COLUMN deleted_at BIGINT;

CREATE TABLE scim_schemas (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    urn            TEXT NOT NULL,
    resource_type  TEXT NOT NULL CHECK (resource_type IN ('User', 'Group')),
    required       BIGINT NOT NULL DEFAULT 0 CHECK (required IN (0, 1)),
    definition     TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    CONSTRAINT scim_schemas_pkey PRIMARY KEY (tenant_id, urn)
);
