//! The SCIM service provider's domain layer: what a SCIM request does, independent of HTTP.
//!
//! Handlers (`http::scim`) and the Bulk endpoint both call these functions with a [`ScimCtx`]
//! (the tenant-bound store, the tenant's compatibility profile and schemas, and the actor) and
//! JSON input; they get a [`Reply`] or a [`ScimError`] to render.

pub mod bulk;
pub mod discovery;
pub mod errors;
pub mod groups;
pub mod import;
pub mod query;
pub mod users;

use crate::model::Actor;
use crate::store::TenantStore;
use scim::projection::{self, Selector};
use scim::schema::{Extension, ResourceSchema, Schema};
use scim::{Profile, ScimError, ScimType};
use serde_json::Value;
use std::sync::Arc;

/// Everything a SCIM operation needs about its caller and tenant.
#[derive(Clone)]
pub struct ScimCtx {
    pub store: TenantStore,
    pub profile: Profile,
    pub soft_delete: bool,
    pub users: Arc<ResourceSchema>,
    pub groups: Arc<ResourceSchema>,
    pub actor: Actor,
    /// Base URL of the SCIM endpoint, e.g. `https://idhub.example.com/scim/v2`.
    pub base: String,
    /// The REST administration API acting through this layer: operators' own records are
    /// visible (SCIM clients never see them).
    pub admin: bool,
}

impl ScimCtx {
    /// The context for acting on a tenant outside a SCIM request (the `import` command): its
    /// schemas (core plus registered extensions), compatibility profile and settings.
    pub async fn for_tenant(
        store: &crate::store::Store,
        tenant: &crate::model::Tenant,
        actor: Actor,
        base: String,
    ) -> Result<Self, crate::store::StoreError> {
        let ts = store.tenant(tenant.id.clone());
        let extensions = ts.scim_schemas_cached().await?;
        let (users, groups) = tenant_schemas(&extensions);
        Ok(Self {
            store: ts,
            profile: profile_of(tenant.settings.scim_profile),
            soft_delete: tenant.settings.soft_delete,
            users: Arc::new(users),
            groups: Arc::new(groups),
            actor,
            base,
            admin: false,
        })
    }
}

/// The SCIM layer's profile for a tenant's setting.
pub fn profile_of(p: crate::model::ScimProfile) -> Profile {
    match p {
        crate::model::ScimProfile::Strict => Profile::Strict,
        crate::model::ScimProfile::Entra => Profile::Entra,
        crate::model::ScimProfile::Okta => Profile::Okta,
        crate::model::ScimProfile::Lenient => Profile::Lenient,
    }
}

/// Builds the tenant's resource schemas: the core ones plus its registered extensions.
pub fn tenant_schemas(extensions: &[(String, bool, Value)]) -> (ResourceSchema, ResourceSchema) {
    let mut users = ResourceSchema::user();
    let mut groups = ResourceSchema::group();
    for (resource_type, required, def) in extensions {
        let Ok(schema) = serde_json::from_value::<Schema>(def.clone()) else {
            tracing::warn!("ignoring an unreadable stored extension schema");
            continue;
        };
        let ext = Extension {
            schema: Arc::new(schema),
            required: *required,
        };
        match resource_type.as_str() {
            "User" => users.extensions.push(ext),
            "Group" => groups.extensions.push(ext),
            _ => {}
        }
    }
    (users, groups)
}

/// What an operation answers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    /// Weak ETag (`W/"<version>"`) of the resource (RFC 7644 §3.14).
    pub etag: Option<String>,
    pub location: Option<String>,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            body: Some(body),
            etag: None,
            location: None,
        }
    }
}

/// `attributes` / `excludedAttributes` of a request (RFC 7644 §3.4.2.5, §3.9).
#[derive(Clone, Debug, Default)]
pub struct Projection {
    pub attributes: Vec<Selector>,
    pub excluded: Vec<Selector>,
    /// Whether the client asked for any projection at all.
    pub requested: bool,
}

impl Projection {
    pub fn parse(
        schema: &ResourceSchema,
        attributes: Option<&str>,
        excluded: Option<&str>,
        profile: Profile,
    ) -> Result<Self, ScimError> {
        if attributes.is_some_and(|a| !a.trim().is_empty())
            && excluded.is_some_and(|e| !e.trim().is_empty())
            && profile.is_strict()
        {
            return Err(ScimError::bad_request(
                ScimType::InvalidValue,
                "attributes and excludedAttributes cannot be used together",
            ));
        }
        Ok(Self {
            attributes: match attributes {
                Some(a) if !a.trim().is_empty() => projection::parse_list(schema, a, profile)?,
                _ => Vec::new(),
            },
            excluded: match excluded {
                Some(e) if !e.trim().is_empty() => projection::parse_list(schema, e, profile)?,
                _ => Vec::new(),
            },
            requested: attributes.is_some() || excluded.is_some(),
        })
    }

    pub fn includes(&self, schema: &ResourceSchema, attr: &str) -> bool {
        projection::includes(schema, &self.attributes, &self.excluded, None, attr)
    }

    pub fn apply(&self, schema: &ResourceSchema, full: &Value) -> Value {
        projection::project(schema, full, &self.attributes, &self.excluded)
    }
}

/// The weak ETag of a version.
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// An `If-Match` / `If-None-Match` header: `*`, or one or more entity tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    Any,
    Versions(Vec<i64>),
}

impl Precondition {
    /// Parses a header value; tags that are not idhub versions match nothing.
    pub fn parse(raw: &str) -> Self {
        if raw.trim() == "*" {
            return Self::Any;
        }
        Self::Versions(
            raw.split(',')
                .filter_map(|t| {
                    t.trim()
                        .trim_start_matches("W/")
                        .trim_matches('"')
                        .parse()
                        .ok()
                })
                .collect(),
        )
    }

    pub fn matches(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::Versions(v) => v.contains(&version),
        }
    }

    /// The single version a write can be guarded by in the database, if there is one.
    pub fn single(&self) -> Option<i64> {
        match self {
            Self::Versions(v) if v.len() == 1 => v.first().copied(),
            _ => None,
        }
    }
}

/// 412 for a failed `If-Match` (RFC 7644 §3.14, RFC 7232 §4.2).
pub fn precondition_failed() -> ScimError {
    ScimError::status(
        412,
        "the resource has changed: its version does not match If-Match",
    )
}

/// The resource's `meta` (RFC 7643 §3.1).
pub fn meta(
    resource_type: &str,
    location: &str,
    created: i64,
    modified: i64,
    version: i64,
) -> Value {
    serde_json::json!({
        "resourceType": resource_type,
        "created": scim::value::micros_to_datetime(created),
        "lastModified": scim::value::micros_to_datetime(modified),
        "location": location,
        "version": etag(version),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preconditions() {
        assert_eq!(Precondition::parse("*"), Precondition::Any);
        assert_eq!(
            Precondition::parse("W/\"3\""),
            Precondition::Versions(vec![3])
        );
        assert_eq!(
            Precondition::parse("\"3\", W/\"4\""),
            Precondition::Versions(vec![3, 4])
        );
        assert!(!Precondition::parse("W/\"abc\"").matches(1));
        assert_eq!(Precondition::parse("W/\"7\"").single(), Some(7));
    }
}
