//! The OAuth 2.0 / OpenID Connect bridge, end to end: the application's authorization request
//! goes through the organisation's SAML IdP (the test IdP) and comes back as a code, exchanged
//! for an ID token, an access token and a refresh token; userinfo answers while the sign-in
//! session lasts. Also: two idhub nodes on one database share the replay cache.

use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use crate::saml::{Sso, authn_redirect, no_redirects, post_saml_response};
use base64::Engine;
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;

backend_tests!(
    authorize_through_saml_then_code_token_and_userinfo,
    authorization_errors_follow_rfc_6749_and_pkce_is_enforced,
    a_replayed_assertion_is_refused_by_another_node,
);

const CB: &str = "https://app.example/cb";

/// Registers an application in the caller's tenant: (client_id, secret).
async fn client(sso: &Sso<'_>, public: bool) -> (String, Option<String>) {
    let r = sso
        .app
        .client
        .post(sso.app.url("/api/v1/oauth/clients"))
        .bearer_auth(&sso.token)
        .json(&json!({
            "name": "Vendor app",
            "redirect_uris": [CB],
            "allowed_scopes": ["openid", "profile", "email", "groups", "offline_access"],
            "public": public,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["public"], public);
    (
        b["id"].as_str().unwrap().to_owned(),
        b["client_secret"].as_str().map(str::to_owned),
    )
}

fn query(url: &str) -> HashMap<String, String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// GET /oauth2/authorize with `params`: (status, Location).
async fn authorize(app: &TestApp, params: &[(&str, &str)]) -> (u16, Option<String>) {
    let r = no_redirects()
        .get(app.url("/oauth2/authorize"))
        .query(params)
        .send()
        .await
        .unwrap();
    (
        r.status().as_u16(),
        r.headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned()),
    )
}

/// The IdP signs `name_id` in for the pending request; the ACS answers with a redirect to the
/// application: its query.
async fn idp_signs_in(sso: &Sso<'_>, idp_location: &str, name_id: &str) -> HashMap<String, String> {
    let (request_id, relay, _) = authn_redirect(idp_location);
    let mut spec = sso.spec(name_id);
    spec.in_response_to = Some(request_id);
    spec.attributes = vec![
        ("givenName".into(), vec!["Ada".into()]),
        ("sn".into(), vec!["Lovelace".into()]),
        ("groups".into(), vec!["Engineering".into()]),
    ];
    let r = no_redirects()
        .post(sso.app.url(&format!("/saml/{}/acs", sso.id)))
        .form(&[
            ("SAMLResponse", sso.idp.response_b64(&spec)),
            ("RelayState", relay),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "back to the application");
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{CB}?")), "{to}");
    query(&to)
}

async fn token(app: &TestApp, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> (u16, Value) {
    let mut rb = app.client.post(app.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        rb = rb.basic_auth(id, Some(secret));
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    if status == 200 {
        assert_eq!(r.headers()["cache-control"], "no-store");
    }
    (status, r.json().await.unwrap())
}

/// Verifies a JWT against the published JWKS; returns its claims.
async fn verify(app: &TestApp, jwt: &str, audience: &str) -> Value {
    let jwks: Value = app
        .client
        .get(app.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.unwrap();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap();
    assert_eq!(
        header.alg,
        jsonwebtoken::Algorithm::RS256,
        "RS256: every OIDC library verifies it"
    );
    assert_eq!(key["kty"], "RSA");
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(
        key["n"].as_str().unwrap(),
        key["e"].as_str().unwrap(),
    )
    .unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.set_audience(&[audience]);
    jsonwebtoken::decode::<Value>(jwt, &dk, &v).unwrap().claims
}

async fn authorize_through_saml_then_code_token_and_userinfo(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let (client_id, secret) = client(&sso, false).await;
    let secret = secret.unwrap();
    // Discovery tells a client library everything it needs.
    let d: Value = app
        .client
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer = d["issuer"].as_str().unwrap().to_owned();
    assert_eq!(
        d["authorization_endpoint"],
        format!("{issuer}/oauth2/authorize")
    );
    assert_eq!(d["jwks_uri"], format!("{issuer}/oauth2/jwks"));
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));

    let (status, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", CB),
            ("scope", "openid profile email groups offline_access"),
            ("state", "st-1"),
            ("nonce", "nonce-1"),
            ("connection", &sso.id),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let loc = loc.unwrap();
    assert!(
        loc.starts_with("https://idp.test/sso?SAMLRequest="),
        "{loc}"
    );
    let back = idp_signs_in(&sso, &loc, "ada@example.com").await;
    assert_eq!(back["state"], "st-1");
    let code = back["code"].clone();

    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
    ];
    // The wrong secret.
    let (status, body) = token(&app, Some((&client_id, "idh_cs_wrong")), &form).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    let (status, tokens) = token(&app, Some((&client_id, &secret)), &form).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    let id = verify(&app, tokens["id_token"].as_str().unwrap(), &client_id).await;
    assert_eq!(id["iss"], issuer.as_str());
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["email"], "ada@example.com");
    assert_eq!(id["given_name"], "Ada");
    assert_eq!(id["org_id"], app.default_tenant.as_str());
    let user_id = id["sub"].as_str().unwrap().to_owned();
    // The code works once.
    let (status, body) = token(&app, Some((&client_id, &secret)), &form).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    // Userinfo with the access token (never usable on the admin API).
    let access = tokens["access_token"].as_str().unwrap();
    let ui: Value = app
        .client
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ui["sub"], user_id.as_str());
    assert_eq!(ui["email"], "ada@example.com");
    assert_eq!(ui["family_name"], "Lovelace");
    assert_eq!(ui["groups"], json!(["Engineering"]));
    let r = crate::admin_auth::get(&app, access, "/api/v1/me").await;
    assert_eq!(
        r.status(),
        401,
        "an application token is not an admin API token"
    );
    // Refresh rotates; presenting the spent one revokes the family.
    let rt1 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String| {
        let (client_id, secret) = (client_id.clone(), secret.clone());
        let app = &app;
        async move {
            token(
                app,
                Some((&client_id, &secret)),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ],
            )
            .await
        }
    };
    let (status, t2) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2);
    let (status, body) = refresh(rt1).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = refresh(rt2).await;
    assert_eq!(status, 400, "the whole family is revoked after reuse");
    // The IdP's single logout ends the session: userinfo refuses the token.
    let q = sso.idp.logout_request_redirect_query(
        &sso.slo,
        "ada@example.com",
        None,
        crate::saml::now_unix(),
    );
    let r = no_redirects()
        .get(app.url(&format!("/saml/{}/slo?{q}", sso.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    let r = app
        .client
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(t2["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    app.stop().await;
}

fn pkce() -> (String, String) {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(uuid::Uuid::new_v4().as_bytes())
        + &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

async fn authorization_errors_follow_rfc_6749_and_pkce_is_enforced(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let (public_id, _) = client(&sso, true).await;
    let (conf_id, secret) = client(&sso, false).await;
    let secret = secret.unwrap();
    // Unknown client or unregistered redirect: an error page, never a redirect.
    for params in [
        vec![
            ("response_type", "code"),
            ("client_id", "nope"),
            ("redirect_uri", CB),
        ],
        vec![
            ("response_type", "code"),
            ("client_id", conf_id.as_str()),
            ("redirect_uri", "https://evil.example/cb"),
        ],
    ] {
        let (status, loc) = authorize(&app, &params).await;
        assert_eq!(status, 400);
        assert_eq!(loc, None);
    }
    // Other errors go back to the client with the state.
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (
            vec![("response_type", "code"), ("scope", "openid admin")],
            "invalid_scope",
        ),
        (vec![("response_type", "code")], "invalid_request"),
        (
            vec![
                ("response_type", "code"),
                ("connection", "no-such-connection"),
            ],
            "invalid_request",
        ),
    ];
    for (extra, error) in cases {
        let mut params = vec![
            ("client_id", conf_id.as_str()),
            ("redirect_uri", CB),
            ("state", "s9"),
        ];
        params.extend(extra);
        let (status, loc) = authorize(&app, &params).await;
        assert_eq!(status, 302);
        let q = query(&loc.unwrap());
        assert_eq!(q["error"], error, "{params:?}");
        assert_eq!(q["state"], "s9");
    }
    // A public client must use PKCE S256.
    let (_, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &public_id),
            ("redirect_uri", CB),
            ("connection", &sso.id),
        ],
    )
    .await;
    assert_eq!(query(&loc.unwrap())["error"], "invalid_request");
    let (verifier, challenge) = pkce();
    let (_, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &public_id),
            ("redirect_uri", CB),
            ("scope", "openid email"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "plain"),
            ("connection", &sso.id),
        ],
    )
    .await;
    assert_eq!(
        query(&loc.unwrap())["error"],
        "invalid_request",
        "plain is refused"
    );
    // Home-realm discovery through login_hint (a verified domain).
    for (method, path) in [
        ("PUT", "/api/v1/sso/domains/example.com"),
        ("POST", "/api/v1/sso/domains/example.com/verify"),
    ] {
        let r = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .bearer_auth(&sso.token)
            .json(&json!({ "connection_id": sso.id }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (status, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &public_id),
            ("redirect_uri", CB),
            ("scope", "openid email"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", "grace@Example.com"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let back = idp_signs_in(&sso, &loc.unwrap(), "grace@example.com").await;
    let code = back["code"].clone();
    let base = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CB),
        ("client_id", public_id.as_str()),
    ];
    let mut wrong = base.to_vec();
    let (bad_verifier, _) = pkce();
    wrong.push(("code_verifier", &bad_verifier));
    let (status, body) = token(&app, None, &wrong).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    // The code was spent by the failed attempt (a guessed verifier gets one try).
    let mut right = base.to_vec();
    right.push(("code_verifier", &verifier));
    let (status, body) = token(&app, None, &right).await;
    assert_eq!(status, 400, "{body}");
    // A fresh round with the right verifier.
    let (_, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &public_id),
            ("redirect_uri", CB),
            ("scope", "openid email"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("organization", "default"),
        ],
    )
    .await;
    let back = idp_signs_in(&sso, &loc.unwrap(), "grace@example.com").await;
    let (status, body) = token(
        &app,
        None,
        &[
            ("grant_type", "authorization_code"),
            ("code", back["code"].as_str()),
            ("redirect_uri", CB),
            ("client_id", public_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["id_token"].is_string());
    // Token endpoint errors.
    let (status, body) = token(
        &app,
        Some((&conf_id, &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "unsupported_grant_type");
    let (status, body) = token(
        &app,
        None,
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "invalid_client");
    // A tenant's client cannot sign in another tenant's users.
    let other = app.scim_for_new_tenant("globex").await;
    drop(other);
    let (_, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", &conf_id),
            ("redirect_uri", CB),
            ("organization", "globex"),
        ],
    )
    .await;
    assert_eq!(query(&loc.unwrap())["error"], "access_denied");
    // A global client (operators only) may start sign-ins for any organization.
    let r = app
        .client
        .post(app.url("/api/v1/oauth/clients"))
        .bearer_auth(&sso.token)
        .json(&json!({ "name": "Global app", "redirect_uris": [CB], "global": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let global: Value = r.json().await.unwrap();
    assert_eq!(global["global"], true);
    let (_, loc) = authorize(
        &app,
        &[
            ("response_type", "code"),
            ("client_id", global["id"].as_str().unwrap()),
            ("redirect_uri", CB),
            ("organization", "globex"),
        ],
    )
    .await;
    let q = query(&loc.unwrap());
    assert_eq!(
        q["error"], "invalid_request",
        "globex has no connection: {q:?}"
    );
    assert!(q["error_description"].contains("no active SSO connection"));
    // A tenant administrator (not an operator) cannot register one.
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&sso.token)
        .header("x-idhub-tenant", "globex")
        .json(&json!({ "user_name": "root@globex", "password": "globex-password-1" }))
        .send()
        .await
        .unwrap();
    let root = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .put(app.url(&format!("/api/v1/users/{root}/roles/admin")))
        .bearer_auth(&sso.token)
        .header("x-idhub-tenant", "globex")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .patch(app.url("/api/v1/tenants/globex"))
        .bearer_auth(&sso.token)
        .json(&json!({ "hostnames": ["globex.test"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let globex_admin = crate::admin_auth::login_ok(
        &app,
        Some("globex.test"),
        "root@globex",
        "globex-password-1",
    )
    .await;
    let r = app
        .client
        .post(app.url("/api/v1/oauth/clients"))
        .bearer_auth(&globex_admin.access)
        .json(&json!({ "name": "x", "redirect_uris": [CB], "global": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = crate::admin_auth::get(&app, &globex_admin.access, "/api/v1/oauth/clients").await;
    let list: Value = r.json().await.unwrap();
    assert_eq!(
        list["data"],
        json!([]),
        "neither default's nor global clients"
    );
    // Another tenant's session cannot use this tenant's connection (cached or not).
    let r = app
        .client
        .post(app.url(&format!("/saml/{}/logout", sso.id)))
        .bearer_auth(&globex_admin.access)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        crate::admin_auth::get(&app, &globex_admin.access, "/api/v1/me")
            .await
            .status(),
        200,
        "and its session is untouched"
    );
    app.stop().await;
}

async fn a_replayed_assertion_is_refused_by_another_node(b: Backend) {
    // Nodes behind one load balancer share one public URL.
    let public = [("IDHUB_PUBLIC_URL", "https://idhub.example")];
    let a = TestApp::spawn_with(&b, &public).await;
    let sso = Sso::new(&a, json!({ "allow_idp_initiated": true })).await;
    let node_b = a.second_node(&public).await;
    let response = sso.idp.response_b64(&sso.spec("twice@example.com"));
    let acs = |app: &TestApp| app.url(&format!("/saml/{}/acs", sso.id));
    let (status, body) = post_saml_response(acs(&a), &response).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_saml_response(acs(&node_b), &response).await;
    assert_eq!(status, 403, "node B knows node A consumed it");
    assert_eq!(body["code"], "replayed");
    // An SP-initiated request started on B is answered on A.
    let r = no_redirects()
        .get(node_b.url(&format!("/saml/{}/login", sso.id)))
        .send()
        .await
        .unwrap();
    let (request_id, relay, _) = authn_redirect(r.headers()["location"].to_str().unwrap());
    let mut spec = sso.spec("twice@example.com");
    spec.in_response_to = Some(request_id);
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), Some(&relay)).await;
    assert_eq!(status, 200, "{body}");
    node_b.stop().await;
    a.stop().await;
}
