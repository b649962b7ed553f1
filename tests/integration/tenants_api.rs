//! `/api/v1/tenants`: the list convention, operator authentication, validation, conflicts.

use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use idhub::model::{Actor, NewUser};
use serde_json::{Value, json};

backend_tests!(
    list_pages_and_searches,
    requires_operator_credentials,
    create_validates_and_refuses_duplicates,
    update_changes_settings_and_honours_if_match,
);

async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.admin(app.client.post(app.url("/api/v1/tenants")))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn list_pages_and_searches(b: Backend) {
    let app = TestApp::spawn(&b).await;
    for (slug, name) in [
        ("alpha", "Alpha Inc"),
        ("beta", "Beta 50%_off"),
        ("gamma", "Gamma"),
    ] {
        let r = create(&app, json!({"slug": slug, "display_name": name})).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers()["location"], format!("/api/v1/tenants/{slug}"));
    }
    let page: Value = app
        .admin(app.client.get(app.url("/api/v1/tenants?page=2&limit=2")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 4);
    assert_eq!(page["page"], 2);
    assert_eq!(page["limit"], 2);
    let slugs: Vec<&str> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["default", "gamma"]);

    let defaults: Value = app
        .admin(app.client.get(app.url("/api/v1/tenants")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(defaults["page"], 1);
    assert_eq!(defaults["limit"], 20);
    assert_eq!(defaults["data"].as_array().unwrap().len(), 4);

    // LIKE wildcards in the search term are literal.
    let found: Value = app
        .admin(
            app.client
                .get(app.url("/api/v1/tenants"))
                .query(&[("search", "50%_")]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["total"], 1);
    assert_eq!(found["data"][0]["slug"], "beta");
    let none: Value = app
        .admin(
            app.client
                .get(app.url("/api/v1/tenants"))
                .query(&[("search", "%%")]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["total"], 0);
    let underscore: Value = app
        .admin(
            app.client
                .get(app.url("/api/v1/tenants"))
                .query(&[("search", "_")]),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(underscore["total"], 1);

    for bad in ["page=0", "limit=0", "limit=201", "page=x"] {
        let r = app
            .admin(app.client.get(app.url(&format!("/api/v1/tenants?{bad}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().is_some(), "{bad}");
    }
    app.stop().await;
}

async fn requires_operator_credentials(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app
        .client
        .get(app.url("/api/v1/tenants"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");

    let r = app
        .client
        .get(app.url("/api/v1/tenants"))
        .basic_auth("admin", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .client
        .get(app.url("/api/v1/tenants"))
        .basic_auth("nobody", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // An administrator without the superadmin role is authenticated but not allowed.
    let ts = app.store.tenant(app.default_tenant.clone());
    let u = ts
        .create_user(
            &Actor::system(),
            NewUser {
                user_name: "viewer".into(),
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let hash = idhub::auth::password::hash("viewer-password-1".into())
        .await
        .unwrap();
    ts.set_password_hash(&Actor::system(), &u.id, &hash)
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/api/v1/tenants"))
        .basic_auth("viewer", Some("viewer-password-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "forbidden");
    app.stop().await;
}

async fn create_validates_and_refuses_duplicates(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = create(
        &app,
        json!({"slug": "acme", "display_name": "Acme", "hostnames": ["sso.acme.test"]}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["hostnames"], json!(["sso.acme.test"]));
    assert_eq!(t["settings"]["scim_profile"], "lenient");

    let r = create(&app, json!({"slug": "acme", "display_name": "Again"})).await;
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "conflict");
    assert_eq!(body["details"]["constraint"], "tenants_slug_key");

    let r = create(
        &app,
        json!({"slug": "other", "display_name": "Other", "hostnames": ["SSO.acme.test"]}),
    )
    .await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["constraint"],
        "tenant_hostnames_pkey"
    );
    // The failed creation left nothing behind: no tenant "other".
    assert!(app.store.tenant_by_slug("other").await.unwrap().is_none());

    let r = create(&app, json!({"slug": "Bad Slug", "display_name": "x"})).await;
    assert_eq!(r.status(), 422);
    assert_eq!(r.json::<Value>().await.unwrap()["details"]["field"], "slug");
    let r = create(
        &app,
        json!({"slug": "ok", "display_name": "x", "hostnames": ["not a host"]}),
    )
    .await;
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["field"],
        "hostnames"
    );
    let r = create(&app, json!({"slug": "ok"})).await;
    assert_eq!(r.status(), 400);
    let r = create(
        &app,
        json!({"slug": "ok", "display_name": "x", "surprise": 1}),
    )
    .await;
    assert_eq!(r.status(), 400);
    for wrong_type in [
        json!({"slug": 5, "display_name": "x"}),
        json!({"slug": "ok", "display_name": true}),
        json!({"slug": "ok", "display_name": "x", "hostnames": [1]}),
    ] {
        let r = create(&app, wrong_type.clone()).await;
        assert_eq!(r.status(), 400, "{wrong_type}");
        assert!(
            r.json::<Value>().await.unwrap()["message"]
                .as_str()
                .is_some()
        );
    }
    let r = create(&app, json!({"slug": "ok", "display_name": "x".repeat(201)})).await;
    assert_eq!(r.status(), 400);
    assert!(app.store.tenant_by_slug("ok").await.unwrap().is_none());
    app.stop().await;
}

async fn update_changes_settings_and_honours_if_match(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let t: Value = create(&app, json!({"slug": "acme", "display_name": "Acme"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["version"], 1);
    let r = app
        .admin(app.client.patch(app.url("/api/v1/tenants/acme")))
        .header("If-Match", "W/\"1\"")
        .json(&json!({"display_name": "Acme Corp", "settings": {"scim_profile": "entra", "soft_delete": true}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["display_name"], "Acme Corp");
    assert_eq!(t["settings"]["scim_profile"], "entra");
    assert_eq!(t["settings"]["soft_delete"], true);
    assert_eq!(t["version"], 2);

    let r = app
        .admin(app.client.patch(app.url("/api/v1/tenants/acme")))
        .header("If-Match", "W/\"1\"")
        .json(&json!({"display_name": "Stale"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 412);
    let r = app
        .admin(app.client.patch(app.url("/api/v1/tenants/acme")))
        .json(&json!({"settings": {"scim_profile": "bogus"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        r.json::<Value>().await.unwrap()["details"]["field"],
        "settings.scim_profile"
    );
    let r = app
        .admin(app.client.patch(app.url("/api/v1/tenants/nope")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let stored = app.store.tenant_by_slug("acme").await.unwrap().unwrap();
    assert_eq!(stored.display_name, "Acme Corp");
    assert_eq!(stored.version, 2);
    app.stop().await;
}
