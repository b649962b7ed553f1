//! SCIM Bulk over HTTP (RFC 7644 §3.7): bulkId references, failOnErrors, per-operation
//! results, limits, and operations on existing resources.

use crate::backend_tests;
use crate::harness::{Backend, Scim, ScimReply, TestApp};
use serde_json::{Value, json};

backend_tests!(
    bulk_id_reference_to_a_later_operation,
    fail_on_errors_stops_after_the_first_error,
    without_fail_on_errors_every_operation_runs,
    too_many_operations_is_413_too_many,
    payload_over_max_payload_size_is_413,
    payload_under_max_payload_size_is_accepted,
    unknown_method_or_path_fails_that_operation,
    bulk_put_patch_delete_on_existing_resources,
    unknown_bulk_id_reference_fails_with_409,
    import_batches_keep_per_operation_outcomes,
    import_batches_reuse_the_names_of_soft_deleted_users,
);

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Every case runs in a tenant of its own, so the default tenant's bootstrap operator is not
/// among the users listed.
const TENANT: &str = "acme";
/// `bulk.maxPayloadSize` advertised in ServiceProviderConfig.
const MAX_PAYLOAD: usize = 4 * 1024 * 1024;

fn bulk(ops: Value) -> Value {
    json!({"schemas": [BULK_REQUEST], "Operations": ops})
}

fn post_user(bulk_id: &str, name: &str) -> Value {
    json!({"method": "POST", "path": "/Users", "bulkId": bulk_id, "data": {"schemas": [USER], "userName": name}})
}

/// The per-operation results of a successful BulkResponse.
fn results(r: &ScimReply) -> Vec<Value> {
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([BULK_RESPONSE]), "{}", r.body);
    r.body["Operations"].as_array().unwrap().clone()
}

fn statuses(ops: &[Value]) -> Vec<String> {
    ops.iter()
        .map(|o| {
            o["status"]
                .as_str()
                .unwrap_or_else(|| panic!("status must be a string: {o}"))
                .to_owned()
        })
        .collect()
}

/// The id at the end of an operation result's `location`.
fn id_of(op: &Value) -> String {
    op["location"]
        .as_str()
        .unwrap_or_else(|| panic!("no location: {op}"))
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

fn assert_op_error(op: &Value, status: &str, scim_type: Option<&str>) {
    assert_eq!(op["status"], status, "{op}");
    let resp = &op["response"];
    assert_eq!(resp["schemas"], json!([ERROR]), "{op}");
    assert_eq!(resp["status"], status, "{op}");
    assert!(resp["detail"].is_string(), "{op}");
    if let Some(t) = scim_type {
        assert_eq!(resp["scimType"], t, "{op}");
    }
}

async fn user_names(scim: &Scim<'_>) -> Vec<String> {
    let r = scim.get("/Users?sortBy=userName").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| u["userName"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Status, content type and body text of a raw POST /Bulk.
async fn raw_bulk(scim: &Scim<'_>, body: String) -> (u16, String, String) {
    let r = scim
        .app
        .client
        .post(scim.url("/Bulk"))
        .bearer_auth(&scim.token)
        .header("Content-Type", "application/scim+json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, r.text().await.unwrap())
}

async fn bulk_id_reference_to_a_later_operation(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post("/Bulk", &bulk(json!([
            {
                "method": "POST", "path": "/Groups", "bulkId": "g1",
                "data": {"schemas": [GROUP], "displayName": "Tour Guides", "members": [{"type": "User", "value": "bulkId:u1"}]}
            },
            {
                "method": "POST", "path": "/Users", "bulkId": "u1",
                "data": {"schemas": [USER], "userName": "alice", "name": {"givenName": "Alice"}}
            }
        ])))
        .await;
    let ops = results(&r);
    assert_eq!(ops.len(), 2, "{}", r.body);
    let group_op = ops.iter().find(|o| o["bulkId"] == "g1").expect("g1 result");
    let user_op = ops.iter().find(|o| o["bulkId"] == "u1").expect("u1 result");
    for op in [group_op, user_op] {
        assert_eq!(op["method"], "POST");
        assert_eq!(op["status"], "201", "{op}");
        assert_eq!(op["version"], "W/\"1\"", "{op}");
    }
    assert!(
        group_op["location"]
            .as_str()
            .unwrap()
            .contains("/scim/v2/Groups/")
    );
    assert!(
        user_op["location"]
            .as_str()
            .unwrap()
            .contains("/scim/v2/Users/")
    );
    let gid = id_of(group_op);
    let uid = id_of(user_op);
    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.body["displayName"], "Tour Guides");
    let members = g.body["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "{}", g.body);
    assert_eq!(members[0]["value"], uid.as_str());
    assert_eq!(members[0]["type"], "User");
    let u = scim.get(&format!("/Users/{uid}")).await;
    assert_eq!(u.status, 200, "{}", u.body);
    assert_eq!(u.body["userName"], "alice");
    assert_eq!(u.body["groups"][0]["value"], gid.as_str(), "{}", u.body);
    // The user's own location and the Location a GET would give agree.
    assert_eq!(u.body["meta"]["location"], user_op["location"]);
    app.stop().await;
}

async fn fail_on_errors_stops_after_the_first_error(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    scim.create_user("taken", json!({})).await;
    let mut body = bulk(json!([
        post_user("a", "first"),
        post_user("b", "TAKEN"),
        post_user("c", "third"),
        {"method": "DELETE", "path": "/Users/00000000-0000-0000-0000-000000000000"}
    ]));
    body["failOnErrors"] = json!(1);
    let r = scim.post("/Bulk", &body).await;
    let ops = results(&r);
    assert_eq!(statuses(&ops), ["201", "409"], "{}", r.body);
    assert_eq!(ops[0]["bulkId"], "a");
    assert!(ops[0]["location"].is_string(), "{}", ops[0]);
    assert_eq!(ops[1]["bulkId"], "b");
    assert_eq!(ops[1]["method"], "POST");
    assert!(ops[1].get("location").is_none(), "{}", ops[1]);
    assert_op_error(&ops[1], "409", Some("uniqueness"));
    assert_eq!(
        user_names(&scim).await,
        ["first", "taken"],
        "nothing after the error ran"
    );

    // failOnErrors=2 tolerates one error and stops at the second.
    let mut body = bulk(json!([
        post_user("d", "taken"),
        post_user("e", "fourth"),
        {"method": "PUT", "path": "/Users/00000000-0000-0000-0000-000000000000", "data": {"schemas": [USER], "userName": "x"}},
        post_user("f", "fifth")
    ]));
    body["failOnErrors"] = json!(2);
    let r = scim.post("/Bulk", &body).await;
    let ops = results(&r);
    assert_eq!(statuses(&ops), ["409", "201", "404"], "{}", r.body);
    assert_op_error(&ops[2], "404", None);
    assert_eq!(ops[2]["method"], "PUT");
    assert_eq!(user_names(&scim).await, ["first", "fourth", "taken"]);

    // failOnErrors must be a positive integer.
    let mut body = bulk(json!([post_user("g", "never")]));
    body["failOnErrors"] = json!("one");
    let r = scim.post("/Bulk", &body).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(user_names(&scim).await, ["first", "fourth", "taken"]);
    app.stop().await;
}

async fn without_fail_on_errors_every_operation_runs(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post("/Bulk", &bulk(json!([
            post_user("a", "one"),
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "displayName": "no userName"}},
            post_user("c", "ONE"),
            {"method": "POST", "path": "/Users", "bulkId": "d", "data": {"schemas": [USER], "userName": "two", "active": "maybe"}},
            post_user("e", "three")
        ])))
        .await;
    let ops = results(&r);
    assert_eq!(
        statuses(&ops),
        ["201", "400", "409", "400", "201"],
        "{}",
        r.body
    );
    assert_op_error(&ops[1], "400", Some("invalidValue"));
    assert_op_error(&ops[2], "409", Some("uniqueness"));
    assert_op_error(&ops[3], "400", Some("invalidValue"));
    for (op, id) in ops.iter().zip(["a", "b", "c", "d", "e"]) {
        assert_eq!(op["bulkId"], id, "{op}");
        assert_eq!(op["method"], "POST", "{op}");
    }
    assert_eq!(user_names(&scim).await, ["one", "three"]);
    app.stop().await;
}

async fn too_many_operations_is_413_too_many(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let ops: Vec<Value> = (0..1001)
        .map(|i| post_user(&format!("u{i}"), &format!("user{i}")))
        .collect();
    let r = scim.post("/Bulk", &bulk(Value::Array(ops))).await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([ERROR]));
    assert_eq!(r.body["status"], "413");
    assert_eq!(r.body["scimType"], "tooMany");
    assert!(user_names(&scim).await.is_empty(), "nothing ran");
    // Exactly maxOperations is fine.
    let ops: Vec<Value> = (0..1000)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/missing-{i}")}))
        .collect();
    let r = scim.post("/Bulk", &bulk(Value::Array(ops))).await;
    let ops = results(&r);
    assert_eq!(ops.len(), 1000);
    assert!(statuses(&ops).iter().all(|s| s == "404"));
    app.stop().await;
}

/// Sends `body` to POST /Bulk over a plain socket and reads the response while the body is
/// still being written: a server may answer 413 from `Content-Length` alone and close the
/// connection before the client has written everything (which an HTTP client reports as a
/// broken pipe instead of the response). Returns status, content type and body text.
async fn bulk_over_socket(scim: &Scim<'_>, body: String) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = scim.app.base.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /scim/v2/Bulk HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        scim.token,
        body.len()
    );
    let writer = tokio::spawn(async move {
        // Errors are expected once the server has answered and closed.
        if wr.write_all(head.as_bytes()).await.is_ok() {
            let _ = wr.write_all(body.as_bytes()).await;
        }
    });
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(resp) = parse_http(&buf) {
            writer.abort();
            return resp;
        }
    }
    writer.abort();
    parse_http(&buf).unwrap_or_else(|| {
        panic!(
            "no complete HTTP response: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// A complete HTTP/1.1 response in `buf` (Content-Length or chunked body), if there is one.
fn parse_http(buf: &[u8]) -> Option<(u16, String, String)> {
    let text = String::from_utf8_lossy(buf);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let mut ct = String::new();
    let mut length = None;
    let mut chunked = false;
    for l in lines {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        match k.trim().to_ascii_lowercase().as_str() {
            "content-type" => ct = v.to_owned(),
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    if chunked {
        let mut out = String::new();
        let mut rest = rest;
        loop {
            let (size, after) = rest.split_once("\r\n")?;
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            if size == 0 {
                return Some((status, ct, out));
            }
            out.push_str(after.get(..size)?);
            rest = after.get(size + 2..)?;
        }
    }
    let n = length.unwrap_or(0);
    Some((status, ct, rest.get(..n)?.to_owned()))
}

async fn payload_over_max_payload_size_is_413(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let big = "x".repeat(MAX_PAYLOAD);
    let body = bulk(json!([
        {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": "big", "nickName": big}}
    ]))
    .to_string();
    assert!(body.len() > MAX_PAYLOAD);
    let (status, ct, text) = bulk_over_socket(&scim, body).await;
    assert_eq!(status, 413, "{text}");
    assert!(
        ct.starts_with("application/scim+json"),
        "a SCIM error (RFC 7644 §3.7.4, §3.12), not {ct:?}: {text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schemas"], json!([ERROR]), "{text}");
    assert_eq!(v["status"], "413", "{text}");
    assert!(user_names(&scim).await.is_empty());
    app.stop().await;
}

async fn payload_under_max_payload_size_is_accepted(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    // Larger than the single-request body limit (1 MiB by default), within maxPayloadSize:
    // 300 users with 6 KiB of attributes each (each value within the 8192-character limit).
    let filler = "y".repeat(6000);
    let ops: Vec<Value> = (0..300)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": [USER], "userName": format!("user{i:03}"), "nickName": filler}})
        })
        .collect();
    let body = bulk(Value::Array(ops)).to_string();
    assert!(
        body.len() > 1024 * 1024 && body.len() < MAX_PAYLOAD,
        "{}",
        body.len()
    );
    let (status, _, text) = raw_bulk(&scim, body).await;
    assert_eq!(status, 200, "{}", &text[..text.len().min(500)]);
    let v: Value = serde_json::from_str(&text).unwrap();
    let ops = v["Operations"].as_array().unwrap();
    assert_eq!(ops.len(), 300);
    assert!(ops.iter().all(|o| o["status"] == "201"));
    let r = scim.get("/Users?count=0").await;
    assert_eq!(r.body["totalResults"], 300);
    app.stop().await;
}

async fn unknown_method_or_path_fails_that_operation(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let existing = scim.create_user("existing", json!({})).await;
    let r = scim
        .post("/Bulk", &bulk(json!([
            {"method": "POST", "path": "/Widgets", "bulkId": "w1", "data": {"name": "x"}},
            post_user("u1", "ok-one"),
            {"method": "POST", "path": format!("/Users/{existing}"), "bulkId": "u2", "data": {"schemas": [USER], "userName": "x"}},
            {"method": "DELETE", "path": "/Users"},
            {"method": "PUT", "path": "/Users/a/b", "data": {"schemas": [USER], "userName": "x"}},
            post_user("u3", "ok-two")
        ])))
        .await;
    let ops = results(&r);
    assert_eq!(
        statuses(&ops),
        ["400", "201", "400", "400", "400", "201"],
        "{}",
        r.body
    );
    for i in [0, 2, 3, 4] {
        assert_op_error(&ops[i], "400", None);
    }
    assert_eq!(user_names(&scim).await, ["existing", "ok-one", "ok-two"]);

    // An unknown HTTP method fails its own operation, not the whole request.
    let r = scim
        .post("/Bulk", &bulk(json!([
            {"method": "GET", "path": format!("/Users/{existing}")},
            post_user("u4", "ok-three"),
            {"method": "FROB", "path": "/Users", "bulkId": "x1", "data": {"schemas": [USER], "userName": "frob"}}
        ])))
        .await;
    let ops = results(&r);
    assert_eq!(statuses(&ops), ["400", "201", "400"], "{}", r.body);
    assert_op_error(&ops[0], "400", None);
    assert_op_error(&ops[2], "400", None);
    assert_eq!(
        user_names(&scim).await,
        ["existing", "ok-one", "ok-three", "ok-two"]
    );
    app.stop().await;
}

async fn bulk_put_patch_delete_on_existing_resources(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let alice = scim.create_user("alice", json!({"title": "Guide"})).await;
    let bob = scim.create_user("bob", json!({})).await;
    let carol = scim.create_user("carol", json!({})).await;
    let gid = scim.create_group("Staff", &[&alice]).await;
    let version = scim.get(&format!("/Users/{alice}")).await.body["meta"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = scim
        .post("/Bulk", &bulk(json!([
            {
                "method": "PUT", "path": format!("/Users/{alice}"), "version": version,
                "data": {"schemas": [USER], "userName": "alice", "displayName": "Alice A."}
            },
            {
                "method": "PATCH", "path": format!("/Groups/{gid}"),
                "data": {"schemas": [PATCH_OP], "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": bob}]},
                    {"op": "replace", "path": "displayName", "value": "All Staff"}
                ]}
            },
            {
                "method": "PATCH", "path": format!("/Users/{bob}"),
                "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "Driver"}]}
            },
            {"method": "DELETE", "path": format!("/Users/{carol}")},
            {
                "method": "PUT", "path": format!("/Users/{alice}"), "version": version,
                "data": {"schemas": [USER], "userName": "alice", "displayName": "stale write"}
            },
            {"method": "DELETE", "path": format!("/Users/{carol}")}
        ])))
        .await;
    let ops = results(&r);
    let st = statuses(&ops);
    assert_eq!(st[0], "200", "{}", r.body);
    assert!(st[1] == "200" || st[1] == "204", "{}", r.body);
    assert_eq!(st[2], "200", "{}", r.body);
    assert_eq!(st[3], "204", "{}", r.body);
    assert_op_error(&ops[4], "412", None);
    assert_op_error(&ops[5], "404", None);
    assert_eq!(ops[0]["method"], "PUT");
    assert!(
        ops[0]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{alice}"))
    );

    let a = scim.get(&format!("/Users/{alice}")).await;
    assert_eq!(a.body["displayName"], "Alice A.");
    assert!(
        a.body.get("title").is_none(),
        "PUT replaced the user: {}",
        a.body
    );
    assert_eq!(ops[0]["version"], a.body["meta"]["version"], "{}", ops[0]);
    assert_ne!(ops[0]["version"], version.as_str());
    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.body["displayName"], "All Staff");
    let mut members: Vec<&str> = g.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    members.sort();
    let mut want = vec![alice.as_str(), bob.as_str()];
    want.sort();
    assert_eq!(members, want);
    let bb = scim.get(&format!("/Users/{bob}")).await;
    assert_eq!(bb.body["title"], "Driver");
    assert_eq!(ops[2]["version"], bb.body["meta"]["version"], "{}", ops[2]);
    assert_eq!(scim.get(&format!("/Users/{carol}")).await.status, 404);

    // bulkId references in a path: create, then patch and delete the new resource.
    let r = scim
        .post("/Bulk", &bulk(json!([
            {"method": "PATCH", "path": "/Users/bulkId:n1", "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "nickName", "value": "Newbie"}]}},
            post_user("n1", "newcomer"),
            {"method": "DELETE", "path": "/Groups/bulkId:g2"},
            {"method": "POST", "path": "/Groups", "bulkId": "g2", "data": {"schemas": [GROUP], "displayName": "Temp"}}
        ])))
        .await;
    let ops = results(&r);
    assert_eq!(statuses(&ops), ["200", "201", "204", "201"], "{}", r.body);
    let nid = id_of(&ops[1]);
    let n = scim.get(&format!("/Users/{nid}")).await;
    assert_eq!(n.body["nickName"], "Newbie");
    assert_eq!(n.body["meta"]["version"], "W/\"2\"");
    assert_eq!(
        scim.get(&format!("/Groups/{}", id_of(&ops[3])))
            .await
            .status,
        404
    );
    app.stop().await;
}

async fn unknown_bulk_id_reference_fails_with_409(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post("/Bulk", &bulk(json!([
            {
                "method": "POST", "path": "/Groups", "bulkId": "g1",
                "data": {"schemas": [GROUP], "displayName": "Dangling", "members": [{"type": "User", "value": "bulkId:nope"}]}
            },
            post_user("u1", "fine"),
            {"method": "PATCH", "path": "/Users/bulkId:missing", "data": {"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "title", "value": "x"}]}},
            // A reference to an operation that failed is unresolvable too.
            {"method": "POST", "path": "/Users", "bulkId": "bad", "data": {"schemas": [USER]}},
            {
                "method": "POST", "path": "/Groups", "bulkId": "g2",
                "data": {"schemas": [GROUP], "displayName": "Also dangling", "members": [{"value": "bulkId:bad"}]}
            }
        ])))
        .await;
    let ops = results(&r);
    let by_id = |id: &str| {
        ops.iter()
            .find(|o| o["bulkId"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no result for {id}: {}", r.body))
    };
    assert_eq!(ops.len(), 5, "{}", r.body);
    assert_op_error(&by_id("g1"), "409", None);
    assert_eq!(by_id("u1")["status"], "201");
    assert_op_error(&ops[2], "409", None);
    assert_op_error(&by_id("bad"), "400", Some("invalidValue"));
    assert_op_error(&by_id("g2"), "409", None);
    let groups = scim.get("/Groups").await;
    assert_eq!(groups.body["totalResults"], 0, "{}", groups.body);
    assert_eq!(user_names(&scim).await, ["fine"]);
    app.stop().await;
}

/// A run of plain user creations is executed as one batch, yet every operation keeps its own
/// outcome: duplicates (against the tenant or within the request) and invalid users fail alone,
/// the others are created, logged in the change log, and readable; ops after the run still
/// see the created users.
async fn import_batches_keep_per_operation_outcomes(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant("acme").await;
    scim.create_user("taken@example.com", json!({})).await;
    let mut ops: Vec<Value> = (0..300)
        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": {"schemas": [USER], "userName": format!("imp{i:03}@example.com"), "active": true}}))
        .collect();
    ops.push(json!({"method": "POST", "path": "/Users", "bulkId": "dup-tenant", "data": {"schemas": [USER], "userName": "TAKEN@example.com"}}));
    ops.push(json!({"method": "POST", "path": "/Users", "bulkId": "dup-batch", "data": {"schemas": [USER], "userName": "imp007@example.com"}}));
    ops.push(json!({"method": "POST", "path": "/Users", "bulkId": "invalid", "data": {"schemas": [USER], "userName": 5}}));
    ops.push(json!({"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"schemas": [GROUP], "displayName": "Imported", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u299"}]}}));
    let r = scim
        .post(
            "/Bulk",
            &json!({"schemas": [BULK_REQUEST], "Operations": ops}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["Operations"].as_array().unwrap();
    assert_eq!(results.len(), 304);
    let status_of = |id: &str| {
        results
            .iter()
            .find(|o| o["bulkId"] == id)
            .map(|o| o["status"].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert!((0..300).all(|i| status_of(&format!("u{i}")) == "201"));
    assert_eq!(status_of("dup-tenant"), "409");
    assert_eq!(status_of("dup-batch"), "409");
    assert_eq!(status_of("invalid"), "400");
    assert_eq!(status_of("g"), "201");
    let dup = results.iter().find(|o| o["bulkId"] == "dup-batch").unwrap();
    assert_eq!(dup["response"]["scimType"], "uniqueness");
    // Every location resolves; the list holds exactly the created users.
    let loc = results[42]["location"].as_str().unwrap();
    let id = loc.rsplit('/').next().unwrap();
    let got = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["userName"], "imp042@example.com");
    assert_eq!(scim.get("/Users?count=0").await.body["totalResults"], 301);
    let g = scim.filter("Groups", "displayName eq \"Imported\"").await;
    assert_eq!(
        g.body["Resources"][0]["members"].as_array().unwrap().len(),
        2
    );
    // One change-log entry per created resource, in the same transaction as the rows.
    let acme = app.store.tenant_by_slug("acme").await.unwrap().unwrap();
    let changes = app
        .store
        .tenant(acme.id)
        .changes_after(0, 10_000)
        .await
        .unwrap();
    let user_creates = changes
        .iter()
        .filter(|c| c.resource_type == "User" && c.operation == "create")
        .count();
    assert_eq!(user_creates, 301);
    app.stop().await;
}

/// A batch of creations gives way to soft-deleted holders of its userNames, as a single POST
/// does; live holders still refuse them.
async fn import_batches_reuse_the_names_of_soft_deleted_users(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    app.set_scim_settings(TENANT, idhub::model::ScimProfile::Lenient, true)
        .await;
    let old = scim.create_user("left@example.com", json!({})).await;
    scim.create_user("live@example.com", json!({})).await;
    assert_eq!(scim.delete(&format!("/Users/{old}")).await.status, 204);
    let ops = json!([
        post_user("a", "new@example.com"),
        post_user("b", "LEFT@example.com"),
        post_user("c", "live@example.com"),
        post_user("d", "left@example.com"),
    ]);
    let r = scim.post("/Bulk", &bulk(ops)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ops = results(&r);
    assert_eq!(statuses(&ops), ["201", "201", "409", "409"], "{}", r.body);
    let id = id_of(&ops[1]);
    assert_ne!(id, old);
    let got = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["userName"], "LEFT@example.com");
    assert_eq!(scim.get(&format!("/Users/{old}")).await.status, 404);
    let names = user_names(&scim).await;
    assert_eq!(names.len(), 3, "{names:?}");
    app.stop().await;
}
