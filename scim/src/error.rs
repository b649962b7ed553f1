//! The SCIM error (RFC 7644 §3.12): an HTTP status, an optional `scimType` and a detail.

use serde::Serialize;

/// The `scimType` values of RFC 7644 §3.12, Table 9.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
    Sensitive,
    /// RFC 9865 §5: the cursor is malformed or not valid for this query.
    InvalidCursor,
}

/// A SCIM protocol error, ready to be rendered as an `urn:…:Error` message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{status} {detail}")]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    /// 400 with a `scimType`.
    pub fn bad_request(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self {
            status: 400,
            scim_type: Some(scim_type),
            detail: detail.into(),
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self {
            status: 404,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// 409 `uniqueness` (RFC 7644 §3.3: a duplicate of a unique attribute).
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self {
            status: 409,
            scim_type: Some(ScimType::Uniqueness),
            detail: detail.into(),
        }
    }

    /// A status without a `scimType` (e.g. 412, 415, 501).
    pub fn status(status: u16, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type: None,
            detail: detail.into(),
        }
    }

    /// The JSON body: `status` is a string, as RFC 7644 §3.12 specifies.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "schemas": [crate::urn::ERROR],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = serde_json::to_value(t).unwrap_or_default();
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc7644_error_body() {
        let e = ScimError::bad_request(ScimType::InvalidFilter, "unknown attribute `foo`");
        assert_eq!(
            e.to_json(),
            serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": "400",
                "scimType": "invalidFilter",
                "detail": "unknown attribute `foo`"
            })
        );
        assert!(
            ScimError::not_found("x")
                .to_json()
                .get("scimType")
                .is_none()
        );
        assert_eq!(
            ScimError::uniqueness("taken").to_json()["scimType"],
            "uniqueness"
        );
    }
}
