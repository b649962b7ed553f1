//! Row → domain-type mapping, one function per type, shared by every query that reads it.

use super::StoreError;
use super::sqlite_reads::NativeRow;
use crate::model::{
    AuditEvent, Change, Group, Member, MemberType, Slug, Tenant, TenantId, TenantSettings,
    TokenInfo, User,
};
use rusqlite::types::Value;
use sqlx::Row;
use sqlx::any::AnyRow;

pub(super) const USER_COLS: &str = "id, user_name, external_id, display_name, email, active, attributes, version, created_at, updated_at";
pub(super) const GROUP_COLS: &str =
    "id, display_name, external_id, attributes, version, created_at, updated_at";
pub(super) const TENANT_COLS: &str =
    "id, slug, display_name, settings, version, created_at, updated_at";
pub(super) const TOKEN_COLS: &str = "id, kind, name, token_prefix, created_at, expires_at, last_used_at, revoked_at, user_id, permissions";

fn json(s: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("attributes: {e}")))
}

/// A row of either read path — sqlx's, or SQLite's on the request thread (`sqlite_reads`) —
/// read by column name.
pub(super) trait Columns {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
}

impl Columns for AnyRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }
}

/// The same strictness as sqlx's decoding: a column of another type is an error, not a guess.
fn mistyped(col: &str, v: Option<&Value>) -> StoreError {
    StoreError::Corrupt(match v {
        Some(v) => format!("column {col}: unexpected {:?}", v.data_type()),
        None => format!("column {col}: not in the row"),
    })
}

impl Columns for NativeRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        match self.get(col) {
            Some(Value::Text(s)) => Ok(s.clone()),
            v => Err(mistyped(col, v)),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        match self.get(col) {
            Some(Value::Text(s)) => Ok(Some(s.clone())),
            Some(Value::Null) => Ok(None),
            v => Err(mistyped(col, v)),
        }
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        match self.get(col) {
            Some(Value::Integer(i)) => Ok(*i),
            v => Err(mistyped(col, v)),
        }
    }
}

/// A row from whichever path read it.
pub(super) enum DbRow {
    Sqlx(AnyRow),
    Native(NativeRow),
}

impl Columns for DbRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        match self {
            Self::Sqlx(r) => r.text(col),
            Self::Native(r) => r.text(col),
        }
    }
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        match self {
            Self::Sqlx(r) => r.opt_text(col),
            Self::Native(r) => r.opt_text(col),
        }
    }
    fn int(&self, col: &str) -> Result<i64, StoreError> {
        match self {
            Self::Sqlx(r) => r.int(col),
            Self::Native(r) => r.int(col),
        }
    }
}

pub(super) fn user(r: &impl Columns) -> Result<User, StoreError> {
    Ok(User {
        id: r.text("id")?,
        user_name: r.text("user_name")?,
        external_id: r.opt_text("external_id")?,
        display_name: r.opt_text("display_name")?,
        email: r.opt_text("email")?,
        active: r.int("active")? != 0,
        attributes: json(&r.text("attributes")?)?,
        version: r.int("version")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

pub(super) fn group(r: &impl Columns) -> Result<Group, StoreError> {
    Ok(Group {
        id: r.text("id")?,
        display_name: r.text("display_name")?,
        external_id: r.opt_text("external_id")?,
        attributes: json(&r.text("attributes")?)?,
        version: r.int("version")?,
        created_at: r.int("created_at")?,
        updated_at: r.int("updated_at")?,
    })
}

pub(super) fn member(r: &AnyRow) -> Result<Member, StoreError> {
    let t: String = r.try_get("member_type")?;
    Ok(Member {
        member_id: r.try_get("member_id")?,
        member_type: MemberType::parse(&t)
            .ok_or_else(|| StoreError::Corrupt(format!("member_type {t}")))?,
    })
}

pub(super) fn tenant(r: &AnyRow, hostnames: Vec<String>) -> Result<Tenant, StoreError> {
    let slug: String = r.try_get("slug")?;
    let settings: String = r.try_get("settings")?;
    Ok(Tenant {
        id: TenantId(r.try_get("id")?),
        slug: Slug::parse(&slug).map_err(|_| StoreError::Corrupt(format!("slug {slug}")))?,
        display_name: r.try_get("display_name")?,
        hostnames,
        settings: serde_json::from_str::<TenantSettings>(&settings)
            .map_err(|e| StoreError::Corrupt(format!("settings: {e}")))?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) fn token(r: &AnyRow) -> Result<TokenInfo, StoreError> {
    Ok(TokenInfo {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        prefix: r.try_get("token_prefix")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        last_used_at: r.try_get("last_used_at")?,
        revoked_at: r.try_get("revoked_at")?,
        user_id: r.try_get("user_id")?,
        permissions: match r.try_get::<Option<String>, _>("permissions")? {
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("token permissions: {e}")))?,
            None => Vec::new(),
        },
    })
}

pub(super) fn audit(r: &AnyRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: r.try_get("id")?,
        occurred_at: r.try_get("occurred_at")?,
        actor_type: r.try_get("actor_type")?,
        actor_id: r.try_get("actor_id")?,
        action: r.try_get("action")?,
        target_type: r.try_get("target_type")?,
        target_id: r.try_get("target_id")?,
        outcome: r.try_get("outcome")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        request_id: r.try_get("request_id")?,
        details: serde_json::from_str(&r.try_get::<String, _>("details")?)
            .unwrap_or(serde_json::Value::Null),
    })
}

pub(super) fn change(r: &AnyRow) -> Result<Change, StoreError> {
    Ok(Change {
        seq: r.try_get("seq")?,
        occurred_at: r.try_get("occurred_at")?,
        resource_type: r.try_get("resource_type")?,
        resource_id: r.try_get("resource_id")?,
        operation: r.try_get("operation")?,
        resource_version: r.try_get("resource_version")?,
    })
}
