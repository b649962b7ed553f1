//! The SCIM service provider's basics over HTTP: bearer authentication and the token API,
//! tenant isolation, the wire format (RFC 7644 §3.1, §3.12) and discovery (RFC 7644 §4).

use crate::backend_tests;
use crate::harness::{ADMIN_PASSWORD, Backend, Scim, TestApp};
use idhub::model::{Actor, now_micros};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    missing_token_is_401_with_scim_error,
    wrong_token_is_401,
    revoked_token_is_refused_on_next_request,
    expired_token_is_401,
    token_created_through_rest_is_shown_once_and_listed_without_secret,
    other_tenant_gets_404_for_ids,
    other_tenant_cannot_reference_foreign_members,
    other_tenant_sees_nothing_in_lists_and_searches,
    default_tenant_token_cannot_set_the_operator_password,
    default_tenant_token_cannot_lock_out_the_operator,
    users_created_outside_scim_are_whole_scim_resources,
    json_content_types_accepted_and_others_refused,
    unknown_path_wrong_method_and_me,
    method_not_allowed_lists_allowed_methods,
    token_decides_the_tenant_whatever_the_host,
    service_provider_config_advertises_capabilities,
    resource_types_and_schemas_are_discoverable,
    custom_extension_schema_lifecycle,
    invalid_extension_schemas_are_422,
);

const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_URN: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE_URN: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const BADGE_URN: &str = "urn:acme:params:scim:schemas:extension:badge:2.0:User";

/// A raw HTTP response.
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Raw {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", self.text))
    }
}

/// Sends a request to the SCIM endpoint exactly as given: optional bearer token, optional
/// content type and body.
async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
    content_type: Option<&str>,
    body: Option<String>,
) -> Raw {
    let mut rb = app
        .client
        .request(method, app.url(&format!("/scim/v2{path}")));
    if let Some(a) = auth {
        rb = rb.header("Authorization", a);
    }
    if let Some(ct) = content_type {
        rb = rb.header("Content-Type", ct);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Raw {
        status,
        headers,
        text,
    }
}

/// Asserts an RFC 7644 §3.12 error response with this status.
fn assert_scim_error(r: &Raw, status: u16) {
    assert_eq!(r.status, status, "{}", r.text);
    let ct = r.header("content-type");
    assert!(
        ct.starts_with("application/scim+json"),
        "error content type {ct:?}"
    );
    let body = r.json();
    assert_error_body(&body, status);
}

fn assert_error_body(body: &Value, status: u16) {
    assert_eq!(body["schemas"], json!([ERROR_URN]), "{body}");
    assert_eq!(body["status"], json!(status.to_string()), "{body}");
    assert!(body["detail"].is_string(), "{body}");
}

async fn rest(app: &TestApp, method: Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut rb = app.admin(app.client.request(method, app.url(path)));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON REST body ({e}): {text}"))
    };
    (status, v)
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources in {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

// ---- Authentication ----

async fn missing_token_is_401_with_scim_error(b: Backend) {
    let app = TestApp::spawn(&b).await;
    for path in [
        "/Users",
        "/Groups",
        "/Users/00000000-0000-0000-0000-000000000000",
        "/Groups/00000000-0000-0000-0000-000000000000",
    ] {
        let r = raw(&app, Method::GET, path, None, None, None).await;
        assert_scim_error(&r, 401);
        let www = r.header("www-authenticate");
        assert!(
            www.starts_with("Bearer"),
            "WWW-Authenticate {www:?} for {path}"
        );
    }
    // A write without a token is refused too, and creates nothing.
    let r = raw(
        &app,
        Method::POST,
        "/Users",
        None,
        Some("application/scim+json"),
        Some(json!({"schemas": [USER_URN], "userName": "nobody"}).to_string()),
    )
    .await;
    assert_scim_error(&r, 401);
    // Other schemes are not bearer tokens.
    let r = raw(
        &app,
        Method::GET,
        "/Users",
        Some("Basic YWRtaW46dGVzdC1hZG1pbi1wYXNzd29yZC0x"),
        None,
        None,
    )
    .await;
    assert_scim_error(&r, 401);
    assert!(r.header("www-authenticate").starts_with("Bearer"));
    let r = raw(&app, Method::GET, "/Users", Some("Bearer"), None, None).await;
    assert_scim_error(&r, 401);
    let scim = app.scim().await;
    let list = scim.filter("Users", "userName eq \"nobody\"").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["totalResults"], 0);
    app.stop().await;
}

async fn wrong_token_is_401(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let good = app.scim().await;
    let bogus = Scim {
        app: &app,
        token: format!("{}x", good.token),
    };
    let r = bogus.get("/Users").await;
    assert_eq!(r.status, 401);
    assert_error_body(&r.body, 401);
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .starts_with("Bearer")
    );
    let r = raw(
        &app,
        Method::GET,
        "/Users",
        Some("Bearer idh_scim_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        None,
        None,
    )
    .await;
    assert_scim_error(&r, 401);
    // The scheme name is case-insensitive (RFC 7235 §2.1): the right token still works.
    let r = raw(
        &app,
        Method::GET,
        "/Users",
        Some(&format!("bearer {}", good.token)),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(good.get("/Users").await.status, 200);
    app.stop().await;
}

async fn issue_token(app: &TestApp, slug: &str, name: &str) -> (String, String) {
    let (status, body) = rest(
        app,
        Method::POST,
        &format!("/api/v1/tenants/{slug}/scim-tokens"),
        Some(&json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    )
}

async fn revoked_token_is_refused_on_next_request(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let (id, secret) = issue_token(&app, "default", "Entra production").await;
    let scim = Scim {
        app: &app,
        token: secret,
    };
    // Used (and so cached) before the revocation.
    assert_eq!(scim.get("/Users").await.status, 200);
    assert_eq!(scim.get("/Groups").await.status, 200);
    let (status, body) = rest(
        &app,
        Method::DELETE,
        &format!("/api/v1/tenants/default/scim-tokens/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], json!(id));
    assert!(body["revoked_at"].is_string(), "{body}");
    let r = scim.get("/Users").await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_error_body(&r.body, 401);
    let r = scim
        .post(
            "/Users",
            &json!({"schemas": [USER_URN], "userName": "after.revoke"}),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
    // The listing marks it revoked; another token of the tenant is unaffected.
    let (_, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-tokens",
        None,
    )
    .await;
    let listed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == json!(id))
        .unwrap_or_else(|| panic!("revoked token not listed: {list}"));
    assert!(listed["revoked_at"].is_string(), "{listed}");
    let other = app.scim().await;
    let found = other.filter("Users", "userName eq \"after.revoke\"").await;
    assert_eq!(found.status, 200);
    assert_eq!(found.body["totalResults"], 0);
    // A token of another tenant cannot be revoked through this tenant.
    let (b_id, b_secret) = {
        app.scim_for_new_tenant("b").await;
        issue_token(&app, "b", "B's IdP").await
    };
    let (status, _) = rest(
        &app,
        Method::DELETE,
        &format!("/api/v1/tenants/default/scim-tokens/{b_id}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let b_scim = Scim {
        app: &app,
        token: b_secret,
    };
    assert_eq!(b_scim.get("/Users").await.status, 200);
    let (_, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-tokens",
        None,
    )
    .await;
    assert!(
        !list["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == json!(b_id)),
        "tenant b's token is listed under default: {list}"
    );
    // Unknown token ids are 404.
    let (status, _) = rest(
        &app,
        Method::DELETE,
        "/api/v1/tenants/default/scim-tokens/no-such-token",
        None,
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn expired_token_is_401(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let ts = app.store.tenant(app.default_tenant.clone());
    let expired = ts
        .create_token(
            &Actor::system(),
            "scim",
            "expired",
            Some(now_micros() - 1_000_000),
        )
        .await
        .unwrap();
    let r = raw(
        &app,
        Method::GET,
        "/Users",
        Some(&format!("Bearer {}", expired.secret)),
        None,
        None,
    )
    .await;
    assert_scim_error(&r, 401);
    assert!(r.header("www-authenticate").starts_with("Bearer"));

    // A token that expires after it has been used (and cached) is refused once it expires.
    let expiry = now_micros() + 3_000_000;
    let soon = ts
        .create_token(&Actor::system(), "scim", "soon", Some(expiry))
        .await
        .unwrap();
    let auth = format!("Bearer {}", soon.secret);
    let r = raw(&app, Method::GET, "/Users", Some(&auth), None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        ticks.tick().await;
        let r = raw(&app, Method::GET, "/Users", Some(&auth), None, None).await;
        if r.status == 401 {
            assert!(now_micros() >= expiry, "refused before it expired");
            assert_scim_error(&r, 401);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.text);
        assert!(
            std::time::Instant::now() < deadline,
            "an expired token is still accepted"
        );
    }

    // A token issued through the API with an expiry works until then.
    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/v1/tenants/default/scim-tokens",
        Some(&json!({"name": "one day", "expires_in_days": 1})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["expires_at"].is_string(), "{body}");
    let day = Scim {
        app: &app,
        token: body["token"].as_str().unwrap().to_owned(),
    };
    assert_eq!(day.get("/Users").await.status, 200);
    app.stop().await;
}

async fn token_created_through_rest_is_shown_once_and_listed_without_secret(b: Backend) {
    let app = TestApp::spawn(&b).await;
    // Operators only.
    let r = app
        .client
        .post(app.url("/api/v1/tenants/default/scim-tokens"))
        .json(&json!({"name": "Okta"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (status, created) = rest(
        &app,
        Method::POST,
        "/api/v1/tenants/default/scim-tokens",
        Some(&json!({"name": "Okta production"})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["token"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("idh_scim_"), "{secret}");
    assert_eq!(created["name"], "Okta production");
    let prefix = created["prefix"].as_str().unwrap();
    assert!(!prefix.is_empty() && secret.starts_with(prefix) && prefix.len() < secret.len());
    assert!(created["last_used_at"].is_null(), "{created}");
    assert!(created["revoked_at"].is_null(), "{created}");
    assert!(created["created_at"].is_string(), "{created}");

    let listed = |list: &Value| -> Value {
        let text = list.to_string();
        assert!(!text.contains(&secret), "the secret is listed: {text}");
        let t = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == json!(id))
            .unwrap_or_else(|| panic!("token {id} not listed: {list}"))
            .clone();
        assert!(t.get("token").is_none(), "{t}");
        assert_eq!(t["name"], "Okta production");
        assert_eq!(t["prefix"], json!(prefix));
        t
    };
    let (status, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-tokens",
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert!(listed(&list)["last_used_at"].is_null(), "{list}");

    let scim = Scim {
        app: &app,
        token: secret.clone(),
    };
    assert_eq!(scim.get("/Users").await.status, 200);
    let (_, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-tokens",
        None,
    )
    .await;
    let t = listed(&list);
    let used = t["last_used_at"]
        .as_str()
        .unwrap_or_else(|| panic!("last_used_at not set after use: {t}"));
    let created_at = created["created_at"].as_str().unwrap();
    assert!(
        used >= created_at,
        "last_used_at {used} before created_at {created_at}"
    );

    // A second token is distinct and both work.
    let (_, other) = issue_token(&app, "default", "Entra").await;
    assert_ne!(other, secret);
    let scim2 = Scim {
        app: &app,
        token: other,
    };
    assert_eq!(scim2.get("/Groups").await.status, 200);
    // A blank name is refused.
    let (status, body) = rest(
        &app,
        Method::POST,
        "/api/v1/tenants/default/scim-tokens",
        Some(&json!({"name": "   "})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    // A SCIM token is no credential for the operator API.
    let r = app
        .client
        .get(app.url("/api/v1/tenants/default/scim-tokens"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // Tokens of an unknown tenant: 404.
    let (status, _) = rest(&app, Method::GET, "/api/v1/tenants/nope/scim-tokens", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

// ---- Tenant isolation ----

/// Tenant A's user and group (the group has the user as member).
async fn tenant_a_data(a: &Scim<'_>) -> (String, String) {
    let uid = a
        .create_user(
            "alice@a.example",
            json!({"externalId": "ext-alice", "displayName": "Alice A"}),
        )
        .await;
    let gid = a.create_group("A Engineering", &[&uid]).await;
    (uid, gid)
}

async fn snapshot(a: &Scim<'_>, uid: &str, gid: &str) -> (Value, Value) {
    let u = a.get(&format!("/Users/{uid}")).await;
    assert_eq!(u.status, 200, "{}", u.body);
    let g = a.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    (u.body, g.body)
}

async fn other_tenant_gets_404_for_ids(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let a = app.scim().await;
    let (uid, gid) = tenant_a_data(&a).await;
    let before = snapshot(&a, &uid, &gid).await;
    let bt = app.scim_for_new_tenant("b").await;

    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Hijacked"}]
    });
    let user_put =
        json!({"schemas": [USER_URN], "userName": "hijacked", "displayName": "Hijacked"});
    let group_put = json!({"schemas": [GROUP_URN], "displayName": "Hijacked", "members": []});
    for (path, put) in [
        (format!("/Users/{uid}"), &user_put),
        (format!("/Groups/{gid}"), &group_put),
    ] {
        let r = bt.get(&path).await;
        assert_eq!(r.status, 404, "GET {path}: {}", r.body);
        assert_error_body(&r.body, 404);
        let r = bt.put(&path, put).await;
        assert_eq!(r.status, 404, "PUT {path}: {}", r.body);
        assert_error_body(&r.body, 404);
        let r = bt.patch(&path, &patch).await;
        assert_eq!(r.status, 404, "PATCH {path}: {}", r.body);
        assert_error_body(&r.body, 404);
        let r = bt.delete(&path).await;
        assert_eq!(r.status, 404, "DELETE {path}: {}", r.body);
        assert_error_body(&r.body, 404);
        // Conditional variants are no different.
        let r = bt
            .send(Method::DELETE, &path, None, &[("If-Match", "*")])
            .await;
        assert_eq!(r.status, 404, "DELETE If-Match {path}: {}", r.body);
        let r = bt
            .send(Method::GET, &path, None, &[("If-None-Match", "W/\"1\"")])
            .await;
        assert_eq!(r.status, 404, "GET If-None-Match {path}: {}", r.body);
    }
    // The same ids through Bulk are not found either.
    let bulk = bt
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "Operations": [
                    {"method": "DELETE", "path": format!("/Users/{uid}")},
                    {"method": "PATCH", "path": format!("/Groups/{gid}"), "data": patch},
                ]
            }),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.body);
    for op in bulk.body["Operations"].as_array().unwrap() {
        assert_eq!(op["status"], "404", "{}", bulk.body);
    }

    let after = snapshot(&a, &uid, &gid).await;
    assert_eq!(before, after, "tenant A's resources changed");
    assert_eq!(after.0["displayName"], "Alice A");
    assert_eq!(after.1["displayName"], "A Engineering");
    assert_eq!(after.1["members"][0]["value"], json!(uid));
    app.stop().await;
}

async fn other_tenant_cannot_reference_foreign_members(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let a = app.scim().await;
    let (uid, gid) = tenant_a_data(&a).await;
    let before = snapshot(&a, &uid, &gid).await;
    let bt = app.scim_for_new_tenant("b").await;
    let bob = bt.create_user("bob@b.example", json!({})).await;
    let bgid = bt.create_group("B Team", &[&bob]).await;
    let b_before = bt.get(&format!("/Groups/{bgid}")).await.body;

    // PATCH add of A's user, and of A's group, to B's group.
    for foreign in [&uid, &gid] {
        let r = bt
            .patch(
                &format!("/Groups/{bgid}"),
                &json!({
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": foreign}]}]
                }),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_error_body(&r.body, 400);
        assert_eq!(r.body["scimType"], "invalidValue", "{}", r.body);
    }
    // Typed as a User, too.
    let r = bt
        .patch(
            &format!("/Groups/{bgid}"),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": uid, "type": "User"}]}]
            }),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // PUT and POST with A's user as member.
    let r = bt
        .put(
            &format!("/Groups/{bgid}"),
            &json!({"schemas": [GROUP_URN], "displayName": "B Team", "members": [{"value": bob}, {"value": uid}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = bt
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "B Stolen", "members": [{"value": uid}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_error_body(&r.body, 400);
    // Nothing was created or changed in B.
    let list = bt.filter("Groups", "displayName eq \"B Stolen\"").await;
    assert_eq!(list.body["totalResults"], 0, "{}", list.body);
    let b_after = bt.get(&format!("/Groups/{bgid}")).await.body;
    assert_eq!(b_before, b_after);
    // A's user is not in any of B's groups, and A is unchanged.
    let r = bt
        .filter("Groups", &format!("members.value eq \"{uid}\""))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let after = snapshot(&a, &uid, &gid).await;
    assert_eq!(before, after);
    let groups = after.0["groups"].as_array().cloned().unwrap_or_default();
    assert_eq!(groups.len(), 1, "{}", after.0);
    assert_eq!(groups[0]["value"], json!(gid));
    app.stop().await;
}

async fn other_tenant_sees_nothing_in_lists_and_searches(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let a = app.scim().await;
    let (uid, gid) = tenant_a_data(&a).await;
    let bt = app.scim_for_new_tenant("b").await;
    let bob = bt.create_user("bob@b.example", json!({})).await;
    let bgid = bt.create_group("B Team", &[&bob]).await;

    let r = bt.get("/Users").await;
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.body), vec![bob.clone()]);
    assert_eq!(r.body["totalResults"], 1);
    let r = bt.get("/Groups").await;
    assert_eq!(ids(&r.body), vec![bgid.clone()]);
    assert_eq!(r.body["totalResults"], 1);
    for (resource, filter) in [
        ("Users", "userName eq \"alice@a.example\"".to_owned()),
        ("Users", "externalId eq \"ext-alice\"".to_owned()),
        ("Users", format!("id eq \"{uid}\"")),
        ("Users", "userName sw \"alice\"".to_owned()),
        ("Users", format!("groups.value eq \"{gid}\"")),
        ("Groups", "displayName eq \"A Engineering\"".to_owned()),
        ("Groups", format!("id eq \"{gid}\"")),
        ("Groups", format!("members.value eq \"{uid}\"")),
    ] {
        let r = bt.filter(resource, &filter).await;
        assert_eq!(r.status, 200, "{filter}: {}", r.body);
        assert_eq!(r.body["totalResults"], 0, "{filter}: {}", r.body);
        assert_eq!(r.body["Resources"], json!([]), "{filter}: {}", r.body);
    }
    // .search, per type and at the root.
    let search = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "startIndex": 1,
        "count": 100
    });
    for path in ["/Users/.search", "/Groups/.search", "/.search"] {
        let r = bt.post(path, &search).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let found = ids(&r.body);
        assert!(
            !found.contains(&uid) && !found.contains(&gid),
            "{path} shows A's resources: {}",
            r.body
        );
    }
    let r = bt.post("/.search", &search).await;
    let mut found = ids(&r.body);
    found.sort();
    let mut want = vec![bob.clone(), bgid.clone()];
    want.sort();
    assert_eq!(found, want, "{}", r.body);
    assert_eq!(r.body["totalResults"], 2);
    let r = bt
        .post(
            "/Users/.search",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "userName eq \"alice@a.example\""
            }),
        )
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    // Tenant B's own user has no groups of A.
    let r = bt.get(&format!("/Users/{bob}")).await;
    assert_eq!(r.body["groups"][0]["value"], json!(bgid), "{}", r.body);
    assert_eq!(r.body["groups"].as_array().unwrap().len(), 1);
    // And A sees its own, none of B's.
    let r = a.get("/Users").await;
    let found = ids(&r.body);
    assert!(found.contains(&uid) && !found.contains(&bob), "{}", r.body);
    let r = a.get("/Groups").await;
    assert_eq!(ids(&r.body), vec![gid.clone()]);
    app.stop().await;
}

/// The bootstrap operator is a user of the default tenant. A SCIM token of that tenant (an
/// identity provider's credential) must not be able to change the operator's credentials:
/// that would make any default-tenant SCIM client a superadmin of every tenant.
async fn default_tenant_token_cannot_set_the_operator_password(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    assert_eq!(operator_status(&app, ADMIN_PASSWORD).await, 200);
    let path = format!("/Users/{}", operator_id(&app).await);
    let r = scim
        .patch(
            &path,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "password", "value": "stolen-by-patch-1"}]
            }),
        )
        .await;
    assert_eq!(
        operator_status(&app, "stolen-by-patch-1").await,
        401,
        "PATCH /Users/{{operator}} (answered {}) set the operator's password",
        r.status
    );
    let r = scim
        .put(
            &path,
            &json!({"schemas": [USER_URN], "userName": "admin", "password": "stolen-by-put-1"}),
        )
        .await;
    assert_eq!(
        operator_status(&app, "stolen-by-put-1").await,
        401,
        "PUT /Users/{{operator}} (answered {}) set the operator's password",
        r.status
    );
    app.stop().await;
}

/// Nor can it lock the operator out by deactivating or deleting the operator's user.
async fn default_tenant_token_cannot_lock_out_the_operator(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let path = format!("/Users/{}", operator_id(&app).await);
    let r = scim
        .patch(
            &path,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "active", "value": false}]
            }),
        )
        .await;
    assert_eq!(
        operator_status(&app, ADMIN_PASSWORD).await,
        200,
        "PATCH active=false on the operator (answered {}) locked the operator out",
        r.status
    );
    let r = scim.delete(&path).await;
    assert_eq!(
        operator_status(&app, ADMIN_PASSWORD).await,
        200,
        "DELETE of the operator's user (answered {}) locked the operator out",
        r.status
    );
    app.stop().await;
}

/// Users created by idhub itself (the bootstrap operator, `idhub admin create`) rather than
/// through SCIM are still SCIM resources of their tenant: they carry their required `userName`
/// and can be patched like any other.
async fn users_created_outside_scim_are_whole_scim_resources(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    // As `idhub admin create --username cli.admin` does it.
    let user = app
        .store
        .tenant(app.default_tenant.clone())
        .create_user(
            &Actor::system(),
            idhub::model::NewUser {
                user_name: "cli.admin".into(),
                display_name: Some("CLI Admin".into()),
                active: true,
                ..idhub::model::NewUser::default()
            },
        )
        .await
        .unwrap();
    let path = format!("/Users/{}", user.id);
    let r = scim.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["userName"], "cli.admin",
        "required userName missing: {}",
        r.body
    );
    assert_eq!(r.body["displayName"], "CLI Admin", "{}", r.body);
    assert_eq!(r.body["active"], true);
    let r = scim.filter("Users", "userName eq \"cli.admin\"").await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(
        r.body["Resources"][0]["userName"], "cli.admin",
        "{}",
        r.body
    );
    let r = scim
        .patch(
            &path,
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "nickName", "value": "cli"}]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["nickName"], "cli");
    assert_eq!(r.body["userName"], "cli.admin", "{}", r.body);
    assert_eq!(r.body["displayName"], "CLI Admin", "{}", r.body);
    // The bootstrap operator, if SCIM shows it at all, is shown with its userName.
    if let Some(admin) = operator_scim_id(&scim).await {
        let r = scim.get(&format!("/Users/{admin}")).await;
        assert_eq!(r.body["userName"], "admin", "{}", r.body);
    }
    app.stop().await;
}

/// The status of an operator request with this password.
async fn operator_status(app: &TestApp, password: &str) -> u16 {
    app.client
        .get(app.url("/api/v1/tenants"))
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The operator's id as the default tenant's SCIM clients see it, if they see it at all.
async fn operator_scim_id(scim: &Scim<'_>) -> Option<String> {
    let found = scim.filter("Users", "userName eq \"admin\"").await;
    assert_eq!(found.status, 200, "{}", found.body);
    found.body["Resources"][0]["id"].as_str().map(str::to_owned)
}

/// The operator's user id, from the store (whether or not SCIM shows it).
async fn operator_id(app: &TestApp) -> String {
    app.store
        .tenant(app.default_tenant.clone())
        .find_user_by_user_name("admin")
        .await
        .unwrap()
        .expect("the bootstrap operator exists")
        .id
}

// ---- Wire format ----

async fn json_content_types_accepted_and_others_refused(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let auth = format!("Bearer {}", scim.token);
    let user = |name: &str| json!({"schemas": [USER_URN], "userName": name}).to_string();

    let r = raw(
        &app,
        Method::POST,
        "/Users",
        Some(&auth),
        Some("application/json"),
        Some(user("json.user")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.header("content-type")
            .starts_with("application/scim+json")
    );
    let uid = r.json()["id"].as_str().unwrap().to_owned();
    let r = raw(
        &app,
        Method::POST,
        "/Users",
        Some(&auth),
        Some("application/scim+json; charset=utf-8"),
        Some(user("scim.user")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.header("content-type")
            .starts_with("application/scim+json")
    );
    assert!(
        r.header("location")
            .ends_with(&format!("/Users/{}", r.json()["id"].as_str().unwrap()))
    );
    assert!(r.header("etag").starts_with("W/\""), "{:?}", r.headers);

    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let r = raw(
            &app,
            Method::POST,
            "/Users",
            Some(&auth),
            Some(ct),
            Some(user("plain.user")),
        )
        .await;
        assert_scim_error(&r, 415);
    }
    let patch = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "displayName", "value": "Plain"}]
    })
    .to_string();
    let r = raw(
        &app,
        Method::PATCH,
        &format!("/Users/{uid}"),
        Some(&auth),
        Some("text/plain"),
        Some(patch.clone()),
    )
    .await;
    assert_scim_error(&r, 415);
    let r = raw(
        &app,
        Method::PUT,
        &format!("/Users/{uid}"),
        Some(&auth),
        Some("text/plain"),
        Some(user("json.user")),
    )
    .await;
    assert_scim_error(&r, 415);
    let r = raw(
        &app,
        Method::POST,
        "/Users/.search",
        Some(&auth),
        Some("text/plain"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}).to_string(),
        ),
    )
    .await;
    assert_scim_error(&r, 415);
    // None of the refused requests changed anything.
    let found = scim.filter("Users", "userName eq \"plain.user\"").await;
    assert_eq!(found.body["totalResults"], 0);
    let got = scim.get(&format!("/Users/{uid}")).await;
    assert!(got.body.get("displayName").is_none(), "{}", got.body);
    // application/json PATCH is accepted.
    let r = raw(
        &app,
        Method::PATCH,
        &format!("/Users/{uid}"),
        Some(&auth),
        Some("application/json"),
        Some(patch),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["displayName"], "Plain");
    // Malformed JSON is 400 invalidSyntax.
    let r = raw(
        &app,
        Method::POST,
        "/Users",
        Some(&auth),
        Some("application/scim+json"),
        Some("{\"userName\": ".to_owned()),
    )
    .await;
    assert_scim_error(&r, 400);
    assert_eq!(r.json()["scimType"], "invalidSyntax");
    // Every JSON response is application/scim+json (the harness client checks each one).
    for path in [
        "/Users",
        "/Groups",
        "/ServiceProviderConfig",
        "/ResourceTypes",
        "/Schemas",
    ] {
        let r = scim.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("application/scim+json")
        );
    }
    app.stop().await;
}

async fn unknown_path_wrong_method_and_me(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let auth = format!("Bearer {}", scim.token);
    for path in [
        "/Nope",
        "/Users/abc/extra",
        "/Groupz",
        "/ServiceProviderConfigs",
    ] {
        let r = raw(&app, Method::GET, path, Some(&auth), None, None).await;
        assert_scim_error(&r, 404);
    }
    let uid = scim.create_user("method.user", json!({})).await;
    for (method, path) in [
        (Method::DELETE, "/Users".to_owned()),
        (Method::PUT, "/Users".to_owned()),
        (Method::PATCH, "/Groups".to_owned()),
        (Method::POST, format!("/Users/{uid}")),
        (Method::GET, "/Bulk".to_owned()),
        (Method::PUT, "/ServiceProviderConfig".to_owned()),
        (Method::POST, "/Schemas".to_owned()),
        (Method::DELETE, "/ResourceTypes/User".to_owned()),
    ] {
        let r = raw(&app, method.clone(), &path, Some(&auth), None, None).await;
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text);
        assert_scim_error(&r, 405);
    }
    // The user is still there after the refused POST/DELETE.
    assert_eq!(scim.get(&format!("/Users/{uid}")).await.status, 200);
    for method in [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let r = raw(&app, method.clone(), "/Me", Some(&auth), None, None).await;
        assert_scim_error(&r, 501);
    }
    // Unknown resources under known endpoints are 404 in the SCIM format too.
    let r = scim
        .get("/Users/00000000-0000-0000-0000-000000000000")
        .await;
    assert_eq!(r.status, 404);
    assert_error_body(&r.body, 404);
    let r = scim.get("/Groups/nope").await;
    assert_eq!(r.status, 404);
    assert_error_body(&r.body, 404);
    app.stop().await;
}

/// RFC 9110 §15.5.6: a 405 response MUST carry `Allow` with the methods the resource supports.
async fn method_not_allowed_lists_allowed_methods(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let auth = format!("Bearer {}", scim.token);
    for (method, path, allowed) in [
        (Method::DELETE, "/Users", &["GET", "POST"][..]),
        (Method::PATCH, "/Groups", &["GET", "POST"][..]),
        (Method::PUT, "/ServiceProviderConfig", &["GET"][..]),
        (Method::GET, "/Bulk", &["POST"][..]),
    ] {
        let r = raw(&app, method.clone(), path, Some(&auth), None, None).await;
        assert_scim_error(&r, 405);
        let allow = r.header("allow");
        assert!(!allow.is_empty(), "{method} {path}: 405 without Allow");
        let listed: Vec<String> = allow
            .split(',')
            .map(|m| m.trim().to_ascii_uppercase())
            .collect();
        for m in allowed {
            assert!(
                listed.iter().any(|l| l == m),
                "{method} {path}: Allow {allow:?} lacks {m}"
            );
        }
        assert!(
            !listed.iter().any(|l| *l == method.as_str()),
            "{method} {path}: Allow {allow:?} lists the refused method"
        );
    }
    app.stop().await;
}

/// In multi-tenant mode the SCIM endpoint answers for the token's tenant only: a token sent
/// to another tenant's hostname never reaches that tenant's data.
async fn token_decides_the_tenant_whatever_the_host(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_TENANCY_MODE", "multi")]).await;
    app.store
        .create_tenant(
            &Actor::system(),
            &idhub::model::Slug::parse("acme").unwrap(),
            "Acme",
            &[idhub::model::Hostname::parse("login.acme.test").unwrap()],
        )
        .await
        .unwrap();
    let acme = Scim {
        app: &app,
        token: app.scim_token("acme").await,
    };
    let acme_user = acme.create_user("acme.user", json!({})).await;
    let bt = app.scim_for_new_tenant("b").await;
    let b_user = bt.create_user("b.user", json!({})).await;
    for host in ["login.acme.test", "unknown.test"] {
        let r = bt
            .send(Method::GET, "/Users", None, &[("Host", host)])
            .await;
        match r.status {
            200 => {
                let found = ids(&r.body);
                assert!(!found.contains(&acme_user), "{host}: {}", r.body);
                assert!(found.contains(&b_user), "{host}: {}", r.body);
            }
            s => assert!((400..500).contains(&s), "{host}: {s} {}", r.body),
        }
        let r = bt
            .send(
                Method::GET,
                &format!("/Users/{acme_user}"),
                None,
                &[("Host", host)],
            )
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{host}: {} {}",
            r.status,
            r.body
        );
        let r = bt
            .send(
                Method::DELETE,
                &format!("/Users/{acme_user}"),
                None,
                &[("Host", host)],
            )
            .await;
        assert!(
            (400..500).contains(&r.status),
            "{host}: {} {}",
            r.status,
            r.body
        );
    }
    assert_eq!(acme.get(&format!("/Users/{acme_user}")).await.status, 200);
    app.stop().await;
}

// ---- Discovery ----

async fn service_provider_config_advertises_capabilities(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let r = scim.get("/ServiceProviderConfig").await;
    assert_eq!(r.status, 200);
    let c = &r.body;
    assert_eq!(
        c["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"])
    );
    assert_eq!(c["patch"]["supported"], true);
    assert_eq!(c["bulk"]["supported"], true);
    assert_eq!(c["bulk"]["maxOperations"], 1000);
    let payload = c["bulk"]["maxPayloadSize"].as_u64().unwrap_or(0);
    assert!(payload >= 1_048_576, "{c}");
    assert_eq!(c["filter"]["supported"], true);
    assert_eq!(c["filter"]["maxResults"], 1000);
    assert_eq!(c["sort"]["supported"], true);
    assert_eq!(c["etag"]["supported"], true);
    assert_eq!(c["changePassword"]["supported"], true);
    assert_eq!(c["pagination"]["cursor"], true);
    assert_eq!(c["pagination"]["index"], true);
    let schemes = c["authenticationSchemes"].as_array().unwrap();
    assert!(
        schemes.iter().any(|s| s["type"] == "oauthbearertoken"),
        "{c}"
    );
    assert!(
        c["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with("/scim/v2/ServiceProviderConfig")
    );
    // The advertised bulk limit is the one enforced.
    let ops: Vec<Value> = (0..1001)
        .map(|i| {
            json!({
                "method": "POST",
                "path": "/Users",
                "bulkId": format!("u{i}"),
                "data": {"schemas": [USER_URN], "userName": format!("bulk{i}")}
            })
        })
        .collect();
    let r = scim
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_error_body(&r.body, 413);
    let r = scim.filter("Users", "userName sw \"bulk\"").await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    app.stop().await;
}

fn find<'a>(list: &'a Value, key: &str, want: &str) -> Option<&'a Value> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[key].as_str() == Some(want))
}

fn attr_names(schema: &Value) -> Vec<String> {
    schema["attributes"]
        .as_array()
        .unwrap_or_else(|| panic!("no attributes: {schema}"))
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect()
}

async fn resource_types_and_schemas_are_discoverable(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;

    let r = scim.get("/ResourceTypes").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["schemas"], json!([LIST_URN]));
    assert_eq!(r.body["totalResults"], 2);
    let user = find(&r.body, "id", "User").unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(user["name"], "User");
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schema"], USER_URN);
    assert_eq!(
        user["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:ResourceType"])
    );
    let exts = user["schemaExtensions"].as_array().unwrap();
    assert!(
        exts.iter()
            .any(|e| e["schema"] == ENTERPRISE_URN && e["required"] == false),
        "{user}"
    );
    let group = find(&r.body, "id", "Group").unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(group["endpoint"], "/Groups");
    assert_eq!(group["schema"], GROUP_URN);

    let one = scim.get("/ResourceTypes/User").await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.body, user);
    let one = scim.get("/ResourceTypes/Group").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.body["endpoint"], "/Groups");
    let r = scim.get("/ResourceTypes/Device").await;
    assert_eq!(r.status, 404);
    assert_error_body(&r.body, 404);

    let r = scim.get("/Schemas").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["schemas"], json!([LIST_URN]));
    assert_eq!(r.body["totalResults"], 3, "{}", r.body);
    for (urn, must_have) in [
        (
            USER_URN,
            &["userName", "name", "emails", "active", "groups", "password"][..],
        ),
        (GROUP_URN, &["displayName", "members"][..]),
        (
            ENTERPRISE_URN,
            &["employeeNumber", "department", "manager"][..],
        ),
    ] {
        let s = find(&r.body, "id", urn).unwrap_or_else(|| panic!("{urn} missing: {}", r.body));
        let names = attr_names(s);
        for n in must_have {
            assert!(names.iter().any(|x| x == n), "{urn} lacks {n}: {names:?}");
        }
        let one = scim.get(&format!("/Schemas/{urn}")).await;
        assert_eq!(one.status, 200, "{urn}: {}", one.body);
        assert_eq!(one.body["id"], urn);
        assert_eq!(&one.body, s);
    }
    let user_schema = scim.get(&format!("/Schemas/{USER_URN}")).await.body;
    let user_name = user_schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap();
    assert_eq!(user_name["type"], "string");
    assert_eq!(user_name["required"], true);
    assert_eq!(user_name["uniqueness"], "server");
    let members = scim.get(&format!("/Schemas/{GROUP_URN}")).await.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "members")
        .cloned()
        .unwrap();
    assert_eq!(members["multiValued"], true);
    assert_eq!(members["type"], "complex");
    let subs: Vec<&str> = members["subAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for s in ["value", "$ref", "type", "display"] {
        assert!(subs.contains(&s), "{subs:?}");
    }
    let r = scim.get("/Schemas/urn:acme:nope").await;
    assert_eq!(r.status, 404);
    assert_error_body(&r.body, 404);
    app.stop().await;
}

fn badge_schema() -> Value {
    json!({
        "id": BADGE_URN,
        "name": "Badge",
        "description": "Badge data",
        "attributes": [
            {"name": "badgeNumber", "type": "integer", "multiValued": false, "required": false},
            {"name": "site", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}]}
        ]
    })
}

async fn custom_extension_schema_lifecycle(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    // Discovery is read first so any cache is warm before the change.
    assert_eq!(scim.get("/Schemas").await.body["totalResults"], 3);
    assert!(
        scim.get(&format!("/Schemas/{BADGE_URN}")).await.status == 404,
        "unregistered schema found"
    );

    let (status, body) = rest(
        &app,
        Method::PUT,
        "/api/v1/tenants/default/scim-schemas",
        Some(&json!({"resource_type": "User", "required": false, "schema": badge_schema()})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["urn"], BADGE_URN);
    let (status, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-schemas",
        None,
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["urn"], BADGE_URN, "{list}");
    assert_eq!(list["data"][0]["resource_type"], "User", "{list}");

    let r = scim.get("/Schemas").await;
    assert_eq!(r.body["totalResults"], 4, "{}", r.body);
    let s = find(&r.body, "id", BADGE_URN).unwrap_or_else(|| panic!("{}", r.body));
    assert_eq!(
        attr_names(s),
        vec!["badgeNumber".to_owned(), "site".to_owned()]
    );
    let one = scim.get(&format!("/Schemas/{BADGE_URN}")).await;
    assert_eq!(one.status, 200);
    assert_eq!(&one.body, s);
    let rt = scim.get("/ResourceTypes/User").await.body;
    let exts = rt["schemaExtensions"].as_array().unwrap();
    assert!(
        exts.iter()
            .any(|e| e["schema"] == BADGE_URN && e["required"] == false),
        "{rt}"
    );
    assert!(exts.iter().any(|e| e["schema"] == ENTERPRISE_URN), "{rt}");
    let all = scim.get("/ResourceTypes").await.body;
    let group = find(&all, "id", "Group").unwrap();
    assert!(
        !group["schemaExtensions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["schema"] == BADGE_URN),
        "{group}"
    );
    // The extension is usable at once.
    let r = scim
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN, BADGE_URN],
                "userName": "badged",
                BADGE_URN: {"badgeNumber": 42, "site": {"code": "HQ"}}
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body[BADGE_URN]["badgeNumber"], 42, "{}", r.body);
    let found = scim
        .filter("Users", &format!("{BADGE_URN}:badgeNumber eq 42"))
        .await;
    assert_eq!(found.status, 200, "{}", found.body);
    assert_eq!(found.body["totalResults"], 1, "{}", found.body);

    // Registering it again (replace) keeps one copy.
    let (status, _) = rest(
        &app,
        Method::PUT,
        "/api/v1/tenants/default/scim-schemas",
        Some(&json!({"resource_type": "User", "schema": badge_schema()})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(scim.get("/Schemas").await.body["totalResults"], 4);

    let (status, body) = rest(
        &app,
        Method::DELETE,
        &format!("/api/v1/tenants/default/scim-schemas/{BADGE_URN}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r = scim.get("/Schemas").await;
    assert_eq!(r.body["totalResults"], 3, "{}", r.body);
    assert!(find(&r.body, "id", BADGE_URN).is_none());
    assert_eq!(scim.get(&format!("/Schemas/{BADGE_URN}")).await.status, 404);
    let rt = scim.get("/ResourceTypes/User").await.body;
    assert!(
        !rt["schemaExtensions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["schema"] == BADGE_URN),
        "{rt}"
    );
    let (status, _) = rest(
        &app,
        Method::DELETE,
        &format!("/api/v1/tenants/default/scim-schemas/{BADGE_URN}"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A Group extension shows on the Group resource type; another tenant never sees it.
    let group_ext = json!({
        "id": "urn:acme:params:scim:schemas:extension:cost:2.0:Group",
        "name": "Cost",
        "attributes": [{"name": "costCenter", "type": "string"}]
    });
    let (status, body) = rest(
        &app,
        Method::PUT,
        "/api/v1/tenants/default/scim-schemas",
        Some(&json!({"resource_type": "Group", "schema": group_ext})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rt = scim.get("/ResourceTypes/Group").await.body;
    assert_eq!(
        rt["schemaExtensions"][0]["schema"],
        "urn:acme:params:scim:schemas:extension:cost:2.0:Group",
        "{rt}"
    );
    let other = app.scim_for_new_tenant("b").await;
    assert_eq!(other.get("/Schemas").await.body["totalResults"], 3);
    app.stop().await;
}

async fn invalid_extension_schemas_are_422(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let mut not_urn = badge_schema();
    not_urn["id"] = json!("badge");
    let mut reserved = badge_schema();
    reserved["id"] = json!(ENTERPRISE_URN);
    let mut ietf = badge_schema();
    ietf["id"] = json!("urn:ietf:params:scim:schemas:extension:badge:2.0:User");
    let mut bad_name = badge_schema();
    bad_name["attributes"][0]["name"] = json!("1badge");
    let mut bad_type = badge_schema();
    bad_type["attributes"][0]["type"] = json!("float");
    let mut no_subs = badge_schema();
    no_subs["attributes"][1]["subAttributes"] = json!([]);
    let mut duplicate = badge_schema();
    duplicate["attributes"][1]["name"] = json!("BADGENUMBER");
    for (what, body) in [
        (
            "not a URN",
            json!({"resource_type": "User", "schema": not_urn}),
        ),
        (
            "reserved",
            json!({"resource_type": "User", "schema": reserved}),
        ),
        (
            "IETF namespace",
            json!({"resource_type": "User", "schema": ietf}),
        ),
        (
            "attribute name",
            json!({"resource_type": "User", "schema": bad_name}),
        ),
        (
            "attribute type",
            json!({"resource_type": "User", "schema": bad_type}),
        ),
        (
            "complex without subAttributes",
            json!({"resource_type": "User", "schema": no_subs}),
        ),
        (
            "duplicate attribute",
            json!({"resource_type": "User", "schema": duplicate}),
        ),
        (
            "resource type",
            json!({"resource_type": "Device", "schema": badge_schema()}),
        ),
        (
            "no attributes",
            json!({"resource_type": "User", "schema": {"id": BADGE_URN}}),
        ),
    ] {
        let (status, resp) = rest(
            &app,
            Method::PUT,
            "/api/v1/tenants/default/scim-schemas",
            Some(&body),
        )
        .await;
        assert_eq!(status, 422, "{what}: {resp}");
    }
    let (_, list) = rest(
        &app,
        Method::GET,
        "/api/v1/tenants/default/scim-schemas",
        None,
    )
    .await;
    assert_eq!(list["data"], json!([]), "{list}");
    assert_eq!(scim.get("/Schemas").await.body["totalResults"], 3);
    app.stop().await;
}
