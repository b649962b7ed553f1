//! SCIM Groups over HTTP (RFC 7643 §4.2; RFC 7644 §3.3–§3.6): members on create, PATCH member
//! operations (§3.5.2), PUT, DELETE, the users' `groups` attribute, membership filters, and
//! concurrent membership changes.

use crate::backend_tests;
use crate::harness::{Backend, Scim, ScimReply, TestApp};
use serde_json::{Value, json};
use std::collections::BTreeSet;

backend_tests!(
    create_group_with_user_and_group_members,
    get_group_projection,
    patch_add_remove_replace_members_rfc_examples,
    patch_answers_with_body_when_attributes_requested,
    patch_add_existing_and_remove_missing_members_is_no_error,
    patch_with_unknown_member_is_400_and_changes_nothing,
    put_replaces_the_member_list,
    delete_group_and_user_drop_memberships,
    user_groups_lists_direct_and_indirect_memberships,
    members_can_be_paged_through_users_filter,
    concurrent_member_patches_lose_nothing,
    group_filters_on_display_name_and_members,
    conditional_requests_on_groups,
    patch_mixing_attributes_and_members_is_atomic,
    concurrent_patches_with_attribute_changes_stay_consistent,
    nested_group_cycles_are_handled,
    user_groups_filter_agrees_with_groups_attribute,
    soft_deleted_groups_disappear_everywhere,
    concurrent_deletes_and_member_patches_never_deadlock,
    nesting_groups_later_shows_at_once_in_cached_users,
);

const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_URN], "Operations": ops})
}

/// The member ids of a group (via GET).
async fn member_ids(scim: &Scim<'_>, gid: &str) -> BTreeSet<String> {
    let r = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    members_of(&r.body)
}

fn members_of(group: &Value) -> BTreeSet<String> {
    match group.get("members") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|m| m["value"].as_str().unwrap().to_owned())
            .collect(),
        Some(other) => panic!("members is not an array: {other}"),
    }
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

async fn version(scim: &Scim<'_>, gid: &str) -> String {
    let r = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.body["meta"]["version"].as_str().unwrap().to_owned();
    assert_eq!(r.header("etag").as_deref(), Some(v.as_str()));
    v
}

/// A 204 answer: no body, and the ETag of the new version.
fn assert_no_content(r: &ScimReply) {
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_null(), "204 with a body: {}", r.body);
}

fn ids(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {list}"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn create_group_with_user_and_group_members(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let alice = scim
        .create_user("alice", json!({"displayName": "Alice Smith"}))
        .await;
    let bob = scim.create_user("bob", json!({})).await;
    let inner = scim.create_group("Inner", &[&bob]).await;

    let r = scim
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_URN],
                "displayName": "Outer",
                "externalId": "ext-outer",
                "members": [
                    {"value": alice, "type": "User"},
                    {"value": bob},
                    {"value": inner, "type": "Group", "display": "ignored"}
                ]
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["schemas"], json!([GROUP_URN]));
    assert_eq!(r.body["displayName"], "Outer");
    assert_eq!(r.body["externalId"], "ext-outer");
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert!(
        r.body["meta"]["location"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/scim/v2/Groups/{gid}"))
    );
    assert_eq!(
        r.header("location").as_deref(),
        r.body["meta"]["location"].as_str()
    );
    assert_eq!(
        r.header("etag").as_deref(),
        r.body["meta"]["version"].as_str()
    );

    let check = |body: &Value| {
        let members = body["members"]
            .as_array()
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(members.len(), 3, "{body}");
        let by = |id: &str| {
            members
                .iter()
                .find(|m| m["value"] == json!(id))
                .unwrap_or_else(|| panic!("{id} not a member: {body}"))
                .clone()
        };
        let a = by(&alice);
        assert_eq!(a["type"], "User");
        assert_eq!(a["display"], "Alice Smith");
        assert!(
            a["$ref"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Users/{alice}"))
        );
        let bm = by(&bob);
        assert_eq!(bm["type"], "User");
        assert_eq!(
            bm["display"], "bob",
            "a user without displayName shows its userName"
        );
        assert!(
            bm["$ref"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Users/{bob}"))
        );
        let g = by(&inner);
        assert_eq!(g["type"], "Group");
        assert_eq!(g["display"], "Inner");
        assert!(
            g["$ref"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Groups/{inner}"))
        );
    };
    check(&r.body);
    let got = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(got.status, 200);
    check(&got.body);
    assert_eq!(got.body["meta"]["version"], r.body["meta"]["version"]);

    // A group without members has no `members` (unassigned), not an error.
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Empty"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(members_of(&r.body).is_empty());
    // displayName is required.
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "members": [{"value": alice}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // A member type that contradicts the member is refused.
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Typed", "members": [{"value": alice, "type": "Group"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = scim.filter("Groups", "displayName eq \"Typed\"").await;
    assert_eq!(r.body["totalResults"], 0);
    app.stop().await;
}

async fn get_group_projection(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("proj.user", json!({})).await;
    let r = scim
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "Proj", "externalId": "e1", "members": [{"value": u}]}),
        )
        .await;
    let gid = r.body["id"].as_str().unwrap().to_owned();

    let r = scim
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("members").is_none(), "{}", r.body);
    assert_eq!(r.body["id"], json!(gid));
    assert_eq!(r.body["displayName"], "Proj");
    assert_eq!(r.body["externalId"], "e1");
    assert!(r.body["meta"].is_object());

    let r = scim
        .get(&format!("/Groups/{gid}?attributes=displayName"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(gid));
    assert_eq!(r.body["displayName"], "Proj");
    assert_eq!(r.body["schemas"], json!([GROUP_URN]));
    assert!(r.body.get("members").is_none(), "{}", r.body);
    assert!(r.body.get("externalId").is_none(), "{}", r.body);

    let r = scim
        .get(&format!("/Groups/{gid}?attributes=members.value"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["members"], json!([{"value": u}]), "{}", r.body);
    assert!(r.body.get("displayName").is_none(), "{}", r.body);

    // The same projections apply to lists.
    let r = scim
        .get("/Groups?excludedAttributes=members&filter=displayName%20eq%20%22Proj%22")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
    assert!(
        r.body["Resources"][0].get("members").is_none(),
        "{}",
        r.body
    );
    assert_eq!(r.body["Resources"][0]["displayName"], "Proj");
    app.stop().await;
}

async fn patch_add_remove_replace_members_rfc_examples(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let babs = scim
        .create_user("bjensen", json!({"displayName": "Babs Jensen"}))
        .await;
    let mandy = scim
        .create_user("mpepper", json!({"displayName": "Mandy Pepper"}))
        .await;
    let james = scim.create_user("jsmith", json!({})).await;
    let gid = scim.create_group("Tour Guides", &[]).await;
    let path = format!("/Groups/{gid}");
    let v0 = version(&scim, &gid).await;

    // §3.5.2.1: add a member.
    let r = scim
        .patch(
            &path,
            &patch(json!([{
                "op": "add",
                "path": "members",
                "value": [{
                    "display": "Babs Jensen",
                    "$ref": format!("https://example.com/v2/Users/{babs}"),
                    "value": babs
                }]
            }])),
        )
        .await;
    assert_no_content(&r);
    let v1 = version(&scim, &gid).await;
    assert_ne!(v0, v1, "the version did not change");
    assert_eq!(
        r.header("etag"),
        Some(v1.clone()),
        "the 204's ETag is not the new version"
    );
    assert_eq!(member_ids(&scim, &gid).await, set(&[&babs]));

    // A single member object (not in an array) and a path-less add of members.
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "add", "path": "members", "value": {"value": mandy}}])),
        )
        .await;
    assert_no_content(&r);
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "add", "value": {"members": [{"value": james}]}}])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&babs, &mandy, &james]));
    let v2 = version(&scim, &gid).await;
    assert_ne!(v1, v2);

    // §3.5.2.2: remove a single member by filter.
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "remove", "path": format!("members[value eq \"{babs}\"]")}])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&mandy, &james]));
    let v3 = version(&scim, &gid).await;
    assert_ne!(v2, v3);

    // Remove several by an `or` filter.
    let r = scim
        .patch(
            &path,
            &patch(json!([{
                "op": "remove",
                "path": format!("members[value eq \"{mandy}\" or value eq \"{james}\"]")
            }])),
        )
        .await;
    assert_no_content(&r);
    assert!(member_ids(&scim, &gid).await.is_empty());

    // §3.5.2.2: remove all members.
    scim.patch(
        &path,
        &patch(
            json!([{"op": "add", "path": "members", "value": [{"value": babs}, {"value": mandy}]}]),
        ),
    )
    .await;
    assert_eq!(member_ids(&scim, &gid).await, set(&[&babs, &mandy]));
    let r = scim
        .patch(&path, &patch(json!([{"op": "remove", "path": "members"}])))
        .await;
    assert_no_content(&r);
    let got = scim.get(&path).await;
    assert!(members_of(&got.body).is_empty(), "{}", got.body);
    assert_eq!(got.body["displayName"], "Tour Guides");

    // §3.5.2.2: replace all members by remove then add, in one request.
    scim.patch(
        &path,
        &patch(json!([{"op": "add", "path": "members", "value": [{"value": james}]}])),
    )
    .await;
    let r = scim
        .patch(
            &path,
            &patch(json!([
                {"op": "remove", "path": "members"},
                {"op": "add", "path": "members", "value": [
                    {"display": "Babs Jensen", "$ref": format!("https://example.com/v2/Users/{babs}"), "value": babs},
                    {"display": "Mandy Pepper", "$ref": format!("https://example.com/v2/Users/{mandy}"), "value": mandy}
                ]}
            ])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&babs, &mandy]));

    // §3.5.2.3: replace members.
    let before = version(&scim, &gid).await;
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "replace", "path": "members", "value": [
                {"value": james, "type": "User"},
                {"value": mandy}
            ]}])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&james, &mandy]));
    assert_ne!(before, version(&scim, &gid).await);

    // Operations apply in order: add then remove of the same member leaves it out, and remove
    // then add leaves it in.
    let r = scim
        .patch(
            &path,
            &patch(json!([
                {"op": "add", "path": "members", "value": [{"value": babs}]},
                {"op": "remove", "path": format!("members[value eq \"{babs}\"]")}
            ])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&james, &mandy]));
    let r = scim
        .patch(
            &path,
            &patch(json!([
                {"op": "remove", "path": format!("members[value eq \"{james}\"]")},
                {"op": "add", "path": "members", "value": [{"value": james}]}
            ])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&james, &mandy]));

    // Members and other attributes together.
    let r = scim
        .patch(
            &path,
            &patch(json!([
                {"op": "replace", "path": "displayName", "value": "Senior Guides"},
                {"op": "add", "path": "members", "value": [{"value": babs}]}
            ])),
        )
        .await;
    assert_no_content(&r);
    let got = scim.get(&path).await;
    assert_eq!(got.body["displayName"], "Senior Guides");
    assert_eq!(members_of(&got.body), set(&[&babs, &james, &mandy]));

    // A member sub-attribute is not writable, and unsupported member filters are refused.
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "replace", "path": format!("members[value eq \"{babs}\"].display"), "value": "x"}])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&babs, &james, &mandy]));
    app.stop().await;
}

async fn patch_answers_with_body_when_attributes_requested(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("body.user", json!({})).await;
    let gid = scim.create_group("Body", &[]).await;
    let r = scim
        .patch(
            &format!("/Groups/{gid}?attributes=members"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(gid));
    assert_eq!(r.body["members"][0]["value"], json!(u), "{}", r.body);
    assert!(r.body.get("displayName").is_none(), "{}", r.body);
    let v = version(&scim, &gid).await;
    assert_eq!(r.header("etag"), Some(v));

    let r = scim
        .patch(
            &format!("/Groups/{gid}?excludedAttributes=members"),
            &patch(json!([{"op": "replace", "path": "displayName", "value": "Body 2"}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Body 2");
    assert!(r.body.get("members").is_none(), "{}", r.body);
    assert_eq!(r.body["meta"]["version"], json!(version(&scim, &gid).await));
    app.stop().await;
}

async fn patch_add_existing_and_remove_missing_members_is_no_error(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let bu = scim.create_user("b", json!({})).await;
    let outsider = scim.create_user("outsider", json!({})).await;
    let gid = scim.create_group("Idem", &[&a]).await;
    let path = format!("/Groups/{gid}");

    for _ in 0..2 {
        let r = scim
            .patch(
                &path,
                &patch(json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": bu}]}])),
            )
            .await;
        assert_no_content(&r);
        assert_eq!(member_ids(&scim, &gid).await, set(&[&a, &bu]));
    }
    // The same member twice in one request.
    let r = scim
        .patch(
            &path,
            &patch(
                json!([{"op": "add", "path": "members", "value": [{"value": bu}, {"value": bu}]}]),
            ),
        )
        .await;
    assert_no_content(&r);
    let got = scim.get(&path).await;
    assert_eq!(
        got.body["members"].as_array().unwrap().len(),
        2,
        "{}",
        got.body
    );

    // Removing a user who is not a member, or an id that is nobody.
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "remove", "path": format!("members[value eq \"{outsider}\"]")}])),
        )
        .await;
    assert_no_content(&r);
    let r = scim
        .patch(
            &path,
            &patch(json!([{"op": "remove", "path": "members[value eq \"00000000-0000-0000-0000-000000000000\"]"}])),
        )
        .await;
    assert_no_content(&r);
    assert_eq!(member_ids(&scim, &gid).await, set(&[&a, &bu]));
    // The outsider is still nobody's member.
    let u = scim.get(&format!("/Users/{outsider}")).await;
    assert!(u.body.get("groups").is_none(), "{}", u.body);
    app.stop().await;
}

async fn patch_with_unknown_member_is_400_and_changes_nothing(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let fresh = scim.create_user("fresh", json!({})).await;
    let gid = scim.create_group("Atomic", &[&a]).await;
    let path = format!("/Groups/{gid}");
    let before = scim.get(&path).await.body;

    for ops in [
        json!([{"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}]),
        json!([{"op": "add", "path": "members", "value": [{"value": fresh}, {"value": "no-such-user"}]}]),
        json!([
            {"op": "replace", "path": "displayName", "value": "Changed"},
            {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
            {"op": "add", "path": "members", "value": [{"value": fresh}]},
            {"op": "add", "path": "members", "value": [{"value": "00000000-0000-0000-0000-000000000000", "type": "User"}]}
        ]),
        json!([{"op": "replace", "path": "members", "value": [{"value": fresh}, {"value": "no-such-user"}]}]),
        // A member whose stated type contradicts it.
        json!([{"op": "add", "path": "members", "value": [{"value": fresh, "type": "Group"}]}]),
        // The group itself cannot be its own member.
        json!([{"op": "add", "path": "members", "value": [{"value": gid}]}]),
    ] {
        let r = scim.patch(&path, &patch(ops.clone())).await;
        assert_eq!(r.status, 400, "{ops}: {}", r.body);
        assert_eq!(
            r.body["schemas"],
            json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
        );
        assert_eq!(r.body["status"], "400");
        assert_eq!(r.body["scimType"], "invalidValue", "{}", r.body);
        let after = scim.get(&path).await.body;
        assert_eq!(
            before, after,
            "the group changed after a refused PATCH {ops}"
        );
    }
    // The user that was going to be added is in no group.
    let u = scim.get(&format!("/Users/{fresh}")).await;
    assert!(u.body.get("groups").is_none(), "{}", u.body);
    // An unknown group is 404.
    let r = scim
        .patch(
            "/Groups/no-such-group",
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": a}]}])),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    app.stop().await;
}

async fn put_replaces_the_member_list(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let bu = scim.create_user("b", json!({})).await;
    let c = scim.create_user("c", json!({})).await;
    let sub = scim.create_group("Sub", &[]).await;
    let gid = scim.create_group("Put", &[&a, &bu]).await;
    let path = format!("/Groups/{gid}");
    let v0 = version(&scim, &gid).await;

    let r = scim
        .put(
            &path,
            &json!({
                "schemas": [GROUP_URN],
                "displayName": "Put Renamed",
                "members": [{"value": bu}, {"value": c, "type": "User"}, {"value": sub, "type": "Group"}]
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Put Renamed");
    assert_eq!(members_of(&r.body), set(&[&bu, &c, &sub]));
    let v1 = version(&scim, &gid).await;
    assert_ne!(v0, v1);
    assert_eq!(r.header("etag"), Some(v1.clone()));
    assert_eq!(member_ids(&scim, &gid).await, set(&[&bu, &c, &sub]));
    // `a` is no longer in the group.
    let ua = scim.get(&format!("/Users/{a}")).await;
    assert!(ua.body.get("groups").is_none(), "{}", ua.body);

    // PUT without members empties the group.
    let r = scim
        .put(
            &path,
            &json!({"schemas": [GROUP_URN], "displayName": "Put Renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(members_of(&r.body).is_empty(), "{}", r.body);
    assert!(member_ids(&scim, &gid).await.is_empty());

    // A PUT naming an unknown member fails as a whole.
    let before = scim.get(&path).await.body;
    let r = scim
        .put(
            &path,
            &json!({"schemas": [GROUP_URN], "displayName": "Never", "members": [{"value": a}, {"value": "nobody"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(scim.get(&path).await.body, before);

    // If-Match with a stale version is 412 and changes nothing.
    let r = scim
        .send(
            reqwest::Method::PUT,
            &path,
            Some(
                &json!({"schemas": [GROUP_URN], "displayName": "Stale", "members": [{"value": a}]}),
            ),
            &[("If-Match", &v0)],
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(scim.get(&path).await.body, before);
    app.stop().await;
}

async fn delete_group_and_user_drop_memberships(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let bu = scim.create_user("b", json!({})).await;
    let child = scim.create_group("Child", &[&a]).await;
    let parent = scim.create_group("Parent", &[&child, &bu]).await;
    let other = scim.create_group("Other", &[&a, &bu]).await;

    // Deleting a user removes it from every group, and those groups get a new version.
    let v_other = version(&scim, &other).await;
    let v_child = version(&scim, &child).await;
    let r = scim.delete(&format!("/Users/{a}")).await;
    assert_no_content(&r);
    assert_eq!(scim.get(&format!("/Users/{a}")).await.status, 404);
    assert_eq!(member_ids(&scim, &other).await, set(&[&bu]));
    assert!(member_ids(&scim, &child).await.is_empty());
    assert_ne!(version(&scim, &other).await, v_other);
    assert_ne!(version(&scim, &child).await, v_child);
    let r = scim
        .filter("Groups", &format!("members.value eq \"{a}\""))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);

    // Deleting a group: 204, then 404; it leaves the groups it was a member of.
    let v_parent = version(&scim, &parent).await;
    let r = scim.delete(&format!("/Groups/{child}")).await;
    assert_no_content(&r);
    let r = scim.get(&format!("/Groups/{child}")).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["status"], "404");
    assert_eq!(member_ids(&scim, &parent).await, set(&[&bu]));
    assert_ne!(version(&scim, &parent).await, v_parent);
    let r = scim.delete(&format!("/Groups/{child}")).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = scim
        .patch(
            &format!("/Groups/{child}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": bu}]}])),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    // The deleted group cannot be added as a member.
    let r = scim
        .patch(
            &format!("/Groups/{parent}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": child}]}])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Deleting a group with members leaves the members alone.
    let r = scim.delete(&format!("/Groups/{other}")).await;
    assert_no_content(&r);
    let ub = scim.get(&format!("/Users/{bu}")).await;
    assert_eq!(ub.status, 200);
    let groups: Vec<&str> = ub.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(groups, vec![parent.as_str()], "{}", ub.body);
    let list = scim.get("/Groups").await;
    assert_eq!(ids(&list.body), vec![parent.clone()]);

    // With soft delete, a deleted user leaves its groups too.
    app.set_scim_settings("default", idhub::model::ScimProfile::Lenient, true)
        .await;
    let r = scim.delete(&format!("/Users/{bu}")).await;
    assert_no_content(&r);
    assert_eq!(scim.get(&format!("/Users/{bu}")).await.status, 404);
    assert!(member_ids(&scim, &parent).await.is_empty());
    app.stop().await;
}

/// A user's `groups` as sorted (value, display, type) triples.
fn summary(groups: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = groups
        .as_array()
        .map(|a| {
            a.iter()
                .map(|g| {
                    let s = |k: &str| g[k].as_str().unwrap_or_default().to_owned();
                    (s("value"), s("display"), s("type"))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

async fn user_groups_lists_direct_and_indirect_memberships(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("nested.user", json!({})).await;
    let loner = scim.create_user("loner", json!({})).await;
    let child = scim.create_group("Child", &[&u]).await;
    let parent = scim.create_group("Parent", &[&child]).await;
    let grand = scim.create_group("Grand", &[&parent]).await;
    let direct = scim.create_group("Direct", &[&u]).await;
    // Directly and indirectly a member of `parent`: shown once, as direct.
    let both = scim.create_group("Both", &[&u, &child]).await;

    // A page of users carries each one's groups (on SQLite read with the page itself).
    let r = scim
        .get("/Users?filter=userName%20eq%20%22nested.user%22%20or%20userName%20eq%20%22loner%22&sortBy=userName")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.body["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no Resources: {}", r.body))
        .clone();
    assert_eq!(page.len(), 2, "{}", r.body);
    assert_eq!(page[0]["userName"], "loner");
    assert!(page[0].get("groups").is_none(), "{}", r.body);
    assert_eq!(page[1]["userName"], "nested.user");
    let listed = summary(&page[1]["groups"]);
    assert_eq!(listed.len(), 5, "{}", r.body);

    // Cold reads (neither the user nor its groups cached yet) take the row and the groups in
    // one statement: a user in no group has no `groups`, the others all of theirs.
    let r = scim.get(&format!("/Users/{loner}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["userName"], "loner");
    assert!(r.body.get("groups").is_none(), "{}", r.body);
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(r.status, 200);
    let groups = r.body["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups: {}", r.body));
    let by = |id: &str| {
        let found: Vec<&Value> = groups.iter().filter(|g| g["value"] == json!(id)).collect();
        assert_eq!(
            found.len(),
            1,
            "{id} listed {} times: {}",
            found.len(),
            r.body
        );
        found[0].clone()
    };
    assert_eq!(groups.len(), 5, "{}", r.body);
    assert_eq!(
        summary(&r.body["groups"]),
        listed,
        "the page and the GET agree"
    );
    for (id, name, ty) in [
        (&child, "Child", "direct"),
        (&direct, "Direct", "direct"),
        (&both, "Both", "direct"),
        (&parent, "Parent", "indirect"),
        (&grand, "Grand", "indirect"),
    ] {
        let g = by(id);
        assert_eq!(g["type"], ty, "{name}: {g}");
        assert_eq!(g["display"], name, "{g}");
        assert!(
            g["$ref"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/scim/v2/Groups/{id}"))
        );
    }
    // `groups` is read-only: input for it is ignored.
    let r = scim
        .patch(
            &format!("/Users/{loner}"),
            &json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": "groups", "value": [{"value": child}]}]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = scim
        .put(
            &format!("/Users/{loner}"),
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "loner", "groups": [{"value": child}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("groups").is_none(), "{}", r.body);
    assert_eq!(member_ids(&scim, &child).await, set(&[&u]));

    // Removing the nesting removes the indirect memberships.
    let r = scim
        .patch(
            &format!("/Groups/{parent}"),
            &patch(json!([{"op": "remove", "path": format!("members[value eq \"{child}\"]")}])),
        )
        .await;
    assert_no_content(&r);
    let r = scim.get(&format!("/Users/{u}")).await;
    let listed: BTreeSet<String> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, set(&[&child, &direct, &both]), "{}", r.body);
    // attributes=groups returns only them; excludedAttributes=groups omits them.
    let r = scim.get(&format!("/Users/{u}?attributes=groups")).await;
    assert_eq!(r.body["groups"].as_array().unwrap().len(), 3);
    assert!(r.body.get("userName").is_none(), "{}", r.body);
    let r = scim
        .get(&format!("/Users/{u}?excludedAttributes=groups"))
        .await;
    assert!(r.body.get("groups").is_none(), "{}", r.body);
    assert_eq!(r.body["userName"], "nested.user");
    app.stop().await;
}

async fn members_can_be_paged_through_users_filter(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let mut members = Vec::new();
    for i in 0..7 {
        members.push(scim.create_user(&format!("member{i}"), json!({})).await);
    }
    let outsider = scim.create_user("outsider", json!({})).await;
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let gid = scim.create_group("Paged", &refs).await;
    let other = scim.create_group("Other", &[&outsider, &members[0]]).await;

    let q = crate::harness::url_encode(&format!("groups.value eq \"{gid}\""));
    let mut seen = Vec::new();
    for (start, want) in [(1, 3), (4, 3), (7, 1), (8, 0)] {
        let r = scim
            .get(&format!("/Users?filter={q}&startIndex={start}&count=3"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["totalResults"], 7, "{}", r.body);
        assert_eq!(r.body["startIndex"], start);
        assert_eq!(r.body["itemsPerPage"], want, "{}", r.body);
        let page = ids(&r.body);
        assert_eq!(page.len(), want);
        seen.extend(page);
    }
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        seen.len(),
        "a member appeared on two pages: {seen:?}"
    );
    assert_eq!(unique, members.iter().cloned().collect::<BTreeSet<_>>());
    assert!(!unique.contains(&outsider));

    // count=0 gives the total only.
    let r = scim.get(&format!("/Users?filter={q}&count=0")).await;
    assert_eq!(r.body["totalResults"], 7);
    assert_eq!(r.body["Resources"], json!([]));
    // Sorted by userName, descending.
    let r = scim
        .get(&format!(
            "/Users?filter={q}&sortBy=userName&sortOrder=descending&count=2"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<&str> = r.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["userName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["member6", "member5"]);
    // The same through .search, and for the other group.
    let r = scim
        .post(
            "/Users/.search",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": format!("groups.value eq \"{other}\""),
                "startIndex": 1,
                "count": 10
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let found: BTreeSet<String> = ids(&r.body).into_iter().collect();
    assert_eq!(found, set(&[&outsider, &members[0]]));
    // Cursor pagination walks the same members.
    let mut cursor = String::new();
    let mut walked = Vec::new();
    for _ in 0..10 {
        let r = scim
            .get(&format!("/Users?filter={q}&count=3&cursor={cursor}"))
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        walked.extend(ids(&r.body));
        match r.body["nextCursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let walked_set: BTreeSet<String> = walked.iter().cloned().collect();
    assert_eq!(walked.len(), 7, "{walked:?}");
    assert_eq!(walked_set, unique);
    app.stop().await;
}

async fn concurrent_member_patches_lose_nothing(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let mut initial = Vec::new();
    for i in 0..20 {
        initial.push(scim.create_user(&format!("initial{i:02}"), json!({})).await);
    }
    let mut added = Vec::new();
    for i in 0..40 {
        added.push(scim.create_user(&format!("added{i:02}"), json!({})).await);
    }
    let refs: Vec<&str> = initial.iter().map(String::as_str).collect();
    let gid = scim.create_group("Contended", &refs).await;
    let v0 = version(&scim, &gid).await;

    // 40 PATCHes each adding one new user (the first 10 also removing an initial member), and
    // 5 more removing initial members, all at once.
    let mut bodies = Vec::new();
    for (i, uid) in added.iter().enumerate() {
        let mut ops = vec![json!({"op": "add", "path": "members", "value": [{"value": uid}]})];
        if i < 10 {
            ops.push(
                json!({"op": "remove", "path": format!("members[value eq \"{}\"]", initial[i])}),
            );
        }
        bodies.push(patch(Value::Array(ops)));
    }
    for removed in &initial[10..15] {
        bodies.push(patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{removed}\"]")}]),
        ));
    }
    let url = scim.url(&format!("/Groups/{gid}"));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(bodies.len()));
    let tasks: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let client = app.client.clone();
            let url = url.clone();
            let token = scim.token.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .patch(url)
                    .bearer_auth(token)
                    .header("Content-Type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.text().await.unwrap())
            })
        })
        .collect();
    let results = futures_util::future::join_all(tasks).await;
    for r in results {
        let (status, text) = r.unwrap();
        assert_eq!(status, 204, "a concurrent PATCH failed: {text}");
    }

    let want: BTreeSet<String> = added.iter().chain(initial[15..].iter()).cloned().collect();
    assert_eq!(want.len(), 45);
    let got = member_ids(&scim, &gid).await;
    let lost: Vec<&String> = want.difference(&got).collect();
    let extra: Vec<&String> = got.difference(&want).collect();
    assert!(
        lost.is_empty() && extra.is_empty(),
        "lost {lost:?}, extra {extra:?}"
    );
    assert_ne!(version(&scim, &gid).await, v0);
    // The stored membership agrees with the filters.
    let q = crate::harness::url_encode(&format!("groups.value eq \"{gid}\""));
    let r = scim.get(&format!("/Users?filter={q}&count=1000")).await;
    assert_eq!(r.body["totalResults"], 45, "{}", r.body);
    let stored = app
        .store
        .tenant(app.default_tenant.clone())
        .member_views(&gid)
        .await
        .unwrap();
    let stored: BTreeSet<String> = stored.into_iter().map(|m| m.id).collect();
    assert_eq!(stored, want);
    for uid in &added {
        let u = scim.get(&format!("/Users/{uid}")).await;
        assert_eq!(u.body["groups"][0]["value"], json!(gid), "{}", u.body);
    }
    app.stop().await;
}

async fn group_filters_on_display_name_and_members(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let bu = scim.create_user("b", json!({})).await;
    let lonely = scim.create_user("lonely", json!({})).await;
    let eng = scim.create_group("Engineering", &[&a, &bu]).await;
    let ops = scim.create_group("Operations", &[&a]).await;
    let eng_ops = scim.create_group("Engineering Ops", &[&eng]).await;
    let _empty = scim.create_group("Empty", &[]).await;

    let found = |r: &ScimReply| -> BTreeSet<String> {
        assert_eq!(r.status, 200, "{}", r.body);
        let ids = ids(&r.body);
        assert_eq!(r.body["totalResults"], json!(ids.len()), "{}", r.body);
        ids.into_iter().collect()
    };
    let r = scim
        .filter("Groups", "displayName eq \"Engineering\"")
        .await;
    assert_eq!(found(&r), set(&[&eng]));
    assert_eq!(r.body["Resources"][0]["displayName"], "Engineering");
    // displayName is caseExact false (RFC 7643 §4.2).
    let r = scim
        .filter("Groups", "displayName eq \"engineering\"")
        .await;
    assert_eq!(found(&r), set(&[&eng]));
    let r = scim
        .filter("Groups", "displayName sw \"Engineering\"")
        .await;
    assert_eq!(found(&r), set(&[&eng, &eng_ops]));
    let r = scim.filter("Groups", "displayName eq \"Nope\"").await;
    assert!(found(&r).is_empty());

    let r = scim
        .filter("Groups", &format!("members.value eq \"{a}\""))
        .await;
    assert_eq!(found(&r), set(&[&eng, &ops]));
    let r = scim
        .filter("Groups", &format!("members.value eq \"{bu}\""))
        .await;
    assert_eq!(found(&r), set(&[&eng]));
    let r = scim
        .filter("Groups", &format!("members[value eq \"{eng}\"]"))
        .await;
    assert_eq!(found(&r), set(&[&eng_ops]));
    let r = scim
        .filter("Groups", &format!("members.value eq \"{lonely}\""))
        .await;
    assert!(found(&r).is_empty());
    let r = scim
        .filter(
            "Groups",
            &format!("displayName eq \"Engineering\" and members.value eq \"{a}\""),
        )
        .await;
    assert_eq!(found(&r), set(&[&eng]));
    let r = scim
        .filter(
            "Groups",
            &format!("displayName eq \"Operations\" or members.value eq \"{bu}\""),
        )
        .await;
    assert_eq!(found(&r), set(&[&eng, &ops]));
    let r = scim.filter("Groups", "members pr").await;
    assert_eq!(found(&r), set(&[&eng, &ops, &eng_ops]));
    let r = scim.filter("Groups", "not (members pr)").await;
    assert_eq!(found(&r).len(), 1);

    // With members excluded, as Entra ID asks.
    let q = crate::harness::url_encode("displayName eq \"Engineering\"");
    let r = scim
        .get(&format!("/Groups?excludedAttributes=members&filter={q}"))
        .await;
    assert_eq!(found(&r), set(&[&eng]));
    assert!(
        r.body["Resources"][0].get("members").is_none(),
        "{}",
        r.body
    );
    // A membership change is visible to the filter at once.
    scim.patch(
        &format!("/Groups/{ops}"),
        &patch(json!([{"op": "add", "path": "members", "value": [{"value": lonely}]}])),
    )
    .await;
    let r = scim
        .filter("Groups", &format!("members.value eq \"{lonely}\""))
        .await;
    assert_eq!(found(&r), set(&[&ops]));
    // An unknown attribute is invalidFilter.
    let r = scim.filter("Groups", "nosuch eq \"x\"").await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["scimType"], "invalidFilter");
    app.stop().await;
}

async fn conditional_requests_on_groups(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("cond.user", json!({})).await;
    let gid = scim.create_group("Conditional", &[]).await;
    let path = format!("/Groups/{gid}");
    let v1 = version(&scim, &gid).await;

    // If-None-Match with the current version: 304 without a body.
    let r = scim
        .send(reqwest::Method::GET, &path, None, &[("If-None-Match", &v1)])
        .await;
    assert_eq!(r.status, 304, "{}", r.body);
    assert!(r.body.is_null());
    assert_eq!(r.header("etag"), Some(v1.clone()));

    // PATCH guarded by the current version succeeds.
    let add = patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}]));
    let r = scim
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&add),
            &[("If-Match", &v1)],
        )
        .await;
    assert_no_content(&r);
    let v2 = version(&scim, &gid).await;
    assert_ne!(v1, v2);
    // The old version no longer matches.
    let r = scim
        .send(reqwest::Method::GET, &path, None, &[("If-None-Match", &v1)])
        .await;
    assert_eq!(r.status, 200);
    let remove = patch(json!([{"op": "remove", "path": "members"}]));
    let r = scim
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&remove),
            &[("If-Match", &v1)],
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(r.body["status"], "412");
    assert_eq!(member_ids(&scim, &gid).await, set(&[&u]));
    assert_eq!(version(&scim, &gid).await, v2);
    let r = scim
        .send(reqwest::Method::DELETE, &path, None, &[("If-Match", &v1)])
        .await;
    assert_eq!(r.status, 412, "{}", r.body);
    assert_eq!(scim.get(&path).await.status, 200);
    // `*` matches any version.
    let r = scim
        .send(
            reqwest::Method::PATCH,
            &path,
            Some(&remove),
            &[("If-Match", "*")],
        )
        .await;
    assert_no_content(&r);
    assert!(member_ids(&scim, &gid).await.is_empty());
    let v3 = version(&scim, &gid).await;
    let r = scim
        .send(reqwest::Method::DELETE, &path, None, &[("If-Match", &v3)])
        .await;
    assert_no_content(&r);
    assert_eq!(scim.get(&path).await.status, 404);
    app.stop().await;
}

async fn patch_mixing_attributes_and_members_is_atomic(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let a = scim.create_user("a", json!({})).await;
    let bu = scim.create_user("b", json!({})).await;
    let gid = scim.create_group("Mixed", &[&a]).await;
    let path = format!("/Groups/{gid}");
    let before = scim.get(&path).await.body;

    // A member change with an invalid attribute change: neither applies.
    for ops in [
        json!([
            {"op": "add", "path": "members", "value": [{"value": bu}]},
            {"op": "remove", "path": "displayName"}
        ]),
        json!([
            {"op": "remove", "path": format!("members[value eq \"{a}\"]")},
            {"op": "replace", "path": "displayName", "value": 42}
        ]),
        json!([
            {"op": "replace", "path": "members", "value": [{"value": bu}]},
            {"op": "replace", "path": "nosuchattribute", "value": "x"}
        ]),
        json!([
            {"op": "add", "path": "members", "value": [{"value": bu}]},
            {"op": "replace", "path": "id", "value": "other-id"}
        ]),
    ] {
        let r = scim.patch(&path, &patch(ops.clone())).await;
        assert_eq!(r.status, 400, "{ops}: {}", r.body);
        assert_eq!(scim.get(&path).await.body, before, "partly applied: {ops}");
    }
    // Both valid: both apply.
    let r = scim
        .patch(
            &path,
            &patch(json!([
                {"op": "add", "path": "members", "value": [{"value": bu}]},
                {"op": "replace", "path": "displayName", "value": "Mixed 2"},
                {"op": "add", "path": "externalId", "value": "mixed-ext"}
            ])),
        )
        .await;
    assert_no_content(&r);
    let got = scim.get(&path).await.body;
    assert_eq!(got["displayName"], "Mixed 2");
    assert_eq!(got["externalId"], "mixed-ext");
    assert_eq!(members_of(&got), set(&[&a, &bu]));
    let r = scim.filter("Groups", "displayName eq \"Mixed 2\"").await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = scim.filter("Groups", "externalId eq \"mixed-ext\"").await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = scim.filter("Groups", "displayName eq \"Mixed\"").await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    app.stop().await;
}

/// Concurrent PATCHes that each rename the group and add a member: each one either applies
/// entirely (2xx) or not at all (an error), never half.
async fn concurrent_patches_with_attribute_changes_stay_consistent(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let mut users = Vec::new();
    for i in 0..20 {
        users.push(scim.create_user(&format!("racer{i:02}"), json!({})).await);
    }
    let gid = scim.create_group("Race", &[]).await;
    let url = scim.url(&format!("/Groups/{gid}"));
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(users.len()));
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, uid)| {
            let body = patch(json!([
                {"op": "replace", "path": "displayName", "value": format!("Race {i}")},
                {"op": "add", "path": "members", "value": [{"value": uid}]}
            ]));
            let client = app.client.clone();
            let url = url.clone();
            let token = scim.token.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let r = client
                    .patch(url)
                    .bearer_auth(token)
                    .header("Content-Type", "application/scim+json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                (status, r.text().await.unwrap())
            })
        })
        .collect();
    let results = futures_util::future::join_all(tasks).await;
    let mut applied = BTreeSet::new();
    let mut names = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        let (status, text) = r.unwrap();
        assert!(
            status == 204 || status == 409 || status == 412,
            "PATCH {i} answered {status}: {text}"
        );
        if status == 204 {
            applied.insert(users[i].clone());
            names.push(format!("Race {i}"));
        }
    }
    assert!(!applied.is_empty(), "no PATCH applied");
    let got = scim.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(
        members_of(&got),
        applied,
        "members differ from the PATCHes that succeeded"
    );
    let name = got["displayName"].as_str().unwrap().to_owned();
    assert!(
        names.contains(&name),
        "{name} is not from a successful PATCH"
    );
    app.stop().await;
}

async fn nested_group_cycles_are_handled(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("cyclist", json!({})).await;
    let ga = scim.create_group("Cycle A", &[&u]).await;
    let gb = scim.create_group("Cycle B", &[&ga]).await;
    // A member of B, B member of A.
    let r = scim
        .patch(
            &format!("/Groups/{ga}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": gb, "type": "Group"}]}])),
        )
        .await;
    assert!(
        r.status == 204 || r.status == 400,
        "a membership cycle answered {}: {}",
        r.status,
        r.body
    );
    let cycle = r.status == 204;
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let groups = r.body["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{}", r.body);
    let a = groups.iter().find(|g| g["value"] == json!(ga)).unwrap();
    assert_eq!(a["type"], "direct");
    let bg = groups.iter().find(|g| g["value"] == json!(gb)).unwrap();
    assert_eq!(bg["type"], "indirect");
    let r = scim.get(&format!("/Groups/{ga}")).await;
    assert_eq!(r.status, 200);
    if cycle {
        assert_eq!(members_of(&r.body), set(&[&u, &gb]));
    }
    let r = scim
        .filter("Groups", &format!("members.value eq \"{ga}\""))
        .await;
    assert_eq!(ids(&r.body), vec![gb.clone()]);
    // Deleting one group of the cycle leaves the other consistent.
    assert_no_content(&scim.delete(&format!("/Groups/{gb}")).await);
    assert_eq!(member_ids(&scim, &ga).await, set(&[&u]));
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(r.body["groups"].as_array().unwrap().len(), 1, "{}", r.body);
    app.stop().await;
}

/// RFC 7643 §4.1.2: `groups` lists direct and indirect memberships, and a filter on `groups`
/// (RFC 7644 §3.4.2.2) is evaluated against that same attribute: what `GET /Users/{id}`
/// shows and what `filter=groups.value eq …` finds agree.
async fn user_groups_filter_agrees_with_groups_attribute(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let direct_member = scim.create_user("direct.member", json!({})).await;
    let nested_member = scim.create_user("nested.member", json!({})).await;
    let child = scim.create_group("Child", &[&nested_member]).await;
    let parent = scim.create_group("Parent", &[&direct_member, &child]).await;

    let r = scim.get(&format!("/Users/{nested_member}")).await;
    let shown: BTreeSet<String> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap().to_owned())
        .collect();
    assert!(shown.contains(&parent), "{}", r.body);

    let r = scim
        .filter("Users", &format!("groups.value eq \"{parent}\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let found: BTreeSet<String> = ids(&r.body).into_iter().collect();
    assert_eq!(
        found,
        set(&[&direct_member, &nested_member]),
        "GET /Users/{nested_member} lists group {parent}, but filter groups.value eq \"{parent}\" does not find the user"
    );
    let r = scim.filter("Users", "groups.type eq \"indirect\"").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(ids(&r.body), vec![nested_member.clone()], "{}", r.body);
    app.stop().await;
}

async fn soft_deleted_groups_disappear_everywhere(b: Backend) {
    let app = TestApp::spawn(&b).await;
    app.set_scim_settings("default", idhub::model::ScimProfile::Lenient, true)
        .await;
    let scim = app.scim().await;
    let u = scim.create_user("soft.user", json!({})).await;
    let child = scim.create_group("Soft Child", &[&u]).await;
    let parent = scim.create_group("Soft Parent", &[&child]).await;
    let keep = scim.create_group("Kept", &[&u]).await;

    assert_no_content(&scim.delete(&format!("/Groups/{child}")).await);
    assert_eq!(scim.get(&format!("/Groups/{child}")).await.status, 404);
    let list = scim.get("/Groups").await;
    let listed = ids(&list.body);
    assert!(!listed.contains(&child), "{}", list.body);
    assert_eq!(list.body["totalResults"], 2, "{}", list.body);
    let r = scim.filter("Groups", "displayName eq \"Soft Child\"").await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let r = scim
        .filter("Groups", &format!("members.value eq \"{u}\""))
        .await;
    assert_eq!(ids(&r.body), vec![keep.clone()], "{}", r.body);
    assert!(member_ids(&scim, &parent).await.is_empty());
    // The user's groups no longer mention it, nor the parent reached through it.
    let r = scim.get(&format!("/Users/{u}")).await;
    let groups: Vec<&str> = r.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["value"].as_str().unwrap())
        .collect();
    assert_eq!(groups, vec![keep.as_str()], "{}", r.body);
    let r = scim
        .filter("Users", &format!("groups.value eq \"{child}\""))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    // It cannot be changed, deleted again, or referenced.
    let r = scim
        .patch(
            &format!("/Groups/{child}"),
            &patch(json!([{"op": "replace", "path": "displayName", "value": "Back"}])),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = scim
        .put(
            &format!("/Groups/{child}"),
            &json!({"schemas": [GROUP_URN], "displayName": "Back"}),
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(scim.delete(&format!("/Groups/{child}")).await.status, 404);
    let r = scim
        .patch(
            &format!("/Groups/{parent}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": child}]}])),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Its name is free again.
    let again = scim.create_group("Soft Child", &[&u]).await;
    assert_ne!(again, child);
    app.stop().await;
}

/// Deleting users who share groups while those groups are PATCHed: every request succeeds
/// (no deadlock surfacing as a 500), and the groups end with exactly the surviving members.
async fn concurrent_deletes_and_member_patches_never_deadlock(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let mut doomed = Vec::new();
    for i in 0..24 {
        doomed.push(scim.create_user(&format!("doomed{i:02}"), json!({})).await);
    }
    let mut keepers = Vec::new();
    for i in 0..12 {
        keepers.push(scim.create_user(&format!("keeper{i:02}"), json!({})).await);
    }
    // Half the doomed users join G1 before G2, the other half G2 before G1, so their
    // membership rows come back in opposite orders when they are deleted.
    let (g1, g2) = (
        scim.create_group("First", &[]).await,
        scim.create_group("Second", &[]).await,
    );
    let add = |ids: &[String]| {
        let v: Vec<Value> = ids.iter().map(|id| json!({ "value": id })).collect();
        patch(json!([{ "op": "add", "path": "members", "value": v }]))
    };
    let (first, second) = doomed.split_at(12);
    for (g, ids) in [(&g1, first), (&g2, &doomed[..]), (&g1, second)] {
        let r = scim.patch(&format!("/Groups/{g}"), &add(ids)).await;
        assert!(r.status == 200 || r.status == 204, "{}", r.body);
    }

    let mut requests: Vec<(reqwest::Method, String, Option<Value>)> = Vec::new();
    for id in &doomed {
        requests.push((reqwest::Method::DELETE, format!("/Users/{id}"), None));
    }
    for (i, k) in keepers.iter().enumerate() {
        let g = if i % 2 == 0 { &g1 } else { &g2 };
        requests.push((
            reqwest::Method::PATCH,
            format!("/Groups/{g}"),
            Some(add(std::slice::from_ref(k))),
        ));
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|(method, path, body)| {
            let (client, url, token) = (app.client.clone(), scim.url(&path), scim.token.clone());
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let mut rb = client.request(method, url).bearer_auth(token);
                if let Some(b) = body {
                    rb = rb
                        .header("Content-Type", "application/scim+json")
                        .body(b.to_string());
                }
                let r = rb.send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            })
        })
        .collect();
    for r in futures_util::future::join_all(tasks).await {
        let (status, text) = r.unwrap();
        assert!(
            status == 204 || status == 200,
            "a concurrent request failed: {status} {text}"
        );
    }
    let want = |parity: usize| -> BTreeSet<String> {
        keepers
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == parity)
            .map(|(_, k)| k.clone())
            .collect()
    };
    assert_eq!(member_ids(&scim, &g1).await, want(0));
    assert_eq!(member_ids(&scim, &g2).await, want(1));
    app.stop().await;
}

/// A tenant that nests no groups reads a user's groups as its direct memberships (the answer
/// "no nesting" is cached per tenant); the moment a group gains or loses a group member —
/// by POST, by PATCH, by a PUT that replaces the member list — every user below shows (or
/// stops showing) the indirect membership on the next read, cached or not.
async fn nesting_groups_later_shows_at_once_in_cached_users(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let u = scim.create_user("late.nesting", json!({})).await;
    let child = scim.create_group("Child", &[&u]).await;
    let groups_of = |r: &ScimReply| summary(&r.body["groups"]);
    let direct_only = vec![(child.clone(), "Child".to_owned(), "direct".to_owned())];
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(groups_of(&r), direct_only, "{}", r.body);

    // Nested by creating a parent with the group as a member.
    let parent = scim.create_group("Parent", &[&child]).await;
    let mut nested = vec![
        (child.clone(), "Child".to_owned(), "direct".to_owned()),
        (parent.clone(), "Parent".to_owned(), "indirect".to_owned()),
    ];
    nested.sort();
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(groups_of(&r), nested, "{}", r.body);
    let r = scim
        .get("/Users?filter=userName%20eq%20%22late.nesting%22")
        .await;
    assert_eq!(
        summary(&r.body["Resources"][0]["groups"]),
        nested,
        "{}",
        r.body
    );

    // Un-nested by a PUT that replaces the parent's member list.
    let r = scim
        .put(
            &format!("/Groups/{parent}"),
            &json!({"schemas": [GROUP_URN], "displayName": "Parent", "members": []}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(groups_of(&r), direct_only, "{}", r.body);

    // Nested again by a PATCH that adds the group.
    let r = scim
        .patch(
            &format!("/Groups/{parent}"),
            &patch(json!([{"op": "add", "path": "members", "value": [{"value": child}]}])),
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.body);
    let r = scim.get(&format!("/Users/{u}")).await;
    assert_eq!(groups_of(&r), nested, "{}", r.body);
}
