//! Domain types shared by the store, the HTTP layers and the CLI.
//!
//! Values that arrive from outside (slugs, hostnames) are parsed into these types once, at
//! the edge ("parse, don't validate"), so the store never sees an unchecked string where a
//! checked one is meant.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Microseconds since the Unix epoch, the one timestamp representation both backends store.
pub type Micros = i64;

/// The current time in microseconds since the Unix epoch, truncated to whole milliseconds:
/// timestamps are shown with millisecond precision (RFC 7643 §3.1 `meta`), and a value a client
/// read back must compare equal to the stored one in a filter.
pub fn now_micros() -> Micros {
    let now = time::OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000 * 1_000).unwrap_or(i64::MAX)
}

/// RFC 3339 rendering of a stored timestamp (UTC, millisecond precision).
pub fn rfc3339(micros: Micros) -> String {
    let nanos = i128::from(micros) * 1_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// A tenant's internal identifier. Only the store and the tenant resolver construct these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TenantId(pub(crate) String);

impl TenantId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a slug or hostname was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidName {
    #[error("slug must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    Slug,
    #[error("`{0}` is not a valid hostname")]
    Hostname(String),
    #[error("display name must be 1-200 characters")]
    DisplayName,
}

/// A tenant slug: lower-case DNS label, 1-63 characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Slug(String);

impl Slug {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName::Slug)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hostname as tenants are resolved by (RFC 1123 labels, lower-cased, no port).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let lower = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        if !lower.is_empty() && lower.len() <= 253 && lower.split('.').all(label_ok) {
            Ok(Self(lower))
        } else {
            Err(InvalidName::Hostname(s.to_owned()))
        }
    }

    /// The host part of an HTTP `Host` header value (port and IPv6 brackets removed).
    pub fn from_host_header(value: &str) -> Option<Self> {
        let host = if let Some(rest) = value.strip_prefix('[') {
            rest.split(']').next().unwrap_or_default()
        } else {
            value.rsplit_once(':').map_or(value, |(h, _)| h)
        };
        Self::parse(host).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Validates a human-facing display name.
pub fn display_name(s: &str) -> Result<String, InvalidName> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 {
        Err(InvalidName::DisplayName)
    } else {
        Ok(t.to_owned())
    }
}

/// Per-tenant settings, stored as one JSON document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TenantSettings {
    /// Maintenance mode: `/health/ready` reports not ready for the default tenant.
    pub maintenance: bool,
    /// SCIM compatibility profile (`strict` | `entra` | `okta` | `lenient`).
    pub scim_profile: ScimProfile,
    /// SCIM DELETE sets `active=false` and hides the resource instead of removing it.
    pub soft_delete: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScimProfile {
    Strict,
    Entra,
    Okta,
    #[default]
    Lenient,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tenant {
    pub id: TenantId,
    pub slug: Slug,
    pub display_name: String,
    pub hostnames: Vec<String>,
    pub settings: TenantSettings,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
    pub attributes: serde_json::Value,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub active: bool,
    pub attributes: serde_json::Value,
    /// An argon2id hash to store as the user's password, in the same transaction.
    pub password_hash: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: serde_json::Value,
    pub version: i64,
    pub created_at: Micros,
    pub updated_at: Micros,
}

#[derive(Clone, Debug, Default)]
pub struct NewGroup {
    pub display_name: String,
    pub external_id: Option<String>,
    pub attributes: serde_json::Value,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberType {
    User,
    Group,
}

impl MemberType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "User" => Some(Self::User),
            "Group" => Some(Self::Group),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    pub member_id: String,
    pub member_type: MemberType,
}

/// A member to add: its id and, when the client said so, its type (otherwise looked up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSpec {
    pub id: String,
    pub ty: Option<MemberType>,
}

impl From<&Member> for MemberSpec {
    fn from(m: &Member) -> Self {
        Self {
            id: m.member_id.clone(),
            ty: Some(m.member_type),
        }
    }
}

/// Membership changes of one write, applied in this order: `replace` (when given) sets the
/// whole member list, then `add`, then `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberDelta {
    pub replace: Option<Vec<MemberSpec>>,
    pub add: Vec<MemberSpec>,
    pub remove: Vec<String>,
}

impl MemberDelta {
    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// A member as shown to clients, with the display name of the user or group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub id: String,
    pub ty: MemberType,
    pub display: Option<String>,
}

/// A stored token's public description; the secret itself is never kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub kind: String,
    pub name: String,
    pub prefix: String,
    pub created_at: Micros,
    pub expires_at: Option<Micros>,
    pub last_used_at: Option<Micros>,
    pub revoked_at: Option<Micros>,
    /// API keys: the user the key acts as.
    pub user_id: Option<String>,
    /// API keys: the permissions the key is limited to.
    pub permissions: Vec<String>,
}

/// Who a credential says the caller is. Always carries its tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: TenantId,
    pub kind: PrincipalKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A SCIM bearer token (RFC 7644 §2): tenant-wide provisioning rights, not bound to a user.
    ScimToken { token_id: String },
    /// An API key / personal access token: acts as `user_id`, limited to `permissions`.
    ApiKey {
        token_id: String,
        user_id: String,
        permissions: Vec<String>,
    },
    /// An administrator signed in with a password.
    Admin {
        user_id: String,
        user_name: String,
        roles: Vec<String>,
    },
}

/// Who performed a write, for the audit trail.
#[derive(Clone, Debug, Default)]
pub struct Actor {
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            actor_type: "system".into(),
            ..Self::default()
        }
    }
    pub fn cli() -> Self {
        Self {
            actor_type: "cli".into(),
            ..Self::default()
        }
    }
}

/// 1-based page request shared by every list operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub limit: u32,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 200;

    pub fn offset(&self) -> i64 {
        i64::from(self.page.saturating_sub(1)) * i64::from(self.limit)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 1,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub id: String,
    pub occurred_at: Micros,
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    pub seq: i64,
    pub occurred_at: Micros,
    pub resource_type: String,
    pub resource_id: String,
    pub operation: String,
    pub resource_version: i64,
}

/// A group a user or group belongs to: (group id, group display name, direct membership).
pub type Membership = (String, String, bool);

/// A tenant's SCIM extension schema as stored: (resource type, required, RFC 7643 §7 JSON).
pub type StoredSchema = (String, bool, serde_json::Value);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(Slug::parse("acme-1").is_ok());
        assert!(Slug::parse("").is_err());
        assert!(Slug::parse("-acme").is_err());
        assert!(Slug::parse("Acme").is_err());
        assert!(Slug::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn hostnames_from_host_header() {
        assert_eq!(
            Hostname::from_host_header("Acme.Example.com:8443").map(|h| h.0),
            Some("acme.example.com".into())
        );
        assert_eq!(
            Hostname::from_host_header("localhost").map(|h| h.0),
            Some("localhost".into())
        );
        assert!(Hostname::from_host_header("bad host").is_none());
        assert!(Hostname::parse("a..b").is_err());
    }

    #[test]
    fn rfc3339_renders_utc_millis() {
        assert_eq!(rfc3339(1_700_000_000_123_456), "2023-11-14T22:13:20.123Z");
    }
}
