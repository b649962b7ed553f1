//! Discovery (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas, reflecting what
//! idhub enforces (limits, ETags, cursor pagination) and each tenant's extension schemas.

use super::ScimCtx;
use super::bulk::{MAX_OPERATIONS, MAX_PAYLOAD};
use super::query::{DEFAULT_COUNT, MAX_RESULTS};
use scim::ScimError;
use scim::schema::Schema;
use serde_json::{Value, json};

/// GET /ServiceProviderConfig (RFC 7643 §5; pagination per RFC 9865 §4).
pub fn service_provider_config(ctx: &ScimCtx) -> Value {
    json!({
        "schemas": [scim::urn::SERVICE_PROVIDER_CONFIG],
        "documentationUri": "https://github.com/idhub/idhub#readme",
        "patch": { "supported": true },
        "bulk": { "supported": true, "maxOperations": MAX_OPERATIONS, "maxPayloadSize": MAX_PAYLOAD },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": true },
        "sort": { "supported": true },
        "etag": { "supported": true },
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": DEFAULT_COUNT,
            "maxPageSize": MAX_RESULTS,
            "cursorTimeout": 0
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A per-tenant SCIM token issued by idhub (idhub scim-token create), sent as Authorization: Bearer",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", ctx.base)
        }
    })
}

fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [scim::urn::LIST_RESPONSE],
        "totalResults": resources.len(),
        "itemsPerPage": resources.len(),
        "startIndex": 1,
        "Resources": resources,
    })
}

pub fn resource_types(ctx: &ScimCtx) -> Value {
    list(vec![
        ctx.users.resource_type_json(&ctx.base),
        ctx.groups.resource_type_json(&ctx.base),
    ])
}

pub fn resource_type(ctx: &ScimCtx, name: &str) -> Result<Value, ScimError> {
    [&ctx.users, &ctx.groups]
        .into_iter()
        .find(|r| r.name.eq_ignore_ascii_case(name))
        .map(|r| r.resource_type_json(&ctx.base))
        .ok_or_else(|| ScimError::not_found(format!("no resource type {name:?}")))
}

fn all_schemas(ctx: &ScimCtx) -> Vec<&Schema> {
    let mut out: Vec<&Schema> = vec![&ctx.users.core, &ctx.groups.core];
    for r in [&ctx.users, &ctx.groups] {
        for e in &r.extensions {
            if !out.iter().any(|s| s.id == e.schema.id) {
                out.push(&e.schema);
            }
        }
    }
    out
}

pub fn schemas(ctx: &ScimCtx) -> Value {
    list(
        all_schemas(ctx)
            .into_iter()
            .map(|s| s.to_json(&ctx.base))
            .collect(),
    )
}

pub fn schema(ctx: &ScimCtx, urn: &str) -> Result<Value, ScimError> {
    all_schemas(ctx)
        .into_iter()
        .find(|s| s.id.eq_ignore_ascii_case(urn))
        .map(|s| s.to_json(&ctx.base))
        .ok_or_else(|| ScimError::not_found(format!("no schema {urn:?}")))
}
