//! OAuth 2.0 / OpenID Connect endpoints of the bridge (their own wire formats: form posts,
//! RFC 6749 §5.2 JSON errors, redirects). Thin: the work is in `crate::oauth::flow`.

use crate::app::AppState;
use crate::http::saml::escape;
use crate::oauth::{OAuthError, flow};
use base64::Engine;
use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Query};
use poem::{EndpointExt, Request, Response, Route, get, handler, post};
use serde_json::json;
use std::collections::HashMap;

pub fn routes() -> impl poem::Endpoint {
    Route::new()
        .at("/authorize", get(authorize))
        .at("/token", post(token))
        .at("/userinfo", get(userinfo).post(userinfo))
        .at("/jwks", get(jwks))
        .around(crate::http::saml::limit_per_ip)
}

fn no_store(r: poem::ResponseBuilder) -> poem::ResponseBuilder {
    r.header(header::CACHE_CONTROL, "no-store")
        .header(header::PRAGMA, "no-cache")
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let b = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    let mut r = b.body(body.to_string());
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        poem::http::HeaderValue::from_static("no-store"),
    );
    r.headers_mut().insert(
        header::PRAGMA,
        poem::http::HeaderValue::from_static("no-cache"),
    );
    r
}

/// RFC 6749 §5.2 error body.
fn error_response(e: &OAuthError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = json_response(
        status,
        &json!({ "error": e.error, "error_description": e.description }),
    );
    if status == StatusCode::UNAUTHORIZED
        && let Ok(v) = poem::http::HeaderValue::from_str("Basic realm=\"idhub\"")
    {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}

#[handler]
async fn authorize(state: Data<&AppState>, q: Query<HashMap<String, String>>) -> Response {
    match flow::authorize(&state, &q.0).await {
        flow::Authorize::ToIdp(url) | flow::Authorize::ToClient(url) => no_store(
            Response::builder()
                .status(StatusCode::FOUND)
                .header(header::LOCATION, url),
        )
        .finish(),
        flow::Authorize::Page(e) => {
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in request refused</title></head>\
                 <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>Sign-in request refused</h1>\
                 <p>The application sent an invalid sign-in request.</p><p><code>{}</code>: {}</p></body></html>",
                escape(e.error),
                escape(&e.description)
            );
            no_store(
                Response::builder()
                    .status(StatusCode::BAD_REQUEST)
                    .header(header::CONTENT_TYPE, "text/html; charset=utf-8"),
            )
            .body(html)
        }
    }
}

/// Client credentials from `Authorization: Basic` (RFC 6749 §2.3.1: form-urlencoded id and
/// secret).
fn basic_credentials(req: &Request) -> Result<Option<(String, String)>, OAuthError> {
    let Some(v) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let v = v.to_str().map_err(|_| bad())?;
    let Some(b64) = v.strip_prefix("Basic ") else {
        return Err(bad());
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |s: &str| form_decode(s).ok_or_else(bad);
    Ok(Some((decode(id)?, decode(secret)?)))
}

/// application/x-www-form-urlencoded decoding of one component.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[handler]
async fn token(
    req: &Request,
    state: Data<&AppState>,
    form: poem::Result<Form<HashMap<String, String>>>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(&OAuthError::invalid_request(
            "expected an application/x-www-form-urlencoded body",
        ));
    };
    let basic = match basic_credentials(req) {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    match flow::token(&state, &form, basic).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) => error_response(&e),
    }
}

#[handler]
async fn userinfo(req: &Request, state: Data<&AppState>) -> Response {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(bearer) = bearer else {
        let mut r = json_response(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": "invalid_token", "error_description": "a bearer access token is required" }),
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer realm=\"idhub\""),
        );
        return r;
    };
    match flow::userinfo(&state, bearer).await {
        Ok(body) => json_response(StatusCode::OK, &body),
        Err(e) if e.error == "invalid_token" => {
            let mut r = json_response(
                StatusCode::UNAUTHORIZED,
                &json!({ "error": e.error, "error_description": e.description }),
            );
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                poem::http::HeaderValue::from_static(
                    "Bearer realm=\"idhub\", error=\"invalid_token\"",
                ),
            );
            r
        }
        Err(e) => error_response(&e),
    }
}

#[handler]
fn jwks(state: Data<&AppState>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(state.keys.jwks().to_string())
}

/// `GET /.well-known/openid-configuration`.
#[handler]
pub fn openid_configuration(state: Data<&AppState>) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "public, max-age=300")
        .body(flow::discovery(&state).to_string())
}
