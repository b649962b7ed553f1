//! The REST error envelope, and the one place where poem's own errors (routing, parsing,
//! limits) are turned into it.
//!
//! Envelope: `{"code": "…", "message": "…", "details": {…}}`: `message` always, `code` and
//! `details` when there is something to say.

use poem::http::{StatusCode, header};
use poem::{Error, Response};
use serde_json::json;

/// A JSON error response in the envelope format.
pub fn envelope(
    status: StatusCode,
    code: &str,
    message: &str,
    details: Option<serde_json::Value>,
) -> Response {
    let mut body = json!({ "code": code, "message": message });
    if let Some(d) = details {
        body["details"] = d;
    }
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
}

/// The stable code for a status, when the error itself does not bring one.
pub fn code_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        411 => "length_required",
        412 => "precondition_failed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        503 => "service_unavailable",
        s if s >= 500 => "internal_error",
        _ => "error",
    }
}

/// Renders any error that reached the top of the stack.
///
/// Errors that already carry a response (our own typed API errors) pass through unchanged.
/// Everything else becomes an envelope; for 5xx the client gets a generic message and the
/// detail goes to the log (with the request id of the enclosing span).
pub fn render(err: Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    if status.is_server_error() {
        tracing::error!(error = %err, status = status.as_u16(), "request failed");
        return envelope(
            status,
            code_for(status),
            "internal error; see the server log for this request id",
            None,
        );
    }
    let message = match status.as_u16() {
        404 => "no such route".to_owned(),
        405 => "method not allowed on this route".to_owned(),
        413 => "request body too large".to_owned(),
        _ => err.to_string(),
    };
    let mut resp = envelope(status, code_for(status), &message, None);
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static(crate::api::error::CHALLENGE),
        );
    }
    resp
}
