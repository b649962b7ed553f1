//! REST administration: users and groups (the records SCIM sees), roles and permissions,
//! tenant isolation, the audit log and the pull events API, and malformed input.

use crate::admin_auth::{admin_tokens, create_user, get, grant, login_ok};
use crate::backend_tests;
use crate::harness::{Backend, TestApp, eventually};
use serde_json::{Value, json};
use std::time::Duration;

backend_tests!(
    rest_and_scim_see_the_same_users,
    groups_members_and_inherited_roles,
    custom_roles_grant_exactly_their_permissions,
    another_tenants_admin_reaches_nothing_here,
    operators_choose_a_tenant_explicitly,
    events_api_pages_the_change_log_with_a_cursor,
    malformed_input_is_a_400_or_422_never_a_500,
    deleting_a_tenant_needs_confirmation_and_removes_everything,
    tenant_admins_change_their_settings,
    membership_changes_are_events,
    token_use_is_summarised_in_the_audit_log,
);

async fn send(
    app: &TestApp,
    method: &str,
    token: &str,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut rb = app.client.request(m, app.url(path)).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    rb.send().await.unwrap()
}

async fn rest_and_scim_see_the_same_users(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let r = send(
        &app,
        "POST",
        &admin.access,
        "/api/v1/users",
        Some(json!({
            "user_name": "Jane.Doe@example.com", "email": "jane@example.com",
            "given_name": "Jane", "family_name": "Doe", "display_name": "Jane Doe",
            "external_id": "ext-1"
        })),
    )
    .await;
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let u: Value = r.json().await.unwrap();
    let id = u["id"].as_str().unwrap().to_owned();
    assert_eq!(u["given_name"], "Jane");
    assert_eq!(u["version"], etag.as_str());

    // SCIM sees the same record, with the same version.
    let scim = app.scim().await;
    let s = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(s.status, 200);
    assert_eq!(s.body["userName"], "Jane.Doe@example.com");
    assert_eq!(s.body["name"]["familyName"], "Doe");
    assert_eq!(s.body["meta"]["version"], etag.as_str());

    // A SCIM PATCH is visible over REST with a new ETag …
    let p = scim
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{"op": "replace", "path": "title", "value": "CTO"},
                                   {"op": "replace", "path": "displayName", "value": "J. Doe"}]}),
        )
        .await;
    assert_eq!(p.status, 200);
    let r = get(&app, &admin.access, &format!("/api/v1/users/{id}")).await;
    let etag2 = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag2, etag);
    assert_eq!(r.json::<Value>().await.unwrap()["display_name"], "J. Doe");

    // … and a REST change with a stale If-Match is refused.
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&admin.access)
        .header("if-match", &etag)
        .json(&json!({ "display_name": "Stale" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/users/{id}")))
        .bearer_auth(&admin.access)
        .header("if-match", &etag2)
        .json(&json!({ "display_name": "Fresh", "active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(s.body["displayName"], "Fresh");
    assert_eq!(s.body["active"], false);
    assert_eq!(
        s.body["title"], "CTO",
        "fields REST does not manage are kept"
    );

    // Uniqueness is SCIM's (case-insensitive) and answers 409.
    let r = send(
        &app,
        "POST",
        &admin.access,
        "/api/v1/users",
        Some(json!({ "user_name": "jane.doe@EXAMPLE.com" })),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "uniqueness");

    // Search and pagination.
    for i in 0..3 {
        create_user(&app, &admin.access, &format!("bulk{i}"), "bulk-password-1").await;
    }
    let page: Value = get(
        &app,
        &admin.access,
        "/api/v1/users?search=BULK&limit=2&page=2",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["total"], 3);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);

    // Delete: gone from both surfaces, and in the change log.
    let r = send(
        &app,
        "DELETE",
        &admin.access,
        &format!("/api/v1/users/{id}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(scim.get(&format!("/Users/{id}")).await.status, 404);
    assert_eq!(
        get(&app, &admin.access, &format!("/api/v1/users/{id}"))
            .await
            .status(),
        404
    );
    let changes = app
        .store
        .tenant(app.default_tenant.clone())
        .changes_after(0, 100)
        .await
        .unwrap();
    let ops: Vec<&str> = changes
        .iter()
        .filter(|c| c.resource_id == id)
        .map(|c| c.operation.as_str())
        .collect();
    assert_eq!(ops, ["create", "update", "update", "delete"]);
    app.stop().await;
}

async fn groups_members_and_inherited_roles(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let kim = create_user(&app, &admin.access, "kim", "kim-password-12").await;
    let r = send(
        &app,
        "POST",
        &admin.access,
        "/api/v1/groups",
        Some(json!({ "display_name": "Helpdesk" })),
    )
    .await;
    assert_eq!(r.status(), 201);
    let gid = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let k = login_ok(&app, None, "kim", "kim-password-12").await;
    assert_eq!(get(&app, &k.access, "/api/v1/users").await.status(), 403);

    // The group gets the viewer role; kim joins and can read users at once.
    let r = send(
        &app,
        "PUT",
        &admin.access,
        &format!("/api/v1/groups/{gid}/roles/viewer"),
        None,
    )
    .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!(["viewer"]));
    let r = send(
        &app,
        "POST",
        &admin.access,
        &format!("/api/v1/groups/{gid}/members"),
        Some(json!({ "members": [{ "id": kim }] })),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(get(&app, &k.access, "/api/v1/users").await.status(), 200);
    let roles: Value = get(&app, &admin.access, &format!("/api/v1/users/{kim}/roles"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(roles, json!({ "direct": [], "effective": ["viewer"] }));
    let members: Value = get(
        &app,
        &admin.access,
        &format!("/api/v1/groups/{gid}/members"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(members["total"], 1);
    assert_eq!(members["data"][0], json!({ "id": kim, "type": "User" }));
    // SCIM sees the membership.
    let scim = app.scim().await;
    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.body["members"][0]["value"], kim.as_str());

    // Unknown members are refused; removing kim takes the role away immediately.
    let r = send(
        &app,
        "POST",
        &admin.access,
        &format!("/api/v1/groups/{gid}/members"),
        Some(json!({ "members": [{ "id": "no-such-user" }] })),
    )
    .await;
    assert!(r.status() == 400 || r.status() == 422, "{}", r.status());
    let r = send(
        &app,
        "DELETE",
        &admin.access,
        &format!("/api/v1/groups/{gid}/members/{kim}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &k.access, "/api/v1/users").await.status(), 403);
    let r = send(
        &app,
        "DELETE",
        &admin.access,
        &format!("/api/v1/groups/{gid}/members/{kim}"),
        None,
    )
    .await;
    assert_eq!(r.status(), 404);
    // Groups never get superadmin.
    let r = send(
        &app,
        "PUT",
        &admin.access,
        &format!("/api/v1/groups/{gid}/roles/superadmin"),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    app.stop().await;
}

async fn custom_roles_grant_exactly_their_permissions(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let r = send(
        &app,
        "POST",
        &admin.access,
        "/api/v1/roles",
        Some(json!({ "name": "provisioner", "description": "writes users", "permissions": ["users.read", "users.write"] })),
    )
    .await;
    assert_eq!(r.status(), 201);
    for (body, field) in [
        (json!({ "name": "Bad Name", "permissions": [] }), "name"),
        (
            json!({ "name": "x", "permissions": ["nope"] }),
            "permissions[0]",
        ),
        (
            json!({ "name": "y", "permissions": ["tenants.manage"] }),
            "permissions[0]",
        ),
    ] {
        let r = send(&app, "POST", &admin.access, "/api/v1/roles", Some(body)).await;
        assert_eq!(r.status(), 422);
        assert_eq!(r.json::<Value>().await.unwrap()["details"]["field"], field);
    }
    let r = send(
        &app,
        "POST",
        &admin.access,
        "/api/v1/roles",
        Some(json!({ "name": "admin", "permissions": [] })),
    )
    .await;
    assert_eq!(r.status(), 409);

    let lee = create_user(&app, &admin.access, "lee", "lee-password-12").await;
    grant(&app, &admin.access, &lee, "provisioner").await;
    let l = login_ok(&app, None, "lee", "lee-password-12").await;
    let r = send(
        &app,
        "POST",
        &l.access,
        "/api/v1/users",
        Some(json!({ "user_name": "made-by-lee" })),
    )
    .await;
    assert_eq!(r.status(), 201);
    assert_eq!(get(&app, &l.access, "/api/v1/groups").await.status(), 403);
    assert_eq!(get(&app, &l.access, "/api/v1/roles").await.status(), 403);
    let check: Value = get(&app, &l.access, "/api/v1/rbac/check?permission=users.write")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(check["allowed"], true);
    assert_eq!(
        get(&app, &l.access, "/api/v1/rbac/check?permission=bogus")
            .await
            .status(),
        400
    );

    // Narrowing the role takes effect on the next request; so does deleting it.
    let r = send(
        &app,
        "PATCH",
        &admin.access,
        "/api/v1/roles/provisioner",
        Some(json!({ "permissions": ["users.read"] })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = send(
        &app,
        "POST",
        &l.access,
        "/api/v1/users",
        Some(json!({ "user_name": "second" })),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(get(&app, &l.access, "/api/v1/users").await.status(), 200);
    let r = send(
        &app,
        "DELETE",
        &admin.access,
        "/api/v1/roles/provisioner",
        None,
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(get(&app, &l.access, "/api/v1/users").await.status(), 403);
    let r = send(&app, "DELETE", &admin.access, "/api/v1/roles/viewer", None).await;
    assert_eq!(r.status(), 409);

    // Tenant admins cannot mint superadmins; the last superadmin keeps the role.
    grant(&app, &admin.access, &lee, "admin").await;
    let l = login_ok(&app, None, "lee", "lee-password-12").await;
    let r = send(
        &app,
        "PUT",
        &l.access,
        &format!("/api/v1/users/{lee}/roles/superadmin"),
        None,
    )
    .await;
    assert_eq!(r.status(), 403);
    let me: Value = get(&app, &admin.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    let r = send(
        &app,
        "DELETE",
        &admin.access,
        &format!(
            "/api/v1/users/{}/roles/superadmin",
            me["id"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(r.status(), 409);
    let catalogue: Value = get(&app, &l.access, "/api/v1/permissions")
        .await
        .json()
        .await
        .unwrap();
    assert!(catalogue.as_array().unwrap().len() >= 12);
    app.stop().await;
}

/// Sets up tenant "acme" (host acme.test) with an administrator; returns their tokens.
async fn acme_admin(app: &TestApp, operator: &str) -> crate::admin_auth::Tokens {
    let r = send(
        app,
        "POST",
        operator,
        "/api/v1/tenants",
        Some(json!({ "slug": "acme", "display_name": "Acme", "hostnames": ["acme.test"] })),
    )
    .await;
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(app.url("/api/v1/users"))
        .bearer_auth(operator)
        .header("x-idhub-tenant", "acme")
        .json(&json!({ "user_name": "root@acme", "password": "acme-password-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .client
        .put(app.url(&format!("/api/v1/users/{id}/roles/admin")))
        .bearer_auth(operator)
        .header("x-idhub-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Signing in on the default tenant's host does not find acme's user.
    assert_eq!(
        crate::admin_auth::login_on(app, None, "root@acme", "acme-password-1")
            .await
            .status(),
        401
    );
    login_ok(app, Some("acme.test"), "root@acme", "acme-password-1").await
}

async fn another_tenants_admin_reaches_nothing_here(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let op = admin_tokens(&app).await;
    let acme = acme_admin(&app, &op.access).await;
    let victim = create_user(&app, &op.access, "victim", "victim-password").await;
    let gr = send(
        &app,
        "POST",
        &op.access,
        "/api/v1/groups",
        Some(json!({ "display_name": "Default Staff" })),
    )
    .await;
    let gid = gr.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = get(&app, &acme.access, "/api/v1/me")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"], "acme");

    // Every endpoint, aimed at the default tenant's data: 403 or 404, never data.
    let default_hdr = [("x-idhub-tenant", "default")];
    let cases: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/users/{victim}"), None),
        (
            "PATCH",
            format!("/api/v1/users/{victim}"),
            Some(json!({ "display_name": "pwned" })),
        ),
        ("DELETE", format!("/api/v1/users/{victim}"), None),
        ("POST", format!("/api/v1/users/{victim}/disable"), None),
        (
            "PUT",
            format!("/api/v1/users/{victim}/password"),
            Some(json!({ "password": "new-password-123" })),
        ),
        ("PUT", format!("/api/v1/users/{victim}/roles/admin"), None),
        ("GET", format!("/api/v1/users/{victim}/roles"), None),
        ("GET", format!("/api/v1/users/{victim}/groups"), None),
        ("GET", format!("/api/v1/users/{victim}/sessions"), None),
        ("DELETE", format!("/api/v1/users/{victim}/sessions"), None),
        ("POST", format!("/api/v1/users/{victim}/unlock"), None),
        ("GET", format!("/api/v1/groups/{gid}"), None),
        (
            "PATCH",
            format!("/api/v1/groups/{gid}"),
            Some(json!({ "display_name": "x" })),
        ),
        ("DELETE", format!("/api/v1/groups/{gid}"), None),
        ("GET", format!("/api/v1/groups/{gid}/members"), None),
        (
            "POST",
            format!("/api/v1/groups/{gid}/members"),
            Some(json!({ "members": [{ "id": victim }] })),
        ),
        ("PUT", format!("/api/v1/groups/{gid}/roles/viewer"), None),
        ("GET", "/api/v1/tenants".into(), None),
        ("GET", "/api/v1/tenants/default".into(), None),
        (
            "PATCH",
            "/api/v1/tenants/default".into(),
            Some(json!({ "display_name": "x" })),
        ),
        ("GET", "/api/v1/tenants/default/scim-tokens".into(), None),
        (
            "POST",
            "/api/v1/tenants/default/scim-tokens".into(),
            Some(json!({ "name": "x" })),
        ),
        ("GET", "/api/v1/tenants/default/scim-schemas".into(), None),
        ("POST", "/api/v1/signing-keys/rotate".into(), None),
        (
            "DELETE",
            "/api/v1/tenants/default?confirm=default".into(),
            None,
        ),
    ];
    for (m, path, body) in &cases {
        for with_header in [false, true] {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let mut rb = app
                .client
                .request(method, app.url(path))
                .bearer_auth(&acme.access);
            if with_header {
                rb = rb.header(default_hdr[0].0, default_hdr[0].1);
            }
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let r = rb.send().await.unwrap();
            let s = r.status().as_u16();
            assert!(
                s == 403 || s == 404,
                "{m} {path} (header {with_header}): {s}"
            );
        }
    }
    // Lists come from acme only.
    for path in [
        "/api/v1/users",
        "/api/v1/groups",
        "/api/v1/audit",
        "/api/v1/events",
    ] {
        let v: Value = get(&app, &acme.access, path).await.json().await.unwrap();
        assert!(!v.to_string().contains(&victim), "{path}");
        assert!(!v.to_string().contains(&gid), "{path}");
    }
    // Nothing changed in the default tenant.
    let u: Value = get(&app, &op.access, &format!("/api/v1/users/{victim}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(u["active"], true);
    assert_eq!(u["display_name"], Value::Null);
    login_ok(&app, None, "victim", "victim-password").await;
    app.stop().await;
}

async fn operators_choose_a_tenant_explicitly(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let op = admin_tokens(&app).await;
    let acme = acme_admin(&app, &op.access).await;
    let acme_users: Value = get(&app, &acme.access, "/api/v1/users")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(acme_users["total"], 1);
    // Without the header an operator sees the default tenant, never acme by accident.
    let own: Value = get(&app, &op.access, "/api/v1/users")
        .await
        .json()
        .await
        .unwrap();
    assert!(!own.to_string().contains("root@acme"));
    let r = app
        .client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&op.access)
        .header("x-idhub-tenant", "acme")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total"], 1);
    assert_eq!(v["data"][0]["user_name"], "root@acme");
    let r = app
        .client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&op.access)
        .header("x-idhub-tenant", "no-such-tenant")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A tenant admin may manage their own tenant's SCIM tokens by slug.
    let r = send(
        &app,
        "POST",
        &acme.access,
        "/api/v1/tenants/acme/scim-tokens",
        Some(json!({ "name": "okta" })),
    )
    .await;
    assert_eq!(r.status(), 201);
    app.stop().await;
}

async fn events_api_pages_the_change_log_with_a_cursor(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let scim = app.scim().await;
    let a = scim.create_user("ev-a", json!({})).await;
    let bb = scim.create_user("ev-b", json!({})).await;
    let g = scim.create_group("ev-group", &[&a]).await;
    assert_eq!(scim.delete(&format!("/Users/{bb}")).await.status, 204);

    let page: Value = get(&app, &admin.access, "/api/v1/events?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let first: Vec<Value> = page["data"].as_array().unwrap().clone();
    assert!(first.len() <= 2);
    let mut all = first;
    let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let ours = |all: &[Value]| -> Vec<(String, String)> {
        all.iter()
            .filter(|e| [&a, &bb, &g].contains(&&e["resource_id"].as_str().unwrap().to_owned()))
            .map(|e| {
                (
                    e["type"].as_str().unwrap().to_owned(),
                    e["resource_id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    // Follow the cursor to the end, in pages of 2 (on PostgreSQL, until other tests'
    // transactions have ended and ours are served).
    let start = cursor.clone();
    let (rest, end) = eventually("our four events", Duration::from_secs(15), || {
        let (app, token, start) = (&app, admin.access.clone(), start.clone());
        let ours = &ours;
        async move {
            let (rest, end) = follow(app, &token, &start).await;
            let mut seen = all_first(app, &token).await;
            seen.extend(rest.iter().cloned());
            (ours(&seen).len() >= 4).then_some((rest, end))
        }
    })
    .await;
    all.extend(rest);
    cursor = end;
    let mine = ours(&all);
    assert_eq!(
        mine,
        [
            ("user.created".to_owned(), a.clone()),
            ("user.created".to_owned(), bb.clone()),
            ("group.created".to_owned(), g.clone()),
            ("user.deleted".to_owned(), bb.clone()),
        ]
    );
    // Nothing new: the same cursor comes back with no data.
    let p: Value = get(
        &app,
        &admin.access,
        &format!("/api/v1/events?after={cursor}"),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(p["data"], json!([]));
    assert_eq!(p["next_cursor"], cursor.as_str());
    // A later change appears after the cursor. (On PostgreSQL an event is served once every
    // transaction older than it has ended, cluster-wide, so other tests' transactions on the
    // same server may delay it briefly: poll.)
    scim.create_user("ev-c", json!({})).await;
    let p = eventually("the later event", Duration::from_secs(15), || {
        let (app, token, cursor) = (&app, admin.access.clone(), cursor.clone());
        async move {
            let p = events(app, &token, &format!("after={cursor}")).await;
            (!p["data"].as_array().unwrap().is_empty()).then_some(p)
        }
    })
    .await;
    assert_eq!(p["data"].as_array().unwrap().len(), 1);
    assert_eq!(p["data"][0]["type"], "user.created");

    let only: Value = get(&app, &admin.access, "/api/v1/events?types=user.deleted")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(only["data"].as_array().unwrap().len(), 1);
    assert_eq!(only["data"][0]["resource_id"], bb.as_str());
    for bad in ["after=zzz", "types=user.exploded", "limit=0", "limit=5000"] {
        let r = get(&app, &admin.access, &format!("/api/v1/events?{bad}")).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    app.stop().await;
}

async fn malformed_input_is_a_400_or_422_never_a_500(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let uid = create_user(&app, &admin.access, "target", "target-password").await;
    let endpoints: Vec<(&str, String)> = vec![
        ("POST", "/api/v1/auth/login".into()),
        ("POST", "/api/v1/auth/refresh".into()),
        ("PATCH", "/api/v1/me".into()),
        ("POST", "/api/v1/me/password".into()),
        ("POST", "/api/v1/me/tokens".into()),
        ("POST", "/api/v1/users".into()),
        ("PATCH", format!("/api/v1/users/{uid}")),
        ("PUT", format!("/api/v1/users/{uid}/password")),
        ("POST", "/api/v1/groups".into()),
        ("POST", "/api/v1/roles".into()),
        ("POST", "/api/v1/tenants".into()),
        ("PATCH", "/api/v1/tenants/default".into()),
        ("POST", "/api/v1/tenants/default/scim-tokens".into()),
    ];
    let long = "x".repeat(5000);
    let corpus: Vec<String> = vec![
        "{".into(),
        "[]".into(),
        "null".into(),
        "\"text\"".into(),
        "42".into(),
        "{\"unknown_field\": 1}".into(),
        "{\"user_name\": 5, \"username\": [], \"name\": {}, \"display_name\": false, \"password\": 1}".into(),
        format!("{{\"user_name\": \"{long}\", \"username\": \"{long}\", \"name\": \"{long}\", \"display_name\": \"{long}\", \"slug\": \"{long}\", \"password\": \"p\"}}"),
        "{\"email\": \"not-an-email\", \"user_name\": \"ok\"}".into(),
        "\u{0000}\u{ffff}".into(),
    ];
    for (m, path) in &endpoints {
        for body in &corpus {
            let method = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
            let r = app
                .client
                .request(method, app.url(path))
                .bearer_auth(&admin.access)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            assert!(
                [400, 401, 409, 415, 422].contains(&s),
                "{m} {path} with {:?}: {s}",
                body.chars().take(60).collect::<String>()
            );
            let v: Value = r.json().await.unwrap_or(Value::Null);
            assert!(v["message"].as_str().is_some(), "{m} {path}: envelope");
        }
    }
    // Bad query parameters.
    for q in [
        "/api/v1/users?page=0",
        "/api/v1/users?limit=9999",
        "/api/v1/users?page=abc",
        "/api/v1/audit?from=yesterday",
        "/api/v1/audit?outcome=maybe",
        "/api/v1/groups?limit=-1",
    ] {
        let r = get(&app, &admin.access, q).await;
        assert_eq!(r.status(), 400, "{q}");
    }
    app.stop().await;
}

async fn deleting_a_tenant_needs_confirmation_and_removes_everything(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let op = admin_tokens(&app).await;
    let acme = acme_admin(&app, &op.access).await;
    let scim = app.scim_for_new_tenant("gone").await;
    let u = scim.create_user("doomed", json!({})).await;
    assert_eq!(scim.get(&format!("/Users/{u}")).await.status, 200);
    let gone = app.store.tenant_by_slug("gone").await.unwrap().unwrap().id;
    let logs = |id: idhub::model::TenantId| {
        let ts = app.store.tenant(id);
        async move {
            let changes = ts.changes_after(0, 100).await.unwrap().len();
            let audit = ts
                .list_audit(idhub::model::PageRequest::default())
                .await
                .unwrap()
                .total;
            (changes, audit)
        }
    };
    let (changes, audit) = logs(gone.clone()).await;
    assert!(changes >= 1 && audit >= 1, "{changes} {audit}");

    let del = |path: &str| {
        app.client
            .delete(app.url(path))
            .bearer_auth(&op.access)
            .send()
    };
    assert_eq!(del("/api/v1/tenants/gone").await.unwrap().status(), 400);
    assert_eq!(
        del("/api/v1/tenants/gone?confirm=acme")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        del("/api/v1/tenants/default?confirm=default")
            .await
            .unwrap()
            .status(),
        409
    );
    // A tenant admin cannot delete even their own tenant.
    let r = app
        .client
        .delete(app.url("/api/v1/tenants/acme?confirm=acme"))
        .bearer_auth(&acme.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    assert_eq!(
        del("/api/v1/tenants/gone?confirm=gone")
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        get(&app, &op.access, "/api/v1/tenants/gone").await.status(),
        404
    );
    // Its SCIM token no longer works (even though it was cached), its data is gone, and the
    // deletion is in the operator's audit trail.
    assert_eq!(scim.get(&format!("/Users/{u}")).await.status, 401);
    assert_eq!(
        logs(gone).await,
        (0, 0),
        "its change log and audit trail are gone"
    );
    let audit: Value = get(&app, &op.access, "/api/v1/audit?action=tenant.delete")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit["total"], 1);
    assert_eq!(audit["data"][0]["details"]["slug"], "gone");
    assert_eq!(get(&app, &acme.access, "/api/v1/me").await.status(), 200);
    app.stop().await;
}

async fn tenant_admins_change_their_settings(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let op = admin_tokens(&app).await;
    let acme = acme_admin(&app, &op.access).await;
    let s: Value = get(&app, &acme.access, "/api/v1/settings")
        .await
        .json()
        .await
        .unwrap();
    let before = s.clone();
    assert_eq!(before["soft_delete"], false);
    let r = send(
        &app,
        "PATCH",
        &acme.access,
        "/api/v1/settings",
        Some(json!({ "scim_profile": "entra", "soft_delete": true })),
    )
    .await;
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["scim_profile"], "entra");
    assert_eq!(s["soft_delete"], true);
    // Operators see it on the tenant; tenant admins cannot switch maintenance on.
    let t: Value = get(&app, &op.access, "/api/v1/tenants/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["settings"]["scim_profile"], "entra");
    let r = send(
        &app,
        "PATCH",
        &acme.access,
        "/api/v1/settings",
        Some(json!({ "maintenance": true })),
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = send(
        &app,
        "PATCH",
        &acme.access,
        "/api/v1/settings",
        Some(json!({ "scim_profile": "weird" })),
    )
    .await;
    assert_eq!(r.status(), 422);
    // The default tenant's settings are untouched.
    let s: Value = get(&app, &op.access, "/api/v1/settings")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(s["scim_profile"], before["scim_profile"]);
    assert_eq!(s["soft_delete"], false);
    app.stop().await;
}

async fn membership_changes_are_events(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let scim = app.scim().await;
    let u1 = scim.create_user("mem-1", json!({})).await;
    let u2 = scim.create_user("mem-2", json!({})).await;
    let g = scim.create_group("mem-group", &[&u1]).await;
    let patch = |ops: Value| {
        let path = format!("/Groups/{g}");
        let scim = &scim;
        async move {
            scim.patch(
                &path,
                &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops}),
            )
            .await
        }
    };
    assert!(matches!(
        patch(json!([{"op": "add", "path": "members", "value": [{"value": u2}, {"value": u1}]}]))
            .await
            .status,
        200 | 204
    ));
    assert!(matches!(
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}]))
            .await
            .status,
        200 | 204
    ));
    // Replacing the member list: u2 stays, u1 comes back.
    assert!(matches!(
        patch(
            json!([{"op": "replace", "path": "members", "value": [{"value": u2}, {"value": u1}]}])
        )
        .await
        .status,
        200 | 204
    ));
    // Deleting a user removes it from its groups.
    assert_eq!(scim.delete(&format!("/Users/{u2}")).await.status, 204);

    let got: Vec<(String, String)> =
        eventually("five membership events", Duration::from_secs(15), || {
            let (app, token) = (&app, admin.access.clone());
            async move {
                let p = events(app, &token, "types=membership.*&limit=100").await;
                let got: Vec<(String, String)> = p["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["type"].as_str().unwrap().to_owned(),
                            e["resource_id"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                (got.len() >= 5).then_some(got)
            }
        })
        .await;
    let pair = |t: &str, m: &str| (t.to_owned(), format!("{g}/{m}"));
    assert_eq!(
        got,
        [
            pair("membership.added", &u1),
            pair("membership.added", &u2),
            pair("membership.removed", &u1),
            pair("membership.added", &u1),
            pair("membership.removed", &u2),
        ]
    );
    app.stop().await;
}

async fn token_use_is_summarised_in_the_audit_log(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    let scim = app.scim().await;
    for _ in 0..7 {
        assert_eq!(scim.get("/Users?count=1").await.status, 200);
    }
    // Summaries are written every few minutes and at shutdown; write them now.
    assert!(app.store.flush_token_usage().await.unwrap() >= 1);
    let audit: Value = get(&app, &admin.access, "/api/v1/audit?action=token.use")
        .await
        .json()
        .await
        .unwrap();
    let scim_rows: Vec<&Value> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor_type"] == "scim_token")
        .collect();
    assert_eq!(scim_rows.len(), 1, "{audit}");
    assert_eq!(scim_rows[0]["details"]["uses"], 7);
    assert_eq!(scim_rows[0]["target_type"], "Token");
    // Nothing new: nothing written.
    assert_eq!(app.store.flush_token_usage().await.unwrap(), 0);
    app.stop().await;
}

async fn events(app: &TestApp, token: &str, query: &str) -> Value {
    get(app, token, &format!("/api/v1/events?{query}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The first page of two events.
async fn all_first(app: &TestApp, token: &str) -> Vec<Value> {
    events(app, token, "limit=2").await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// Every event after `after`, following the cursor in pages of two; and the last cursor.
async fn follow(app: &TestApp, token: &str, after: &str) -> (Vec<Value>, String) {
    let (mut all, mut cursor) = (Vec::new(), after.to_owned());
    loop {
        let p = events(app, token, &format!("limit=2&after={cursor}")).await;
        all.extend(p["data"].as_array().unwrap().iter().cloned());
        cursor = p["next_cursor"].as_str().unwrap().to_owned();
        if p["has_more"] == false {
            return (all, cursor);
        }
    }
}
