//! Health, metrics, request ids and the error envelope for bad requests.

use crate::backend_tests;
use crate::harness::{Backend, TestApp};
use idhub::model::Actor;
use idhub::store::TenantUpdate;
use serde_json::{Value, json};

backend_tests!(
    health_endpoints_answer_without_authentication,
    ready_reports_not_ready_in_maintenance_mode,
    request_id_is_generated_or_echoed,
    unknown_route_and_wrong_method_use_the_envelope,
    oversized_bodies_are_refused_with_413,
    non_json_bodies_are_refused,
    metrics_expose_requests_cache_and_pool,
    swagger_ui_and_spec_are_served,
    slow_requests_are_cut_off_with_503,
);

async fn health_endpoints_answer_without_authentication(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));

    let live: Value = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "alive");
    let ts = live["timestamp"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).is_ok(),
        "{ts}"
    );

    let r = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], "ok");
    let expected_backend = match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres(_) => "postgres",
    };
    assert_eq!(ready["backend"], expected_backend);

    let v: Value = app
        .client
        .get(app.url("/health/version"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"product": "idhub", "version": env!("CARGO_PKG_VERSION")})
    );
    app.stop().await;
}

async fn ready_reports_not_ready_in_maintenance_mode(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let t = app
        .store
        .tenant_by_id(&app.default_tenant)
        .await
        .unwrap()
        .unwrap();
    let mut settings = t.settings.clone();
    settings.maintenance = true;
    app.store
        .update_tenant(
            &Actor::system(),
            &t.id,
            TenantUpdate {
                settings: Some(settings),
                ..TenantUpdate::default()
            },
            None,
        )
        .await
        .unwrap();
    let r = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["maintenance"], true);
    assert_eq!(body["checks"]["database"], "ok");
    app.stop().await;
}

async fn request_id_is_generated_or_echoed(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    let generated = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "{generated}");
    let r = app
        .client
        .get(app.url("/nope"))
        .header("X-Request-Id", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    // A hostile id (too long / odd characters) is replaced, not echoed.
    let r = app
        .client
        .get(app.url("/health"))
        .header("X-Request-Id", "a b<script>")
        .send()
        .await
        .unwrap();
    assert_ne!(r.headers()["x-request-id"], "a b<script>");
    app.stop().await;
}

async fn unknown_route_and_wrong_method_use_the_envelope(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app
        .client
        .get(app.url("/no/such/route"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    assert!(body["message"].is_string());

    let r = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed");
    assert!(body["message"].is_string());
    app.stop().await;
}

async fn oversized_bodies_are_refused_with_413(b: Backend) {
    let app = TestApp::spawn_with(&b, &[("IDHUB_BODY_LIMIT_BYTES", "1024")]).await;
    let big = format!(
        "{{\"slug\":\"x\",\"display_name\":\"{}\"}}",
        "a".repeat(4096)
    );
    let r = app
        .admin(app.client.post(app.url("/api/v1/tenants")))
        .header("Content-Type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "payload_too_large"
    );

    // Streamed (chunked, no Content-Length) bodies are counted too.
    let stream = futures_stream(big.into_bytes());
    let r = app
        .admin(app.client.post(app.url("/api/v1/tenants")))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Nothing was created.
    assert_eq!(
        app.store
            .list_tenants(Default::default(), None)
            .await
            .unwrap()
            .total,
        1
    );
    app.stop().await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    futures_util::stream::iter(chunks)
}

async fn non_json_bodies_are_refused(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app
        .admin(app.client.post(app.url("/api/v1/tenants")))
        .header("Content-Type", "text/plain")
        .body("slug=acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(
        r.json::<Value>().await.unwrap()["code"],
        "unsupported_media_type"
    );

    let r = app
        .admin(app.client.post(app.url("/api/v1/tenants")))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "bad_request");
    assert!(body["message"].as_str().unwrap().len() > 5);
    assert_eq!(
        app.store
            .list_tenants(Default::default(), None)
            .await
            .unwrap()
            .total,
        1
    );
    app.stop().await;
}

async fn metrics_expose_requests_cache_and_pool(b: Backend) {
    let app = TestApp::spawn(&b).await;
    for _ in 0..3 {
        app.client.get(app.url("/health")).send().await.unwrap();
    }
    app.client
        .get(app.url("/api/v1/tenant"))
        .send()
        .await
        .unwrap();
    app.client
        .get(app.url("/api/v1/tenant"))
        .send()
        .await
        .unwrap();
    let r = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.contains(r#"idhub_http_requests_total{method="GET",route="/health",status="200"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"idhub_http_request_duration_seconds_bucket{method="GET",route="/health",status="200",le="+Inf"} 3"#), "{text}");
    assert!(
        text.contains(r#"idhub_cache_lookups_total{cache="hosts",result="hit"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"idhub_cache_lookups_total{cache="hosts",result="miss"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"idhub_db_pool_connections{state="max"} 8"#),
        "{text}"
    );
    assert!(
        text.contains(r#"idhub_db_pool_connections{state="open"}"#),
        "{text}"
    );
    app.stop().await;
}

async fn swagger_ui_and_spec_are_served(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let r = app.client.get(app.url("/swagger")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().to_lowercase().contains("swagger"));
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    assert!(spec["paths"]["/health/ready"]["get"].is_object());
    let yaml = app
        .client
        .get(app.url("/openapi.yaml"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(yaml.contains("/api/v1/tenants"));
    app.stop().await;
}

/// A client that stalls mid-body holds the request past the time limit: it is answered 503.
async fn slow_requests_are_cut_off_with_503(b: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(&b, &[("IDHUB_REQUEST_TIMEOUT_SECS", "1")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\n{\"\r\n")
        .await
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    assert!(resp.contains("\"code\":\"request_timeout\""), "{resp}");
    app.stop().await;
}
