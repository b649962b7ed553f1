//! The bridge's steps against the store: authorize (validate, pick the IdP, start the SAML
//! login), complete (after the ACS: issue a code), token (code or refresh token → tokens) and
//! userinfo.

use super::{
    AccessClaims, AuthorizeRequest, CODE_TTL_SECS, IdClaims, OAuthError, REFRESH_TTL_SECS,
    parse_scope, pkce_matches, redirect_allowed, valid_challenge, with_query,
};
use crate::app::AppState;
use crate::model::{TenantId, User, now_micros};
use crate::sso::login::{self, Completed};
use crate::store::hash_token;
use crate::store::oauth::{CodeGrant, OAuthClient, RedeemRefusal, RefreshGrant};
use base64::Engine;
use rand::RngCore;
use serde_json::{Value, json};
use std::collections::HashMap;

/// Where `/oauth2/authorize` sends the browser.
#[derive(Debug)]
pub enum Authorize {
    /// On to the IdP (a signed AuthnRequest).
    ToIdp(String),
    /// Back to the client with `error` (RFC 6749 §4.1.2.1).
    ToClient(String),
    /// The client or redirect URI cannot be trusted: show an error, redirect nowhere.
    Page(OAuthError),
}

fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

/// A new client secret (shown once; stored as its SHA-256).
pub fn new_client_secret() -> String {
    random_token("idh_cs_")
}

/// `GET /oauth2/authorize`.
pub async fn authorize(state: &AppState, q: &HashMap<String, String>) -> Authorize {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return Authorize::Page(OAuthError::invalid_request("client_id is required"));
    };
    let client = match state.store.oauth_client(client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Authorize::Page(OAuthError::invalid_client("unknown client_id")),
        Err(e) => {
            tracing::error!(error = %e, "oauth: client lookup failed");
            return Authorize::Page(OAuthError::server_error());
        }
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return Authorize::Page(OAuthError::invalid_request("redirect_uri is required"));
    };
    if !redirect_allowed(&client.redirect_uris, redirect_uri) {
        return Authorize::Page(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    let state_param = get("state").map(str::to_owned);
    let back = |e: OAuthError| {
        let mut p = vec![
            ("error", e.error),
            ("error_description", e.description.as_str()),
        ];
        if let Some(s) = &state_param {
            p.push(("state", s.as_str()));
        }
        Authorize::ToClient(with_query(redirect_uri, &p))
    };
    if get("response_type") != Some("code") {
        return back(OAuthError::new(
            "unsupported_response_type",
            "only response_type=code is supported",
        ));
    }
    let scope = match parse_scope(get("scope").unwrap_or("openid"), &client.allowed_scopes) {
        Ok(s) => s,
        Err(e) => return back(e),
    };
    let challenge = get("code_challenge");
    match (challenge, get("code_challenge_method")) {
        (None, _) if client.secret_hash.is_none() => {
            return back(OAuthError::invalid_request(
                "public clients must use PKCE (code_challenge with S256)",
            ));
        }
        (Some(_), m) if m != Some("S256") => {
            return back(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        (Some(c), _) if !valid_challenge(c) => {
            return back(OAuthError::invalid_request("malformed code_challenge"));
        }
        _ => {}
    }
    if get("prompt") == Some("none") {
        return back(OAuthError::new(
            "login_required",
            "idhub keeps no browser session; the user must sign in at the IdP",
        ));
    }
    let (tenant, connection) = match pick_connection(state, &client, q).await {
        Ok(found) => found,
        Err(e) => return back(e),
    };
    let request = AuthorizeRequest {
        client_id: client.id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope,
        state: state_param.clone(),
        nonce: get("nonce").map(str::to_owned),
        code_challenge: challenge.map(str::to_owned),
    };
    let Ok(request_json) = serde_json::to_string(&request) else {
        return back(OAuthError::server_error());
    };
    let ts = state.store.tenant(tenant);
    match login::start(state, &ts, &connection, None, Some(request_json)).await {
        Ok(started) => Authorize::ToIdp(started.redirect_url),
        Err(e) => {
            tracing::warn!(error = %e, "oauth: cannot start the SAML login");
            back(OAuthError::new(
                "temporarily_unavailable",
                "single sign-on for this organisation cannot start",
            ))
        }
    }
}

/// Which connection signs this user in: `connection` (an id), `organization` (a tenant
/// slug with one active connection, or the one its verified domain of `login_hint` names), or
/// the verified email domain of `login_hint`. A tenant's own client reaches only its tenant.
async fn pick_connection(
    state: &AppState,
    client: &OAuthClient,
    q: &HashMap<String, String>,
) -> Result<(TenantId, String), OAuthError> {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let hint_domain = get("login_hint")
        .and_then(|h| h.rsplit_once('@'))
        .map(|(_, d)| d.to_ascii_lowercase());
    let fail = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "oauth: connection lookup failed");
        OAuthError::server_error()
    };
    let found: (TenantId, String) = if let Some(id) = get("connection") {
        let t = state
            .store
            .saml_connection_tenant(id)
            .await
            .map_err(fail)?
            .ok_or_else(|| OAuthError::invalid_request("unknown connection"))?;
        (t, id.to_owned())
    } else if let Some(slug) = get("organization") {
        let t = state
            .store
            .tenant_by_slug(slug)
            .await
            .map_err(fail)?
            .ok_or_else(|| OAuthError::invalid_request("unknown organization"))?;
        if client.tenant_id.as_ref().is_some_and(|own| own != &t.id) {
            return Err(OAuthError::new(
                "access_denied",
                "this client may not sign in users of that organization",
            ));
        }
        let ts = state.store.tenant(t.id.clone());
        let active: Vec<_> = ts
            .saml_connections()
            .await
            .map_err(fail)?
            .into_iter()
            .filter(|c| c.active)
            .collect();
        let by_domain = match &hint_domain {
            Some(d) => ts
                .saml_domains()
                .await
                .map_err(fail)?
                .into_iter()
                .find(|x| &x.domain == d && x.verified_at.is_some())
                .map(|x| x.connection_id),
            None => None,
        };
        match (by_domain, active.as_slice()) {
            (Some(c), _) => (t.id, c),
            (None, [one]) => (t.id, one.id.clone()),
            (None, []) => {
                return Err(OAuthError::invalid_request(
                    "the organization has no active SSO connection",
                ));
            }
            (None, _) => {
                return Err(OAuthError::invalid_request(
                    "the organization has several connections: pass connection or a login_hint of a verified domain",
                ));
            }
        }
    } else if let Some(d) = &hint_domain {
        state
            .store
            .saml_domain_route(d)
            .await
            .map_err(fail)?
            .ok_or_else(|| {
                OAuthError::invalid_request("no single sign-on is set up for this email domain")
            })?
    } else {
        return Err(OAuthError::invalid_request(
            "say who signs in: connection, organization or login_hint (an email address)",
        ));
    };
    if let Some(own) = &client.tenant_id
        && own != &found.0
    {
        return Err(OAuthError::new(
            "access_denied",
            "this client may not sign in users of that organization",
        ));
    }
    Ok(found)
}

/// After a successful ACS for an authorization request: a single-use code for the client.
pub async fn complete(
    state: &AppState,
    done: &Completed,
    request_json: &str,
) -> Result<String, OAuthError> {
    let req: AuthorizeRequest =
        serde_json::from_str(request_json).map_err(|_| OAuthError::server_error())?;
    // The client may have changed meanwhile: check again.
    let client = state
        .store
        .oauth_client(&req.client_id)
        .await
        .map_err(|_| OAuthError::server_error())?
        .ok_or_else(|| OAuthError::invalid_client("the client no longer exists"))?;
    if !redirect_allowed(&client.redirect_uris, &req.redirect_uri) {
        return Err(OAuthError::invalid_request(
            "redirect_uri is no longer registered",
        ));
    }
    let code = random_token("");
    state
        .store
        .insert_oauth_code(
            &code,
            &CodeGrant {
                tenant_id: done.tenant_id.clone(),
                client_id: client.id.clone(),
                user_id: done.user.id.clone(),
                session_id: done.session_id.clone(),
                redirect_uri: req.redirect_uri.clone(),
                scope: req.scope.join(" "),
                nonce: req.nonce.clone(),
                code_challenge: req.code_challenge.clone(),
                auth_time: now_micros() / 1_000_000,
            },
            CODE_TTL_SECS * 1_000_000,
        )
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "oauth: cannot store a code");
            OAuthError::server_error()
        })?;
    let mut params = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        params.push(("state", s.as_str()));
    }
    Ok(with_query(&req.redirect_uri, &params))
}

/// Authenticates the client at the token endpoint (RFC 6749 §2.3): HTTP Basic or form
/// `client_secret` for confidential clients; public clients send only `client_id`.
async fn authenticate_client(
    state: &AppState,
    form: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> Result<OAuthClient, OAuthError> {
    let (id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned(),
        ),
    };
    if id.is_empty() {
        return Err(OAuthError::invalid_client(
            "client authentication is required",
        ));
    }
    let client = state
        .store
        .oauth_client(&id)
        .await
        .map_err(|_| OAuthError::server_error())?
        .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
    match (&client.secret_hash, secret) {
        (Some(hash), Some(s)) => {
            let ok: bool =
                subtle::ConstantTimeEq::ct_eq(hash.as_bytes(), hash_token(&s).as_bytes()).into();
            if !ok {
                return Err(OAuthError::invalid_client("client authentication failed"));
            }
        }
        (Some(_), None) => {
            return Err(OAuthError::invalid_client("client_secret is required"));
        }
        (None, Some(_)) => {
            return Err(OAuthError::invalid_client(
                "this public client has no secret",
            ));
        }
        (None, None) => {}
    }
    Ok(client)
}

/// `POST /oauth2/token`: `authorization_code` or `refresh_token`.
pub async fn token(
    state: &AppState,
    form: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> Result<Value, OAuthError> {
    let client = authenticate_client(state, form, basic).await?;
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("grant_type") {
        Some("authorization_code") => {
            let code =
                get("code").ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            let grant = match state
                .store
                .redeem_oauth_code(code, &client.id)
                .await
                .map_err(|_| OAuthError::server_error())?
            {
                Ok(g) => g,
                Err(RedeemRefusal::Reused) => {
                    return Err(OAuthError::invalid_grant("the code was used already"));
                }
                Err(RedeemRefusal::Expired) => {
                    return Err(OAuthError::invalid_grant("the code expired"));
                }
                Err(RedeemRefusal::Unknown) => {
                    return Err(OAuthError::invalid_grant("unknown code"));
                }
            };
            if get("redirect_uri") != Some(grant.redirect_uri.as_str()) {
                return Err(OAuthError::invalid_grant(
                    "redirect_uri differs from the authorization request",
                ));
            }
            match (&grant.code_challenge, get("code_verifier")) {
                (Some(ch), Some(v)) if pkce_matches(v, ch) => {}
                (Some(_), _) => {
                    return Err(OAuthError::invalid_grant("code_verifier does not match"));
                }
                (None, Some(_)) => {
                    return Err(OAuthError::invalid_grant(
                        "code_verifier sent but no code_challenge was",
                    ));
                }
                (None, None) => {}
            }
            let refresh = RefreshGrant {
                family_id: crate::store::new_public_id(),
                tenant_id: grant.tenant_id.clone(),
                client_id: client.id.clone(),
                user_id: grant.user_id.clone(),
                session_id: grant.session_id.clone(),
                scope: grant.scope.clone(),
                auth_time: grant.auth_time,
            };
            issue(state, &refresh, grant.nonce.as_deref()).await
        }
        Some("refresh_token") => {
            let token = get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            let grant = match state
                .store
                .redeem_oauth_refresh(token, &client.id)
                .await
                .map_err(|_| OAuthError::server_error())?
            {
                Ok(g) => g,
                Err(RedeemRefusal::Reused) => {
                    return Err(OAuthError::invalid_grant(
                        "the refresh token was used already; its family is revoked",
                    ));
                }
                Err(_) => return Err(OAuthError::invalid_grant("invalid refresh token")),
            };
            if let Some(asked) = get("scope") {
                let asked: Vec<&str> = asked.split(' ').filter(|s| !s.is_empty()).collect();
                if asked
                    .iter()
                    .any(|s| !grant.scope.split(' ').any(|g| g == *s))
                {
                    return Err(OAuthError::new(
                        "invalid_scope",
                        "a refresh cannot widen the scope",
                    ));
                }
            }
            issue(state, &grant, None).await
        }
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
        None => Err(OAuthError::invalid_request("grant_type is required")),
    }
}

/// The user behind a grant, if their session and account are still good.
async fn live_user(
    state: &AppState,
    tenant: &TenantId,
    user_id: &str,
    session_id: &str,
) -> Result<User, OAuthError> {
    let session = state
        .store
        .session(session_id)
        .await
        .map_err(|_| OAuthError::server_error())?;
    let now = now_micros();
    let alive = session.is_some_and(|s| {
        s.revoked_at.is_none()
            && s.expires_at > now
            && s.user_id == user_id
            && &s.tenant_id == tenant
    });
    if !alive {
        return Err(OAuthError::invalid_grant("the sign-in session has ended"));
    }
    let user = state
        .store
        .tenant(tenant.clone())
        .get_user(user_id)
        .await
        .map_err(|_| OAuthError::server_error())?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    if !user.active {
        return Err(OAuthError::invalid_grant("the user is deactivated"));
    }
    Ok((*user).clone())
}

async fn issue(
    state: &AppState,
    g: &RefreshGrant,
    nonce: Option<&str>,
) -> Result<Value, OAuthError> {
    let user = live_user(state, &g.tenant_id, &g.user_id, &g.session_id).await?;
    let now = now_micros() / 1_000_000;
    let ttl = i64::try_from(state.config.access_token_ttl.as_secs()).unwrap_or(900);
    let iss = state.keys.issuer().to_owned();
    let fail = |e: crate::auth::jwt::JwtError| {
        tracing::error!(error = %e, "oauth: cannot sign a token");
        OAuthError::server_error()
    };
    let access = state
        .keys
        .sign_claims(&AccessClaims {
            iss: iss.clone(),
            aud: super::ACCESS_AUDIENCE.into(),
            sub: user.id.clone(),
            client_id: g.client_id.clone(),
            scope: g.scope.clone(),
            tid: g.tenant_id.0.clone(),
            sid: g.session_id.clone(),
            iat: now,
            exp: now + ttl,
            jti: crate::store::new_public_id(),
        })
        .map_err(fail)?;
    let refresh = random_token("idh_rt_");
    state
        .store
        .insert_oauth_refresh(&refresh, &g.family_id, g, REFRESH_TTL_SECS * 1_000_000)
        .await
        .map_err(|_| OAuthError::server_error())?;
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ttl,
        "refresh_token": refresh,
        "scope": g.scope,
    });
    if g.scope.split(' ').any(|s| s == "openid") {
        let has = |s: &str| g.scope.split(' ').any(|x| x == s);
        let (given, family) = names(&user);
        let id = IdClaims {
            iss,
            sub: user.id.clone(),
            aud: g.client_id.clone(),
            exp: now + ttl,
            iat: now,
            auth_time: g.auth_time,
            nonce: nonce.map(str::to_owned),
            sid: g.session_id.clone(),
            amr: vec!["ext".into()],
            org_id: g.tenant_id.0.clone(),
            email: has("email").then(|| user.email.clone()).flatten(),
            name: has("profile").then(|| user.display_name.clone()).flatten(),
            preferred_username: has("profile").then(|| user.user_name.clone()),
            given_name: has("profile").then_some(given).flatten(),
            family_name: has("profile").then_some(family).flatten(),
        };
        body["id_token"] = json!(state.keys.sign_claims(&id).map_err(fail)?);
    }
    Ok(body)
}

fn names(u: &User) -> (Option<String>, Option<String>) {
    let n = u.attributes.get("name");
    let s = |k: &str| {
        n.and_then(|n| n.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (s("givenName"), s("familyName"))
}

/// `GET /oauth2/userinfo` (OpenID Connect Core §5.3): the claims the access token's scope
/// allows, while the sign-in session lasts.
pub async fn userinfo(state: &AppState, bearer: &str) -> Result<Value, OAuthError> {
    let claims: AccessClaims = state
        .keys
        .verify_as(bearer, super::ACCESS_AUDIENCE)
        .await
        .map_err(|_| OAuthError::new("invalid_token", "invalid or expired access token"))?;
    let tenant = TenantId(claims.tid.clone());
    let user = live_user(state, &tenant, &claims.sub, &claims.sid)
        .await
        .map_err(|e| match e.error {
            "server_error" => e,
            _ => OAuthError::new("invalid_token", e.description),
        })?;
    let has = |s: &str| claims.scope.split(' ').any(|x| x == s);
    let mut out = json!({ "sub": user.id, "org_id": claims.tid });
    if has("email")
        && let Some(e) = &user.email
    {
        out["email"] = json!(e);
    }
    if has("profile") {
        let (given, family) = names(&user);
        out["preferred_username"] = json!(user.user_name);
        if let Some(n) = &user.display_name {
            out["name"] = json!(n);
        }
        if let Some(g) = given {
            out["given_name"] = json!(g);
        }
        if let Some(f) = family {
            out["family_name"] = json!(f);
        }
    }
    if has("groups") {
        let ts = state.store.tenant(tenant);
        let groups = ts
            .group_memberships(&user.id)
            .await
            .map_err(|_| OAuthError::server_error())?;
        out["groups"] = json!(groups.iter().map(|m| m.1.clone()).collect::<Vec<_>>());
    }
    Ok(out)
}

/// `/.well-known/openid-configuration` (OpenID Connect Discovery §3).
pub fn discovery(state: &AppState) -> Value {
    let base = state.keys.issuer();
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": super::SCOPES,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "org_id", "email", "name", "preferred_username", "given_name", "family_name", "groups"],
    })
}
