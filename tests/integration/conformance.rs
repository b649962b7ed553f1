//! The SCIM conformance suite (`conformance/`) against idhub on both backends.

use crate::backend_tests;
use crate::harness::{Backend, TestApp};

backend_tests!(scim_conformance_suite);

async fn scim_conformance_suite(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let token = app.scim_token("default").await;
    let report = conformance::run(&app.url("/scim/v2"), &token).await;
    println!("{}", report.render());
    assert_eq!(report.failed(), 0, "{}", report.render());
    assert!(report.passed() >= 20, "{}", report.render());
    // The suite cleans up after itself.
    let ts = app.store.tenant(app.default_tenant.clone());
    let users = ts.list_users(Default::default(), None).await.unwrap();
    assert!(
        users.items.iter().all(|u| u.user_name == "admin"),
        "left behind: {:?}",
        users.items.iter().map(|u| &u.user_name).collect::<Vec<_>>()
    );
    app.stop().await;
}
