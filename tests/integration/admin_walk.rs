//! Walks every operation of the OpenAPI document (so a new endpoint is covered without
//! editing this file): with another tenant's administrator aimed at the default tenant's
//! data, and with a corpus of malformed bodies.

use crate::admin_auth::{admin_tokens, create_user, login_ok};
use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use serde_json::{Value, json};

backend_tests!(
    every_operation_refuses_another_tenants_admin,
    every_operation_with_a_body_answers_malformed_input_with_4xx,
);

fn spec() -> Value {
    serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap()
}

/// Every (method, path template, path parameter names, declares X-Idhub-Tenant, has body).
fn operations() -> Vec<(String, String, Vec<String>, bool, bool)> {
    let spec = spec();
    let mut out = Vec::new();
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let names = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap().to_owned())
                .collect();
            let header = params
                .iter()
                .any(|p| p["in"] == "header" && p["name"] == "X-Idhub-Tenant");
            out.push((
                method.to_uppercase(),
                path.clone(),
                names,
                header,
                op.get("requestBody").is_some(),
            ));
        }
    }
    assert!(out.len() > 60, "the spec lists {} operations", out.len());
    out
}

/// A body that would change something if the operation were allowed.
fn plausible_body(method: &str, path: &str, victim: &str) -> Value {
    match (method, path) {
        ("POST", "/api/v1/auth/login") => json!({ "username": "nobody", "password": "wrong" }),
        ("POST", "/api/v1/auth/refresh") => json!({ "refresh_token": "idh_rt_nope" }),
        ("PATCH", "/api/v1/me") => json!({ "display_name": "Acme Root" }),
        ("POST", "/api/v1/me/password") => {
            json!({ "current_password": "wrong-password", "new_password": "another-password-1" })
        }
        ("POST", "/api/v1/me/tokens") => json!({ "name": "k", "permissions": ["users.read"] }),
        ("POST", "/api/v1/auth/mfa/verify") => json!({ "mfa_token": "x", "code": "123456" }),
        ("DELETE", "/api/v1/me/mfa/totp") => json!({ "password": "wrong-password" }),
        (_, "/api/v1/me/mfa/totp/confirm") | (_, "/api/v1/me/mfa/backup-codes") => {
            json!({ "code": "123456" })
        }
        ("POST", "/api/v1/tenants") => json!({ "slug": "evil", "display_name": "Evil" }),
        ("PATCH", "/api/v1/tenants/{slug}") => json!({ "display_name": "PWNED" }),
        ("PATCH", "/api/v1/settings") => json!({ "soft_delete": true }),
        ("POST", "/api/v1/users") => json!({ "user_name": "evil-user" }),
        ("PATCH", "/api/v1/users/{id}") => json!({ "display_name": "PWNED" }),
        ("PUT", "/api/v1/users/{id}/password") => json!({ "password": "pwned-password-1" }),
        ("POST", "/api/v1/groups") => json!({ "display_name": "evil-group" }),
        ("PATCH", "/api/v1/groups/{id}") => json!({ "display_name": "PWNED" }),
        ("POST", "/api/v1/groups/{id}/members") => json!({ "members": [{ "id": victim }] }),
        ("POST", "/api/v1/roles") => json!({ "name": "evil-role", "permissions": [] }),
        ("PATCH", "/api/v1/roles/{name}") => json!({ "description": "PWNED" }),
        ("POST", "/api/v1/webhooks") => {
            json!({ "url": "http://127.0.0.1:9/evil", "event_types": ["*"] })
        }
        ("PATCH", "/api/v1/webhooks/{id}") => json!({ "active": false }),
        ("POST", "/api/v1/tenants/{slug}/scim-tokens") => json!({ "name": "evil" }),
        ("PUT", "/api/v1/tenants/{slug}/scim-schemas") => json!({
            "resource_type": "User", "required": false,
            "schema": { "id": "urn:evil:1.0:User", "name": "Evil", "attributes": [] }
        }),
        ("POST", "/api/v1/sso/connections") => json!({
            "idp_entity_id": "https://evil.example",
            "sso_url": "https://evil.example/sso",
            "certificates": [saml::SpKeyPair::generate("evil", 30).unwrap().certificate().to_pem()],
        }),
        ("PATCH", "/api/v1/sso/connections/{id}") => json!({ "name": "PWNED" }),
        ("PUT", "/api/v1/sso/domains/{domain}") => json!({ "connection_id": "nope" }),
        ("POST", "/api/v1/oauth/clients") => {
            json!({ "name": "evil", "redirect_uris": ["https://evil.example/cb"] })
        }
        ("PATCH", "/api/v1/oauth/clients/{id}") => json!({ "name": "PWNED" }),
        _ => json!({}),
    }
}

/// Operations that act on the caller's own account or are public: a 2xx is expected.
fn is_self_or_public(method: &str, path: &str) -> bool {
    path.starts_with("/health")
        || path == "/.well-known/jwks.json"
        || path == "/api/v1/tenant"
        || path == "/api/v1/userinfo"
        || path == "/api/v1/permissions"
        || path == "/api/v1/auth/logout"
        || (path.starts_with("/api/v1/me") && !path.contains('{'))
        || (method == "GET" && path == "/api/v1/rbac/check")
}

async fn every_operation_refuses_another_tenants_admin(b: Backend) {
    let app = TestApp::spawn_with(
        &b,
        &[
            ("IDHUB_AUTH_RATE_PER_IP", "100000"),
            ("IDHUB_AUTH_RATE_PER_ACCOUNT", "100000"),
            ("IDHUB_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await;
    let op = admin_tokens(&app).await;
    // The default tenant's data, with distinctive values that must never show up.
    let victim = create_user(&app, &op.access, "victim-marker", "victim-password").await;
    let send = |method: &str, path: &str, token: &str, body: Option<Value>| {
        let mut rb = app
            .client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                app.url(path),
            )
            .bearer_auth(token.to_owned());
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send()
    };
    let group: Value = send(
        "POST",
        "/api/v1/groups",
        &op.access,
        Some(json!({ "display_name": "group-marker" })),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let gid = group["id"].as_str().unwrap().to_owned();
    let r = send(
        "POST",
        "/api/v1/roles",
        &op.access,
        Some(json!({ "name": "role-marker", "description": "desc-marker", "permissions": ["users.read"] })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let hook: Value = send(
        "POST",
        "/api/v1/webhooks",
        &op.access,
        Some(json!({ "url": "http://127.0.0.1:9/hook-marker", "event_types": ["*"] })),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let hook_id = hook["id"].as_str().unwrap().to_owned();
    let token: Value = send(
        "POST",
        "/api/v1/tenants/default/scim-tokens",
        &op.access,
        Some(json!({ "name": "token-marker" })),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let token_id = token["id"].as_str().unwrap().to_owned();
    let cert = saml::SpKeyPair::generate("idp", 30).unwrap();
    let conn: Value = send(
        "POST",
        "/api/v1/sso/connections",
        &op.access,
        Some(json!({
            "name": "conn-marker",
            "idp_entity_id": "https://idp-marker.example",
            "sso_url": "https://idp-marker.example/sso",
            "certificates": [cert.certificate().to_pem()],
        })),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let conn_id = conn["id"].as_str().unwrap().to_owned();
    let r = send(
        "PUT",
        "/api/v1/sso/domains/marker.example",
        &op.access,
        Some(json!({ "connection_id": conn_id })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let client: Value = send(
        "POST",
        "/api/v1/oauth/clients",
        &op.access,
        Some(
            json!({ "name": "client-marker", "redirect_uris": ["https://app-marker.example/cb"] }),
        ),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let client_id = client["id"].as_str().unwrap().to_owned();
    let markers = [
        "conn-marker",
        "idp-marker",
        "client-marker",
        "app-marker",
        "victim-marker",
        "group-marker",
        "desc-marker",
        "hook-marker",
        "token-marker",
    ];

    // Tenant "acme" and its administrator.
    let r = send(
        "POST",
        "/api/v1/tenants",
        &op.access,
        Some(json!({ "slug": "acme", "display_name": "Acme", "hostnames": ["acme.test"] })),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(&op.access)
        .header("x-idhub-tenant", "acme")
        .json(&json!({ "user_name": "root@acme", "password": "acme-password-1" }))
        .send()
        .await
        .unwrap();
    let acme_root = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .put(app.url(&format!("/api/v1/users/{acme_root}/roles/admin")))
        .bearer_auth(&op.access)
        .header("x-idhub-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let mut walked = 0;
    for (method, template, params, header, has_body) in operations() {
        let mut path = template.clone();
        for p in &params {
            let value = match (p.as_str(), template.as_str()) {
                ("slug", _) => "default".to_owned(),
                ("id", t) if t.starts_with("/api/v1/groups") => gid.clone(),
                ("id", t) if t.starts_with("/api/v1/webhooks") => hook_id.clone(),
                ("id", t) if t.contains("scim-tokens") => token_id.clone(),
                ("id", t) if t.starts_with("/api/v1/sso/connections") => conn_id.clone(),
                ("id", t) if t.starts_with("/api/v1/oauth/clients") => client_id.clone(),
                ("domain", _) => "marker.example".to_owned(),
                ("id", t) if t.starts_with("/api/v1/me/") => "not-yours".to_owned(),
                ("id", _) | ("member_id", _) => victim.clone(),
                ("role", _) => "viewer".to_owned(),
                ("name", _) => "role-marker".to_owned(),
                ("urn", _) => "urn:evil:1.0:User".to_owned(),
                ("delivery_id", _) => "no-delivery".to_owned(),
                (other, _) => panic!("no value for path parameter {other} of {template}"),
            };
            path = path.replace(&format!("{{{p}}}"), &value);
        }
        // A fresh sign-in each time: some operations end the caller's own sessions.
        let acme = login_ok(&app, Some("acme.test"), "root@acme", "acme-password-1").await;
        for with_header in [false, true] {
            if with_header && !header {
                continue;
            }
            let mut rb = app
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&path),
                )
                .bearer_auth(&acme.access);
            if with_header {
                rb = rb.header("x-idhub-tenant", "default");
            }
            if has_body {
                rb = rb.json(&plausible_body(&method, &template, &victim));
            }
            let r = rb.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            assert!(status < 500, "{method} {path}: {status} {text}");
            for m in markers {
                assert!(!text.contains(m), "{method} {path} leaked {m}: {text}");
            }
            if (200..300).contains(&status) {
                let own_tenant_write = !with_header
                    && !template.contains('{')
                    && (template.starts_with("/api/v1/users")
                        || template.starts_with("/api/v1/groups")
                        || template.starts_with("/api/v1/roles")
                        || template.starts_with("/api/v1/webhooks")
                        || template.starts_with("/api/v1/audit")
                        || template.starts_with("/api/v1/events")
                        || template.starts_with("/api/v1/dashboard")
                        || template.starts_with("/api/v1/settings")
                        || template.starts_with("/api/v1/sso")
                        || template.starts_with("/api/v1/oauth"));
                assert!(
                    is_self_or_public(&method, &template) || own_tenant_write,
                    "{method} {path} (header {with_header}) succeeded for another tenant: {status} {text}"
                );
            }
        }
        walked += 1;
    }
    assert!(walked > 60);

    // Nothing in the default tenant changed.
    let v: Value = send("GET", &format!("/api/v1/users/{victim}"), &op.access, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["active"], true);
    assert_eq!(v["display_name"], Value::Null);
    login_ok(&app, None, "victim-marker", "victim-password").await;
    let g: Value = send("GET", &format!("/api/v1/groups/{gid}"), &op.access, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(g["display_name"], "group-marker");
    let m: Value = send(
        "GET",
        &format!("/api/v1/groups/{gid}/members"),
        &op.access,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(m["total"], 0);
    let role: Value = send("GET", "/api/v1/roles/role-marker", &op.access, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(role["description"], "desc-marker");
    let h: Value = send(
        "GET",
        &format!("/api/v1/webhooks/{hook_id}"),
        &op.access,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(h["active"], true);
    let t: Value = send("GET", "/api/v1/tenants/default", &op.access, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["display_name"], "Default tenant");
    assert_eq!(t["settings"]["soft_delete"], false);
    let tokens: Value = send(
        "GET",
        "/api/v1/tenants/default/scim-tokens",
        &op.access,
        None,
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(tokens["data"][0]["revoked_at"], Value::Null);
    let users: Value = send("GET", "/api/v1/users?search=evil", &op.access, None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(users["total"], 0);
    app.stop().await;
}

async fn every_operation_with_a_body_answers_malformed_input_with_4xx(b: Backend) {
    let app = TestApp::spawn_with(
        &b,
        &[
            ("IDHUB_AUTH_RATE_PER_IP", "100000"),
            ("IDHUB_AUTH_RATE_PER_ACCOUNT", "100000"),
        ],
    )
    .await;
    let op = admin_tokens(&app).await;
    let uid = create_user(&app, &op.access, "target", "target-password").await;
    let long = "x".repeat(5000);
    let corpus: Vec<String> = vec![
        "{".into(),
        "[]".into(),
        "null".into(),
        "\"text\"".into(),
        "42".into(),
        "{\"unknown_field\": 1}".into(),
        "{\"user_name\": 5, \"username\": [], \"name\": {}, \"display_name\": false, \"password\": 1, \"url\": 3, \"event_types\": \"*\", \"members\": {}, \"permissions\": 7, \"code\": 1, \"refresh_token\": [], \"mfa_token\": 0, \"slug\": true, \"resource_type\": 1}".into(),
        format!("{{\"user_name\": \"{long}\", \"username\": \"{long}\", \"name\": \"{long}\", \"display_name\": \"{long}\", \"slug\": \"{long}\", \"url\": \"{long}\", \"code\": \"{long}\", \"password\": \"{long}{long}\"}}"),
        "\u{0000}\u{ffff}".into(),
    ];
    let mut walked = 0;
    for (method, template, params, _, has_body) in operations() {
        if !has_body {
            continue;
        }
        let mut path = template.clone();
        for p in &params {
            let value = match p.as_str() {
                "slug" => "default".to_owned(),
                _ => uid.clone(),
            };
            path = path.replace(&format!("{{{p}}}"), &value);
        }
        for body in &corpus {
            let r = app
                .client
                .request(
                    reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                    app.url(&path),
                )
                .bearer_auth(&op.access)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                (400..500).contains(&s),
                "{method} {path} with {:?}: {s} {v}",
                body.chars().take(60).collect::<String>()
            );
            assert!(
                v["message"].as_str().is_some(),
                "{method} {path}: envelope {v}"
            );
        }
        walked += 1;
    }
    assert!(walked >= 24, "{walked} operations take a body");
    // The operator's account still works: no malformed request changed it.
    login_ok(&app, None, "admin", crate::harness::ADMIN_PASSWORD).await;
    app.stop().await;
}
