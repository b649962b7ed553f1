//! Store failures as SCIM errors (RFC 7644 §3.12): the one place this mapping lives.

use crate::store::StoreError;
use scim::{ScimError, ScimType};

/// Maps a store error; `what` names the resource for 404s ("User", "Group").
pub fn from_store(e: StoreError, what: &str) -> ScimError {
    match e {
        StoreError::NotFound => ScimError::not_found(format!("{what} not found")),
        StoreError::Conflict {
            constraint: "users_user_name_key",
        } => ScimError::uniqueness("userName is already taken in this tenant"),
        StoreError::Conflict { constraint } => {
            ScimError::uniqueness(format!("a unique value is already taken ({constraint})"))
        }
        StoreError::VersionMismatch => super::precondition_failed(),
        StoreError::InvalidReference(id) => ScimError::bad_request(
            ScimType::InvalidValue,
            format!("no user or group with id {id:?} exists in this tenant"),
        ),
        StoreError::InvalidQuery(detail) => ScimError::bad_request(ScimType::InvalidFilter, detail),
        ref t if t.is_transient() => {
            tracing::error!(error = %e, "database unavailable");
            ScimError::status(503, "the service is temporarily unavailable")
        }
        other => {
            tracing::error!(error = %other, "SCIM operation failed");
            ScimError::status(
                500,
                "internal error; see the server log for this request id",
            )
        }
    }
}
