//! Webhooks: signed deliveries driven from the change log after commit, every attempt
//! visible, manual redelivery, SSRF protection, and receivers that cannot slow provisioning.

use crate::admin_auth::{admin_tokens, get};
use crate::backend_tests;
use crate::harness::{Backend, TestApp, eventually};
use poem::{EndpointExt, Route, handler, post};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

backend_tests!(
    deliveries_are_signed_recorded_and_redeliverable,
    private_targets_are_refused_by_default,
    a_hanging_receiver_does_not_slow_provisioning,
);

#[derive(Clone, Default)]
struct Received {
    calls: Arc<Mutex<Vec<(poem::http::HeaderMap, String)>>>,
    /// Answer 500 to this many requests first.
    fail_first: Arc<AtomicUsize>,
    hang: bool,
    /// When each request arrived (Unix microseconds).
    at: Arc<Mutex<Vec<i64>>>,
}

#[handler]
async fn hook(
    req: &poem::Request,
    body: String,
    poem::web::Data(r): poem::web::Data<&Received>,
) -> poem::http::StatusCode {
    if r.hang {
        std::future::pending::<()>().await;
    }
    r.at.lock().unwrap().push(idhub::model::now_micros());
    r.calls.lock().unwrap().push((req.headers().clone(), body));
    if r.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        poem::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        poem::http::StatusCode::NO_CONTENT
    }
}

/// A receiver on an ephemeral loopback port; returns its URL.
async fn receiver(r: Received) -> String {
    use poem::listener::{Acceptor, Listener};
    // Bound before it is spawned: it accepts connections as soon as this returns.
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let app = Route::new().at("/hook", post(hook)).data(r);
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    format!("http://{addr}/hook")
}

async fn deliveries(app: &TestApp, token: &str, hook_id: &str) -> Value {
    get(
        app,
        token,
        &format!("/api/v1/webhooks/{hook_id}/deliveries"),
    )
    .await
    .json()
    .await
    .unwrap()
}

/// Waits until the receiver has seen `n` requests.
async fn received(rx: &Received, n: usize) {
    eventually(
        &format!("{n} webhook requests"),
        Duration::from_secs(15),
        || async { (rx.calls.lock().unwrap().len() >= n).then_some(()) },
    )
    .await;
}

/// Waits until the newest delivery of a webhook satisfies `done`; returns the list.
async fn deliveries_until(
    app: &TestApp,
    token: &str,
    hook_id: &str,
    what: &str,
    done: fn(&Value) -> bool,
) -> Value {
    eventually(what, Duration::from_secs(15), || async {
        let d = deliveries(app, token, hook_id).await;
        done(&d["data"][0]).then_some(d)
    })
    .await
}

const FAST: [(&str, &str); 2] = [
    ("IDHUB_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("IDHUB_WEBHOOK_POLL_MS", "100"),
];

async fn deliveries_are_signed_recorded_and_redeliverable(b: Backend) {
    let app = TestApp::spawn_with(&b, &FAST).await;
    let admin = admin_tokens(&app).await;
    let rx = Received::default();
    rx.fail_first.store(1, Ordering::SeqCst);
    let url = receiver(rx.clone()).await;
    let r = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&admin.access)
        .json(&json!({ "url": url, "event_types": ["user.created"], "description": "crm" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let hook_id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed: Value = get(&app, &admin.access, "/api/v1/webhooks")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );

    let scim = app.scim().await;
    let uid = scim.create_user("hooked", json!({})).await;
    // Not subscribed: an update makes no delivery.
    scim.patch(
        &format!("/Users/{uid}"),
        &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "x"}]}),
    )
    .await;
    received(&rx, 1).await;

    // The first attempt got a 500: recorded and pending a retry.
    let d = deliveries_until(
        &app,
        &admin.access,
        &hook_id,
        "the first attempt recorded",
        |d| d["attempts"] == 1,
    )
    .await;
    assert_eq!(d["total"], 1);
    let first = &d["data"][0];
    assert_eq!(first["status"], "pending");
    assert_eq!(first["event_type"], "user.created");
    assert_eq!(first["history"][0]["status_code"], 500);
    assert_eq!(first["payload"]["data"]["id"], uid.as_str());
    let delivery_id = first["id"].as_str().unwrap().to_owned();

    // Redeliver now: succeeds, and both attempts are visible.
    let r = app
        .client
        .post(app.url(&format!(
            "/api/v1/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver"
        )))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    received(&rx, 2).await;
    let d = deliveries_until(
        &app,
        &admin.access,
        &hook_id,
        "the redelivery recorded",
        |d| d["status"] == "succeeded",
    )
    .await;
    assert_eq!(d["data"][0]["status"], "succeeded");
    assert_eq!(d["data"][0]["attempts"], 2);
    assert_eq!(d["data"][0]["history"][1]["status_code"], 204);

    // Every request is signed: HMAC-SHA256 over "t.body" with the secret.
    let calls = rx.calls.lock().unwrap().clone();
    for (headers, body) in &calls {
        let sig = headers["idhub-signature"].to_str().unwrap();
        let t: u64 = sig
            .strip_prefix("t=")
            .unwrap()
            .split(',')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sig, idhub::webhooks::signature(&secret, t, body));
        assert_ne!(sig, idhub::webhooks::signature("whsec_wrong", t, body));
        assert_eq!(headers["idhub-event-type"], "user.created");
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "user.created");
        assert_eq!(
            headers["idhub-event-id"].to_str().unwrap(),
            v["id"].as_str().unwrap()
        );
    }
    assert_eq!(calls[0].1, calls[1].1, "a redelivery sends the same event");

    // Pausing stops deliveries; deleting removes the hook.
    let r = app
        .client
        .patch(app.url(&format!("/api/v1/webhooks/{hook_id}")))
        .bearer_auth(&admin.access)
        .json(&json!({ "active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["active"], false);
    scim.create_user("while-paused", json!({})).await;
    // Deliveries are only ever created by enqueueing; a paused hook gets none from it (run
    // here directly rather than waiting for the background loop).
    app.store
        .enqueue_webhook_events(500, &idhub::webhooks::payload)
        .await
        .unwrap();
    assert_eq!(deliveries(&app, &admin.access, &hook_id).await["total"], 1);
    assert_eq!(rx.calls.lock().unwrap().len(), 2);
    let r = app
        .client
        .delete(app.url(&format!("/api/v1/webhooks/{hook_id}")))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        get(&app, &admin.access, &format!("/api/v1/webhooks/{hook_id}"))
            .await
            .status(),
        404
    );
    app.stop().await;
}

async fn private_targets_are_refused_by_default(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let admin = admin_tokens(&app).await;
    for (url, types) in [
        ("http://127.0.0.1:9/hook", json!(["user.created"])),
        ("http://169.254.169.254/latest", json!(["user.created"])),
        ("file:///etc/passwd", json!(["user.created"])),
        ("https://example.com/x", json!(["user.exploded"])),
    ] {
        let r = app
            .client
            .post(app.url("/api/v1/webhooks"))
            .bearer_auth(&admin.access)
            .json(&json!({ "url": url, "event_types": types }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{url}");
    }
    app.stop().await;
}

async fn a_hanging_receiver_does_not_slow_provisioning(b: Backend) {
    let app = TestApp::spawn_with(
        &b,
        &[FAST[0], FAST[1], ("IDHUB_WEBHOOK_TIMEOUT_SECS", "30")],
    )
    .await;
    let admin = admin_tokens(&app).await;
    let url = receiver(Received {
        hang: true,
        ..Received::default()
    })
    .await;
    let r = app
        .client
        .post(app.url("/api/v1/webhooks"))
        .bearer_auth(&admin.access)
        .json(&json!({ "url": url, "event_types": ["*"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let scim = app.scim().await;
    // Forty writes, each producing a delivery to a receiver that never answers: every write
    // still completes (the sends hold 16 slots at most, outside any transaction).
    for i in 0..40 {
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            scim.post(
                "/Users",
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("busy{i}")}),
            ),
        )
        .await
        .expect("provisioning was blocked by a webhook receiver");
        assert_eq!(r.status, 201);
    }
    app.stop().await;
}

/// Two nodes on one PostgreSQL: every delivery is sent by exactly one node, and a delivery
/// claimed by a node that then died (its claim never settled) is sent by another node once
/// the claim's lease has run out, not before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_sent_once_across_nodes_and_a_dead_nodes_claim_expires() {
    let Some(b) = crate::harness::postgres() else {
        return;
    };
    let a = TestApp::spawn_with(&b, &FAST).await;
    let node_b = a.second_node(&FAST).await;
    let admin = admin_tokens(&a).await;
    let rx = Received::default();
    let url = receiver(rx.clone()).await;
    let r = a
        .client
        .post(a.url("/api/v1/webhooks"))
        .bearer_auth(&admin.access)
        .json(&json!({ "url": url, "event_types": ["user.created"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let token = a.scim_token("default").await;
    for (i, node) in [&a, &node_b].into_iter().cycle().take(20).enumerate() {
        let scim = crate::harness::Scim {
            app: node,
            token: token.clone(),
        };
        scim.create_user(&format!("hooked{i}"), json!({})).await;
    }
    let pg = sqlx::PgPool::connect(&a.db_url).await.unwrap();
    let succeeded = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'",
        )
        .fetch_one(&pg)
        .await
        .unwrap()
    };
    eventually(
        "20 deliveries succeeded",
        Duration::from_secs(20),
        || async { (succeeded().await == 20).then_some(()) },
    )
    .await;
    let ids = |rx: &Received| {
        rx.calls
            .lock()
            .unwrap()
            .iter()
            .map(|(h, _)| h["idhub-event-id"].to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let sent = ids(&rx);
    let distinct: std::collections::HashSet<_> = sent.iter().collect();
    assert_eq!(sent.len(), 20, "each delivery sent once: {sent:?}");
    assert_eq!(distinct.len(), 20);

    // A node claims a delivery and dies before settling it: pending, claimed for 2 s.
    let lease_end = idhub::model::now_micros() + 2_000_000;
    let (delivery, event): (String, String) =
        sqlx::query_as("SELECT id, event_id FROM webhook_deliveries LIMIT 1")
            .fetch_one(&pg)
            .await
            .unwrap();
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = 0, claimed_until = $1 WHERE id = $2",
    )
    .bind(lease_end)
    .bind(&delivery)
    .execute(&pg)
    .await
    .unwrap();
    eventually(
        "the orphaned delivery is sent again",
        Duration::from_secs(15),
        || async { (rx.calls.lock().unwrap().len() == 21).then_some(()) },
    )
    .await;
    eventually("and settled", Duration::from_secs(5), || async {
        (succeeded().await == 20).then_some(())
    })
    .await;
    let at = rx.at.lock().unwrap()[20];
    assert!(
        at >= lease_end,
        "sent {} µs before the lease ended",
        lease_end - at
    );
    assert_eq!(ids(&rx)[20], event);
    assert_eq!(rx.calls.lock().unwrap().len(), 21, "sent by one node only");
    node_b.stop().await;
    a.stop().await;
}
