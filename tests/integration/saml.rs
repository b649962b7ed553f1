//! SAML single sign-on, end to end: a test IdP (in-process keys, `saml::testidp`) signs
//! responses; the real server validates them at its ACS over HTTP. Every refusal must name its
//! reason and create no user and no session.

use crate::admin_auth::{admin_tokens, get};
use crate::backend_tests;
use crate::harness::{Backend, TestApp, eventually};
use base64::Engine;
use saml::testidp::{LoginSpec, TestIdp, attacks};
use serde_json::{Value, json};
use std::io::Read;
use std::time::Duration;

backend_tests!(
    sp_initiated_login_carries_relay_state_and_provisions_the_user,
    idp_initiated_login_is_off_by_default_and_replays_are_refused,
    every_attack_is_refused_with_its_reason_and_creates_nothing,
    signing_and_encryption_requirements_are_enforced,
    jit_links_scim_users_and_honours_active,
    sp_metadata_publishes_both_certificates_during_rollover,
    connections_are_validated_and_metadata_urls_fetched_safely,
    single_logout_revokes_the_users_sessions,
    verified_email_domains_route_to_their_connection,
    certificate_expiry_is_announced_once_per_threshold,
    sso_endpoints_are_rate_limited_per_ip,
);

async fn sso_endpoints_are_rate_limited_per_ip(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_SSO_RATE_PER_IP", "5")]).await;
    let mut statuses = Vec::new();
    for path in [
        "/saml/discover?email=a@b.test",
        "/saml/nope/acs",
        "/oauth2/userinfo",
        "/saml/discover?email=a@b.test",
        "/oauth2/authorize",
        "/saml/discover?email=a@b.test",
        "/oauth2/jwks",
    ] {
        let r = no_redirects().get(app.url(path)).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
    }
    assert!(statuses[..5].iter().all(|s| *s != 429), "{statuses:?}");
    assert_eq!(&statuses[5..], &[429, 429], "{statuses:?}");
    // Other endpoints are not affected.
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A client that does not follow redirects (the IdP hosts do not exist).
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Reads an SP-initiated redirect to the IdP as the IdP would: (AuthnRequest ID, RelayState,
/// the URL).
pub fn authn_redirect(location: &str) -> (String, String, reqwest::Url) {
    let loc = reqwest::Url::parse(location).unwrap();
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    let id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (id, q["RelayState"].clone(), loc)
}

/// POSTs a base64 `SAMLResponse` to an ACS URL, asking for JSON: (status, body).
pub async fn post_saml_response(acs_url: String, response_b64: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(acs_url)
        .header("accept", "application/json")
        .form(&[("SAMLResponse", response_b64)])
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json::<Value>().await.unwrap())
}

/// One tenant admin, one IdP and its connection.
pub struct Sso<'a> {
    pub app: &'a TestApp,
    pub token: String,
    pub idp: TestIdp,
    pub id: String,
    pub entity_id: String,
    pub acs: String,
    pub slo: String,
}

impl<'a> Sso<'a> {
    /// Creates a connection (from the IdP's metadata XML) with extra settings.
    pub async fn new(app: &'a TestApp, settings: Value) -> Self {
        let token = admin_tokens(app).await.access;
        let idp = TestIdp::new("https://idp.test/entity");
        let mut body = json!({
            "name": "Test IdP",
            "metadata_xml": idp.metadata_xml("https://idp.test/sso", Some("https://idp.test/slo")),
        });
        for (k, v) in settings.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = app
            .client
            .post(app.url("/api/v1/sso/connections"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "create connection");
        let c: Value = r.json().await.unwrap();
        Self {
            app,
            token,
            idp,
            id: c["id"].as_str().unwrap().to_owned(),
            entity_id: c["sp"]["entity_id"].as_str().unwrap().to_owned(),
            acs: c["sp"]["acs_url"].as_str().unwrap().to_owned(),
            slo: c["sp"]["slo_url"].as_str().unwrap().to_owned(),
        }
    }

    pub fn spec(&self, name_id: &str) -> LoginSpec {
        LoginSpec::new(name_id, &self.entity_id, &self.acs, now_unix())
    }

    pub async fn patch(&self, body: Value) -> Value {
        let r = self
            .app
            .client
            .patch(
                self.app
                    .url(&format!("/api/v1/sso/connections/{}", self.id)),
            )
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "patch connection");
        r.json().await.unwrap()
    }

    /// Posts a SAMLResponse to the ACS asking for JSON: (status, body).
    pub async fn post(&self, b64: &str, relay: Option<&str>) -> (u16, Value) {
        let mut form = vec![("SAMLResponse", b64.to_owned())];
        if let Some(r) = relay {
            form.push(("RelayState", r.to_owned()));
        }
        let r = self
            .app
            .client
            .post(self.app.url(&format!("/saml/{}/acs", self.id)))
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Starts an SP-initiated login: (AuthnRequest ID, RelayState, the redirect URL).
    pub async fn start(&self, return_to: Option<&str>) -> (String, String, reqwest::Url) {
        let mut path = format!("/saml/{}/login", self.id);
        if let Some(r) = return_to {
            path.push_str(&format!("?return_to={}", crate::harness::url_encode(r)));
        }
        let r = no_redirects()
            .get(self.app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "login redirects to the IdP");
        authn_redirect(r.headers()["location"].to_str().unwrap())
    }

    pub async fn logins(&self) -> Vec<Value> {
        let r = get(
            self.app,
            &self.token,
            &format!("/api/v1/sso/connections/{}/logins", self.id),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()["data"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Users of the default tenant whose userName is `name` (through SCIM).
    pub async fn users_named(&self, name: &str) -> i64 {
        let scim = self.app.scim().await;
        let r = scim
            .filter("Users", &format!("userName eq \"{name}\""))
            .await;
        r.body["totalResults"].as_i64().unwrap()
    }

    /// The SP's current certificate (from the REST API).
    pub async fn sp_certificate(&self) -> saml::Certificate {
        let r = get(self.app, &self.token, "/api/v1/sso/sp-keys").await;
        let b: Value = r.json().await.unwrap();
        saml::Certificate::parse(b["data"][0]["certificate"]["pem"].as_str().unwrap()).unwrap()
    }
}

async fn sp_initiated_login_carries_relay_state_and_provisions_the_user(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let (request_id, relay, url) = sso.start(Some("/app/home")).await;
    assert!(url.as_str().starts_with("https://idp.test/sso?"));
    // The AuthnRequest is signed (RSA-SHA256) by the SP key the metadata publishes.
    let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
    assert_eq!(
        q["SigAlg"],
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    );
    let cert = sso.sp_certificate().await;
    let verifier = samael::crypto::UrlVerifier::from_x509(&samael::crypto::CertificateDer::from(
        cert.der.clone(),
    ))
    .unwrap();
    assert!(
        verifier.verify_signed_request_url(&url).unwrap(),
        "AuthnRequest signature"
    );

    let mut spec = sso.spec("ada@example.com");
    spec.in_response_to = Some(request_id.clone());
    spec.attributes = vec![
        ("givenName".into(), vec!["Ada".into()]),
        ("sn".into(), vec!["Lovelace".into()]),
    ];
    let response = sso.idp.response_b64(&spec);
    // A different RelayState than the one sent is refused (and burns the request).
    let (status, body) = sso.post(&response, Some(&relay)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_name"], "ada@example.com");
    assert_eq!(body["return_to"], "/app/home");
    // The session works on the REST API.
    let me = get(&app, body["access_token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user_name"], "ada@example.com");
    // JIT created the user with the mapped names, visible over SCIM.
    let scim = app.scim().await;
    let found = scim
        .filter("Users", "userName eq \"ada@example.com\"")
        .await;
    assert_eq!(found.body["totalResults"], 1);
    assert_eq!(found.body["Resources"][0]["name"]["givenName"], "Ada");
    assert_eq!(found.body["Resources"][0]["name"]["familyName"], "Lovelace");
    assert_eq!(
        found.body["Resources"][0]["emails"][0]["value"],
        "ada@example.com"
    );
    // The same response again: its request was answered already.
    let (status, body) = sso.post(&response, Some(&relay)).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "in_response_to_reused");
    // An unknown InResponseTo.
    let mut stray = sso.spec("ada@example.com");
    stray.in_response_to = Some("_0123456789abcdef0123456789abcdef".into());
    let (status, body) = sso.post(&sso.idp.response_b64(&stray), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "in_response_to_unknown");
    // A started login answered with another browser's RelayState.
    let (request_id, _relay, _) = sso.start(None).await;
    let mut spec = sso.spec("ada@example.com");
    spec.in_response_to = Some(request_id);
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), Some("forged")).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "relay_state_mismatch");
    // The login-flow log shows each attempt, newest first.
    let log = sso.logins().await;
    let reasons: Vec<Value> = log.iter().map(|e| e["reason"].clone()).collect();
    assert_eq!(
        reasons,
        vec![
            json!("relay_state_mismatch"),
            json!("in_response_to_unknown"),
            json!("in_response_to_reused"),
            Value::Null
        ]
    );
    assert_eq!(log[3]["outcome"], "success");
    assert_eq!(log[3]["kind"], "sp_initiated");
    assert_eq!(log[3]["name_id"], "ada@example.com");
    // The outcomes are events (pull API) and audit records.
    let events: Value = eventually("sso.login events", Duration::from_secs(10), || async {
        let e: Value = get(&app, &sso.token, "/api/v1/events?types=sso.login.*")
            .await
            .json()
            .await
            .unwrap();
        (e["data"].as_array().map(Vec::len) == Some(4)).then_some(e)
    })
    .await;
    assert_eq!(events["data"][0]["type"], "sso.login.succeeded");
    assert_eq!(events["data"][1]["type"], "sso.login.failed");
    let audit: Value = get(
        &app,
        &sso.token,
        "/api/v1/audit?action=sso.login&outcome=failure",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(audit["total"], 3, "{audit}");
    app.stop().await;
}

async fn idp_initiated_login_is_off_by_default_and_replays_are_refused(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let response = sso.idp.response_b64(&sso.spec("grace@example.com"));
    let (status, body) = sso.post(&response, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "idp_initiated_not_allowed");
    assert_eq!(sso.users_named("grace@example.com").await, 0);

    sso.patch(json!({ "allow_idp_initiated": true })).await;
    let response = sso.idp.response_b64(&sso.spec("grace@example.com"));
    let (status, body) = sso.post(&response, Some("/after")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["return_to"], "/after");
    // Replayed: the assertion ID is remembered in the database.
    let (status, body) = sso.post(&response, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "replayed");
    // … also by a server started afresh on the same database.
    let replay = app
        .store
        .tenant(app.default_tenant.clone())
        .record_assertion(&sso.id, "_fresh", (now_unix() + 60) * 1_000_000)
        .await
        .unwrap();
    assert!(replay, "a new assertion ID is accepted once");
    let again = app
        .store
        .tenant(app.default_tenant.clone())
        .record_assertion(&sso.id, "_fresh", (now_unix() + 60) * 1_000_000)
        .await
        .unwrap();
    assert!(!again, "and refused the second time");
    // An external RelayState URL is never used as a redirect target.
    let response = sso.idp.response_b64(&sso.spec("grace@example.com"));
    let (status, body) = sso.post(&response, Some("https://evil.test/")).await;
    assert_eq!(status, 200);
    assert_eq!(body["return_to"], Value::Null);
    // Without Accept: JSON, success redirects (303) to a local RelayState.
    let response = sso.idp.response_b64(&sso.spec("grace@example.com"));
    let r = no_redirects()
        .post(app.url(&format!("/saml/{}/acs", sso.id)))
        .form(&[
            ("SAMLResponse", response.as_str()),
            ("RelayState", "/welcome"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/welcome");
    // An error page is HTML with the reason.
    let r = no_redirects()
        .post(app.url(&format!("/saml/{}/acs", sso.id)))
        .form(&[("SAMLResponse", response.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains("replayed"), "{html}");
    app.stop().await;
}

async fn every_attack_is_refused_with_its_reason_and_creates_nothing(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({ "allow_idp_initiated": true })).await;
    let victim = "victim@example.com";
    let legit = sso.spec(victim);
    let now = now_unix();
    let mut cases: Vec<(&str, String, &str)> = vec![
        (
            "unsigned response",
            attacks::unsigned(&sso.idp, &legit),
            "signature_missing",
        ),
        (
            "signature by an untrusted certificate",
            attacks::signed_by_untrusted(&legit),
            "signature_invalid",
        ),
        (
            "signed assertion moved, evil assertion in its place",
            attacks::wrapping_assertion_moved(&sso.idp, &legit, "mallory@example.com"),
            "signature_wrapping",
        ),
        (
            "a second, unsigned assertion",
            attacks::wrapping_second_unsigned_assertion(&sso.idp, &legit, "mallory@example.com"),
            "multiple_assertions",
        ),
        (
            "signature re-referencing another element",
            attacks::wrapping_reference_to_other_element(&sso.idp, &legit, "mallory@example.com"),
            "signature_wrapping",
        ),
        (
            "comment injected into the NameID",
            attacks::comment_in_name_id(&sso.idp, &legit, "admin@example.com", ".evil.test"),
            "xml_comment",
        ),
        (
            "DTD with entity expansion",
            attacks::dtd_entity_expansion(),
            "dtd_forbidden",
        ),
        (
            "oversized body",
            attacks::oversized(600 * 1024),
            "too_large",
        ),
    ];
    let mut expired = sso.spec(victim);
    expired.now_unix = now - 3600;
    cases.push((
        "expired assertion",
        sso.idp.response_b64(&expired),
        "expired",
    ));
    let mut future = sso.spec(victim);
    future.not_before_offset = 600;
    cases.push((
        "NotBefore in the future",
        sso.idp.response_b64(&future),
        "not_yet_valid",
    ));
    let mut audience = sso.spec(victim);
    audience.audience = "https://someone-else.test/sp".into();
    cases.push((
        "wrong Audience",
        sso.idp.response_b64(&audience),
        "audience_mismatch",
    ));
    let mut destination = sso.spec(victim);
    destination.destination = Some("https://someone-else.test/acs".into());
    cases.push((
        "wrong Destination",
        sso.idp.response_b64(&destination),
        "destination_mismatch",
    ));
    let mut recipient = sso.spec(victim);
    recipient.recipient = "https://someone-else.test/acs".into();
    cases.push((
        "wrong Recipient",
        sso.idp.response_b64(&recipient),
        "recipient_mismatch",
    ));
    let mut issuer = sso.spec(victim);
    issuer.issuer = Some("https://other-idp.test".into());
    cases.push((
        "wrong Issuer",
        sso.idp.response_b64(&issuer),
        "issuer_mismatch",
    ));
    let mut sha1 = sso.spec(victim);
    sha1.algorithm = saml::SignatureAlgorithm::RsaSha1;
    cases.push((
        "RSA-SHA1 not allowed",
        sso.idp.response_b64(&sha1),
        "algorithm_not_allowed",
    ));
    let mut failed = sso.spec(victim);
    failed.status = Some("urn:oasis:names:tc:SAML:2.0:status:Responder".into());
    cases.push((
        "IdP reports failure",
        sso.idp.response_b64(&failed),
        "status_not_success",
    ));

    for (what, response, reason) in &cases {
        let (status, body) = sso.post(response, None).await;
        assert_eq!(status, 403, "{what}: {body}");
        assert_eq!(body["code"], *reason, "{what}: {body}");
    }
    for name in [victim, "mallory@example.com", "admin@example.com"] {
        assert_eq!(sso.users_named(name).await, 0, "no user {name}");
    }
    // Not even a session for anyone: the only sessions are the admin's.
    let sessions: Value = get(&app, &sso.token, "/api/v1/me/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["data"].as_array().unwrap().len(), 1);
    // Each refusal is in the login-flow log with its reason.
    let log = sso.logins().await;
    assert_eq!(log.len(), cases.len());
    for ((what, _, reason), entry) in cases.iter().rev().zip(&log) {
        assert_eq!(entry["reason"], *reason, "{what}");
        assert_eq!(entry["outcome"], "failure");
    }
    // A legacy IdP may be allowed SHA-1 explicitly.
    sso.patch(json!({ "allow_sha1": true })).await;
    let mut sha1 = sso.spec(victim);
    sha1.algorithm = saml::SignatureAlgorithm::RsaSha1;
    let (status, body) = sso.post(&sso.idp.response_b64(&sha1), None).await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

async fn signing_and_encryption_requirements_are_enforced(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({ "allow_idp_initiated": true })).await;
    let mut only_assertion = sso.spec("a1@example.com");
    only_assertion.sign_response = false;
    only_assertion.sign_assertion = true;
    let (status, body) = sso.post(&sso.idp.response_b64(&only_assertion), None).await;
    assert_eq!(status, 200, "assertion signed: {body}");
    let both = sso.spec("a2@example.com");
    assert!(both.sign_response && both.sign_assertion);
    let (status, body) = sso.post(&sso.idp.response_b64(&both), None).await;
    assert_eq!(status, 200, "both signed: {body}");

    sso.patch(json!({ "required_signing": "response" })).await;
    only_assertion.assertion_id = None;
    let (status, body) = sso.post(&sso.idp.response_b64(&only_assertion), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "signing_requirement_unmet");
    sso.patch(json!({ "required_signing": "assertion" })).await;
    let mut only_response = sso.spec("a3@example.com");
    only_response.sign_assertion = false;
    let (status, body) = sso.post(&sso.idp.response_b64(&only_response), None).await;
    assert_eq!(status, 403, "response signed only");
    assert_eq!(body["code"], "signing_requirement_unmet");
    sso.patch(json!({ "required_signing": "either", "want_encrypted": true }))
        .await;
    let (status, body) = sso
        .post(&sso.idp.response_b64(&sso.spec("a4@example.com")), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "encryption_required");

    // Encrypted to the SP certificate: decrypted with the SP key.
    let mut enc = sso.spec("secret@example.com");
    enc.encrypt_for = Some(sso.sp_certificate().await);
    let (status, body) = sso.post(&sso.idp.response_b64(&enc), None).await;
    assert_eq!(status, 200, "encrypted: {body}");
    assert_eq!(body["user_name"], "secret@example.com");
    // Encrypted to someone else's key: refused.
    let stranger = saml::SpKeyPair::generate("stranger", 30).unwrap();
    let mut wrong = sso.spec("secret2@example.com");
    wrong.encrypt_for = Some(stranger.certificate().clone());
    let (status, body) = sso.post(&sso.idp.response_b64(&wrong), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "decryption_failed");
    assert_eq!(sso.users_named("secret2@example.com").await, 0);
    // None is not a signing requirement.
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/sso/connections/{}", sso.id)))
        .bearer_auth(&sso.token)
        .json(&json!({ "required_signing": "none" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    app.stop().await;
}

async fn jit_links_scim_users_and_honours_active(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(
        &app,
        json!({
            "allow_idp_initiated": true,
            "attribute_mapping": { "external_id": "objectId", "groups": "groups" },
        }),
    )
    .await;
    let scim = app.scim().await;
    // Provisioned over SCIM first (as Entra ID does), with an externalId and another userName.
    let uid = scim
        .create_user(
            "linus",
            json!({ "externalId": "ext-42", "emails": [{ "value": "linus@example.com", "primary": true }] }),
        )
        .await;
    let mut spec = sso.spec("linus.t@idp.example");
    spec.attributes = vec![
        ("objectId".into(), vec!["ext-42".into()]),
        ("groups".into(), vec!["Kernel".into(), "Maintainers".into()]),
        ("displayName".into(), vec!["Linus T".into()]),
    ];
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["user_id"],
        uid.as_str(),
        "linked by externalId, not created"
    );
    assert_eq!(sso.users_named("linus.t@idp.example").await, 0);
    let user = scim.get(&format!("/Users/{uid}")).await;
    assert_eq!(user.body["displayName"], "Linus T", "JIT updated the name");
    let groups: Vec<&str> = user.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    assert!(
        groups.contains(&"Kernel") && groups.contains(&"Maintainers"),
        "{groups:?}"
    );
    // A membership SCIM made, then a sign-in that no longer asserts "Maintainers": JIT leaves
    // the group it joined and never touches the one SCIM manages.
    scim.create_group("Ops", &[uid.as_str()]).await;
    let mut spec = sso.spec("linus.t@idp.example");
    spec.attributes = vec![
        ("objectId".into(), vec!["ext-42".into()]),
        ("groups".into(), vec!["Kernel".into()]),
    ];
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), None).await;
    assert_eq!(status, 200, "{body}");
    let user = scim.get(&format!("/Users/{uid}")).await;
    let mut groups: Vec<&str> = user.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["display"].as_str().unwrap())
        .collect();
    groups.sort();
    assert_eq!(groups, vec!["Kernel", "Ops"]);
    // Linking by email when externalId is absent.
    let uid2 = scim
        .create_user(
            "margaret",
            json!({ "emails": [{ "value": "mh@example.com", "primary": true }] }),
        )
        .await;
    let mut spec = sso.spec("mh@example.com");
    spec.attributes = vec![];
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], uid2.as_str());
    // SCIM deactivates the user: SAML sign-in is refused.
    let r = scim
        .patch(
            &format!("/Users/{uid}"),
            &json!({ "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{ "op": "replace", "path": "active", "value": false }] }),
        )
        .await;
    assert_eq!(r.status, 200);
    let mut spec = sso.spec("linus.t@idp.example");
    spec.attributes = vec![("objectId".into(), vec!["ext-42".into()])];
    let (status, body) = sso.post(&sso.idp.response_b64(&spec), None).await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "user_inactive");
    // With JIT off, an unknown subject is refused and nothing is created.
    sso.patch(json!({ "jit": false })).await;
    let (status, body) = sso
        .post(&sso.idp.response_b64(&sso.spec("nobody@example.com")), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "user_not_found");
    assert_eq!(sso.users_named("nobody@example.com").await, 0);
    // The operator account can never be signed into through SAML.
    sso.patch(json!({ "jit": true })).await;
    let (status, body) = sso
        .post(&sso.idp.response_b64(&sso.spec("admin")), None)
        .await;
    assert_eq!(status, 403);
    assert_eq!(body["code"], "operator_account");
    app.stop().await;
}

async fn sp_metadata_publishes_both_certificates_during_rollover(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let md = |app: &TestApp, id: String| {
        let url = app.url(&format!("/saml/{id}/metadata"));
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "application/samlmetadata+xml");
            r.text().await.unwrap()
        }
    };
    let first = md(&app, sso.id.clone()).await;
    assert!(
        first.contains(&format!("entityID=\"{}\"", sso.entity_id)),
        "{first}"
    );
    assert!(first.contains(&sso.acs));
    assert!(first.contains(&sso.slo));
    let cert1 = sso.sp_certificate().await;
    assert!(first.contains(&cert1.base64()));
    let r = app
        .client
        .post(app.url("/api/v1/sso/sp-keys/rotate"))
        .bearer_auth(&sso.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let cert2 = sso.sp_certificate().await;
    assert_ne!(cert1, cert2, "a new current key");
    let during = md(&app, sso.id.clone()).await;
    assert!(during.contains(&cert1.base64()) && during.contains(&cert2.base64()));
    // Assertions encrypted to the previous certificate still decrypt during the rollover.
    sso.patch(json!({ "allow_idp_initiated": true })).await;
    let mut enc = sso.spec("roll@example.com");
    enc.encrypt_for = Some(cert1.clone());
    let (status, body) = sso.post(&sso.idp.response_b64(&enc), None).await;
    assert_eq!(status, 200, "{body}");
    let r = app
        .client
        .post(app.url("/api/v1/sso/sp-keys/retire-previous"))
        .bearer_auth(&sso.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let after = md(&app, sso.id.clone()).await;
    assert!(!after.contains(&cert1.base64()) && after.contains(&cert2.base64()));
    // New AuthnRequests are signed by the new key.
    let (_, _, url) = sso.start(None).await;
    let verifier = samael::crypto::UrlVerifier::from_x509(&samael::crypto::CertificateDer::from(
        cert2.der.clone(),
    ))
    .unwrap();
    assert!(verifier.verify_signed_request_url(&url).unwrap());
    let r = no_redirects()
        .get(app.url("/saml/00000000-0000-0000-0000-000000000000/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

type Served = std::sync::Arc<std::sync::Mutex<String>>;

/// Serves `body` (changeable) at `/metadata` on an ephemeral loopback port.
async fn metadata_server(body: Served) -> String {
    use poem::listener::{Acceptor, Listener};
    use poem::{EndpointExt, Route, get, handler};
    #[handler]
    fn md(poem::web::Data(b): poem::web::Data<&Served>) -> String {
        b.lock().unwrap().clone()
    }
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = Route::new().at("/metadata", get(md)).data(body);
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}/metadata")
}

async fn connections_are_validated_and_metadata_urls_fetched_safely(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let token = admin_tokens(&app).await.access;
    let idp = TestIdp::new("https://idp.example/entity");
    let create = |body: Value| {
        let rb = app
            .client
            .post(app.url("/api/v1/sso/connections"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let r = rb.send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let md = idp.metadata_xml("https://idp.example/sso", None);
    let pem = idp.certificate().to_pem();
    for (what, body, field) in [
        ("no source", json!({ "name": "x" }), "metadata_xml"),
        (
            "two sources",
            json!({ "metadata_xml": md, "idp_entity_id": "x" }),
            "metadata_xml",
        ),
        (
            "skew over 10 min",
            json!({ "metadata_xml": md, "clock_skew_secs": 601 }),
            "clock_skew_secs",
        ),
        (
            "signing none",
            json!({ "metadata_xml": md, "required_signing": "none" }),
            "required_signing",
        ),
        (
            "bad link order",
            json!({ "metadata_xml": md, "link_order": ["phone"] }),
            "link_order",
        ),
        (
            "not metadata",
            json!({ "metadata_xml": "<x/>" }),
            "metadata_xml",
        ),
        (
            "a DTD",
            json!({ "metadata_xml": "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>" }),
            "metadata_xml",
        ),
        (
            "bad certificate",
            json!({ "idp_entity_id": "https://i", "sso_url": "https://i/sso", "certificates": ["not a cert"] }),
            "certificates",
        ),
        (
            "no certificate",
            json!({ "idp_entity_id": "https://i", "sso_url": "https://i/sso", "certificates": [] }),
            "certificates",
        ),
        (
            "bad SSO URL",
            json!({ "idp_entity_id": "https://i", "sso_url": "ftp://i", "certificates": [pem] }),
            "sso_url",
        ),
    ] {
        let (status, body) = create(body).await;
        assert_eq!(status, 422, "{what}: {body}");
        assert_eq!(body["details"]["field"], field, "{what}: {body}");
    }
    // Manual fields.
    let (status, manual) = create(json!({
        "name": "Manual",
        "idp_entity_id": "https://idp.example/entity",
        "sso_url": "https://idp.example/sso",
        "certificates": [pem],
        "clock_skew_secs": 120,
    }))
    .await;
    assert_eq!(status, 201, "{manual}");
    assert_eq!(manual["clock_skew_secs"], 120);
    assert_eq!(manual["required_signing"], "either");
    assert_eq!(manual["allow_idp_initiated"], false);
    assert!(
        manual["certificates"][0]["expires_in_days"]
            .as_i64()
            .unwrap()
            > 300
    );
    // A metadata URL on loopback is refused by default (SSRF guard).
    let served: Served = std::sync::Arc::new(std::sync::Mutex::new(
        idp.metadata_xml("https://idp.example/sso", Some("https://idp.example/slo")),
    ));
    let url = metadata_server(served.clone()).await;
    let (status, body) = create(json!({ "metadata_url": url })).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("https"),
        "{body}"
    );
    let (status, body) = create(json!({ "metadata_url": "https://127.0.0.1:9/metadata" })).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("private"),
        "{body}"
    );
    app.stop().await;

    // An operator may allow private addresses: then the metadata is fetched and its facts used.
    let app = TestApp::spawn_with(
        &b,
        &[
            ("IDHUB_SAML_ALLOW_PRIVATE_METADATA", "true"),
            ("IDHUB_SAML_METADATA_REFRESH_SECS", "1"),
        ],
    )
    .await;
    let token = admin_tokens(&app).await.access;
    let r = app
        .client
        .post(app.url("/api/v1/sso/connections"))
        .bearer_auth(&token)
        .json(&json!({ "metadata_url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["idp_entity_id"], "https://idp.example/entity");
    assert_eq!(c["slo_url"], "https://idp.example/slo");
    assert_eq!(c["metadata_status"], "ok");
    assert!(c["metadata_next_fetch_at"].is_string());
    let id = c["id"].as_str().unwrap();
    // The IdP rolls its certificate over: the scheduled refresh picks the new one up.
    let rolled = TestIdp::new("https://idp.example/entity");
    *served.lock().unwrap() =
        rolled.metadata_xml("https://idp.example/sso2", Some("https://idp.example/slo"));
    let fingerprint = rolled.certificate().sha256_fingerprint.clone();
    let c: Value = eventually(
        "scheduled metadata refresh",
        Duration::from_secs(15),
        || {
            let (app, token) = (&app, &token);
            let fingerprint = fingerprint.clone();
            async move {
                idhub::sso::jobs::run_once(&app.state).await;
                let c: Value = get(app, token, &format!("/api/v1/sso/connections/{id}"))
                    .await
                    .json()
                    .await
                    .unwrap();
                (c["certificates"][0]["fingerprint_sha256"] == fingerprint.as_str()).then_some(c)
            }
        },
    )
    .await;
    assert_eq!(c["sso_url"], "https://idp.example/sso2");
    assert_eq!(c["version"], 2);
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/sso/connections/{id}")))
        .bearer_auth(&token)
        .header("if-match", "2")
        .json(&json!({ "name": "Renamed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stale = app
        .client
        .patch(app.url(&format!("/api/v1/sso/connections/{id}")))
        .bearer_auth(&token)
        .header("if-match", "2")
        .json(&json!({ "name": "Lost update" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412, "If-Match with an old version");
    let r = app
        .client
        .post(app.url(&format!("/api/v1/sso/connections/{id}/refresh-metadata")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["metadata_status"], "ok");
    assert_eq!(c["name"], "Renamed");
    // A refresh that fails keeps the facts and shows the error.
    *served.lock().unwrap() = "<not metadata".into();
    let r = app
        .client
        .post(app.url(&format!("/api/v1/sso/connections/{id}/refresh-metadata")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let c: Value = r.json().await.unwrap();
    assert_eq!(c["metadata_status"], "error");
    assert!(
        c["metadata_error"].as_str().unwrap().contains("malformed"),
        "{c}"
    );
    assert_eq!(
        c["certificates"][0]["fingerprint_sha256"],
        fingerprint.as_str()
    );
    let r = get(&app, &token, "/api/v1/sso/connections").await;
    assert_eq!(r.json::<Value>().await.unwrap()["total"], 1);
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/sso/connections/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = get(&app, &token, &format!("/api/v1/sso/connections/{id}")).await;
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn single_logout_revokes_the_users_sessions(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({ "allow_idp_initiated": true })).await;
    let mut spec = sso.spec("sam@example.com");
    spec.session_index = Some("_sess1".into());
    let (status, first) = sso.post(&sso.idp.response_b64(&spec), None).await;
    assert_eq!(status, 200, "{first}");
    let (_, second) = sso
        .post(&sso.idp.response_b64(&sso.spec("sam@example.com")), None)
        .await;
    for s in [&first, &second] {
        let r = get(&app, s["access_token"].as_str().unwrap(), "/api/v1/me").await;
        assert_eq!(r.status(), 200);
    }
    // IdP-initiated logout over HTTP-Redirect, signed by the IdP.
    let q = sso.idp.logout_request_redirect_query(
        &sso.slo,
        "sam@example.com",
        Some("_sess1"),
        now_unix(),
    );
    let r = no_redirects()
        .get(app.url(&format!("/saml/{}/slo?{q}", sso.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302, "back to the IdP with a LogoutResponse");
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("https://idp.test/slo?SAMLResponse=")
    );
    for s in [&first, &second] {
        let r = get(&app, s["access_token"].as_str().unwrap(), "/api/v1/me").await;
        assert_eq!(r.status(), 401, "session revoked on the next request");
    }
    // A LogoutRequest with a broken signature is refused and revokes nothing.
    let (_, third) = sso
        .post(&sso.idp.response_b64(&sso.spec("sam@example.com")), None)
        .await;
    let forged = q.replace("Signature=", "Signature=AAAA");
    let r = no_redirects()
        .get(app.url(&format!("/saml/{}/slo?{forged}", sso.id)))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = get(&app, third["access_token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(r.status(), 200);
    // HTTP-POST binding.
    let post = sso
        .idp
        .logout_request_post_b64(&sso.slo, "sam@example.com", None, now_unix());
    let r = no_redirects()
        .post(app.url(&format!("/saml/{}/slo", sso.id)))
        .header("accept", "application/json")
        .form(&[("SAMLRequest", post.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["revoked_sessions"], 1);
    let r = get(&app, third["access_token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(r.status(), 401);
    // SP-initiated logout: the session ends here and the IdP is asked to end its own.
    let (_, fourth) = sso
        .post(&sso.idp.response_b64(&sso.spec("sam@example.com")), None)
        .await;
    let r = app
        .client
        .post(app.url(&format!("/saml/{}/logout", sso.id)))
        .bearer_auth(fourth["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["redirect"]
            .as_str()
            .unwrap()
            .starts_with("https://idp.test/slo?SAMLRequest=")
    );
    let r = get(&app, fourth["access_token"].as_str().unwrap(), "/api/v1/me").await;
    assert_eq!(r.status(), 401);
    let kinds: Vec<String> = sso
        .logins()
        .await
        .iter()
        .filter(|e| e["kind"] == "logout")
        .map(|e| e["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["success", "failure", "success"]);
    app.stop().await;
}

async fn verified_email_domains_route_to_their_connection(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let sso = Sso::new(&app, json!({})).await;
    let discover = |email: &str| {
        let url = app.url(&format!(
            "/saml/discover?email={}&return_to=/x",
            crate::harness::url_encode(email)
        ));
        async move {
            no_redirects()
                .get(url)
                .header("accept", "application/json")
                .send()
                .await
                .unwrap()
        }
    };
    let r = app
        .client
        .put(app.url("/api/v1/sso/domains/Example.COM"))
        .bearer_auth(&sso.token)
        .json(&json!({ "connection_id": sso.id }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert_eq!(d["domain"], "example.com");
    assert_eq!(d["verified"], false);
    assert_eq!(
        discover("ada@example.com").await.status(),
        404,
        "unverified domains do not route"
    );
    let r = app
        .client
        .post(app.url("/api/v1/sso/domains/example.com/verify"))
        .bearer_auth(&sso.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = discover("Ada@EXAMPLE.com").await;
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/saml/{}/login?return_to=/x", sso.id)
    );
    assert_eq!(discover("ada@other.test").await.status(), 404);
    assert_eq!(discover("not-an-email").await.status(), 400);
    let r = app
        .client
        .put(app.url("/api/v1/sso/domains/bad_domain"))
        .bearer_auth(&sso.token)
        .json(&json!({ "connection_id": sso.id }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = app
        .client
        .put(app.url("/api/v1/sso/domains/example.org"))
        .bearer_auth(&sso.token)
        .json(&json!({ "connection_id": "nope" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

async fn certificate_expiry_is_announced_once_per_threshold(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let token = admin_tokens(&app).await.access;
    // A certificate that expires in 5 days: the 30- and 7-day notices are due (one event, 7).
    let soon = saml::SpKeyPair::generate("idp soon", 5).unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/sso/connections"))
        .bearer_auth(&token)
        .json(&json!({
            "idp_entity_id": "https://idp.example/e",
            "sso_url": "https://idp.example/sso",
            "certificates": [soon.certificate().to_pem()],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let c: Value = r.json().await.unwrap();
    assert!(c["certificates"][0]["expires_in_days"].as_i64().unwrap() <= 5);
    // Every node runs the jobs: on PostgreSQL two nodes run them at the same moment.
    let second = match b {
        Backend::Postgres(_) => Some(app.second_node(&[]).await),
        Backend::Sqlite => None,
    };
    let other = second.as_ref().map_or(&app.state, |n| &n.state);
    for _ in 0..2 {
        tokio::join!(
            idhub::sso::jobs::run_once(&app.state),
            idhub::sso::jobs::run_once(other)
        );
    }
    let events: Value = eventually("certificate event", Duration::from_secs(10), || async {
        let e: Value = get(
            &app,
            &token,
            "/api/v1/events?types=connection.certificate.expiring",
        )
        .await
        .json()
        .await
        .unwrap();
        (!e["data"].as_array().unwrap().is_empty()).then_some(e)
    })
    .await;
    let data = events["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "announced once: {events}");
    assert_eq!(data[0]["type"], "connection.certificate.expiring");
    assert!(
        data[0]["resource_id"]
            .as_str()
            .unwrap()
            .starts_with(c["id"].as_str().unwrap())
    );
    if let Some(n) = second {
        n.stop().await;
    }
    app.stop().await;
}
