//! Two idhub nodes on one PostgreSQL (SQLite is single-node): what one node writes, the other
//! reads; a write is answered only once no node serves the old state any more, so a change
//! through either node — a PATCH, a revoked token or session, a deactivated user — is what the
//! other node answers with on the very next request; concurrent membership changes spread
//! over both nodes lose nothing; a node that loses its notification connection stops serving
//! from its caches until it has rejoined, and the other node does not wait for it meanwhile.

use crate::admin_auth::{admin_tokens, get};
use crate::harness::{ADMIN_PASSWORD, Scim, TestApp, eventually, postgres};
use crate::saml::{Sso, post_saml_response};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long the nodes of the staleness tests sit on each other's invalidations.
const SLOW_APPLY: &str = "150";

fn patch_op(op: &str, path: &str, value: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{ "op": op, "path": path, "value": value }],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_state_and_invalidate_each_others_caches() {
    let Some(b) = postgres() else { return };
    // Both nodes sit on each other's invalidations for a while: only a write that waits for
    // the other node's acknowledgement can pass the "next request" checks below.
    let public = [
        ("IDHUB_PUBLIC_URL", "https://idhub.example"),
        ("IDHUB_CLUSTER_APPLY_DELAY_MS", SLOW_APPLY),
    ];
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
    assert_eq!(
        on_a.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Ada B",
        "A serves B's change on the next request"
    );
    let r = on_a
        .patch(
            &format!("/Users/{uid}"),
            &patch_op("replace", "displayName", json!("Ada A")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        on_b.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Ada A",
        "B serves A's change on the next request"
    );

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
        let g = node.get(&format!("/Groups/{gid}")).await;
        assert_eq!(g.body["members"].as_array().map_or(0, Vec::len), 20);
    }

    // A SCIM token revoked through A stops working on B.
    revoke_default_scim_token(&a.base).await;
    assert_eq!(
        on_b.get(&format!("/Users/{uid}")).await.status,
        401,
        "B refuses the revoked SCIM token on the next request"
    );

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
    assert_eq!(
        get(&node_b, &admin.access, "/api/v1/me").await.status(),
        401,
        "B refuses the revoked session on the next request"
    );

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
    assert_eq!(
        get(&node_b, &viewer.access, "/api/v1/me").await.status(),
        401,
        "B refuses the deactivated user on the next request"
    );

    // A refresh token presented twice through A revokes its session on B as well.
    let s = admin_tokens(&node_b).await;
    assert_eq!(get(&node_b, &s.access, "/api/v1/me").await.status(), 200);
    let refresh = |t: String| {
        let a = &a;
        async move {
            a.client
                .post(a.url("/api/v1/auth/refresh"))
                .json(&json!({ "refresh_token": t }))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(refresh(s.refresh.clone()).await, 200);
    assert_eq!(refresh(s.refresh.clone()).await, 401, "reuse");
    assert_eq!(
        get(&node_b, &s.access, "/api/v1/me").await.status(),
        401,
        "B refuses the session revoked by refresh-token reuse on the next request"
    );

    // Signing keys rotated through A: B signs with the new key from the next sign-in on.
    let r = a
        .client
        .post(a.url("/api/v1/signing-keys/rotate"))
        .bearer_auth(&op.access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kid = r.json::<Value>().await.unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let fresh = admin_tokens(&node_b).await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            fresh.access.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], kid.as_str(), "B signs with A's new key");

    node_b.stop().await;
    a.stop().await;
}

/// Whether `node` holds `uid` in its user cache.
async fn cached(node: &TestApp, uid: &str) -> bool {
    let key = (node.default_tenant.clone(), uid.to_owned());
    node.store.caches().users.get(&key).await.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_loses_its_listener_stops_caching_and_rejoins() {
    let Some(b) = postgres() else { return };
    let a = TestApp::spawn_with(&b, &[]).await;
    let node_b = a.second_node(&[]).await;
    let token = a.scim_token("default").await;
    let on_a = Scim {
        app: &a,
        token: token.clone(),
    };
    let on_b = Scim {
        app: &node_b,
        token: token.clone(),
    };
    let uid = on_a
        .create_user("grace", json!({ "displayName": "Grace" }))
        .await;
    assert_eq!(on_b.get(&format!("/Users/{uid}")).await.status, 200);
    assert!(cached(&node_b, &uid).await, "a joined node caches");

    // Cut B's notification connection, as a network fault or an operator would.
    let pg = sqlx::PgPool::connect(&a.db_url).await.unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("idhub-node:{}", node_b.store.node_id()))
    .fetch_all(&pg)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "B had one listening connection");

    // A's write does not hang on the node it can no longer reach …
    let started = Instant::now();
    let r = on_a
        .patch(
            &format!("/Users/{uid}"),
            &patch_op("replace", "displayName", json!("Grace Hopper")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        started.elapsed() < idhub::store::peers::GIVE_UP,
        "A waited {:?} for a peer that no longer listens",
        started.elapsed()
    );
    // … and B, unable to hear A, has dropped its caches: it answers from the database.
    assert_eq!(
        on_b.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Grace Hopper"
    );

    // B reconnects, rejoins, and caches again; from then on A's writes wait for it again.
    eventually(
        "B rejoins and caches again",
        Duration::from_secs(10),
        || async {
            let r = on_b.get(&format!("/Users/{uid}")).await;
            assert_eq!(r.body["displayName"], "Grace Hopper");
            cached(&node_b, &uid).await.then_some(())
        },
    )
    .await;
    assert_eq!(a.store.peers().peer_count(), 1, "A knows B again");
    let r = on_a
        .patch(
            &format!("/Users/{uid}"),
            &patch_op("replace", "displayName", json!("Rear Admiral Hopper")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        on_b.get(&format!("/Users/{uid}")).await.body["displayName"],
        "Rear Admiral Hopper"
    );

    // A node that stops says so: the other one stops waiting for it at once.
    node_b.stop().await;
    eventually(
        "A forgets the departed node",
        Duration::from_secs(5),
        || async { (a.store.peers().peer_count() == 0).then_some(()) },
    )
    .await;
    a.stop().await;
}

/// A node killed after a commit but before the batch carrying its notification went out
/// (held here with `cluster_notify_delay_ms`) never tells the others about that write. They
/// notice that it no longer listens and drop everything they cache, so its last write is
/// what every node serves within about a second (`cluster::watch_peers`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_before_announcing_its_write_leaves_no_stale_cache_behind() {
    let Some(b) = postgres() else { return };
    let a = TestApp::spawn_with(&b, &[]).await;
    let token = a.scim_token("default").await;
    let on_a = Scim {
        app: &a,
        token: token.clone(),
    };
    let uid = on_a
        .create_user("linus", json!({ "displayName": "Before" }))
        .await;
    let path = format!("/Users/{uid}");
    assert_eq!(on_a.get(&path).await.body["displayName"], "Before");
    assert!(cached(&a, &uid).await, "A caches the user");

    // Node X: the real binary in its own process, sitting on its own notifications.
    let mut x = NodeProcess::start(&a.db_url, &[("IDHUB_CLUSTER_NOTIFY_DELAY_MS", "60000")]).await;
    eventually("A knows X", Duration::from_secs(10), || async {
        (a.store.peers().peer_count() == 1).then_some(())
    })
    .await;

    // A PATCH through X commits; its notification stays in X's queue.
    let url = x.url(&format!("/scim/v2{path}"));
    let client = reqwest::Client::new();
    let patch = tokio::spawn(
        client
            .patch(&url)
            .bearer_auth(&token)
            .json(&patch_op("replace", "displayName", json!("After")))
            .send(),
    );
    eventually(
        "X has committed the PATCH",
        Duration::from_secs(10),
        || async {
            let r = client.get(&url).bearer_auth(&token).send().await.ok()?;
            let body: Value = r.json().await.ok()?;
            (body["displayName"] == "After").then_some(())
        },
    )
    .await;
    assert_eq!(
        on_a.get(&path).await.body["displayName"],
        "Before",
        "A has not heard of X's write yet (the window this test is about)"
    );

    // X dies inside that window. A notices that X no longer listens and drops its caches.
    x.kill();
    eventually(
        "A serves X's last write",
        Duration::from_secs(5),
        || async { (on_a.get(&path).await.body["displayName"] == "After").then_some(()) },
    )
    .await;
    assert_eq!(a.store.peers().peer_count(), 0, "A forgot X");
    patch.abort();
    a.stop().await;
}

/// The id of the default tenant's (only) SCIM token, listed through the REST API of the node
/// at `base` as the bootstrap administrator.
async fn default_scim_token_id(base: &str) -> String {
    let listed: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/tenants/default/scim-tokens"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    listed["data"][0]["id"].as_str().unwrap().to_owned()
}

/// Revokes the default tenant's (only) SCIM token through the REST API of the node at `base`.
async fn revoke_default_scim_token(base: &str) {
    let id = default_scim_token_id(base).await;
    let r = reqwest::Client::new()
        .delete(format!("{base}/api/v1/tenants/default/scim-tokens/{id}"))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "revoke: {}", r.status());
}

/// An idhub node as its own OS process (the release-shaped binary), listening on an
/// ephemeral loopback port. Killed when dropped.
struct NodeProcess {
    child: std::process::Child,
    base: String,
}

impl NodeProcess {
    /// Starts `idhub serve` on `db_url` with `extra` environment, and waits for its banner.
    async fn start(db_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_idhub"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("IDHUB_DATABASE_URL", db_url)
            .env("IDHUB_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env(
                "IDHUB_SECRET_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )
            .envs(extra.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        // Reads the banner for the address, then drains the rest of the node's output.
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = addr_tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr =
            tokio::task::spawn_blocking(move || addr_rx.recv_timeout(Duration::from_secs(30)))
                .await
                .unwrap()
                .expect("the node prints where it listens");
        Self {
            child,
            base: format!("http://{addr}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Two idhub processes on one PostgreSQL database, each with its own caches, pools and
/// notification connection (the in-process nodes of the tests above share a process): a user
/// created through P reads through Q; a PATCH through Q is what P answers with next, though P
/// had cached the old state; a token revoked through P is refused by Q on the next request;
/// a SAML assertion consumed through P is a replay on Q; concurrent member PATCHes spread
/// over both lose nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_idhub_processes_on_one_database() {
    let Some(b) = postgres() else { return };
    // Nodes behind one load balancer share one public URL (the SAML audience and ACS).
    let public = [("IDHUB_PUBLIC_URL", "https://idhub.example")];
    // The in-process app creates the database, a SCIM token and a SAML connection.
    let setup = TestApp::spawn_with(&b, &public).await;
    let token = setup.scim_token("default").await;
    let sso = Sso::new(&setup, json!({ "allow_idp_initiated": true })).await;
    let p = NodeProcess::start(&setup.db_url, &public).await;
    let q = NodeProcess::start(&setup.db_url, &public).await;
    eventually(
        "the nodes know each other",
        Duration::from_secs(10),
        || async { (setup.store.peers().peer_count() == 2).then_some(()) },
    )
    .await;
    let client = reqwest::Client::new();
    let scim = |node: &NodeProcess, path: &str| node.url(&format!("/scim/v2{path}"));
    // POSTs a resource and returns its id (201 required).
    let create = |url: String, body: Value| {
        let (client, token) = (client.clone(), token.clone());
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let get = |url: String, token: String| {
        let client = client.clone();
        async move {
            let r = client.get(url).bearer_auth(token).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };

    // Created through P, read through Q.
    let uid = create(
        scim(&p, "/Users"),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "grace@example.com",
            "displayName": "Grace",
        }),
    )
    .await;
    let path = format!("/Users/{uid}");
    let (status, body) = get(scim(&q, &path), token.clone()).await;
    assert_eq!((status, body["displayName"].clone()), (200, json!("Grace")));

    // P caches the user; a PATCH through Q is what P answers with on the next request.
    let (_, body) = get(scim(&p, &path), token.clone()).await;
    assert_eq!(body["displayName"], "Grace");
    let r = client
        .patch(scim(&q, &path))
        .bearer_auth(&token)
        .json(&patch_op("replace", "displayName", json!("Grace H")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, body) = get(scim(&p, &path), token.clone()).await;
    assert_eq!(body["displayName"], "Grace H", "P serves Q's write at once");

    // Concurrent member PATCHes on one group, alternating between the nodes, lose nothing.
    let gid = create(
        scim(&p, "/Groups"),
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": "Engineers",
        }),
    )
    .await;
    let mut members = Vec::new();
    for i in 0..16 {
        let node = if i % 2 == 0 { &p } else { &q };
        let body = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": format!("member{i}@example.com"),
        });
        members.push(create(scim(node, "/Users"), body).await);
    }
    let tasks: Vec<_> = members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let url = scim(if i % 2 == 0 { &p } else { &q }, &format!("/Groups/{gid}"));
            let body = patch_op("add", "members", json!([{ "value": m }]));
            let (client, token) = (client.clone(), token.clone());
            tokio::spawn(async move {
                let r = client
                    .patch(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                r.status().as_u16()
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.unwrap();
        assert!(s == 200 || s == 204, "member PATCH answered {s}");
    }
    for node in [&p, &q] {
        let (_, g) = get(scim(node, &format!("/Groups/{gid}")), token.clone()).await;
        let mut held: Vec<String> = g["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect();
        held.sort();
        let mut want = members.clone();
        want.sort();
        assert_eq!(held, want, "every member on {}", node.base);
    }

    // A SAML assertion consumed through P is a replay on Q.
    let response = sso.idp.response_b64(&sso.spec("grace@example.com"));
    let acs = |node: &NodeProcess| node.url(&format!("/saml/{}/acs", sso.id));
    let (status, body) = post_saml_response(acs(&p), &response).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = post_saml_response(acs(&q), &response).await;
    assert_eq!(status, 403, "Q knows P consumed it: {body}");
    assert_eq!(body["code"], "replayed");

    // A SCIM token revoked through P is refused by Q on the next request.
    let (_, before) = get(scim(&q, &path), token.clone()).await;
    assert_eq!(before["id"], uid.as_str(), "Q accepts the token before");
    revoke_default_scim_token(&p.base).await;
    let (status, _) = get(scim(&q, &path), token.clone()).await;
    assert_eq!(
        status, 401,
        "Q refuses the revoked token on the next request"
    );

    drop((p, q));
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_revoked_from_the_cli_is_refused_by_a_running_node_at_once() {
    let Some(b) = postgres() else { return };
    let slow = [("IDHUB_CLUSTER_APPLY_DELAY_MS", SLOW_APPLY)];
    let a = TestApp::spawn_with(&b, &slow).await;
    let node_b = a.second_node(&slow).await;
    let token = a.scim_token("default").await;
    for node in [&a, &node_b] {
        let scim = Scim {
            app: node,
            token: token.clone(),
        };
        assert_eq!(scim.get("/Users").await.status, 200, "cached as valid");
    }
    let id = default_scim_token_id(&a.base).await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = a.db_url.clone();
    let out = tokio::task::spawn_blocking(move || {
        crate::cli::idhub(
            dir.path(),
            &[("IDHUB_DATABASE_URL", db_url.as_str())],
            &["scim-token", "revoke", "--tenant", "default", &id],
        )
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    for node in [&a, &node_b] {
        let scim = Scim {
            app: node,
            token: token.clone(),
        };
        assert_eq!(
            scim.get("/Users").await.status,
            401,
            "refused on the next request after the CLI returned"
        );
    }
    node_b.stop().await;
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saml_connection_deactivated_on_one_node_is_refused_by_the_other_at_once() {
    let Some(b) = postgres() else { return };
    let env = [
        ("IDHUB_PUBLIC_URL", "https://idhub.example"),
        ("IDHUB_CLUSTER_APPLY_DELAY_MS", SLOW_APPLY),
    ];
    let a = TestApp::spawn_with(&b, &env).await;
    let node_b = a.second_node(&env).await;
    let sso = crate::saml::Sso::new(&a, json!({ "allow_idp_initiated": true })).await;
    let post_to_b = |b64: String| {
        let (node_b, id) = (&node_b, sso.id.clone());
        async move {
            let r = node_b
                .client
                .post(node_b.url(&format!("/saml/{id}/acs")))
                .header("accept", "application/json")
                .form(&[("SAMLResponse", b64)])
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // B signs the user in (and caches the connection).
    let (status, body) = post_to_b(sso.idp.response_b64(&sso.spec("ada@example.com"))).await;
    assert_eq!(status, 200, "{body}");
    // Deactivated through A: B refuses the next assertion.
    sso.patch(json!({ "active": false })).await;
    let (status, body) = post_to_b(sso.idp.response_b64(&sso.spec("ada@example.com"))).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "connection_inactive");
    node_b.stop().await;
    a.stop().await;
}

/// A connection PostgreSQL terminates under a request (an operator, a failover) is a
/// transient failure, answered 503 so that clients retry; a broken statement is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_are_transient_failures() {
    let Some(b) = postgres() else { return };
    let db = crate::harness::TestDb::new(&b).await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let err = sqlx::query("SELECT pg_terminate_backend(pg_backend_pid())")
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(
        idhub::store::StoreError::Db(err).is_transient(),
        "terminated by the server"
    );
    let err = sqlx::query("SELEC 1").execute(&pool).await.unwrap_err();
    assert!(!idhub::store::StoreError::Db(err).is_transient());
}

/// The request path's read connections (kept apart from sqlx's pool, see `store::readers`):
/// one the server terminated fails its read as a transient error and is not lent again —
/// the next read opens a new connection — and closing the store closes them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_read_connections_are_replaced() {
    use idhub::model::{Actor, NewUser, Slug};
    let Some(b) = postgres() else { return };
    let db = crate::harness::TestDb::new(&b).await;
    let store = crate::store_isolation::open(&db).await;
    let sys = Actor::system();
    let t = store
        .create_tenant(&sys, &Slug::parse("acme").unwrap(), "Acme", &[])
        .await
        .unwrap();
    let ts = store.tenant(t.id.clone());
    let alice = NewUser {
        user_name: "alice".into(),
        active: true,
        ..Default::default()
    };
    let u = ts.create_user(&sys, alice).await.unwrap();
    // A read from the database (not the cache): its connection then sits idle.
    let read = |ts: idhub::store::TenantStore, id: String| async move {
        ts.get_user_fresh(&id)
            .await
            .map(|u| u.map(|u| u.user_name.clone()))
    };
    assert_eq!(
        read(ts.clone(), u.id.clone()).await.unwrap().as_deref(),
        Some("alice")
    );
    let admin = sqlx::PgPool::connect(&db.url).await.unwrap();
    let others = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let killed: Vec<bool> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT pg_terminate_backend(pid) FROM ({others}) o"
    )))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(
        !killed.is_empty() && killed.iter().all(|k| *k),
        "{killed:?}"
    );
    // The dead connection's read fails as transient (unless it sat idle long enough to be
    // pinged first and replaced); the read after it succeeds on a new connection.
    match read(ts.clone(), u.id.clone()).await {
        Ok(name) => assert_eq!(name.as_deref(), Some("alice")),
        Err(e) => assert!(e.is_transient(), "{e:?}"),
    }
    assert_eq!(
        read(ts.clone(), u.id.clone()).await.unwrap().as_deref(),
        Some("alice")
    );
    store.close().await;
    let count = format!("SELECT count(*) FROM ({others}) o");
    // (Backends exit a moment after their connection closes.)
    eventually(
        "the closed store's connections to go",
        Duration::from_secs(10),
        || {
            let admin = admin.clone();
            let count = count.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(count))
                    .fetch_one(&admin)
                    .await
                    .ok()
                    .filter(|n| *n == 0)
            }
        },
    )
    .await;
}
