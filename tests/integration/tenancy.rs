//! Tenant resolution by `Host`.

use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use idhub::model::{Actor, Hostname, Slug};
use serde_json::Value;

backend_tests!(
    registered_hostname_selects_its_tenant,
    single_tenant_mode_falls_back_to_default,
    multi_tenant_mode_refuses_unknown_hosts,
);

async fn add_acme(app: &TestApp) {
    app.store
        .create_tenant(
            &Actor::system(),
            &Slug::parse("acme").unwrap(),
            "Acme Corp",
            &[Hostname::parse("login.acme.test").unwrap()],
        )
        .await
        .unwrap();
}

async fn current(app: &TestApp, host: &str) -> (u16, Value) {
    let r = app
        .client
        .get(app.url("/api/v1/tenant"))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn registered_hostname_selects_its_tenant(b: Backend) {
    let app = TestApp::spawn(&b).await;
    add_acme(&app).await;
    let (status, body) = current(&app, "login.acme.test:8443").await;
    assert_eq!(status, 200);
    assert_eq!(body["slug"], "acme");
    // Case-insensitive, as DNS is.
    let (_, body) = current(&app, "LOGIN.Acme.TEST").await;
    assert_eq!(body["slug"], "acme");
    app.stop().await;
}

async fn single_tenant_mode_falls_back_to_default(b: Backend) {
    let app = TestApp::spawn(&b).await;
    add_acme(&app).await;
    let (status, body) = current(&app, "elsewhere.test").await;
    assert_eq!(status, 200);
    assert_eq!(body["slug"], "default");
    app.stop().await;
}

async fn multi_tenant_mode_refuses_unknown_hosts(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_TENANCY_MODE", "multi")]).await;
    add_acme(&app).await;
    let (status, body) = current(&app, "elsewhere.test").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], "unknown_host");
    assert!(body["message"].is_string());
    let (status, body) = current(&app, "login.acme.test").await;
    assert_eq!(status, 200);
    assert_eq!(body["slug"], "acme");
    // A hostname added later is honoured at once (the negative cache entry is dropped).
    let acme = app.store.tenant_by_slug("acme").await.unwrap().unwrap();
    app.store
        .update_tenant(
            &Actor::system(),
            &acme.id,
            idhub::store::TenantUpdate {
                hostnames: Some(vec![
                    Hostname::parse("login.acme.test").unwrap(),
                    Hostname::parse("elsewhere.test").unwrap(),
                ]),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    let (status, body) = current(&app, "elsewhere.test").await;
    assert_eq!(status, 200);
    assert_eq!(body["slug"], "acme");
    app.stop().await;
}
