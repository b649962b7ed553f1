//! SCIM queries over HTTP (RFC 7644 §3.4.2, §3.4.3; RFC 9865): filters, sorting, index and
//! cursor pagination, SearchRequest bodies, and invalid queries.

use crate::backend_tests;
use crate::harness::{Backend, Scim, ScimReply, TestApp, url_encode};
use idhub::model::{Actor, NewUser};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

backend_tests!(
    filters_select_exactly_the_matching_users,
    filters_on_groups_membership,
    filters_on_the_returned_meta_timestamps,
    invalid_filters_are_invalid_filter,
    sorting,
    index_pagination,
    count_is_capped_at_max_results,
    search_request_bodies,
    root_search_returns_users_and_groups,
    cursor_pagination_walks_everything_once,
    invalid_cursors_are_rejected,
    cursor_walk_under_concurrent_writes,
);

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
/// Every case runs in a tenant of its own, so the default tenant's bootstrap operator is not
/// among the users listed.
const TENANT: &str = "acme";

const ALL: [&str; 10] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "Judy",
];

/// The seeded users, in creation order: userName → id, and the instant between the fifth
/// (`erin`) and sixth (`frank`) creation.
struct Seed {
    ids: HashMap<&'static str, String>,
    between: String,
}

fn user_body(name: &str, given: &str, family: &str, extra: Value) -> Value {
    let mut body = json!({
        "schemas": [USER, ENTERPRISE],
        "userName": name,
        "name": {"givenName": given, "familyName": family},
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

fn parse_time(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &Rfc3339).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Seeds ten users with varied attributes (see each line).
async fn seed(scim: &Scim<'_>) -> Seed {
    let work = |v: &str| json!({"value": v, "type": "work"});
    let home = |v: &str| json!({"value": v, "type": "home"});
    let users = vec![
        user_body(
            "alice",
            "Alice",
            "Adams",
            json!({
                "title": "Engineer", "externalId": "EXT-Alice",
                "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
                ENTERPRISE: {"department": "Engineering", "manager": {"value": "mgr-1"}}
            }),
        ),
        user_body(
            "bob",
            "Bob",
            "Brown",
            json!({
                "active": false,
                "emails": [work("bob@example.org"), home("bob@example.com")],
                ENTERPRISE: {"department": "Sales", "manager": {"value": "mgr-1"}}
            }),
        ),
        user_body(
            "carol",
            "Carol",
            "Clark",
            json!({
                "title": "Manager",
                "emails": [home("carol@example.com")],
                ENTERPRISE: {"department": "Engineering", "manager": {"value": "mgr-2"}}
            }),
        ),
        user_body(
            "dave",
            "Dave",
            "Davis",
            json!({
                "title": "Engineer", "active": false,
                "emails": [work("dave@other.net")]
            }),
        ),
        user_body(
            "erin",
            "Erin",
            "Evans",
            json!({
                "title": "Engineer", "externalId": "ext-erin",
                "emails": [work("erin@example.com")]
            }),
        ),
        user_body(
            "frank",
            "Frank",
            "Adams",
            json!({
                "title": "50%_off", "emails": [work("frank@example.net")]
            }),
        ),
        user_body("grace", "Grace", "Green", json!({"title": "500 offXsale"})),
        user_body("heidi", "Heidi", "Hill", json!({})),
        user_body(
            "ivan",
            "Ivan",
            "Irwin",
            json!({
                "emails": [work("ivan@EXAMPLE.COM")],
                ENTERPRISE: {"department": "engineering"}
            }),
        ),
        user_body(
            "Judy",
            "Judy",
            "Jones",
            json!({
                "title": "Engineering Lead", "emails": [home("judy@example.com")]
            }),
        ),
    ];
    let mut ids = HashMap::new();
    let mut between = String::new();
    for (i, body) in users.into_iter().enumerate() {
        let r = scim.post("/Users", &body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let name = ALL[i];
        ids.insert(name, r.body["id"].as_str().unwrap().to_owned());
        if name == "erin" {
            // An instant strictly after erin's last modification (rendered to the
            // millisecond) and, once the clock has passed it, before frank's creation.
            let erin = parse_time(r.body["meta"]["lastModified"].as_str().unwrap());
            let t = erin + time::Duration::milliseconds(1);
            between = t.format(&Rfc3339).unwrap();
            while OffsetDateTime::now_utc() < t + time::Duration::milliseconds(1) {
                tokio::task::yield_now().await;
            }
        }
    }
    Seed { ids, between }
}

/// The userNames in a list response, sorted.
fn names(r: &ScimReply) -> Vec<String> {
    let mut v = in_order(r);
    v.sort_by_key(|n| n.to_lowercase());
    v
}

/// The userNames in a list response, in response order.
fn in_order(r: &ScimReply) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .get("Resources")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|u| u["userName"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn set(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort_by_key(|n| n.to_lowercase());
    v
}

fn all_except(out: &[&str]) -> Vec<String> {
    let keep: Vec<&str> = ALL.iter().copied().filter(|n| !out.contains(n)).collect();
    set(&keep)
}

async fn check(scim: &Scim<'_>, filter: &str, want: &[String]) {
    let r = scim.filter("Users", filter).await;
    assert_eq!(r.status, 200, "{filter}: {}", r.body);
    assert_eq!(&names(&r), want, "filter {filter}");
    assert_eq!(
        r.body["totalResults"],
        want.len(),
        "filter {filter}: {}",
        r.body
    );
    assert_eq!(r.body["schemas"], json!([LIST]));
}

fn assert_error(r: &ScimReply, status: u16, scim_type: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([ERROR]), "{}", r.body);
    assert_eq!(r.body["status"], json!(status.to_string()), "{}", r.body);
    if let Some(t) = scim_type {
        assert_eq!(r.body["scimType"], t, "{}", r.body);
    }
}

async fn filters_select_exactly_the_matching_users(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let seed = seed(&scim).await;
    let cases: Vec<(String, Vec<String>)> = vec![
        // Comparison operators on a caseExact=false string.
        ("userName eq \"judy\"".into(), set(&["Judy"])),
        ("userName eq \"JUDY\"".into(), set(&["Judy"])),
        ("UserName Eq \"ALICE\"".into(), set(&["alice"])),
        ("userName ne \"alice\"".into(), all_except(&["alice"])),
        (
            "userName co \"A\"".into(),
            set(&["alice", "carol", "dave", "frank", "grace", "ivan"]),
        ),
        ("userName sw \"j\"".into(), set(&["Judy"])),
        ("userName ew \"E\"".into(), set(&["alice", "dave", "grace"])),
        ("userName gt \"heidi\"".into(), set(&["ivan", "Judy"])),
        (
            "userName ge \"heidi\"".into(),
            set(&["heidi", "ivan", "Judy"]),
        ),
        ("userName lt \"bob\"".into(), set(&["alice"])),
        ("userName le \"bob\"".into(), set(&["alice", "bob"])),
        // Presence and logic.
        (
            "title pr".into(),
            set(&["alice", "carol", "dave", "erin", "frank", "grace", "Judy"]),
        ),
        ("not (title pr)".into(), set(&["bob", "heidi", "ivan"])),
        (
            "title eq \"Engineer\" and active eq true".into(),
            set(&["alice", "erin"]),
        ),
        (
            "userName eq \"bob\" or name.givenName eq \"Heidi\"".into(),
            set(&["bob", "heidi"]),
        ),
        (
            format!(
                "(title eq \"Engineer\" or title eq \"Manager\") and not ({ENTERPRISE}:department eq \"Engineering\")"
            ),
            set(&["dave", "erin"]),
        ),
        (
            "userName eq \"alice\" or (userName eq \"bob\" and active eq true)".into(),
            set(&["alice"]),
        ),
        ("active eq false".into(), set(&["bob", "dave"])),
        ("active eq true".into(), all_except(&["bob", "dave"])),
        // Complex and multi-valued attributes.
        (
            "emails[type eq \"work\" and value co \"@example.com\"]".into(),
            set(&["alice", "erin", "ivan"]),
        ),
        ("emails.value ew \".org\"".into(), set(&["bob"])),
        (
            "emails co \"example.com\"".into(),
            set(&["alice", "bob", "carol", "erin", "ivan", "Judy"]),
        ),
        (
            "emails[type eq \"home\"]".into(),
            set(&["bob", "carol", "Judy"]),
        ),
        (
            "name.familyName eq \"Adams\"".into(),
            set(&["alice", "frank"]),
        ),
        ("name.familyName sw \"j\"".into(), set(&["Judy"])),
        (format!("{USER}:name.givenName sw \"A\""), set(&["alice"])),
        (format!("{USER}:userName eq \"bob\""), set(&["bob"])),
        (
            format!("{ENTERPRISE}:department eq \"Engineering\""),
            set(&["alice", "carol", "ivan"]),
        ),
        (
            format!("{ENTERPRISE}:manager.value eq \"mgr-1\""),
            set(&["alice", "bob"]),
        ),
        // `%` and `_` are literal in co / sw / ew.
        ("title co \"50%_\"".into(), set(&["frank"])),
        ("title sw \"50%\"".into(), set(&["frank"])),
        ("title co \"_\"".into(), set(&["frank"])),
        ("title ew \"%_off\"".into(), set(&["frank"])),
        ("title co \"%\"".into(), set(&["frank"])),
        // externalId is caseExact.
        ("externalId eq \"EXT-Alice\"".into(), set(&["alice"])),
        ("externalId eq \"ext-alice\"".into(), set(&[])),
        ("externalId eq \"ext-erin\"".into(), set(&["erin"])),
        ("externalId pr".into(), set(&["alice", "erin"])),
        // id.
        (format!("id eq \"{}\"", seed.ids["carol"]), set(&["carol"])),
        // meta.lastModified between two creations.
        (
            format!("meta.lastModified gt \"{}\"", seed.between),
            set(&["frank", "grace", "heidi", "ivan", "Judy"]),
        ),
        (
            format!("meta.lastModified lt \"{}\"", seed.between),
            set(&["alice", "bob", "carol", "dave", "erin"]),
        ),
        (
            format!("meta.created ge \"{}\"", seed.between),
            set(&["frank", "grace", "heidi", "ivan", "Judy"]),
        ),
        ("meta.resourceType eq \"User\"".into(), set(&ALL)),
    ];
    for (f, want) in &cases {
        check(&scim, f, want).await;
    }
    // A later modification moves a user past the instant.
    let r = scim
        .patch(
            &format!("/Users/{}", seed.ids["alice"]),
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "nickName", "value": "Al"}]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    check(
        &scim,
        &format!("meta.lastModified gt \"{}\"", seed.between),
        &set(&["alice", "frank", "grace", "heidi", "ivan", "Judy"]),
    )
    .await;
    check(
        &scim,
        &format!("meta.created gt \"{}\"", seed.between),
        &set(&["frank", "grace", "heidi", "ivan", "Judy"]),
    )
    .await;
    app.stop().await;
}

async fn filters_on_groups_membership(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let seed = seed(&scim).await;
    let admins = scim
        .create_group("Admins", &[&seed.ids["alice"], &seed.ids["heidi"]])
        .await;
    let other = scim.create_group("Others", &[&seed.ids["bob"]]).await;
    check(
        &scim,
        &format!("groups.value eq \"{admins}\""),
        &set(&["alice", "heidi"]),
    )
    .await;
    check(
        &scim,
        &format!("groups.value eq \"{other}\""),
        &set(&["bob"]),
    )
    .await;
    check(
        &scim,
        &format!("groups[value eq \"{admins}\"]"),
        &set(&["alice", "heidi"]),
    )
    .await;
    check(
        &scim,
        "groups.display eq \"admins\"",
        &set(&["alice", "heidi"]),
    )
    .await;
    check(&scim, "groups pr", &set(&["alice", "bob", "heidi"])).await;
    check(
        &scim,
        "not (groups pr)",
        &all_except(&["alice", "bob", "heidi"]),
    )
    .await;
    check(&scim, "groups.value eq \"no-such-group\"", &set(&[])).await;
    // A deleted group no longer counts.
    assert_eq!(scim.delete(&format!("/Groups/{admins}")).await.status, 204);
    check(&scim, &format!("groups.value eq \"{admins}\""), &set(&[])).await;
    app.stop().await;
}

async fn invalid_filters_are_invalid_filter(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    scim.create_user("someone", json!({"title": "x"})).await;
    for f in [
        "nosuch eq \"x\"",
        "userName.nosuch eq \"x\"",
        "name eq \"x\"",
        "userName eq",
        "userName \"x\"",
        "userName xx \"x\"",
        "(userName eq \"x\"",
        "userName eq \"x\")",
        "userName eq \"x\" and",
        "emails[type eq \"work\"",
        "emails[nosuch eq \"x\"]",
        "active gt true",
        "active eq \"yes\"",
        "active co \"t\"",
        "userName eq 5",
        "title co 5",
        "userName gt true",
        "meta.created gt \"not a date\"",
        "meta.created co \"2020\"",
        "password eq \"secret\"",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nosuch eq \"x\"",
        "urn:example:nosuch:2.0:User:attr eq \"x\"",
        "userName eq \"unterminated",
    ] {
        let r = scim.filter("Users", f).await;
        assert_error(&r, 400, Some("invalidFilter"));
        assert!(!r.body.to_string().contains("Resources"), "{f}");
        let s = scim
            .post("/Users/.search", &json!({"schemas": [SEARCH], "filter": f}))
            .await;
        assert_eq!(s.status, 400, "POST .search {f}: {}", s.body);
        assert_eq!(
            s.body["scimType"], "invalidFilter",
            "POST .search {f}: {}",
            s.body
        );
    }
    // Group filters are checked against the Group schema.
    let r = scim.filter("Groups", "userName eq \"x\"").await;
    assert_error(&r, 400, Some("invalidFilter"));
    // Bad sortBy / sortOrder are refused rather than ignored.
    let r = scim.get("/Users?sortBy=nosuch").await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = scim.get("/Users?sortBy=userName&sortOrder=sideways").await;
    assert_eq!(r.status, 400, "{}", r.body);
    app.stop().await;
}

async fn sorting(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    seed(&scim).await;
    let asc: Vec<String> = ALL.iter().map(|s| (*s).to_owned()).collect();
    let desc: Vec<String> = asc.iter().rev().cloned().collect();
    // userName (caseExact=false: "Judy" sorts among the lower-case names).
    let r = scim.get("/Users?sortBy=userName").await;
    assert_eq!(in_order(&r), asc);
    let r = scim.get("/Users?sortBy=userName&sortOrder=ascending").await;
    assert_eq!(in_order(&r), asc);
    let r = scim
        .get("/Users?sortBy=userName&sortOrder=descending")
        .await;
    assert_eq!(in_order(&r), desc);
    // meta.created: creation order.
    let r = scim.get("/Users?sortBy=meta.created").await;
    assert_eq!(in_order(&r), asc);
    let r = scim
        .get("/Users?sortBy=meta.created&sortOrder=descending")
        .await;
    assert_eq!(in_order(&r), desc);
    // name.familyName (ties in any order).
    let families = |r: &ScimReply| -> Vec<String> {
        assert_eq!(r.status, 200, "{}", r.body);
        r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"]["familyName"].as_str().unwrap().to_owned())
            .collect()
    };
    let want = [
        "Adams", "Adams", "Brown", "Clark", "Davis", "Evans", "Green", "Hill", "Irwin", "Jones",
    ];
    let r = scim.get("/Users?sortBy=name.familyName").await;
    assert_eq!(families(&r), want);
    let r = scim
        .get("/Users?sortBy=name.familyName&sortOrder=descending")
        .await;
    let mut rev = want.to_vec();
    rev.reverse();
    assert_eq!(families(&r), rev);
    // Sorting combines with a filter and paging.
    let r = scim
        .get(&format!(
            "/Users?filter={}&sortBy=userName&sortOrder=descending&count=2",
            url_encode("title pr")
        ))
        .await;
    assert_eq!(in_order(&r), ["Judy", "grace"]);
    assert_eq!(r.body["totalResults"], 7);
    app.stop().await;
}

async fn index_pagination(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    seed(&scim).await;
    let page = |r: &ScimReply| {
        (
            r.body["totalResults"].as_i64(),
            r.body["itemsPerPage"].as_i64(),
            r.body["startIndex"].as_i64(),
        )
    };
    let r = scim
        .get("/Users?sortBy=userName&startIndex=3&count=4")
        .await;
    assert_eq!(in_order(&r), ["carol", "dave", "erin", "frank"]);
    assert_eq!(page(&r), (Some(10), Some(4), Some(3)));
    let r = scim
        .get("/Users?sortBy=userName&startIndex=9&count=4")
        .await;
    assert_eq!(in_order(&r), ["ivan", "Judy"]);
    assert_eq!(page(&r), (Some(10), Some(2), Some(9)));
    let r = scim
        .get("/Users?sortBy=userName&startIndex=11&count=4")
        .await;
    assert_eq!(in_order(&r), Vec::<String>::new());
    assert_eq!(page(&r), (Some(10), Some(0), Some(11)));
    // Walking by pages visits every user once.
    let mut seen = Vec::new();
    let mut start = 1;
    while start <= 10 {
        let r = scim
            .get(&format!(
                "/Users?sortBy=userName&startIndex={start}&count=3"
            ))
            .await;
        let items = in_order(&r);
        assert!(!items.is_empty());
        start += items.len();
        seen.extend(items);
    }
    assert_eq!(seen, ALL);
    // count=0: totals only.
    let r = scim.get("/Users?count=0").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 10);
    assert_eq!(r.body["itemsPerPage"], 0);
    assert!(
        r.body
            .get("Resources")
            .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty)),
        "{}",
        r.body
    );
    let r = scim.filter("Users", "active eq false").await;
    assert_eq!(r.body["totalResults"], 2);
    // A negative count is 0 (RFC 7644 §3.4.2.4).
    let r = scim.get("/Users?count=-3").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 10);
    assert_eq!(in_order(&r), Vec::<String>::new());
    // startIndex < 1 is 1.
    for s in ["0", "-5"] {
        let r = scim
            .get(&format!("/Users?sortBy=userName&startIndex={s}&count=2"))
            .await;
        assert_eq!(in_order(&r), ["alice", "bob"], "startIndex={s}");
        assert_eq!(r.body["startIndex"], 1, "startIndex={s}");
    }
    // No parameters: everything from 1.
    let r = scim.get("/Users").await;
    assert_eq!(page(&r), (Some(10), Some(10), Some(1)));
    // Non-numeric values are refused.
    for q in [
        "count=abc",
        "count=1.5",
        "startIndex=x",
        "startIndex=1&count=",
    ] {
        let r = scim.get(&format!("/Users?{q}")).await;
        if q.ends_with('=') {
            // An empty count is no count.
            assert_eq!(r.status, 200, "{q}: {}", r.body);
            continue;
        }
        assert_error(&r, 400, None);
    }
    app.stop().await;
}

async fn count_is_capped_at_max_results(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let tenant = app.store.tenant_by_slug(TENANT).await.unwrap().unwrap();
    let ts = app.store.tenant(tenant.id);
    for i in 0..1005 {
        let name = format!("bulk-{i:04}");
        ts.create_user(
            &Actor::system(),
            NewUser {
                user_name: name.clone(),
                active: true,
                attributes: json!({"schemas": [USER], "userName": name, "active": true}),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let r = scim.get("/Users?count=5000&attributes=userName").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1005);
    assert_eq!(r.body["itemsPerPage"], 1000);
    assert_eq!(r.body["Resources"].as_array().unwrap().len(), 1000);
    let r = scim
        .post("/Users/.search", &json!({"schemas": [SEARCH], "count": 5000, "attributes": ["userName"], "startIndex": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["itemsPerPage"], 1000);
    assert_eq!(r.body["startIndex"], 2);
    // The default page is smaller than maxResults but still complete about the total.
    let r = scim.get("/Users?attributes=userName").await;
    assert_eq!(r.body["totalResults"], 1005);
    let n = r.body["itemsPerPage"].as_i64().unwrap();
    assert!(n > 0 && n <= 1000, "{n}");
    assert_eq!(r.body["Resources"].as_array().unwrap().len() as i64, n);
    app.stop().await;
}

async fn search_request_bodies(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    seed(&scim).await;
    let r = scim
        .post(
            "/Users/.search",
            &json!({
                "schemas": [SEARCH],
                "attributes": ["userName", "name.familyName"],
                "filter": "title eq \"Engineer\"",
                "sortBy": "userName",
                "sortOrder": "descending",
                "startIndex": 1,
                "count": 10
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([LIST]));
    assert_eq!(in_order(&r), ["erin", "dave", "alice"]);
    assert_eq!(r.body["totalResults"], 3);
    for u in r.body["Resources"].as_array().unwrap() {
        let mut keys: Vec<&String> = u.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["id", "name", "schemas", "userName"], "{u}");
        assert_eq!(u["name"].as_object().unwrap().len(), 1, "{u}");
    }
    // excludedAttributes and paging in the body.
    let r = scim
        .post(
            "/Users/.search",
            &json!({
                "schemas": [SEARCH],
                "excludedAttributes": ["emails", "name"],
                "sortBy": "userName",
                "startIndex": 2,
                "count": 2
            }),
        )
        .await;
    assert_eq!(in_order(&r), ["bob", "carol"]);
    assert_eq!(r.body["startIndex"], 2);
    assert_eq!(r.body["itemsPerPage"], 2);
    assert_eq!(r.body["totalResults"], 10);
    for u in r.body["Resources"].as_array().unwrap() {
        assert!(u.get("emails").is_none() && u.get("name").is_none(), "{u}");
    }
    // The response is a query result, not a created resource.
    assert!(r.header("location").is_none());
    // Wrong types in the body are refused.
    let r = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH], "count": "many"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = scim
        .post("/Users/.search", &json!({"schemas": [SEARCH], "filter": 5}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    app.stop().await;
}

async fn root_search_returns_users_and_groups(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let seed = seed(&scim).await;
    let gid = scim.create_group("Everyone", &[&seed.ids["alice"]]).await;
    let r = scim
        .post("/.search", &json!({"schemas": [SEARCH], "count": 100}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 11);
    let res = r.body["Resources"].as_array().unwrap();
    assert_eq!(res.len(), 11);
    let users = res
        .iter()
        .filter(|x| x["meta"]["resourceType"] == "User")
        .count();
    let groups: Vec<&Value> = res
        .iter()
        .filter(|x| x["meta"]["resourceType"] == "Group")
        .collect();
    assert_eq!(users, 10);
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["id"], gid.as_str());
    assert_eq!(groups[0]["displayName"], "Everyone");
    // Paging runs across both types.
    let r = scim
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "startIndex": 10, "count": 5}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 11);
    assert_eq!(r.body["itemsPerPage"], 2);
    // A filter that only Users understand searches only Users.
    let r = scim
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "filter": "userName sw \"a\""}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(names(&r), ["alice"]);
    assert_eq!(r.body["totalResults"], 1);
    // A filter valid for both types applies to both.
    let r = scim
        .post("/.search", &json!({"schemas": [SEARCH], "filter": format!("id eq \"{gid}\" or id eq \"{}\"", seed.ids["bob"])}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 2);
    // A filter neither understands is invalidFilter.
    let r = scim
        .post(
            "/.search",
            &json!({"schemas": [SEARCH], "filter": "nosuch eq \"x\""}),
        )
        .await;
    assert_error(&r, 400, Some("invalidFilter"));
    app.stop().await;
}

/// Walks `/Users` by cursor with page size `count`; returns the ids in walk order.
async fn walk(scim: &Scim<'_>, query: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    for _ in 0..1000 {
        let r = scim
            .get(&format!(
                "/Users?cursor={}&count={count}{query}",
                url_encode(&cursor)
            ))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let res = r.body["Resources"].as_array().cloned().unwrap_or_default();
        assert!(res.len() <= count);
        assert_eq!(r.body["itemsPerPage"], res.len());
        ids.extend(res.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match r.body.get("nextCursor").and_then(Value::as_str) {
            Some(next) => {
                assert!(!next.is_empty());
                cursor = next.to_owned();
            }
            None => return ids,
        }
    }
    panic!("the cursor walk did not end");
}

async fn cursor_pagination_walks_everything_once(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let seed = seed(&scim).await;
    let r = scim.get("/Users?cursor=&count=3").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 10);
    assert_eq!(r.body["itemsPerPage"], 3);
    assert!(r.body["nextCursor"].is_string(), "{}", r.body);
    let ids = walk(&scim, "", 3).await;
    assert_eq!(ids.len(), 10);
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 10);
    let all: HashSet<&String> = seed.ids.values().collect();
    assert_eq!(unique, all);
    // Exactly divisible: the last full page does not promise another one that is empty.
    let ids = walk(&scim, "", 5).await;
    assert_eq!(ids.len(), 10);
    let ids = walk(&scim, "", 10).await;
    assert_eq!(ids.len(), 10);
    let r = scim.get("/Users?cursor=&count=10").await;
    assert!(r.body.get("nextCursor").is_none(), "{}", r.body);
    // With a filter.
    let ids = walk(&scim, &format!("&filter={}", url_encode("title pr")), 2).await;
    let got: BTreeSet<&String> = ids.iter().collect();
    let want: BTreeSet<&String> = ["alice", "carol", "dave", "erin", "frank", "grace", "Judy"]
        .iter()
        .map(|n| &seed.ids[n])
        .collect();
    assert_eq!(ids.len(), 7);
    assert_eq!(got, want);
    app.stop().await;
}

async fn invalid_cursors_are_rejected(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    seed(&scim).await;
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for c in [
        "garbage!!",
        "%%%",
        &b64("x:1"),
        &b64("not a cursor at all"),
        "AAAA",
    ] {
        let r = scim
            .get(&format!("/Users?cursor={}&count=3", url_encode(c)))
            .await;
        assert_error(&r, 400, Some("invalidCursor"));
    }
    let r = scim
        .post(
            "/Users/.search",
            &json!({"schemas": [SEARCH], "cursor": "garbage!!", "count": 3}),
        )
        .await;
    assert_error(&r, 400, Some("invalidCursor"));
    app.stop().await;
}

/// A client that a spawned task can own.
#[derive(Clone)]
struct OwnedScim {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl OwnedScim {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut rb = self
            .client
            .request(method, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

async fn cursor_walk_under_concurrent_writes(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let mut originals = HashSet::new();
    for i in 0..60 {
        originals.insert(scim.create_user(&format!("orig-{i:02}"), json!({})).await);
    }
    let owned = OwnedScim {
        client: app.client.clone(),
        base: app.base.clone(),
        token: scim.token.clone(),
    };
    let (tx, mut rx) = tokio::sync::watch::channel(0usize);
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut alive: Vec<String> = Vec::new();
            let mut created = Vec::new();
            let mut deleted = 0usize;
            for n in 0..40 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (status, body) = owned
                    .send(
                        reqwest::Method::POST,
                        "/Users",
                        Some(json!({"schemas": [USER], "userName": format!("churn-{n:02}")})),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
                let id = body["id"].as_str().unwrap().to_owned();
                created.push(id.clone());
                alive.push(id);
                if n % 2 == 1 {
                    let victim = alive.remove(0);
                    let (status, body) = owned
                        .send(reqwest::Method::DELETE, &format!("/Users/{victim}"), None)
                        .await;
                    assert_eq!(status, 204, "{body}");
                    deleted += 1;
                }
                let _ = tx.send(n + 1);
            }
            (created, deleted)
        })
    };

    let mut seen: Vec<String> = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    let mut churn_running = true;
    loop {
        // Let at least one concurrent write land between consecutive pages (while the churn
        // task runs), so the walk really overlaps creations and deletions.
        if churn_running && pages > 0 && rx.changed().await.is_err() {
            churn_running = false;
        }
        let r = scim
            .get(&format!("/Users?cursor={}&count=7", url_encode(&cursor)))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        assert!(pages < 200, "the walk does not end");
        let res = r.body["Resources"].as_array().cloned().unwrap_or_default();
        assert!(res.len() <= 7);
        seen.extend(res.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match r.body.get("nextCursor").and_then(Value::as_str) {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    stop.store(true, Ordering::SeqCst);
    let (created, deleted) = churn.await.unwrap();
    assert!(!created.is_empty() && deleted > 0, "the churn task ran");
    assert!(pages >= 9, "60 users in pages of 7: {pages}");

    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in &seen {
        *counts.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "ids seen more than once: {twice:?}");
    for id in &originals {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "original user {id} seen {:?} times",
            counts.get(id)
        );
    }
    let created: HashSet<&String> = created.iter().collect();
    for id in counts.keys() {
        assert!(
            originals.contains(*id) || created.contains(id),
            "unknown id {id}"
        );
    }
    app.stop().await;
}

/// A dateTime the server returned compares equal to itself: filtering on the exact
/// `meta.lastModified` / `meta.created` of a response finds that resource with `eq`, `ge` and
/// `le`, and not with `gt` or `lt` (RFC 7644 §3.4.2.2; incremental sync asks
/// `meta.lastModified gt "<last seen>"`).
async fn filters_on_the_returned_meta_timestamps(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim_for_new_tenant(TENANT).await;
    let r = scim
        .post("/Users", &json!({"schemas": [USER], "userName": "stamp"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    for attr in ["lastModified", "created"] {
        let at = r.body["meta"][attr].as_str().unwrap().to_owned();
        for (op, want) in [
            ("eq", set(&["stamp"])),
            ("ge", set(&["stamp"])),
            ("le", set(&["stamp"])),
            ("gt", set(&[])),
            ("lt", set(&[])),
        ] {
            check(&scim, &format!("meta.{attr} {op} \"{at}\""), &want).await;
        }
    }
    app.stop().await;
}
