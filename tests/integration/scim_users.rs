//! SCIM Users over HTTP (RFC 7643 §4.1, §8.3; RFC 7644 §3.3–§3.6, §3.9, §3.14): create,
//! read, replace, patch, delete, ETags, projections, the change log and audit trail, and
//! tenant extension schemas.

use crate::backend_tests;
use crate::harness::{Backend, Scim, ScimReply, TestApp, url_encode};
use idhub::model::{PageRequest, ScimProfile};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    create_full_enterprise_user_round_trips,
    password_is_hashed_and_never_returned,
    user_name_is_unique_case_insensitively,
    invalid_input_is_rejected_and_nothing_stored,
    nul_characters_are_invalid_values_not_server_errors,
    read_only_and_group_input_is_ignored,
    put_replaces_the_whole_user,
    patch_path_forms,
    patch_is_all_or_nothing,
    patch_of_read_only_or_unknown_paths_is_rejected,
    patch_keeps_a_single_primary,
    etags_and_preconditions,
    delete_removes_the_user,
    soft_delete_hides_the_user_and_frees_the_user_name,
    projection_on_every_method,
    writes_append_change_log_and_audit,
    custom_extension_schema,
    users_created_outside_scim_are_served_complete,
    every_read_sees_the_write_answered_before_it,
);

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Every case runs in a tenant of its own, so the default tenant's bootstrap operator is not
/// among the users listed.
const TENANT: &str = "acme";
const BADGE: &str = "urn:acme:params:scim:schemas:extension:badge:2.0:User";

/// The RFC 7643 §8.3 enterprise user, with `entitlements` and `roles` added so that every
/// core attribute is exercised.
fn rfc_enterprise_user() -> Value {
    json!({
        "schemas": [USER, ENTERPRISE],
        "id": "2819c223-7f76-453a-919d-413861904646",
        "externalId": "701984",
        "userName": "bjensen@example.com",
        "name": {
            "formatted": "Ms. Barbara J Jensen, III",
            "familyName": "Jensen",
            "givenName": "Barbara",
            "middleName": "Jane",
            "honorificPrefix": "Ms.",
            "honorificSuffix": "III"
        },
        "displayName": "Babs Jensen",
        "nickName": "Babs",
        "profileUrl": "https://login.example.com/bjensen",
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {
                "type": "work",
                "streetAddress": "100 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "formatted": "100 Universal City Plaza\nHollywood, CA 91608 USA",
                "primary": true
            },
            {
                "type": "home",
                "streetAddress": "456 Hollywood Blvd",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "USA",
                "formatted": "456 Hollywood Blvd\nHollywood, CA 91608 USA"
            }
        ],
        "phoneNumbers": [
            {"value": "555-555-5555", "type": "work"},
            {"value": "555-555-4444", "type": "mobile"}
        ],
        "ims": [{"value": "someaimhandle", "type": "aim"}],
        "photos": [
            {"value": "https://photos.example.com/profilephoto/72930000000Ccne/F", "type": "photo"},
            {"value": "https://photos.example.com/profilephoto/72930000000Ccne/T", "type": "thumbnail"}
        ],
        "userType": "Employee",
        "title": "Tour Guide",
        "preferredLanguage": "en-US",
        "locale": "en-US",
        "timezone": "America/Los_Angeles",
        "active": true,
        "password": "t1meMa$heen",
        "groups": [
            {
                "value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
                "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
                "display": "Tour Guides"
            }
        ],
        "entitlements": [{"value": "Tour Guide Access", "type": "building", "primary": true}],
        "roles": [{"value": "guide", "display": "Tour Guide", "type": "staff", "primary": true}],
        "x509Certificates": [
            {"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx"}
        ],
        ENTERPRISE: {
            "employeeNumber": "701984",
            "costCenter": "4130",
            "organization": "Universal Studios",
            "division": "Theme Park",
            "department": "Tour Operations",
            "manager": {
                "value": "26118915-6090-4610-87e4-49d8ca9f808d",
                "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d",
                "displayName": "John Smith"
            }
        },
        "meta": {
            "resourceType": "User",
            "created": "2010-01-23T04:56:22Z",
            "lastModified": "2011-05-13T04:42:34Z",
            "version": "W/\"3694e05e9dff591\"",
            "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"
        }
    })
}

/// Attributes of the input that are not echoed as given: readOnly ones (RFC 7643 §7), the
/// writeOnly password, and `schemas`.
const NOT_ECHOED: [&str; 5] = ["id", "meta", "password", "groups", "schemas"];

/// Asserts that every client-writable attribute of `input` is in `got` unchanged (the
/// readOnly `manager.displayName` excepted).
fn assert_same_attributes(input: &Value, got: &Value) {
    for (k, v) in input.as_object().unwrap() {
        if NOT_ECHOED.contains(&k.as_str()) {
            continue;
        }
        if k == ENTERPRISE {
            let mut want = v.clone();
            want["manager"]
                .as_object_mut()
                .unwrap()
                .remove("displayName");
            let mut have = got[ENTERPRISE].clone();
            if let Some(m) = have.get_mut("manager").and_then(Value::as_object_mut) {
                m.remove("displayName");
            }
            assert_eq!(have, want, "{k}");
            continue;
        }
        assert_eq!(&got[k], v, "attribute {k} in {got:#}");
    }
}

/// The store of the test tenant.
async fn store(app: &TestApp) -> idhub::store::TenantStore {
    let t = app.store.tenant_by_slug(TENANT).await.unwrap().unwrap();
    app.store.tenant(t.id)
}

fn assert_error(r: &ScimReply, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([ERROR]), "{}", r.body);
    assert_eq!(r.body["status"], json!(status.to_string()), "{}", r.body);
    match scim_type {
        Some(t) => assert_eq!(r.body["scimType"], t, "{}", r.body),
        None => assert!(r.body.get("scimType").is_none(), "{}", r.body),
    }
}

fn patch_body(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

async fn user_total(scim: &Scim<'_>) -> i64 {
    let r = scim.get("/Users?count=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["totalResults"].as_i64().unwrap()
}

async fn change_count(app: &TestApp) -> usize {
    store(app)
        .await
        .changes_after(0, 10_000)
        .await
        .unwrap()
        .len()
}

/// A request with a raw body, for input the JSON helpers cannot express.
async fn raw(scim: &Scim<'_>, method: Method, path: &str, body: &str) -> ScimReply {
    let r = scim
        .app
        .client
        .request(method, scim.url(path))
        .bearer_auth(&scim.token)
        .header("Content-Type", "application/scim+json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    ScimReply {
        status,
        headers,
        body,
    }
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

async fn create_full_enterprise_user_round_trips(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let input = rfc_enterprise_user();
    let r = scim.post("/Users", &input).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = &r.body;
    let id = body["id"].as_str().expect("id").to_owned();
    assert!(!id.is_empty());
    assert_ne!(
        id, "2819c223-7f76-453a-919d-413861904646",
        "readOnly id is ignored"
    );
    assert_eq!(body["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(body["meta"]["resourceType"], "User");
    assert_eq!(body["meta"]["version"], "W/\"1\"");
    assert_eq!(body["meta"]["created"], body["meta"]["lastModified"]);
    assert_ne!(body["meta"]["created"], "2010-01-23T04:56:22Z");
    let location = body["meta"]["location"].as_str().unwrap();
    assert!(
        location.ends_with(&format!("/scim/v2/Users/{id}")),
        "{location}"
    );
    assert_eq!(r.header("location").as_deref(), Some(location));
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    assert!(body.get("password").is_none(), "{body}");
    assert!(
        body.get("groups").is_none(),
        "groups input is ignored: {body}"
    );
    assert_same_attributes(&input, body);

    let g = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.header("etag").as_deref(), Some("W/\"1\""));
    assert_eq!(g.body["id"], id.as_str());
    assert_eq!(g.body["meta"], body["meta"]);
    assert_eq!(g.body["schemas"], json!([USER, ENTERPRISE]));
    assert!(g.body.get("password").is_none());
    assert_same_attributes(&input, &g.body);
    // The response to the POST and the GET describe the same resource.
    assert_eq!(&g.body, body);
    app.stop().await;
}

async fn password_is_hashed_and_never_returned(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post(
            "/Users?attributes=password,userName",
            &json!({
                "schemas": [USER], "userName": "pw", "password": "t1meMa$heen"
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.get("password").is_none(), "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let hash = store(&app)
        .await
        .password_hash(&id)
        .await
        .unwrap()
        .expect("a stored hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("t1meMa$heen"));
    for q in ["", "?attributes=password", "?attributes=password,userName"] {
        let g = scim.get(&format!("/Users/{id}{q}")).await;
        assert_eq!(g.status, 200, "{q}: {}", g.body);
        assert!(g.body.get("password").is_none(), "{q}: {}", g.body);
        assert!(!g.body.to_string().contains("t1meMa$heen"));
        assert!(!g.body.to_string().contains("argon2"));
    }
    let l = scim.get("/Users?attributes=password").await;
    assert!(!l.body.to_string().contains("argon2"), "{}", l.body);
    assert!(l.body["Resources"][0].get("password").is_none());
    // A PUT with a new password re-hashes it; one without keeps nothing in the response.
    let p = scim
        .put(
            &format!("/Users/{id}"),
            &json!({"schemas": [USER], "userName": "pw", "password": "n3w-Secret!"}),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.get("password").is_none());
    let hash2 = store(&app).await.password_hash(&id).await.unwrap().unwrap();
    assert!(hash2.starts_with("$argon2id$") && hash2 != hash);
    app.stop().await;
}

async fn user_name_is_unique_case_insensitively(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim.create_user("bjensen", json!({})).await;
    let before = change_count(&app).await;
    for name in ["bjensen", "BJensen", "BJENSEN"] {
        let r = scim
            .post(
                "/Users",
                &json!({"schemas": [USER], "userName": name, "displayName": "dup"}),
            )
            .await;
        assert_error(&r, 409, Some("uniqueness"));
    }
    assert_eq!(user_total(&scim).await, 1);
    assert_eq!(
        change_count(&app).await,
        before,
        "a refused POST stores nothing"
    );
    // Renaming another user onto the taken name is refused too.
    let other = scim.create_user("other", json!({})).await;
    let r = scim
        .put(
            &format!("/Users/{other}"),
            &json!({"schemas": [USER], "userName": "BJensen"}),
        )
        .await;
    assert_error(&r, 409, Some("uniqueness"));
    let g = scim.get(&format!("/Users/{other}")).await;
    assert_eq!(g.body["userName"], "other");
    assert_eq!(g.body["meta"]["version"], "W/\"1\"");
    let g = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(g.body["userName"], "bjensen");
    app.stop().await;
}

async fn invalid_input_is_rejected_and_nothing_stored(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let before = change_count(&app).await;
    // Required userName missing (or blank).
    for body in [
        json!({"schemas": [USER], "displayName": "No Name"}),
        json!({"schemas": [USER], "userName": null}),
        json!({"schemas": [USER], "userName": "   "}),
    ] {
        let r = scim.post("/Users", &body).await;
        assert_error(&r, 400, Some("invalidValue"));
    }
    // Wrong types.
    for body in [
        json!({"schemas": [USER], "userName": 42}),
        json!({"schemas": [USER], "userName": "t1", "active": "maybe"}),
        json!({"schemas": [USER], "userName": "t2", "name": "Barbara Jensen"}),
        json!({"schemas": [USER], "userName": "t3", "name": {"givenName": 7}}),
        json!({"schemas": [USER], "userName": "t4", "emails": [{"value": "a@b.c", "primary": "yes"}]}),
        json!({"schemas": [USER], "userName": "t5", "displayName": ["a", "b"]}),
        json!({"schemas": [USER], "userName": "t6", "x509Certificates": [{"value": "not base64!"}]}),
        json!({"schemas": [USER, ENTERPRISE], "userName": "t7", ENTERPRISE: {"department": 12}}),
    ] {
        let r = scim.post("/Users", &body).await;
        assert_error(&r, 400, Some("invalidValue"));
    }
    // A schema URN that is not a schema of the User resource type.
    let r = scim
        .post(
            "/Users",
            &json!({
                "schemas": [USER, "urn:example:params:scim:schemas:extension:nosuch:2.0:User"],
                "userName": "t8"
            }),
        )
        .await;
    assert_error(&r, 400, Some("invalidSyntax"));
    // Malformed JSON.
    for text in ["{\"schemas\": [", "not json", "{\"userName\": \"x\",}"] {
        let r = raw(&scim, Method::POST, "/Users", text).await;
        assert_error(&r, 400, Some("invalidSyntax"));
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("application/scim+json"),
            "{:?}",
            r.header("content-type")
        );
    }
    // Not an object.
    let r = scim.post("/Users", &json!(["userName", "x"])).await;
    assert_error(&r, 400, Some("invalidSyntax"));
    assert_eq!(user_total(&scim).await, 0);
    assert_eq!(
        change_count(&app).await,
        before,
        "refused POSTs store nothing"
    );
    app.stop().await;
}

async fn read_only_and_group_input_is_ignored(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let gid = scim.create_group("Real Group", &[]).await;
    let r = scim
        .post("/Users", &json!({
            "schemas": [USER],
            "id": "client-chosen-id",
            "userName": "ro",
            "meta": {"resourceType": "Group", "created": "2001-01-01T00:00:00Z", "version": "W/\"99\""},
            "groups": [{"value": gid, "display": "Real Group"}]
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "client-chosen-id");
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    assert_ne!(r.body["meta"]["created"], "2001-01-01T00:00:00Z");
    assert!(r.body.get("groups").is_none(), "{}", r.body);
    assert_eq!(scim.get("/Users/client-chosen-id").await.status, 404);
    // No membership was created from `groups`.
    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert!(g.body.get("members").is_none(), "{}", g.body);
    let u = scim.get(&format!("/Users/{id}")).await;
    assert!(u.body.get("groups").is_none(), "{}", u.body);
    // The same on PUT: id/meta/groups in the body change nothing.
    let p = scim
        .put(
            &format!("/Users/{id}"),
            &json!({
                "schemas": [USER],
                "id": "another-id",
                "userName": "ro",
                "meta": {"created": "2001-01-01T00:00:00Z"},
                "groups": [{"value": gid}]
            }),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(p.body["id"], id.as_str());
    assert_eq!(p.body["meta"]["created"], r.body["meta"]["created"]);
    assert!(p.body.get("groups").is_none(), "{}", p.body);
    app.stop().await;
}

async fn put_replaces_the_whole_user(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let created = scim.post("/Users", &rfc_enterprise_user()).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let r = scim
        .put(
            &format!("/Users/{id}"),
            &json!({
                "schemas": [USER],
                "userName": "bjensen@example.com",
                "nickName": "Barb",
                "emails": [{"value": "barb@example.org", "type": "other"}]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    assert_eq!(r.body["meta"]["created"], created.body["meta"]["created"]);
    let g = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, r.body);
    for gone in [
        "name",
        "displayName",
        "title",
        "externalId",
        "phoneNumbers",
        "addresses",
        "ims",
        "photos",
        "entitlements",
        "roles",
        "x509Certificates",
        "userType",
        "profileUrl",
        "locale",
        "timezone",
        "preferredLanguage",
        ENTERPRISE,
    ] {
        assert!(
            g.body.get(gone).is_none(),
            "{gone} survived the PUT: {}",
            g.body
        );
    }
    assert_eq!(g.body["schemas"], json!([USER]));
    assert_eq!(g.body["nickName"], "Barb");
    assert_eq!(
        g.body["emails"],
        json!([{"value": "barb@example.org", "type": "other"}])
    );
    assert_eq!(g.body["userName"], "bjensen@example.com");
    // PUT of an unknown id is 404.
    let r = scim
        .put(
            "/Users/00000000-0000-0000-0000-000000000000",
            &json!({"schemas": [USER], "userName": "x"}),
        )
        .await;
    assert_error(&r, 404, None);
    app.stop().await;
}

async fn patch_path_forms(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim
        .create_user(
            "patchy",
            json!({
                "title": "Intern",
                "name": {"familyName": "Jensen"},
                "emails": [
                    {"value": "old@example.com", "type": "work", "primary": true},
                    {"value": "home@example.org", "type": "home"}
                ]
            }),
        )
        .await;
    let path = format!("/Users/{id}");
    let r = scim
        .patch(&path, &patch_body(json!([
            {"op": "add", "path": "name.givenName", "value": "Barbara"},
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
            {"op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Tour Operations"},
            {"op": "replace", "value": {ENTERPRISE: {"costCenter": "4130"}, "displayName": "Babs"}},
            {"op": "remove", "path": "title"},
            {"op": "remove", "path": "emails[type eq \"home\"]"}
        ])))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["version"], "W/\"2\"");
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    let g = scim.get(&path).await;
    assert_eq!(g.body, r.body);
    let u = &g.body;
    assert_eq!(
        u["name"],
        json!({"familyName": "Jensen", "givenName": "Barbara"})
    );
    assert_eq!(
        u["emails"],
        json!([{"value": "new@example.com", "type": "work", "primary": true}])
    );
    assert_eq!(
        u[ENTERPRISE],
        json!({"department": "Tour Operations", "costCenter": "4130"})
    );
    assert_eq!(u["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(u["displayName"], "Babs");
    assert!(u.get("title").is_none(), "{u}");
    // replace of a whole complex attribute and of the enterprise extension by its URN path.
    let r = scim
        .patch(&path, &patch_body(json!([
            {"op": "replace", "path": "name", "value": {"givenName": "B", "familyName": "J"}},
            {"op": "replace", "path": ENTERPRISE, "value": {"department": "Sales"}},
            {"op": "add", "path": "emails", "value": [{"value": "second@example.com", "type": "home"}]}
        ])))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "B");
    assert_eq!(r.body["name"]["familyName"], "J");
    assert_eq!(r.body[ENTERPRISE]["department"], "Sales");
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 2, "{}", r.body);
    // Removing the whole extension by URN drops it from schemas.
    let r = scim
        .patch(
            &path,
            &patch_body(json!([{"op": "remove", "path": ENTERPRISE}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get(ENTERPRISE).is_none(), "{}", r.body);
    assert_eq!(r.body["schemas"], json!([USER]));
    assert_eq!(r.body["meta"]["version"], "W/\"4\"");
    // active can be switched off and on by PATCH.
    let r = scim
        .patch(
            &path,
            &patch_body(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(scim.get(&path).await.body["active"], false);
    app.stop().await;
}

async fn patch_is_all_or_nothing(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim
        .create_user("atomic", json!({"displayName": "Before", "title": "T"}))
        .await;
    let path = format!("/Users/{id}");
    let before = scim.get(&path).await.body;
    let changes = change_count(&app).await;
    for second in [
        json!({"op": "replace", "path": "nosuchattribute", "value": "x"}),
        json!({"op": "replace", "path": "active", "value": "not a boolean"}),
        json!({"op": "remove", "path": "userName"}),
        json!({"op": "frobnicate", "path": "title", "value": "x"}),
        json!({"op": "replace", "path": "id", "value": "x"}),
    ] {
        let r = scim
            .patch(
                &path,
                &patch_body(json!([
                    {"op": "replace", "path": "displayName", "value": "After"},
                    second
                ])),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert_eq!(r.body["schemas"], json!([ERROR]));
        let now = scim.get(&path).await;
        assert_eq!(now.body, before, "a failed PATCH changed the user");
        assert_eq!(now.header("etag").as_deref(), Some("W/\"1\""));
    }
    assert_eq!(change_count(&app).await, changes);
    app.stop().await;
}

async fn patch_of_read_only_or_unknown_paths_is_rejected(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim.create_user("ro-patch", json!({})).await;
    let path = format!("/Users/{id}");
    for (op, p, v) in [
        ("replace", "id", json!("other")),
        ("replace", "meta.created", json!("2001-01-01T00:00:00Z")),
        ("add", "groups", json!([{"value": "x"}])),
        ("replace", "meta", json!({"version": "W/\"9\""})),
    ] {
        let r = scim
            .patch(
                &path,
                &patch_body(json!([{"op": op, "path": p, "value": v}])),
            )
            .await;
        assert_error(&r, 400, Some("mutability"));
    }
    for p in [
        "nosuch",
        "name.nosuch",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nosuch",
    ] {
        let r = scim
            .patch(
                &path,
                &patch_body(json!([{"op": "replace", "path": p, "value": "x"}])),
            )
            .await;
        assert_error(&r, 400, Some("invalidPath"));
    }
    let r = scim
        .patch(
            "/Users/00000000-0000-0000-0000-000000000000",
            &patch_body(json!([{"op": "replace", "path": "title", "value": "x"}])),
        )
        .await;
    assert_error(&r, 404, None);
    let g = scim.get(&path).await;
    assert_eq!(g.body["meta"]["version"], "W/\"1\"");
    app.stop().await;
}

fn primaries(u: &Value, attr: &str) -> Vec<String> {
    u[attr]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["primary"] == true)
        .map(|e| e["value"].as_str().unwrap().to_owned())
        .collect()
}

async fn patch_keeps_a_single_primary(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim
        .create_user(
            "prim",
            json!({
                "emails": [
                    {"value": "work@example.com", "type": "work", "primary": true},
                    {"value": "home@example.com", "type": "home"}
                ]
            }),
        )
        .await;
    let path = format!("/Users/{id}");
    let r = scim
        .patch(&path, &patch_body(json!([
            {"op": "add", "path": "emails", "value": [{"value": "new@example.com", "type": "other", "primary": true}]}
        ])))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(primaries(&r.body, "emails"), ["new@example.com"]);
    assert_eq!(r.body["emails"].as_array().unwrap().len(), 3);
    let r = scim
        .patch(
            &path,
            &patch_body(json!([
                {"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(primaries(&r.body, "emails"), ["home@example.com"]);
    let g = scim.get(&path).await;
    assert_eq!(primaries(&g.body, "emails"), ["home@example.com"]);
    // Path-less replace carrying two primaries keeps at most one.
    let r = scim
        .patch(
            &path,
            &patch_body(json!([
                {"op": "replace", "value": {"phoneNumbers": [
                    {"value": "555-1", "type": "work", "primary": true},
                    {"value": "555-2", "type": "home", "primary": true}
                ]}}
            ])),
        )
        .await;
    if r.status == 200 {
        assert!(primaries(&r.body, "phoneNumbers").len() <= 1, "{}", r.body);
    } else {
        assert_error(&r, 400, Some("invalidValue"));
    }
    let g = scim.get(&path).await;
    if let Some(p) = g.body.get("phoneNumbers") {
        assert!(primaries(&g.body, "phoneNumbers").len() <= 1, "{p}");
    }
    app.stop().await;
}

async fn etags_and_preconditions(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim.create_user("etag", json!({"title": "One"})).await;
    let path = format!("/Users/{id}");
    // If-None-Match equal → 304, empty body, the ETag repeated.
    let r = scim
        .send(Method::GET, &path, None, &[("If-None-Match", "W/\"1\"")])
        .await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_null());
    assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
    let r = scim
        .send(Method::GET, &path, None, &[("If-None-Match", "W/\"7\"")])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");

    // Every modification changes the version.
    let put = json!({"schemas": [USER], "userName": "etag", "title": "Two"});
    let r = scim
        .send(Method::PUT, &path, Some(&put), &[("If-Match", "W/\"1\"")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
    let patch = patch_body(json!([{"op": "replace", "path": "title", "value": "Three"}]));
    let r = scim
        .send(
            Method::PATCH,
            &path,
            Some(&patch),
            &[("If-Match", "W/\"2\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("etag").as_deref(), Some("W/\"3\""));
    assert_eq!(r.body["meta"]["version"], "W/\"3\"");
    let r = scim
        .patch(
            &path,
            &patch_body(json!([{"op": "replace", "path": "title", "value": "Four"}])),
        )
        .await;
    assert_eq!(r.body["meta"]["version"], "W/\"4\"");
    let versions_seen = ["W/\"1\"", "W/\"2\"", "W/\"3\""];
    let r = scim
        .send(Method::GET, &path, None, &[("If-None-Match", "W/\"3\"")])
        .await;
    assert_eq!(r.status, 200, "a stale If-None-Match gets the resource");

    // A stale If-Match is 412 on PUT, PATCH and DELETE, and changes nothing.
    let changes = change_count(&app).await;
    for stale in versions_seen {
        let put = json!({"schemas": [USER], "userName": "etag", "title": "Stale"});
        let r = scim
            .send(Method::PUT, &path, Some(&put), &[("If-Match", stale)])
            .await;
        assert_error(&r, 412, None);
        let patch = patch_body(json!([{"op": "replace", "path": "title", "value": "Stale"}]));
        let r = scim
            .send(Method::PATCH, &path, Some(&patch), &[("If-Match", stale)])
            .await;
        assert_error(&r, 412, None);
        let r = scim
            .send(Method::DELETE, &path, None, &[("If-Match", stale)])
            .await;
        assert_error(&r, 412, None);
    }
    let g = scim.get(&path).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["title"], "Four");
    assert_eq!(g.body["meta"]["version"], "W/\"4\"");
    assert_eq!(change_count(&app).await, changes);
    // The matching ETag (also in a list, and `*`) succeeds.
    let patch = patch_body(json!([{"op": "replace", "path": "title", "value": "Five"}]));
    let r = scim
        .send(
            Method::PATCH,
            &path,
            Some(&patch),
            &[("If-Match", "W/\"1\", W/\"4\"")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["version"], "W/\"5\"");
    let put = json!({"schemas": [USER], "userName": "etag", "title": "Six"});
    let r = scim
        .send(Method::PUT, &path, Some(&put), &[("If-Match", "*")])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["meta"]["version"], "W/\"6\"");
    let r = scim
        .send(Method::DELETE, &path, None, &[("If-Match", "W/\"6\"")])
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(scim.get(&path).await.status, 404);
    app.stop().await;
}

async fn delete_removes_the_user(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim.create_user("gone", json!({})).await;
    let keep = scim.create_user("kept", json!({})).await;
    let gid = scim.create_group("G", &[&id, &keep]).await;
    let r = scim.delete(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 204);
    assert!(r.body.is_null());
    let r = scim.get(&format!("/Users/{id}")).await;
    assert_error(&r, 404, None);
    let r = scim.delete(&format!("/Users/{id}")).await;
    assert_error(&r, 404, None);
    assert_eq!(user_total(&scim).await, 1);
    // The membership went with the user.
    let g = scim.get(&format!("/Groups/{gid}")).await;
    let members: Vec<&str> = g.body["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect();
    assert_eq!(members, [keep.as_str()]);
    // The userName can be taken again.
    scim.create_user("gone", json!({})).await;
    app.stop().await;
}

async fn soft_delete_hides_the_user_and_frees_the_user_name(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    app.set_scim_settings(TENANT, ScimProfile::Lenient, true)
        .await;
    let id = scim
        .create_user("soft", json!({"externalId": "soft-1"}))
        .await;
    let other = scim.create_user("other", json!({})).await;
    let r = scim.delete(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&scim.get(&format!("/Users/{id}")).await, 404, None);
    assert_error(&scim.delete(&format!("/Users/{id}")).await, 404, None);
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch_body(json!([{"op": "replace", "path": "title", "value": "x"}])),
        )
        .await;
    assert_error(&r, 404, None);
    let l = scim.get("/Users").await;
    assert_eq!(l.body["totalResults"], 1, "{}", l.body);
    assert_eq!(l.body["Resources"][0]["id"], other.as_str());
    for f in [
        "userName eq \"soft\"",
        "externalId eq \"soft-1\"",
        "active eq false",
    ] {
        let r = scim.filter("Users", f).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["totalResults"], 0, "{f}: {}", r.body);
    }
    let r = scim
        .post("/Users", &json!({"schemas": [USER], "userName": "SOFT"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_ne!(r.body["id"], id.as_str());
    assert_eq!(r.body["meta"]["version"], "W/\"1\"");
    let r = scim.filter("Users", "userName eq \"soft\"").await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(user_total(&scim).await, 2);
    app.stop().await;
}

async fn projection_on_every_method(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post("/Users?attributes=userName", &rfc_enterprise_user())
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(keys(&r.body), ["id", "schemas", "userName"], "{}", r.body);
    assert!(r.header("location").is_some() && r.header("etag").is_some());
    let id = r.body["id"].as_str().unwrap().to_owned();
    let path = format!("/Users/{id}");

    let g = scim.get(&format!("{path}?attributes=name.givenName")).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(keys(&g.body), ["id", "name", "schemas"], "{}", g.body);
    assert_eq!(g.body["name"], json!({"givenName": "Barbara"}));

    let g = scim.get(&format!("{path}?excludedAttributes=emails")).await;
    assert!(g.body.get("emails").is_none(), "{}", g.body);
    for present in ["id", "userName", "name", "phoneNumbers", "meta", ENTERPRISE] {
        assert!(
            g.body.get(present).is_some(),
            "{present} missing: {}",
            g.body
        );
    }
    // returned=always `id` cannot be excluded.
    let g = scim
        .get(&format!("{path}?excludedAttributes=id,emails"))
        .await;
    assert_eq!(g.body["id"], id.as_str());
    // Case-insensitive names and extension attributes.
    let g = scim
        .get(&format!(
            "{path}?attributes={}",
            url_encode(&format!("EMAILS.value,{ENTERPRISE}:department"))
        ))
        .await;
    assert_eq!(
        keys(&g.body),
        keys(&json!({"id": 0, "schemas": 0, "emails": 0, ENTERPRISE: 0})),
        "{}",
        g.body
    );
    assert_eq!(
        g.body["emails"],
        json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}])
    );
    assert_eq!(g.body[ENTERPRISE], json!({"department": "Tour Operations"}));

    // PUT and PATCH responses honour the parameters too; the stored resource is whole.
    let mut full = rfc_enterprise_user();
    full["title"] = json!("Senior Tour Guide");
    let p = scim
        .put(&format!("{path}?excludedAttributes=emails"), &full)
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert!(p.body.get("emails").is_none(), "{}", p.body);
    assert_eq!(p.body["title"], "Senior Tour Guide");
    let p = scim
        .patch(
            &format!("{path}?attributes=name.givenName"),
            &patch_body(json!([
                {"op": "replace", "path": "name.givenName", "value": "Babs"}
            ])),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    assert_eq!(keys(&p.body), ["id", "name", "schemas"], "{}", p.body);
    assert_eq!(p.body["name"], json!({"givenName": "Babs"}));
    let g = scim.get(&path).await;
    assert_eq!(g.body["emails"].as_array().unwrap().len(), 2);
    assert_eq!(g.body["name"]["familyName"], "Jensen");
    assert_eq!(g.body["title"], "Senior Tour Guide");
    // Lists too.
    let l = scim.get("/Users?attributes=userName").await;
    assert_eq!(
        keys(&l.body["Resources"][0]),
        ["id", "schemas", "userName"],
        "{}",
        l.body
    );
    app.stop().await;
}

async fn writes_append_change_log_and_audit(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let ts = store(&app).await;
    let start = ts
        .changes_after(0, 10_000)
        .await
        .unwrap()
        .last()
        .map_or(0, |c| c.seq);
    let id = scim.create_user("logged", json!({})).await;
    let path = format!("/Users/{id}");
    let r = scim
        .put(
            &path,
            &json!({"schemas": [USER], "userName": "logged", "title": "x"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = scim
        .patch(
            &path,
            &patch_body(json!([{"op": "replace", "path": "title", "value": "y"}])),
        )
        .await;
    assert_eq!(r.status, 200);
    // Failed writes append nothing.
    let r = scim
        .post("/Users", &json!({"schemas": [USER], "userName": "LOGGED"}))
        .await;
    assert_eq!(r.status, 409);
    let r = scim
        .send(Method::DELETE, &path, None, &[("If-Match", "W/\"1\"")])
        .await;
    assert_eq!(r.status, 412);
    let r = scim.delete(&path).await;
    assert_eq!(r.status, 204);

    let changes = ts.changes_after(start, 10_000).await.unwrap();
    let mine: Vec<(&str, &str, i64)> = changes
        .iter()
        .map(|c| {
            (
                c.resource_type.as_str(),
                c.operation.as_str(),
                c.resource_version,
            )
        })
        .collect();
    assert_eq!(
        mine,
        [
            ("User", "create", 1),
            ("User", "update", 2),
            ("User", "update", 3),
            ("User", "delete", 4)
        ],
    );
    assert!(changes.iter().all(|c| c.resource_id == id));
    assert!(
        changes.windows(2).all(|w| w[1].seq == w[0].seq + 1),
        "gap-free sequence"
    );

    let token_ids: Vec<String> = ts
        .list_tokens("scim")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    let audit = ts
        .list_audit(PageRequest {
            page: 1,
            limit: 200,
        })
        .await
        .unwrap();
    let mut events: Vec<_> = audit
        .items
        .iter()
        .filter(|e| e.target_id.as_deref() == Some(id.as_str()))
        .collect();
    events.reverse();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["user.create", "user.update", "user.update", "user.delete"]
    );
    for e in &events {
        assert_eq!(e.actor_type, "scim_token", "{e:?}");
        assert!(
            e.actor_id.as_ref().is_some_and(|a| token_ids.contains(a)),
            "{e:?}"
        );
        assert_eq!(e.target_type.as_deref(), Some("User"));
        assert!(e.request_id.is_some(), "{e:?}");
    }
    app.stop().await;
}

async fn register_badge_schema(app: &TestApp) {
    let r = app
        .admin(
            app.client
                .put(app.url(&format!("/api/v1/tenants/{TENANT}/scim-schemas"))),
        )
        .json(&json!({
            "resource_type": "User",
            "required": false,
            "schema": {
                "id": BADGE,
                "name": "Badge",
                "attributes": [
                    {"name": "badgeNumber", "type": "integer"},
                    {"name": "site", "type": "string"}
                ]
            }
        }))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(status == 200 || status == 201, "{status}: {body}");
}

async fn custom_extension_schema(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    register_badge_schema(&app).await;
    // Discovery reflects it.
    let s = scim.get(&format!("/Schemas/{BADGE}")).await;
    assert_eq!(s.status, 200, "{}", s.body);
    assert_eq!(s.body["id"], BADGE);
    let rt = scim.get("/ResourceTypes/User").await;
    assert!(
        rt.body["schemaExtensions"].to_string().contains(BADGE),
        "{}",
        rt.body
    );

    // Validated.
    for bad in [
        json!({"badgeNumber": "seven"}),
        json!({"badgeNumber": 1.5}),
        json!({"site": 3}),
    ] {
        let r = scim
            .post(
                "/Users",
                &json!({"schemas": [USER, BADGE], "userName": "bad", BADGE: bad}),
            )
            .await;
        assert_error(&r, 400, Some("invalidValue"));
    }
    assert_eq!(user_total(&scim).await, 0);

    // Stored and returned.
    let mut ids = std::collections::HashMap::new();
    for (name, n) in [("b3", 3), ("b100", 100), ("b7", 7), ("b12", 12)] {
        let r = scim
            .post("/Users", &json!({"schemas": [USER, BADGE], "userName": name, BADGE: {"badgeNumber": n, "site": "HQ"}}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["schemas"], json!([USER, BADGE]));
        assert_eq!(r.body[BADGE], json!({"badgeNumber": n, "site": "HQ"}));
        ids.insert(name, r.body["id"].as_str().unwrap().to_owned());
    }
    scim.create_user("nobadge", json!({})).await;
    let g = scim.get(&format!("/Users/{}", ids["b7"])).await;
    assert_eq!(g.body[BADGE], json!({"badgeNumber": 7, "site": "HQ"}));
    // PATCH by extension path.
    let r = scim
        .patch(
            &format!("/Users/{}", ids["b7"]),
            &patch_body(json!([
                {"op": "replace", "path": format!("{BADGE}:site"), "value": "Annex"}
            ])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body[BADGE], json!({"badgeNumber": 7, "site": "Annex"}));
    let r = scim
        .patch(
            &format!("/Users/{}", ids["b7"]),
            &patch_body(json!([
                {"op": "replace", "path": format!("{BADGE}:badgeNumber"), "value": "x"}
            ])),
        )
        .await;
    assert_error(&r, 400, Some("invalidValue"));

    // Filterable (numerically).
    let names = |r: &ScimReply| -> Vec<String> {
        let mut v: Vec<String> = r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    let r = scim
        .filter("Users", &format!("{BADGE}:badgeNumber gt 5"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r), ["b100", "b12", "b7"]);
    let r = scim
        .filter(
            "Users",
            &format!("{BADGE}:badgeNumber le 7 and {BADGE}:site eq \"hq\""),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r), ["b3"]);
    let r = scim
        .filter("Users", &format!("{BADGE}:badgeNumber pr"))
        .await;
    assert_eq!(r.body["totalResults"], 4, "{}", r.body);
    let r = scim
        .filter("Users", &format!("{BADGE}:badgeNumber eq \"7\""))
        .await;
    assert_error(&r, 400, Some("invalidFilter"));

    // Sortable (numerically; users without a badge last).
    let order = |r: &ScimReply| -> Vec<String> {
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap().to_owned())
            .collect()
    };
    let r = scim
        .get(&format!(
            "/Users?sortBy={}",
            url_encode(&format!("{BADGE}:badgeNumber"))
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(order(&r), ["b3", "b7", "b12", "b100", "nobadge"]);
    let r = scim
        .get(&format!(
            "/Users?sortBy={}&sortOrder=descending&filter={}",
            url_encode(&format!("{BADGE}:badgeNumber")),
            url_encode(&format!("{BADGE}:badgeNumber pr"))
        ))
        .await;
    assert_eq!(order(&r), ["b100", "b12", "b7", "b3"]);
    app.stop().await;
}

/// Users created outside SCIM (`idhub admin create`, the REST API) are SCIM users of their
/// tenant too: they must be served with the REQUIRED `userName` (RFC 7643 §4.1.1) and their
/// other stored columns. The installation's operators (superadmins) are the exception: no
/// identity provider provisions them, so SCIM neither sees nor changes them.
async fn users_created_outside_scim_are_served_complete(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let ts = app.store.tenant(app.default_tenant.clone());
    let admin = ts
        .find_user_by_user_name("admin")
        .await
        .unwrap()
        .expect("the bootstrap operator");
    let g = scim.get(&format!("/Users/{}", admin.id)).await;
    assert_eq!(g.status, 404, "{}", g.body);
    let listed = scim.filter("Users", "userName eq \"admin\"").await;
    assert_eq!(listed.body["totalResults"], 0, "{}", listed.body);
    let takeover = scim
        .put(
            &format!("/Users/{}", admin.id),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "admin", "password": "Hijacked-123!"}),
        )
        .await;
    assert_eq!(takeover.status, 404, "{}", takeover.body);
    let patch = scim
        .patch(
            &format!("/Users/{}", admin.id),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "path": "password", "value": "Hijacked-123!"}]}),
        )
        .await;
    assert_eq!(patch.status, 404, "{}", patch.body);
    assert_eq!(
        scim.delete(&format!("/Users/{}", admin.id)).await.status,
        404
    );
    let ok = app
        .client
        .get(app.url("/api/v1/tenants"))
        .basic_auth("admin", Some(crate::harness::ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "the operator's password is unchanged");
    let made = ts
        .create_user(
            &idhub::model::Actor::system(),
            idhub::model::NewUser {
                user_name: "made-elsewhere".into(),
                external_id: Some("EXT-9".into()),
                display_name: Some("Made Elsewhere".into()),
                active: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let g = scim.get(&format!("/Users/{}", made.id)).await;
    assert_eq!(g.status, 200, "{}", g.body);
    assert_eq!(g.body["userName"], "made-elsewhere", "{}", g.body);
    assert_eq!(g.body["externalId"], "EXT-9", "{}", g.body);
    assert_eq!(g.body["displayName"], "Made Elsewhere", "{}", g.body);
    let l = scim.get("/Users").await;
    assert_eq!(l.status, 200, "{}", l.body);
    for u in l.body["Resources"].as_array().unwrap() {
        assert!(
            u["userName"].as_str().is_some_and(|n| !n.is_empty()),
            "a listed user without userName: {u}"
        );
    }
    let f = scim.filter("Users", "userName eq \"made-elsewhere\"").await;
    assert_eq!(f.body["totalResults"], 1, "{}", f.body);
    assert_eq!(
        f.body["Resources"][0]["userName"], "made-elsewhere",
        "{}",
        f.body
    );
    app.stop().await;
}

/// JSON can carry `\u0000`; PostgreSQL text cannot store it. Every write path answers 400
/// `invalidValue` (on both backends alike) and stores nothing; in a Bulk run only that
/// operation fails.
async fn nul_characters_are_invalid_values_not_server_errors(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim.create_user("clean", json!({})).await;
    for doc in [
        json!({"schemas": [USER], "userName": "nul\u{0}name"}),
        json!({"schemas": [USER], "userName": "ok-name", "externalId": "e\u{0}"}),
        json!({"schemas": [USER], "userName": "ok-name", "name": {"givenName": "\u{0}"}}),
        json!({"schemas": [USER], "userName": "ok-name", "emails": [{"value": "a\u{0}@example.com"}]}),
    ] {
        assert_error(&scim.post("/Users", &doc).await, 400, Some("invalidValue"));
        assert_error(
            &scim.put(&format!("/Users/{id}"), &doc).await,
            400,
            Some("invalidValue"),
        );
    }
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            &patch_body(json!([{"op": "replace", "path": "title", "value": "t\u{0}"}])),
        )
        .await;
    assert_error(&r, 400, Some("invalidValue"));
    assert_eq!(user_total(&scim).await, 1);
    let got = scim.get(&format!("/Users/{id}")).await;
    assert_eq!(got.body["userName"], "clean");
    assert!(got.body.get("title").is_none(), "{}", got.body);

    let ops = json!([
        {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"schemas": [USER], "userName": "bulk-a"}},
        {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"schemas": [USER], "userName": "bulk\u{0}b"}},
        {"method": "POST", "path": "/Users", "bulkId": "c", "data": {"schemas": [USER], "userName": "bulk-c"}},
    ]);
    let r = scim
        .post(
            "/Bulk",
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"], "Operations": ops}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let statuses: Vec<&str> = r.body["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "400", "201"], "{}", r.body);
    assert_eq!(user_total(&scim).await, 3);
    app.stop().await;
}

/// The value of one sample in the server's `/metrics` text, when present.
async fn metric(app: &TestApp, sample: &str) -> Option<f64> {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
}

/// A read answered after a write shows that write: by id and through a filter, on each turn.
/// On SQLite these reads run on the request thread (`store::sqlite_reads`, counted as
/// `idhub_sqlite_reads_total`), on connections of their own beside the writers': a read
/// that kept an old snapshot open would show an old name here.
async fn every_read_sees_the_write_answered_before_it(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let id = scim
        .create_user("reader@example.com", json!({"displayName": "Before"}))
        .await;
    const SERVED: &str = r#"idhub_sqlite_reads_total{outcome="served"}"#;
    let served_before = metric(&app, SERVED).await;
    for n in 0..5 {
        let name = format!("After {n}");
        let r = scim
            .patch(
                &format!("/Users/{id}"),
                &json!({"schemas": [PATCH_OP], "Operations": [
                    {"op": "replace", "path": "displayName", "value": name}
                ]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let got = scim.get(&format!("/Users/{id}")).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body["displayName"], name);
        let found = scim
            .filter("Users", &format!("displayName eq \"{name}\""))
            .await;
        assert_eq!(found.status, 200, "{}", found.body);
        assert_eq!(found.body["totalResults"], 1, "{}", found.body);
        assert_eq!(found.body["Resources"][0]["id"], id.as_str());
        let gone = scim
            .filter("Users", &format!("displayName eq \"After {}\"", n + 10))
            .await;
        assert_eq!(gone.body["totalResults"], 0, "{}", gone.body);
    }
    let served = metric(&app, SERVED).await;
    match b {
        Backend::Sqlite => {
            // Ten searches at least (the reads by id may be answered from the cache).
            let grew = served.unwrap_or(0.0) - served_before.unwrap_or(0.0);
            assert!(grew >= 10.0, "served {served:?} (before {served_before:?})");
            assert_eq!(
                metric(&app, r#"idhub_sqlite_reads_total{outcome="failed"}"#).await,
                Some(0.0)
            );
        }
        Backend::Postgres(_) => assert_eq!(served, None, "no SQLite reads on PostgreSQL"),
    }
    app.stop().await;
}
