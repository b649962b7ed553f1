//! `ApiError`: every REST failure, rendered as the error envelope. The mapping from the
//! lower layers' errors (store, auth, tenancy) to statuses lives here and nowhere else.

use crate::auth::AuthError;
use crate::http::tenancy::TenancyError;
use crate::store::StoreError;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

/// The error envelope: `message` always; `code` and `details` when known.
#[derive(Object, Debug, Clone)]
pub struct ErrorBody {
    /// Stable, machine-readable error code (e.g. `not_found`, `conflict`).
    #[oai(skip_serializing_if_is_none)]
    pub code: Option<String>,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context (e.g. the offending field).
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<serde_json::Value>,
}

fn body(
    code: &str,
    message: impl Into<String>,
    details: Option<serde_json::Value>,
) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: Some(code.to_owned()),
        message: message.into(),
        details,
    })
}

#[derive(ApiResponse, Debug, Clone)]
pub enum ApiError {
    /// The request is malformed (a parameter or field is invalid).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>, #[oai(header = "WWW-Authenticate")] String),
    /// The caller may not do this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource (or not visible to the caller).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The change conflicts with existing data (e.g. a taken slug).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// An `If-Match` precondition failed.
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// Well-formed but semantically invalid input.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(
        Json<ErrorBody>,
        #[oai(header = "Retry-After")] u64,
        #[oai(header = "X-RateLimit-Limit")] u32,
        #[oai(header = "X-RateLimit-Remaining")] u32,
        #[oai(header = "X-RateLimit-Reset")] u64,
    ),
    /// An internal failure; details are in the server log under the request id.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// A dependency (the database) is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(
            "invalid_parameter",
            message,
            Some(serde_json::json!({ "field": field })),
        ))
    }
    pub fn unauthorized() -> Self {
        Self::Unauthorized(
            body("unauthorized", "missing or invalid credentials", None),
            CHALLENGE.to_owned(),
        )
    }
    pub fn too_many(d: crate::auth::ratelimit::Decision) -> Self {
        Self::TooManyRequests(
            body(
                "rate_limited",
                format!("too many requests; retry in {} s", d.reset_secs),
                None,
            ),
            d.reset_secs,
            d.limit,
            d.remaining,
            d.reset_secs,
        )
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::Conflict(body(code, message, None))
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message, None))
    }
    pub fn not_found(what: &str) -> Self {
        Self::NotFound(body("not_found", format!("{what} not found"), None))
    }
    pub fn unprocessable(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(body(
            "invalid_value",
            message,
            Some(serde_json::json!({ "field": field })),
        ))
    }
    /// A SCIM domain error (the REST user and group endpoints share the SCIM layer).
    pub fn from_scim(e: &scim::ScimError) -> Self {
        let code = e
            .scim_type
            .and_then(|t| serde_json::to_value(t).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| {
                crate::http::error::code_for(
                    poem::http::StatusCode::from_u16(e.status)
                        .unwrap_or(poem::http::StatusCode::BAD_REQUEST),
                )
                .to_owned()
            });
        let b = body(&code, e.detail.clone(), None);
        match e.status {
            400 => Self::BadRequest(b),
            404 => Self::NotFound(b),
            409 => Self::Conflict(b),
            412 => Self::PreconditionFailed(b),
            413 | 422 => Self::Unprocessable(b),
            403 => Self::Forbidden(b),
            503 => Self::Unavailable(b),
            _ => Self::internal(&e.detail),
        }
    }
    fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::Internal(body(
            "internal_error",
            "internal error; see the server log for this request id",
            None,
        ))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::not_found("resource"),
            StoreError::Conflict { constraint } => Self::Conflict(body(
                "conflict",
                "the value is already taken",
                Some(serde_json::json!({ "constraint": constraint })),
            )),
            StoreError::VersionMismatch => Self::PreconditionFailed(body(
                "precondition_failed",
                "the resource was changed by someone else",
                None,
            )),
            StoreError::InvalidReference(id) => Self::Unprocessable(body(
                "invalid_reference",
                format!("no such resource: {id}"),
                None,
            )),
            StoreError::InvalidQuery(detail) => {
                Self::BadRequest(body("invalid_query", detail, None))
            }
            ref t if t.is_transient() => {
                tracing::error!(error = %e, "database unavailable");
                Self::Unavailable(body(
                    "database_unavailable",
                    "the database is unavailable",
                    None,
                ))
            }
            other => Self::internal(&other),
        }
    }
}

/// The `WWW-Authenticate` challenge of the REST API (RFC 6750 §3, RFC 7617).
pub const CHALLENGE: &str = "Bearer realm=\"idhub\", Basic realm=\"idhub\"";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => Self::unauthorized(),
            AuthError::Locked { until } => Self::Unauthorized(
                body(
                    "account_locked",
                    "too many failed sign-ins: the account is locked",
                    Some(serde_json::json!({ "locked_until": crate::model::rfc3339(until) })),
                ),
                CHALLENGE.to_owned(),
            ),
            AuthError::InvalidToken(msg) => Self::Unauthorized(
                body("invalid_token", msg, None),
                format!(
                    "Bearer realm=\"idhub\", error=\"invalid_token\", error_description=\"{msg}\""
                ),
            ),
            AuthError::Forbidden(msg) => Self::forbidden(msg),
            AuthError::MfaRequired => Self::Unauthorized(
                body(
                    "mfa_required",
                    "this account uses multi-factor authentication: sign in at POST /api/v1/auth/login",
                    None,
                ),
                CHALLENGE.to_owned(),
            ),
            AuthError::Store(s) => s.into(),
            AuthError::Password(p) => Self::internal(&p),
            AuthError::Jwt(j) => Self::internal(&j),
        }
    }
}

impl From<TenancyError> for ApiError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::UnknownHost => Self::NotFound(body(
                "unknown_host",
                "no tenant is served at this host",
                None,
            )),
            TenancyError::Store(s) => s.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

impl From<crate::sso::SsoError> for ApiError {
    fn from(e: crate::sso::SsoError) -> Self {
        use crate::sso::SsoError;
        match e {
            SsoError::NotFound(what) => Self::not_found(what),
            SsoError::Invalid { field, message } => Self::unprocessable(&field, message),
            SsoError::Conflict(m) => Self::PreconditionFailed(body("precondition_failed", m, None)),
            SsoError::Refused { reason, detail } => Self::Unprocessable(body(
                &reason,
                detail,
                Some(serde_json::json!({ "reason": reason })),
            )),
            SsoError::Store(s) => s.into(),
            SsoError::Internal(m) => Self::internal(&m),
        }
    }
}
