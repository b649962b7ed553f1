//! REST administration security: sign-in with JWTs and rotating refresh tokens, sessions,
//! lockout and rate limits, API keys, signing-key rotation.

use crate::backend_tests;
use crate::harness::{ADMIN_PASSWORD, Backend, TestApp};
use serde_json::{Value, json};

backend_tests!(
    login_issues_a_jwt_that_verifies_against_jwks,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_and_session_revocation_end_access_at_once,
    failed_logins_lock_the_account_and_are_audited,
    auth_endpoints_are_rate_limited_per_ip,
    api_keys_are_shown_once_scoped_and_revocable,
    rotated_signing_keys_keep_verifying_old_tokens,
    password_change_needs_the_current_one_and_ends_other_sessions,
    disabling_a_user_rejects_their_token_on_the_next_request,
    totp_mfa_enrols_gates_sign_in_and_resets,
);

pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session: String,
}

/// Signs in through `POST /api/v1/auth/login` (optionally on a tenant's hostname).
pub async fn login_on(
    app: &TestApp,
    host: Option<&str>,
    user: &str,
    password: &str,
) -> reqwest::Response {
    let mut rb = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({ "username": user, "password": password }));
    if let Some(h) = host {
        rb = rb.header("host", h);
    }
    rb.send().await.unwrap()
}

pub async fn login_ok(app: &TestApp, host: Option<&str>, user: &str, password: &str) -> Tokens {
    let r = login_on(app, host, user, password).await;
    assert_eq!(r.status(), 200, "login of {user}");
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["token_type"], "Bearer");
    Tokens {
        access: b["access_token"].as_str().unwrap().to_owned(),
        refresh: b["refresh_token"].as_str().unwrap().to_owned(),
        session: b["session_id"].as_str().unwrap().to_owned(),
    }
}

pub async fn admin_tokens(app: &TestApp) -> Tokens {
    login_ok(app, None, "admin", ADMIN_PASSWORD).await
}

pub async fn get(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": token }))
        .send()
        .await
        .unwrap()
}

/// Creates a user in the caller's tenant through the REST API; returns its id.
pub async fn create_user(app: &TestApp, token: &str, name: &str, password: &str) -> String {
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(token)
        .json(&json!({ "user_name": name, "password": password, "email": format!("{name}@example.com") }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "create {name}");
    r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub async fn grant(app: &TestApp, token: &str, user_id: &str, role: &str) {
    let r = app
        .client
        .put(app.url(&format!("/api/v1/users/{user_id}/roles/{role}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "grant {role}");
}

async fn login_issues_a_jwt_that_verifies_against_jwks(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let t = admin_tokens(&app).await;
    // Three base64url parts, EdDSA, with a kid that the JWKS publishes.
    let parts: Vec<&str> = t.access.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[0])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "EdDSA");
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]));
    assert!(keys.iter().all(|k| k.get("d").is_none()));
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );

    let me: Value = get(&app, &t.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user_name"], "admin");
    assert_eq!(me["auth_method"], "jwt");
    assert!(
        me["roles"]
            .as_array()
            .unwrap()
            .contains(&json!("superadmin"))
    );
    let info: Value = get(&app, &t.access, "/api/v1/userinfo")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(info["authorised"], true);
    assert_eq!(info["isAdministrator"], true);
    assert_eq!(info["tenant"], "default");

    // A tampered token is refused with a Bearer challenge.
    let mut forged = t.access.clone();
    forged.pop();
    forged.push(if t.access.ends_with('A') { 'B' } else { 'A' });
    let r = get(&app, &forged, "/api/v1/me").await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Bearer")
    );
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_token");
    assert_eq!(get(&app, "garbage", "/api/v1/me").await.status(), 401);

    // Wrong password and unknown user look the same.
    for (u, p) in [("admin", "wrong-password"), ("nobody", "wrong-password")] {
        let r = login_on(&app, None, u, p).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    }
    // Sign-in by email works too.
    let uid = create_user(&app, &t.access, "carol", "carol-password-1").await;
    let c = login_ok(&app, None, "carol@example.com", "carol-password-1").await;
    let me: Value = get(&app, &c.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], uid.as_str());
    assert_eq!(me["permissions"], json!([]));
    app.stop().await;
}

async fn refresh_rotates_and_reuse_revokes_the_family(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let t = admin_tokens(&app).await;
    let r = refresh(&app, &t.refresh).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let refresh2 = second["refresh_token"].as_str().unwrap().to_owned();
    let access2 = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh2, t.refresh);
    assert_eq!(second["session_id"], t.session.as_str());
    assert_eq!(get(&app, &access2, "/api/v1/me").await.status(), 200);

    // The spent token presented again: refused, and the whole session is revoked.
    let r = refresh(&app, &t.refresh).await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_token");
    assert_eq!(
        refresh(&app, &refresh2).await.status(),
        401,
        "family revoked"
    );
    assert_eq!(get(&app, &access2, "/api/v1/me").await.status(), 401);
    assert_eq!(get(&app, &t.access, "/api/v1/me").await.status(), 401);

    // The reuse is in the audit trail.
    let other = admin_tokens(&app).await;
    let audit: Value = get(
        &app,
        &other.access,
        "/api/v1/audit?action=auth.refresh.reuse",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(audit["total"], 1);
    assert_eq!(audit["data"][0]["target_id"], t.session.as_str());

    assert_eq!(refresh(&app, "idh_rt_unknown").await.status(), 401);
    let r = app
        .client
        .post(app.url("/api/v1/auth/refresh"))
        .json(&json!({ "refresh_token": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}

async fn logout_and_session_revocation_end_access_at_once(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let a = admin_tokens(&app).await;
    let b2 = admin_tokens(&app).await;
    let c = admin_tokens(&app).await;
    let list: Value = get(&app, &a.access, "/api/v1/me/sessions")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 3);
    assert_eq!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["current"] == true)
            .count(),
        1
    );

    let r = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &a.access, "/api/v1/me").await.status(), 401);
    assert_eq!(refresh(&app, &a.refresh).await.status(), 401);
    assert_eq!(get(&app, &b2.access, "/api/v1/me").await.status(), 200);

    // Revoke one session by id from another.
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/me/sessions/{}", b2.session)))
        .bearer_auth(&c.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &b2.access, "/api/v1/me").await.status(), 401);
    // Someone else's (or an unknown) session id is 404.
    let r = app
        .client
        .delete(app.url("/api/v1/me/sessions/nope"))
        .bearer_auth(&c.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Revoke all, including this one.
    let r = app
        .client
        .delete(app.url("/api/v1/me/sessions"))
        .bearer_auth(&c.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
    assert_eq!(get(&app, &c.access, "/api/v1/me").await.status(), 401);
    app.stop().await;
}

async fn failed_logins_lock_the_account_and_are_audited(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_LOCKOUT_THRESHOLD", "3")]).await;
    let admin = admin_tokens(&app).await;
    let uid = create_user(&app, &admin.access, "dave", "dave-password-1").await;
    for _ in 0..3 {
        assert_eq!(
            login_on(&app, None, "dave", "bad-password").await.status(),
            401
        );
    }
    // Locked: even the right password is refused.
    let r = login_on(&app, None, "dave", "dave-password-1").await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "account_locked");
    assert!(body["details"]["locked_until"].as_str().is_some());

    let audit: Value = get(
        &app,
        &admin.access,
        &format!("/api/v1/audit?action=auth.*&outcome=failure&target={uid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(audit["total"], 4);
    let reasons: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "locked",
            "bad_password_locked",
            "bad_password",
            "bad_password"
        ]
    );
    assert_eq!(audit["data"][0]["ip"], "127.0.0.1");

    // An administrator lifts the lock.
    let r = app
        .client
        .post(app.url(&format!("/api/v1/users/{uid}/unlock")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    login_ok(&app, None, "dave", "dave-password-1").await;

    let dash: Value = get(&app, &admin.access, "/api/v1/dashboard")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dash["failed_logins_24h"], 4);
    assert_eq!(dash["users"], 2);
    app.stop().await;
}

async fn auth_endpoints_are_rate_limited_per_ip(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_AUTH_RATE_PER_IP", "3")]).await;
    let r = login_on(&app, None, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-ratelimit-limit"));
    for _ in 0..2 {
        login_on(&app, None, "admin", "wrong-password").await;
    }
    let r = login_on(&app, None, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.headers()["x-ratelimit-limit"], "3");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "rate_limited");
    app.stop().await;
}

async fn api_keys_are_shown_once_scoped_and_revocable(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let r = app
        .client
        .post(app.url("/api/v1/me/tokens"))
        .bearer_auth(&admin.access)
        .json(&json!({ "name": "ci", "permissions": ["users.read"], "expires_in_days": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let issued: Value = r.json().await.unwrap();
    let key = issued["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("idh_api_"));
    let key_id = issued["id"].as_str().unwrap().to_owned();

    // X-Api-Key and Bearer both work; the key is limited to users.read.
    let r = app
        .client
        .get(app.url("/api/v1/users"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(&app, &key, "/api/v1/users").await.status(), 200);
    let me: Value = get(&app, &key, "/api/v1/me").await.json().await.unwrap();
    assert_eq!(me["auth_method"], "api_key");
    assert_eq!(me["permissions"], json!(["users.read"]));
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .header("x-api-key", &key)
        .json(&json!({ "user_name": "eve" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");
    let check: Value = get(&app, &key, "/api/v1/rbac/check?permission=users.write")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["allowed"], false);
    // A key cannot mint keys.
    let r = app
        .client
        .post(app.url("/api/v1/me/tokens"))
        .bearer_auth(&key)
        .json(&json!({ "name": "x", "permissions": ["users.read"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Listing never shows the secret; the key is stored hashed.
    let list: Value = get(&app, &admin.access, "/api/v1/me/tokens")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(&key));
    assert!(list["data"][0]["last_used_at"].as_str().is_some());

    // A user cannot give a key permissions they do not hold; unknown names are refused.
    let plain = create_user(&app, &admin.access, "frank", "frank-password-1").await;
    let _ = plain;
    let f = login_ok(&app, None, "frank", "frank-password-1").await;
    for perms in [json!(["users.write"]), json!(["users.destroy"])] {
        let r = app
            .client
            .post(app.url("/api/v1/me/tokens"))
            .bearer_auth(&f.access)
            .json(&json!({ "name": "x", "permissions": perms }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{perms}");
        assert_eq!(
            r.json::<Value>().await.unwrap()["details"]["field"],
            "permissions[0]"
        );
    }

    let r = app
        .client
        .delete(app.url(&format!("/api/v1/me/tokens/{key_id}")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = get(&app, &key, "/api/v1/users").await;
    assert_eq!(r.status(), 401);
    app.stop().await;
}

async fn rotated_signing_keys_keep_verifying_old_tokens(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let before = admin_tokens(&app).await;
    let r = app
        .client
        .post(app.url("/api/v1/signing-keys/rotate"))
        .bearer_auth(&before.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kid = r.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks: Value = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // EdDSA (API tokens) and RS256 (OIDC bridge): the new and the retired key of each.
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 4);
    assert_eq!(get(&app, &before.access, "/api/v1/me").await.status(), 200);
    let after = admin_tokens(&app).await;
    use base64::Engine;
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(after.access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], kid.as_str());

    // Only operators rotate.
    let uid = create_user(&app, &after.access, "gina", "gina-password-1").await;
    grant(&app, &after.access, &uid, "admin").await;
    let g = login_ok(&app, None, "gina", "gina-password-1").await;
    let r = app
        .client
        .post(app.url("/api/v1/signing-keys/rotate"))
        .bearer_auth(&g.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

async fn password_change_needs_the_current_one_and_ends_other_sessions(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    create_user(&app, &admin.access, "hank", "hank-password-1").await;
    let one = login_ok(&app, None, "hank", "hank-password-1").await;
    let two = login_ok(&app, None, "hank", "hank-password-1").await;
    let change = |current: &str, new: &str| {
        app.client
            .post(app.url("/api/v1/me/password"))
            .bearer_auth(&one.access)
            .json(&json!({ "current_password": current, "new_password": new }))
            .send()
    };
    let r = change("wrong-password", "hank-password-2").await.unwrap();
    assert_eq!(r.status(), 422);
    let r = change("hank-password-1", "short").await.unwrap();
    assert_eq!(r.status(), 400);
    let r = change("hank-password-1", "hank-password-2").await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &one.access, "/api/v1/me").await.status(), 200);
    assert_eq!(get(&app, &two.access, "/api/v1/me").await.status(), 401);
    assert_eq!(
        login_on(&app, None, "hank", "hank-password-1")
            .await
            .status(),
        401
    );
    login_ok(&app, None, "hank", "hank-password-2").await;
    app.stop().await;
}

async fn disabling_a_user_rejects_their_token_on_the_next_request(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let uid = create_user(&app, &admin.access, "ivy", "ivy-password-12").await;
    let ivy = login_ok(&app, None, "ivy", "ivy-password-12").await;
    assert_eq!(get(&app, &ivy.access, "/api/v1/me").await.status(), 200);
    let r = app
        .client
        .post(app.url(&format!("/api/v1/users/{uid}/disable")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
    assert_eq!(get(&app, &ivy.access, "/api/v1/me").await.status(), 401);
    assert_eq!(refresh(&app, &ivy.refresh).await.status(), 401);
    assert_eq!(
        login_on(&app, None, "ivy", "ivy-password-12")
            .await
            .status(),
        401
    );
    // An administrator cannot disable themselves.
    let me: Value = get(&app, &admin.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/users/{}/disable",
            me["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    app.stop().await;
}

fn base32_decode(s: &str) -> Vec<u8> {
    let (mut buf, mut bits, mut out) = (0u32, 0u32, Vec::new());
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => panic!("not base32"),
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

fn code_at(secret: &[u8], step_offset: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = (idhub::auth::totp::step_at(now) as i64 + step_offset) as u64;
    format!("{:06}", idhub::auth::totp::hotp(secret, step))
}

async fn totp_mfa_enrols_gates_sign_in_and_resets(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let uid = create_user(&app, &admin.access, "mia", "mia-password-12").await;
    let mia = login_ok(&app, None, "mia", "mia-password-12").await;
    let post = |token: &str, path: &str, body: Value| {
        app.client
            .post(app.url(path))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    let r = post(&mia.access, "/api/v1/me/mfa/totp", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let enrol: Value = r.json().await.unwrap();
    let secret = base32_decode(enrol["secret"].as_str().unwrap());
    assert_eq!(secret.len(), 20);
    assert!(
        enrol["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    // Pending: sign-in is unchanged until confirmed.
    login_ok(&app, None, "mia", "mia-password-12").await;

    let wrong = if code_at(&secret, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = post(
        &mia.access,
        "/api/v1/me/mfa/totp/confirm",
        json!({ "code": wrong }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 422);
    let r = post(
        &mia.access,
        "/api/v1/me/mfa/totp/confirm",
        json!({ "code": code_at(&secret, 0) }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["backup_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);

    // The password alone no longer signs in.
    let r = crate::admin_auth::login_on(&app, None, "mia", "mia-password-12").await;
    assert_eq!(r.status(), 200);
    let step1: Value = r.json().await.unwrap();
    assert_eq!(step1["mfa_required"], true);
    assert!(step1.get("access_token").is_none());
    let mfa_token = step1["mfa_token"].as_str().unwrap().to_owned();
    // The MFA token is not an access token, and HTTP Basic is refused.
    assert_eq!(get(&app, &mfa_token, "/api/v1/me").await.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .basic_auth("mia", Some("mia-password-12"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "mfa_required");

    let verify = |code: String| {
        app.client
            .post(app.url("/api/v1/auth/mfa/verify"))
            .json(&json!({ "mfa_token": mfa_token, "code": code }))
            .send()
    };
    assert_eq!(verify(wrong.to_owned()).await.unwrap().status(), 401);
    // The confirming code's step is spent; the next step's code works once.
    assert_eq!(
        verify(code_at(&secret, 0)).await.unwrap().status(),
        401,
        "replay"
    );
    let r = verify(code_at(&secret, 1)).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    let access = t["access_token"].as_str().unwrap().to_owned();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    assert_eq!(get(&app, &access, "/api/v1/me").await.status(), 200);
    assert_eq!(
        verify(code_at(&secret, 1)).await.unwrap().status(),
        401,
        "used once"
    );

    // A backup code works once.
    assert_eq!(verify(codes[0].clone()).await.unwrap().status(), 200);
    assert_eq!(verify(codes[0].clone()).await.unwrap().status(), 401);
    let status: Value = get(&app, &access, "/api/v1/me/mfa")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status["totp_enabled"], true);
    assert_eq!(status["backup_codes_remaining"], 9);

    // Re-enrolling while enabled is refused; an administrator's reset turns MFA off.
    let r = post(&access, "/api/v1/me/mfa/totp", json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/users/{uid}/mfa")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    login_ok(&app, None, "mia", "mia-password-12").await;
    let audit: Value = get(
        &app,
        &admin.access,
        &format!("/api/v1/audit?action=mfa.*&target={uid}"),
    )
    .await
    .json()
    .await
    .unwrap();
    let actions: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["mfa.totp.disable", "mfa.totp.enable", "mfa.totp.enrol"]
    );
    app.stop().await;
}
