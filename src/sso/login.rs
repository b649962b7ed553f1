//! SP-initiated login, the assertion consumer service and single logout.
//!
//! The ACS order matters: the response is validated completely (signature, conditions,
//! bindings; pure, in the `saml` crate) before anything is written; then the pending request
//! is consumed and the assertion ID recorded (both shared by every node through the
//! database); only then is a user found or created and a session opened. A refusal at any
//! step writes its reason to the connection's login-flow log and the audit trail, and creates
//! no user and no session.

use super::keys::{self, TenantKeys};
use super::{Runtime, SsoError, connections, jit, sp_urls};
use crate::app::AppState;
use crate::model::{Actor, TenantId, User, now_micros};
use crate::store::TenantStore;
use crate::store::saml::{ConsumeRefusal, LoginLogEntry, PendingRequest, new_log_id};
use rand::RngCore;
use saml::{AcsPolicy, AlgorithmPolicy, SignatureAlgorithm, SigningRequirement, SkewWindow};
use std::sync::Arc;

/// Largest SAMLResponse form field accepted (base64), well above real responses (a few KiB
/// to ~100 KiB with many group attributes).
pub const ACS_MAX_BYTES: usize = 512 * 1024;

/// The system clock, for the `saml` crate's injected-clock checks.
pub struct SystemClock;

impl saml::Clock for SystemClock {
    fn now_unix(&self) -> i64 {
        now_micros() / 1_000_000
    }
}

/// Where to send the browser to sign in at the IdP.
#[derive(Debug)]
pub struct StartedLogin {
    pub redirect_url: String,
    pub request_id: String,
}

/// Starts an SP-initiated login: a signed AuthnRequest over HTTP-Redirect, remembered (in the
/// database, so any node can receive the answer) until it is answered or expires.
pub async fn start(
    state: &AppState,
    ts: &TenantStore,
    connection_id: &str,
    return_to: Option<String>,
    oauth_request: Option<String>,
) -> Result<StartedLogin, SsoError> {
    if let Some(r) = &return_to
        && !is_local_path(r)
    {
        return Err(SsoError::invalid(
            "return_to",
            "must be a path on this server (starting with a single /)",
        ));
    }
    let rt = connections::runtime(state, ts, connection_id).await?;
    let c = &rt.connection;
    if !c.active {
        return Err(SsoError::refused(
            "connection_inactive",
            "this SSO connection is disabled",
        ));
    }
    let keys = keys::tenant_keys(state, ts).await?;
    let urls = sp_urls(&state.config.public_url, &c.id);
    let mut relay = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut relay);
    let relay_state = hex::encode(relay);
    let now = now_micros();
    let req = saml::authn_request_redirect(
        &saml::AuthnRequestParams {
            sp_entity_id: &urls.entity_id,
            acs_url: &urls.acs,
            idp_sso_url: &c.sso_url,
            name_id_format: c.name_id_format.as_deref(),
            force_authn: false,
            relay_state: Some(&relay_state),
            now_unix: now / 1_000_000,
        },
        keys.current()?,
    )
    .map_err(|e| SsoError::Internal(format!("signing the AuthnRequest: {e}")))?;
    let ttl = i64::try_from(state.config.saml_request_ttl.as_micros()).unwrap_or(i64::MAX);
    ts.insert_saml_request(&PendingRequest {
        id: req.id.clone(),
        connection_id: c.id.clone(),
        relay_state: Some(relay_state),
        return_to,
        oauth_request,
        created_at: now,
        expires_at: now.saturating_add(ttl),
    })
    .await?;
    Ok(StartedLogin {
        redirect_url: req.url,
        request_id: req.id,
    })
}

/// A path on this server: no scheme, no host, no `//` (which browsers read as a host).
pub fn is_local_path(p: &str) -> bool {
    p.starts_with('/')
        && !p.starts_with("//")
        && !p.starts_with("/\\")
        && !p.chars().any(|c| c.is_control())
        && p.len() <= 2048
}

/// A completed SAML sign-in.
#[derive(Debug)]
pub struct Completed {
    pub tenant_id: TenantId,
    pub connection_id: String,
    pub user: User,
    pub session_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub return_to: Option<String>,
    /// The OAuth authorization request this login was started for, if any.
    pub oauth_request: Option<String>,
}

/// The assertion consumer service (HTTP-POST binding, SAML bindings §3.5).
pub async fn acs(
    state: &AppState,
    connection_id: &str,
    saml_response: &str,
    relay_state: Option<&str>,
    actor: &Actor,
) -> Result<Completed, SsoError> {
    let tenant = state
        .store
        .saml_connection_tenant(connection_id)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    let ts = state.store.tenant(tenant.clone());
    let mut entry = LoginLogEntry {
        id: new_log_id(),
        connection_id: connection_id.to_owned(),
        kind: "idp_initiated".into(),
        outcome: "failure".into(),
        ip: actor.ip.clone(),
        ..Default::default()
    };
    if let Ok(peek) = saml::peek_response(saml_response, ACS_MAX_BYTES) {
        // Unverified, for the log only.
        entry.in_response_to = peek.in_response_to;
        if entry.in_response_to.is_some() {
            entry.kind = "sp_initiated".into();
        }
    }
    let outcome = consume(
        state,
        &ts,
        connection_id,
        saml_response,
        relay_state,
        actor,
        &mut entry,
    )
    .await;
    match &outcome {
        Ok(done) => {
            entry.outcome = "success".into();
            entry.user_id = Some(done.user.id.clone());
        }
        Err(SsoError::Refused { reason, detail }) => {
            entry.reason = Some(reason.clone());
            entry.detail = Some(detail.chars().take(500).collect());
        }
        Err(e) => {
            tracing::error!(error = %e, connection = connection_id, "SAML ACS failed");
            entry.reason = Some("internal_error".into());
        }
    }
    if let Err(e) = ts.record_login_attempt(actor, &entry).await {
        tracing::error!(error = %e, "cannot record a SAML login attempt");
    }
    outcome
}

/// The checks and effects of one ACS post, in order.
async fn consume(
    state: &AppState,
    ts: &TenantStore,
    connection_id: &str,
    saml_response: &str,
    relay_state: Option<&str>,
    actor: &Actor,
    entry: &mut LoginLogEntry,
) -> Result<Completed, SsoError> {
    let rt = connections::runtime(state, ts, connection_id).await?;
    if !rt.connection.active {
        return Err(SsoError::refused(
            "connection_inactive",
            "this SSO connection is disabled",
        ));
    }
    let keys = keys::tenant_keys(state, ts).await?;
    let login = validate(state, rt.clone(), keys, saml_response.to_owned()).await?;
    let c = &rt.connection;
    entry.name_id = Some(login.name_id.clone());
    entry.assertion_id = Some(login.assertion_id.clone());
    entry.in_response_to = login.in_response_to.clone();
    let pending = match &login.in_response_to {
        Some(id) => {
            entry.kind = "sp_initiated".into();
            match ts.consume_saml_request(&c.id, id).await? {
                Ok(p) => Some(p),
                Err(ConsumeRefusal::Unknown) => {
                    return Err(SsoError::refused(
                        "in_response_to_unknown",
                        "InResponseTo names no request this connection sent",
                    ));
                }
                Err(ConsumeRefusal::Reused) => {
                    return Err(SsoError::refused(
                        "in_response_to_reused",
                        "the request this answers was answered already",
                    ));
                }
                Err(ConsumeRefusal::Expired) => {
                    return Err(SsoError::refused(
                        "request_expired",
                        "the login took too long; start again",
                    ));
                }
            }
        }
        None => {
            entry.kind = "idp_initiated".into();
            if !c.allow_idp_initiated {
                return Err(SsoError::refused(
                    "idp_initiated_not_allowed",
                    "this connection accepts only logins started here (IdP-initiated login is off)",
                ));
            }
            None
        }
    };
    if let Some(p) = &pending
        && p.relay_state.as_deref() != relay_state
    {
        return Err(SsoError::refused(
            "relay_state_mismatch",
            "RelayState differs from the one sent with the request",
        ));
    }
    let fresh = ts
        .record_assertion(
            &c.id,
            &login.assertion_id,
            login.replay_expires_at.saturating_mul(1_000_000),
        )
        .await?;
    if !fresh {
        return Err(SsoError::refused(
            "replayed",
            "this assertion was used before",
        ));
    }
    let jit::Resolved { user, jit_groups } = jit::resolve(state, ts, &rt, &login, actor).await?;
    ts.link_saml_identity(
        &c.id,
        &login.name_id,
        &user.id,
        login.session_index.as_deref(),
    )
    .await?;
    if c.jit {
        ts.set_saml_jit_groups(&c.id, &login.name_id, &jit_groups)
            .await?;
    }
    let lifetime = i64::try_from(state.config.session_ttl.as_micros()).unwrap_or(i64::MAX);
    let (session, refresh_token) = ts
        .create_session(actor, &user.id, "saml", lifetime, None)
        .await?;
    let (access_token, _) = state
        .keys
        .issue(&ts.tenant_id().0, &user.id, &session.id, &["saml"])
        .map_err(|e| SsoError::Internal(format!("issuing a token: {e}")))?;
    let return_to = match &pending {
        Some(p) => p.return_to.clone(),
        None => relay_state.filter(|r| is_local_path(r)).map(str::to_owned),
    };
    Ok(Completed {
        tenant_id: ts.tenant_id().clone(),
        connection_id: c.id.clone(),
        user,
        session_id: session.id,
        access_token,
        refresh_token,
        expires_in: state.config.access_token_ttl.as_secs(),
        return_to,
        oauth_request: pending.and_then(|p| p.oauth_request),
    })
}

/// The algorithm allow-list of a connection: SHA-256 or stronger, plus RSA-SHA1 only where
/// the connection explicitly allows it.
pub fn algorithms(allow_sha1: bool) -> AlgorithmPolicy {
    use SignatureAlgorithm::*;
    let mut allowed = vec![
        RsaSha256,
        RsaSha384,
        RsaSha512,
        EcdsaSha256,
        EcdsaSha384,
        EcdsaSha512,
    ];
    if allow_sha1 {
        allowed.push(RsaSha1);
    }
    AlgorithmPolicy::new(allowed)
}

pub fn signing_requirement(s: &str) -> SigningRequirement {
    match s {
        "response" => SigningRequirement::Response,
        "assertion" => SigningRequirement::Assertion,
        _ => SigningRequirement::Either,
    }
}

/// Runs the pure validation off the async workers (XML parsing and signature checks are CPU
/// work).
pub async fn validate(
    state: &AppState,
    rt: Arc<Runtime>,
    keys: Arc<TenantKeys>,
    saml_response: String,
) -> Result<saml::ValidatedLogin, SsoError> {
    let urls = sp_urls(&state.config.public_url, &rt.connection.id);
    tokio::task::spawn_blocking(move || validate_blocking(&rt, &keys, &urls, &saml_response))
        .await
        .map_err(|e| SsoError::Internal(format!("validation task: {e}")))?
}

/// The ACS validation of one response for one connection, synchronously (also what the
/// benchmark measures).
pub fn validate_blocking(
    rt: &Runtime,
    keys: &TenantKeys,
    urls: &super::SpUrls,
    saml_response: &str,
) -> Result<saml::ValidatedLogin, SsoError> {
    let c = &rt.connection;
    let algorithms = algorithms(c.allow_sha1);
    let decryption: Vec<&saml::SpKeyPair> = keys.pairs.iter().collect();
    let policy = AcsPolicy {
        sp_entity_id: &urls.entity_id,
        acs_url: &urls.acs,
        idp_entity_id: &c.idp_entity_id,
        idp_certs: &rt.certificates,
        signing: signing_requirement(&c.required_signing),
        skew: SkewWindow::new(c.clock_skew_secs).unwrap_or_default(),
        algorithms: &algorithms,
        require_encrypted: c.want_encrypted,
        decryption_keys: &decryption,
        max_bytes: ACS_MAX_BYTES,
    };
    Ok(saml::validate_response(
        saml_response,
        &policy,
        &SystemClock,
    )?)
}

/// What an IdP-initiated logout did.
#[derive(Debug)]
pub struct LoggedOut {
    pub revoked: u64,
    /// The signed LogoutResponse to send the browser back to the IdP with, when the IdP has
    /// an SLO URL.
    pub response_redirect: Option<String>,
}

/// The IdP's LogoutRequest, over HTTP-Redirect (`query` is the raw query string) or
/// HTTP-POST (`post` = (SAMLRequest, RelayState)): verified, then every session of the user
/// that subject signed in as is revoked.
pub async fn logout(
    state: &AppState,
    connection_id: &str,
    query: Option<&str>,
    post: Option<(&str, Option<&str>)>,
    actor: &Actor,
) -> Result<LoggedOut, SsoError> {
    let tenant = state
        .store
        .saml_connection_tenant(connection_id)
        .await?
        .ok_or(SsoError::NotFound("connection"))?;
    let ts = state.store.tenant(tenant);
    let rt = connections::runtime(state, &ts, connection_id).await?;
    let c = &rt.connection;
    let urls = sp_urls(&state.config.public_url, &c.id);
    let algorithms = algorithms(c.allow_sha1);
    let skew = SkewWindow::new(c.clock_skew_secs).unwrap_or_default();
    let mut entry = LoginLogEntry {
        id: new_log_id(),
        connection_id: c.id.clone(),
        kind: "logout".into(),
        outcome: "failure".into(),
        ip: actor.ip.clone(),
        ..Default::default()
    };
    let parsed = match (query, post) {
        (_, Some((req, relay))) => saml::logout_request_from_post(
            req,
            &urls.slo,
            &c.idp_entity_id,
            &rt.certificates,
            &algorithms,
            skew,
            &SystemClock,
        )
        .map(|mut r| {
            r.relay_state = relay.map(str::to_owned);
            r
        }),
        (Some(q), None) => saml::logout_request_from_redirect(
            q,
            &urls.slo,
            &c.idp_entity_id,
            &rt.certificates,
            &algorithms,
            skew,
            &SystemClock,
        ),
        (None, None) => {
            return Err(SsoError::invalid("SAMLRequest", "no LogoutRequest given"));
        }
    };
    let req = match parsed {
        Ok(r) => r,
        Err(rej) => {
            entry.reason = Some(rej.reason.code().to_owned());
            entry.detail = Some(rej.detail.clone());
            if let Err(e) = ts.record_login_attempt(actor, &entry).await {
                tracing::error!(error = %e, "cannot record a SAML logout attempt");
            }
            return Err(rej.into());
        }
    };
    entry.name_id = Some(req.name_id.clone());
    let mut revoked = 0;
    if let Some(uid) = ts.saml_identity_user(&c.id, &req.name_id).await? {
        revoked = ts
            .revoke_user_sessions(actor, &uid, None, "saml_logout")
            .await?;
        entry.user_id = Some(uid);
    }
    entry.outcome = "success".into();
    entry.detail = Some(format!("{revoked} session(s) revoked"));
    ts.record_login_attempt(actor, &entry).await?;
    let response_redirect = match &c.slo_url {
        Some(slo) => {
            let keys = keys::tenant_keys(state, &ts).await?;
            Some(
                saml::logout_response_redirect(
                    &urls.entity_id,
                    slo,
                    &req.id,
                    // RelayState comes from the IdP's request; the redirect binding allows
                    // at most 80 bytes (bindings §3.4.3), so a longer one is not echoed.
                    req.relay_state.as_deref().filter(|r| r.len() <= 80),
                    now_micros() / 1_000_000,
                    keys.current()?,
                )
                .map_err(|e| SsoError::Internal(format!("signing the LogoutResponse: {e}")))?,
            )
        }
        None => None,
    };
    Ok(LoggedOut {
        revoked,
        response_redirect,
    })
}

/// SP-initiated logout of the caller's session: the session is revoked here, and when the
/// IdP has an SLO URL the browser is sent there with a signed LogoutRequest.
pub async fn sp_logout(
    state: &AppState,
    ts: &TenantStore,
    connection_id: &str,
    user_id: &str,
    session_id: &str,
    actor: &Actor,
) -> Result<Option<String>, SsoError> {
    let rt = connections::runtime(state, ts, connection_id).await?;
    let c = &rt.connection;
    ts.revoke_session(actor, session_id, Some(user_id), "logout")
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => SsoError::NotFound("session"),
            e => e.into(),
        })?;
    let Some(slo) = &c.slo_url else {
        return Ok(None);
    };
    let Some((name_id, session_index)) = ts.saml_identity_of_user(&c.id, user_id).await? else {
        return Ok(None);
    };
    let keys = keys::tenant_keys(state, ts).await?;
    let urls = sp_urls(&state.config.public_url, &c.id);
    let req = saml::logout_request_redirect(
        &urls.entity_id,
        slo,
        &name_id,
        c.name_id_format.as_deref(),
        session_index.as_deref(),
        None,
        now_micros() / 1_000_000,
        keys.current()?,
    )
    .map_err(|e| SsoError::Internal(format!("signing the LogoutRequest: {e}")))?;
    Ok(Some(req.url))
}
