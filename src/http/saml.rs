//! SAML endpoints (their own wire formats: XML metadata, HTTP-Redirect and HTTP-POST
//! bindings). Addressed by connection id; the connection decides the tenant. Thin: the work is
//! in `crate::sso`.
//!
//! - `GET  /saml/discover?email=…` — home-realm discovery by verified email domain
//! - `GET  /saml/{connection}/metadata` — SP metadata
//! - `GET  /saml/{connection}/login` — SP-initiated login (302 to the IdP)
//! - `POST /saml/{connection}/acs` — assertion consumer service (HTTP-POST)
//! - `GET|POST /saml/{connection}/slo` — IdP-initiated single logout (Redirect or POST)
//! - `POST /saml/{connection}/logout` — SP-initiated logout of the bearer's session

use crate::api::security::anonymous_actor;
use crate::app::AppState;
use crate::http::middleware::BodyLimit;
use crate::sso::{self, SsoError, keys, login, sp_urls};
use poem::http::{StatusCode, header};
use poem::web::{Data, Form, Path, Query};
use poem::{EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};
use serde::Deserialize;
use serde_json::json;

/// The largest SAML form post accepted at the transport (the `saml` crate then holds the
/// decoded message to `login::ACS_MAX_BYTES`, with a reason in the login-flow log).
pub const FORM_LIMIT: usize = 2 * 1024 * 1024;

pub fn routes() -> impl poem::Endpoint {
    Route::new()
        .at("/discover", get(discover))
        .at("/:connection/metadata", get(metadata))
        .at("/:connection/login", get(start_login))
        .at("/:connection/acs", post(acs))
        .at("/:connection/slo", get(slo_redirect).post(slo_post))
        .at("/:connection/logout", post(sp_logout))
        .around(limit_per_ip)
        .with(BodyLimit(FORM_LIMIT))
}

/// Per client IP, at most `sso_rate_per_ip` requests a minute to the SAML and OAuth endpoints
/// (each refused ACS post writes a login-flow entry, an audit record and an event, so an
/// unthrottled client could flood them). 429 with `Retry-After` past it.
pub async fn limit_per_ip<E: poem::Endpoint>(ep: E, req: Request) -> poem::Result<Response> {
    let state = req.data::<AppState>().cloned();
    if let Some(state) = state {
        let ip = crate::api::security::client_ip(&req).unwrap_or_default();
        let d = state
            .limiter
            .check(&format!("sso:{ip}"), state.config.sso_rate_per_ip);
        if !d.allowed {
            let body = json!({ "code": "rate_limited", "message": format!("too many requests; retry in {} s", d.reset_secs) });
            return Ok(Response::builder()
                .status(StatusCode::TOO_MANY_REQUESTS)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::RETRY_AFTER, d.reset_secs.to_string())
                .body(body.to_string()));
        }
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

fn wants_json(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// HTML-escapes text for the error pages.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .header(
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        )
        .header("x-frame-options", "DENY")
        .body(html)
}

/// A human sentence for a refusal reason (the code itself is shown too).
pub fn reason_message(reason: &str) -> &'static str {
    match reason {
        "in_response_to_unknown" => {
            "The response answers a sign-in request this service did not send."
        }
        "in_response_to_reused" => "This sign-in request was already answered.",
        "request_expired" => "The sign-in took too long. Please start again.",
        "idp_initiated_not_allowed" => {
            "This organisation only accepts sign-ins started from the application."
        }
        "relay_state_mismatch" => "The response does not belong to this browser's sign-in.",
        "replayed" => "This sign-in response was already used.",
        "user_inactive" => "Your account is deactivated.",
        "user_not_found" => "No account matches your identity and automatic provisioning is off.",
        "operator_account" => "Operator accounts cannot sign in through single sign-on.",
        "connection_inactive" => "This single sign-on connection is disabled.",
        "provisioning_failed" => "Your account could not be created or updated.",
        other => saml::Reason::ALL
            .iter()
            .find(|r| r.code() == other)
            .map(|r| r.message())
            .unwrap_or("The sign-in response was refused."),
    }
}

/// Renders an SSO failure as an error page or JSON (by `Accept`).
fn failure(req: &Request, e: &SsoError) -> Response {
    let (status, code, message, detail) = match e {
        SsoError::NotFound(what) => (
            StatusCode::NOT_FOUND,
            "not_found".to_owned(),
            format!("No such {what}."),
            None,
        ),
        SsoError::Invalid { field, message } => (
            StatusCode::BAD_REQUEST,
            "bad_request".to_owned(),
            format!("{field}: {message}"),
            None,
        ),
        SsoError::Refused { reason, detail } => (
            StatusCode::FORBIDDEN,
            reason.clone(),
            reason_message(reason).to_owned(),
            Some(detail.clone()),
        ),
        SsoError::Conflict(m) => (StatusCode::CONFLICT, "conflict".into(), m.clone(), None),
        SsoError::Store(_) | SsoError::Internal(_) => {
            tracing::error!(error = %e, "SAML endpoint failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error".into(),
                "Something went wrong on our side.".into(),
                None,
            )
        }
    };
    if wants_json(req) {
        let mut body = json!({ "code": code, "message": message });
        if let Some(d) = &detail {
            body["details"] = json!({ "reason": code, "detail": d });
        }
        return Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-store")
            .body(body.to_string());
    }
    let mut html = format!(
        "<p>{}</p><p>Reason: <code>{}</code></p>",
        escape(&message),
        escape(&code)
    );
    if let Some(d) = &detail {
        html.push_str(&format!("<p><small>{}</small></p>", escape(d)));
    }
    page(status, "Sign-in failed", &html)
}

#[derive(Deserialize)]
struct DiscoverQuery {
    email: Option<String>,
    return_to: Option<String>,
}

/// Home-realm discovery: the email's verified domain names the connection.
#[handler]
async fn discover(req: &Request, state: Data<&AppState>, q: Query<DiscoverQuery>) -> Response {
    let Some(domain) = q
        .email
        .as_deref()
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty() && d.len() <= 253)
    else {
        return failure(
            req,
            &SsoError::invalid("email", "an email address is required"),
        );
    };
    match state.store.saml_domain_route(&domain).await {
        Ok(Some((_tenant, connection))) => {
            let mut to = format!("/saml/{connection}/login");
            if let Some(r) = q.return_to.as_deref().filter(|r| login::is_local_path(r)) {
                to.push_str("?return_to=");
                to.push_str(&url_encode(r));
            }
            redirect(StatusCode::FOUND, &to)
        }
        Ok(None) => failure(
            req,
            &SsoError::NotFound("single sign-on for this email domain"),
        ),
        Err(e) => failure(req, &e.into()),
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn redirect(status: StatusCode, to: &str) -> Response {
    Response::builder()
        .status(status)
        .header(header::LOCATION, to)
        .header(header::CACHE_CONTROL, "no-store")
        .finish()
}

async fn tenant_of(
    state: &AppState,
    connection: &str,
) -> Result<crate::store::TenantStore, SsoError> {
    let t = state
        .store
        .saml_connection_tenant(connection)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    Ok(state.store.tenant(t))
}

/// SP metadata of one connection (SAML metadata §2.4.4), with the tenant's current and (during
/// a rollover) previous certificates.
#[handler]
async fn metadata(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
) -> Response {
    let result = async {
        let ts = tenant_of(&state, &connection).await?;
        let rt = sso::connections::runtime(&state, &ts, &connection).await?;
        let keys = keys::tenant_keys(&state, &ts).await?;
        let urls = sp_urls(&state.config.public_url, &connection);
        let certs = keys.certificates();
        Ok::<_, SsoError>(saml::sp_metadata(&saml::SpMetadataParams {
            entity_id: &urls.entity_id,
            acs_url: &urls.acs,
            slo_url: &urls.slo,
            certificates: &certs,
            name_id_format: rt.connection.name_id_format.as_deref(),
            want_assertions_signed: rt.connection.required_signing == "assertion",
        }))
    }
    .await;
    match result {
        Ok(xml) => Response::builder()
            .header(header::CONTENT_TYPE, "application/samlmetadata+xml")
            .body(xml),
        Err(e) => failure(req, &e),
    }
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
}

#[handler]
async fn start_login(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
    q: Query<LoginQuery>,
) -> Response {
    let result = async {
        let ts = tenant_of(&state, &connection).await?;
        login::start(&state, &ts, &connection, q.0.return_to, None).await
    }
    .await;
    match result {
        Ok(started) => redirect(StatusCode::FOUND, &started.redirect_url),
        Err(e) => failure(req, &e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AcsForm {
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    relay_state: Option<String>,
}

#[handler]
async fn acs(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
    form: poem::Result<Form<AcsForm>>,
) -> Response {
    let Ok(Form(form)) = form else {
        return failure(
            req,
            &SsoError::invalid(
                "SAMLResponse",
                "expected an HTML form post (application/x-www-form-urlencoded)",
            ),
        );
    };
    let Some(response) = form.saml_response.filter(|r| !r.is_empty()) else {
        return failure(req, &SsoError::invalid("SAMLResponse", "missing"));
    };
    let actor = anonymous_actor(req);
    match login::acs(
        &state,
        &connection,
        &response,
        form.relay_state.as_deref(),
        &actor,
    )
    .await
    {
        Ok(done) if done.oauth_request.is_some() => {
            // Signed in for an application: back to it with a code (RFC 6749 §4.1.2).
            let request = done.oauth_request.clone().unwrap_or_default();
            match crate::oauth::flow::complete(&state, &done, &request).await {
                Ok(to) => redirect(StatusCode::SEE_OTHER, &to),
                Err(e) => failure(req, &SsoError::refused(e.error, e.description)),
            }
        }
        Ok(done) => {
            if wants_json(req) {
                return Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(
                        json!({
                            "user_id": done.user.id,
                            "user_name": done.user.user_name,
                            "session_id": done.session_id,
                            "access_token": done.access_token,
                            "token_type": "Bearer",
                            "expires_in": done.expires_in,
                            "refresh_token": done.refresh_token,
                            "return_to": done.return_to,
                        })
                        .to_string(),
                    );
            }
            if let Some(to) = &done.return_to {
                return redirect(StatusCode::SEE_OTHER, to);
            }
            page(
                StatusCode::OK,
                "Signed in",
                &format!(
                    "<p>You are signed in as <strong>{}</strong>.</p>",
                    escape(&done.user.user_name)
                ),
            )
        }
        Err(e) => failure(req, &e),
    }
}

#[handler]
async fn slo_redirect(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
) -> Response {
    let query = req.uri().query().unwrap_or_default().to_owned();
    let actor = anonymous_actor(req);
    let out = login::logout(&state, &connection, Some(&query), None, &actor).await;
    logged_out(req, out)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SloForm {
    #[serde(rename = "SAMLRequest")]
    saml_request: Option<String>,
    #[serde(rename = "SAMLResponse")]
    saml_response: Option<String>,
    relay_state: Option<String>,
}

#[handler]
async fn slo_post(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
    form: poem::Result<Form<SloForm>>,
) -> Response {
    let Ok(Form(form)) = form else {
        return failure(
            req,
            &SsoError::invalid("SAMLRequest", "expected a form post"),
        );
    };
    if form.saml_request.is_none() && form.saml_response.is_some() {
        // The IdP's answer to our LogoutRequest: our session is already gone.
        return page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>");
    }
    let Some(request) = form.saml_request.filter(|r| !r.is_empty()) else {
        return failure(req, &SsoError::invalid("SAMLRequest", "missing"));
    };
    let actor = anonymous_actor(req);
    let out = login::logout(
        &state,
        &connection,
        None,
        Some((&request, form.relay_state.as_deref())),
        &actor,
    )
    .await;
    logged_out(req, out)
}

fn logged_out(req: &Request, out: Result<login::LoggedOut, SsoError>) -> Response {
    match out {
        Ok(done) => {
            if wants_json(req) {
                return Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(
                        json!({ "revoked_sessions": done.revoked, "redirect": done.response_redirect })
                            .to_string(),
                    );
            }
            match done.response_redirect {
                Some(to) => redirect(StatusCode::FOUND, &to),
                None => page(StatusCode::OK, "Signed out", "<p>You are signed out.</p>"),
            }
        }
        Err(e) => failure(req, &e),
    }
}

/// SP-initiated logout of the bearer's session (a token from a SAML sign-in of this
/// connection): revokes it and answers where to send the browser (`redirect`, the IdP's SLO
/// with a signed LogoutRequest) when the IdP supports single logout.
#[handler]
async fn sp_logout(
    req: &Request,
    state: Data<&AppState>,
    Path(connection): Path<String>,
) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        return crate::http::error::envelope(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a bearer token from the SAML sign-in is required",
            None,
        );
    };
    let caller = match crate::auth::caller_from_jwt(&state, token).await {
        Ok(c) => c,
        Err(_) => {
            return crate::http::error::envelope(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "invalid or expired token",
                None,
            );
        }
    };
    let user_id = caller.user_id.clone();
    let Some(session_id) = caller.session_id.clone() else {
        return crate::http::error::envelope(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the token is not bound to a session",
            None,
        );
    };
    let ts = state.store.tenant(caller.tenant_id.clone());
    let result = async {
        // The connection is looked up in the caller's tenant only (another tenant's: 404).
        let actor = crate::api::security::caller_actor(&caller, req);
        login::sp_logout(&state, &ts, &connection, &user_id, &session_id, &actor).await
    }
    .await;
    match result {
        Ok(redirect_to) => Response::builder()
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({ "logged_out": true, "redirect": redirect_to }).to_string()),
        Err(e) => failure(req, &e),
    }
    .into_response()
}
