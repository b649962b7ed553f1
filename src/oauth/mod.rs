//! The OAuth 2.0 / OpenID Connect bridge: the vendor's application sends its users to
//! `/oauth2/authorize`; idhub signs them in through their organisation's SAML IdP and hands
//! back an authorization code that the application exchanges for an ID token and an access
//! token (RFC 6749 §4.1, OpenID Connect Core §3.1), so any OIDC client library works.
//!
//! This module holds the protocol rules (pure, unit-tested); `flow` runs them against the
//! store, and `http::oauth` speaks the wire formats.

pub mod flow;

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The audience of access tokens issued to applications: idhub's own userinfo endpoint
/// (the client is in `client_id`, RFC 9068 §2.2). Never accepted by the admin API.
pub const ACCESS_AUDIENCE: &str = "idhub-oauth";
/// Lifetime of an authorization code (the issue asks for 60 s).
pub const CODE_TTL_SECS: i64 = 60;
/// Lifetime of an application's refresh token.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;
/// Scopes idhub knows.
pub const SCOPES: [&str; 5] = ["openid", "profile", "email", "groups", "offline_access"];

/// An RFC 6749 §5.2 / §4.1.2.1 error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    pub error: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            error,
            description: description.into(),
        }
    }
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new("invalid_grant", d)
    }
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }
    pub fn server_error() -> Self {
        Self::new("server_error", "the server could not complete the request")
    }
    /// The HTTP status of this error at the token endpoint.
    pub fn status(&self) -> u16 {
        match self.error {
            "invalid_client" => 401,
            "server_error" => 500,
            "temporarily_unavailable" => 503,
            _ => 400,
        }
    }
}

/// Parses a space-separated scope list (RFC 6749 §3.3): every scope known and allowed for the
/// client; duplicates dropped; order kept.
pub fn parse_scope(raw: &str, allowed: &[String]) -> Result<Vec<String>, OAuthError> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if !SCOPES.contains(&s) || !allowed.iter().any(|a| a == s) {
            return Err(OAuthError::new(
                "invalid_scope",
                format!("scope {s:?} is not allowed for this client"),
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(OAuthError::new("invalid_scope", "no scope requested"));
    }
    Ok(out)
}

/// Redirect URIs are compared exactly (RFC 6749 §3.1.2.3; OAuth 2.0 Security BCP §4.1.3).
pub fn redirect_allowed(registered: &[String], given: &str) -> bool {
    registered.iter().any(|r| r == given)
}

/// A redirect URI a client may register: absolute https (or http on loopback for native
/// apps, RFC 8252 §7.3), no fragment.
pub fn valid_redirect_uri(u: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(u) else {
        return false;
    };
    if parsed.fragment().is_some() || parsed.host_str().is_none() {
        return false;
    }
    match parsed.scheme() {
        "https" => true,
        "http" => matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")),
        _ => false,
    }
}

/// PKCE S256 (RFC 7636 §4.6): BASE64URL(SHA256(verifier)) == challenge, compared in constant
/// time. The verifier must be 43–128 unreserved characters (§4.1).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}

/// A challenge as the authorization request carries it: 43 base64url characters.
pub fn valid_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Appends query parameters to a redirect URI (keeping its own).
pub fn with_query(base: &str, params: &[(&str, &str)]) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// What the authorization request asked for, kept with the pending SAML request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
}

/// Claims of an application's access token (RFC 9068 shape).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub client_id: String,
    pub scope: String,
    pub tid: String,
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Claims of an ID token (OpenID Connect Core §2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    pub sid: String,
    pub amr: Vec<String>,
    /// The tenant (organisation) id.
    pub org_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_the_rfc_7636_example() {
        // RFC 7636 Appendix B.
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches(verifier, challenge));
        assert!(valid_challenge(challenge));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            challenge
        ));
        assert!(!pkce_matches("short", challenge));
        assert!(!valid_challenge("plain-text"));
    }

    #[test]
    fn scopes_must_be_known_and_allowed() {
        let allowed: Vec<String> = ["openid", "email"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            parse_scope("openid  email openid", &allowed).unwrap(),
            vec!["openid".to_owned(), "email".to_owned()]
        );
        assert_eq!(
            parse_scope("openid profile", &allowed).unwrap_err().error,
            "invalid_scope"
        );
        assert_eq!(
            parse_scope("admin", &allowed).unwrap_err().error,
            "invalid_scope"
        );
        assert_eq!(
            parse_scope("", &allowed).unwrap_err().error,
            "invalid_scope"
        );
    }

    #[test]
    fn redirect_uris_are_exact_and_safe() {
        let reg = vec!["https://app.example/cb".to_owned()];
        assert!(redirect_allowed(&reg, "https://app.example/cb"));
        assert!(!redirect_allowed(&reg, "https://app.example/cb/"));
        assert!(!redirect_allowed(&reg, "https://app.example/cb?x=1"));
        assert!(valid_redirect_uri("https://app.example/cb?tenant=1"));
        assert!(valid_redirect_uri("http://127.0.0.1:4000/cb"));
        assert!(!valid_redirect_uri("http://app.example/cb"));
        assert!(!valid_redirect_uri("https://app.example/cb#frag"));
        assert!(!valid_redirect_uri("javascript:alert(1)"));
        assert_eq!(
            with_query(
                "https://app.example/cb?t=1",
                &[("code", "a b"), ("state", "s")]
            ),
            "https://app.example/cb?t=1&code=a+b&state=s"
        );
    }

    #[test]
    fn token_endpoint_statuses() {
        assert_eq!(OAuthError::invalid_client("x").status(), 401);
        assert_eq!(OAuthError::invalid_grant("x").status(), 400);
        assert_eq!(OAuthError::server_error().status(), 500);
    }
}
