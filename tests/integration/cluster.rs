//! Two idhub nodes on one PostgreSQL (SQLite is single-node): what one node writes, the other
//! reads; a change through either node reaches the other's caches through NOTIFY within a
//! second; revocations and deactivations reach every node; concurrent membership changes
//! spread over both nodes lose nothing.

use crate::admin_auth::{admin_tokens, get};
use crate::harness::{Scim, TestApp, eventually, postgres};
use serde_json::{Value, json};
use std::time::Duration;

/// The staleness bound of ordinary cached data across nodes.
const WITHIN: Duration = Duration::from_secs(1);

fn patch_op(op: &str, path: &str, value: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": op, "path": path, "value": value }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_state_and_invalidate_each_others_caches() {
    let Some(b) = postgres() else { return };
    let public = [("IDHUB_PUBLIC_URL", "https://idhub.example")];
    let a = TestApp::spawn_with(&b, &public).await;
    let node_b = a.second_node(&public).await;
    let token = a.scim_token("default").await;
    let on_a = Scim {
        app: &a,
        token: token.clone(),
    };
    let on_b = Scim {
        app: &node_b,
        token: token.clone(),
    };

    // Created through A, read through B (now cached on both).
    let uid = on_a
        .create_user("ada", json!({ "displayName": "Ada" }))
        .await;
    assert_eq!(
        on_b.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Ada"
    );
    assert_eq!(
        on_a.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Ada"
    );
    // A PATCH through B reaches A's cache, and one through A reaches B's.
    let r = on_b
        .patch(
            &format!("/Users/{uid}"),
            &patch_op("replace", "displayName", json!("Ada B")),
        )
        .await;
    assert_eq!(r.status, 200);
    eventually("A sees B's change", WITHIN, || async {
        (on_a.get(&format!("/Users/{uid}")).await.body["displayName"] == "Ada B").then_some(())
    })
    .await;
    let r = on_a
        .patch(
            &format!("/Users/{uid}"),
            &patch_op("replace", "displayName", json!("Ada A")),
        )
        .await;
    assert_eq!(r.status, 200);
    eventually("B sees A's change", WITHIN, || async {
        (on_b.get(&format!("/Users/{uid}")).await.body["displayName"] == "Ada A").then_some(())
    })
    .await;

    // Concurrent membership PATCHes on one group, spread over both nodes, lose nothing.
    let gid = on_a.create_group("Everyone", &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(on_a.create_user(&format!("member{i}"), json!({})).await);
    }
    let mut tasks = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            node_b.base.clone()
        };
        let (token, gid, id) = (token.clone(), gid.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .patch(format!("{base}/scim/v2/Groups/{gid}"))
                .bearer_auth(token)
                .header("content-type", "application/scim+json")
                .json(&patch_op("add", "members", json!([{ "value": id }])))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 204, "PATCH answered {s}");
    }
    for node in [&on_a, &on_b] {
        let members = eventually("every membership on both nodes", WITHIN, || async {
            let g = node.get(&format!("/Groups/{gid}")).await;
            let n = g.body["members"].as_array().map_or(0, Vec::len);
            (n == 20).then_some(n)
        })
        .await;
        assert_eq!(members, 20);
    }

    // A SCIM token revoked through A stops working on B.
    let t: Value = a
        .admin(a.client.get(a.url("/api/v1/tenants/default/scim-tokens")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token_id = t["data"][0]["id"].as_str().unwrap().to_owned();
    let r = a
        .admin(
            a.client
                .delete(a.url(&format!("/api/v1/tenants/default/scim-tokens/{token_id}"))),
        )
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "revoke: {}", r.status());
    eventually("B refuses the revoked SCIM token", WITHIN, || async {
        (on_b.get(&format!("/Users/{uid}")).await.status == 401).then_some(())
    })
    .await;

    // A session revoked through A stops working on B; so does a deactivated user's.
    let admin = admin_tokens(&node_b).await;
    assert_eq!(
        get(&node_b, &admin.access, "/api/v1/me").await.status(),
        200
    );
    let r = a
        .client
        .post(a.url("/api/v1/auth/logout"))
        .bearer_auth(&admin.access)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    eventually("B refuses the revoked session", WITHIN, || async {
        (get(&node_b, &admin.access, "/api/v1/me").await.status() == 401).then_some(())
    })
    .await;

    let op = admin_tokens(&a).await;
    let r = a
        .client
        .post(a.url("/api/v1/users"))
        .bearer_auth(&op.access)
        .json(&json!({ "user_name": "viewer1", "password": "viewer-password-1" }))
        .send()
        .await
        .unwrap();
    let viewer_id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = crate::admin_auth::login_ok(&node_b, None, "viewer1", "viewer-password-1").await;
    assert_eq!(
        get(&node_b, &viewer.access, "/api/v1/me").await.status(),
        200
    );
    let r = a
        .client
        .patch(a.url(&format!("/api/v1/users/{viewer_id}")))
        .bearer_auth(&op.access)
        .json(&json!({ "active": false }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    eventually("B refuses the deactivated user", WITHIN, || async {
        (get(&node_b, &viewer.access, "/api/v1/me").await.status() == 401).then_some(())
    })
    .await;

    node_b.stop().await;
    a.stop().await;
}
