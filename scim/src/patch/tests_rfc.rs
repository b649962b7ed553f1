//! The PATCH examples of RFC 7644 §3.5.2, run in the strict profile.

use super::tests::{S, bjensen, group, user};
use super::*;
use serde_json::json;

const BABS: &str = "2819c223-7f76-453a-919d-413861904646";
const JAMES: &str = "08e1d05d-121c-4561-8b96-473d93df9210";

fn m(id: &str) -> MemberRef {
    MemberRef {
        value: id.into(),
        ty: None,
    }
}

fn group_doc() -> Value {
    json!({"schemas": [crate::urn::GROUP], "displayName": "Tour Guides"})
}

/// §3.5.2.1: add a member to a group.
#[test]
fn add_member() {
    let (doc, delta) = group(
        group_doc(),
        json!([{
            "op": "add",
            "path": "members",
            "value": [{
                "display": "Babs Jensen",
                "$ref": format!("https://example.com/v2/Users/{BABS}"),
                "value": BABS
            }]
        }]),
        S,
    )
    .unwrap();
    assert_eq!(doc, group_doc(), "members never reach the group document");
    assert_eq!(
        delta,
        MemberDelta {
            add: vec![m(BABS)],
            ..Default::default()
        }
    );
}

/// §3.5.2.1: add attributes to a user without a path.
#[test]
fn add_user_attributes_without_path() {
    let d = user(bjensen(), json!([{
        "op": "add",
        "value": {
            "emails": [{"value": "babs@jensen.org", "type": "home"}, {"value": "b@x.org", "type": "other"}],
            "nickname": "Babs"
        }
    }]), S)
    .unwrap();
    assert_eq!(d["nickName"], "Babs");
    // babs@jensen.org is already there: only the new address is appended.
    let emails = d["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 3);
    assert_eq!(emails[2], json!({"value": "b@x.org", "type": "other"}));
}

/// §3.5.2.2: remove all members of a group.
#[test]
fn remove_all_members() {
    let (_, delta) = group(group_doc(), json!([{"op": "remove", "path": "members"}]), S).unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            replace: Some(vec![]),
            ..Default::default()
        }
    );
}

/// §3.5.2.2: remove one member by filter.
#[test]
fn remove_member_by_filter() {
    let (_, delta) = group(
        group_doc(),
        json!([{
            "op": "remove",
            "path": format!("members[value eq \"{BABS}\"]")
        }]),
        S,
    )
    .unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            remove: vec![BABS.into()],
            ..Default::default()
        }
    );
}

/// §3.5.2.2: remove one member and add another in one request.
#[test]
fn remove_then_add_member() {
    let (_, delta) = group(
        group_doc(),
        json!([
            {"op": "remove", "path": format!("members[value eq \"{BABS}\"]")},
            {"op": "add", "path": "members", "value": [{
                "display": "James Smith",
                "$ref": format!("https://example.com/v2/Users/{JAMES}"),
                "value": JAMES
            }]}
        ]),
        S,
    )
    .unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            replace: None,
            add: vec![m(JAMES)],
            remove: vec![BABS.into()]
        }
    );
}

/// §3.5.2.2: remove a complex value selected by a compound filter.
#[test]
fn remove_complex_value_by_filter() {
    let d = user(
        bjensen(),
        json!([{
            "op": "remove",
            "path": "emails[type eq \"work\" and value ew \"example.com\"]"
        }]),
        S,
    )
    .unwrap();
    assert_eq!(
        d["emails"],
        json!([{"value": "babs@jensen.org", "type": "home"}])
    );
}

/// §3.5.2.2: remove a single-valued attribute, and a sub-attribute.
#[test]
fn remove_attribute_and_sub_attribute() {
    let mut doc = bjensen();
    doc["title"] = json!("Tour Guide");
    let d = user(
        doc,
        json!([
            {"op": "remove", "path": "title"},
            {"op": "remove", "path": "name.familyName"}
        ]),
        S,
    )
    .unwrap();
    assert!(d.get("title").is_none());
    assert_eq!(d["name"], json!({"givenName": "Barbara"}));
}

/// §3.5.2.3: replace all members.
#[test]
fn replace_all_members() {
    let (_, delta) = group(group_doc(), json!([{
        "op": "replace",
        "path": "members",
        "value": [
            {"display": "Babs Jensen", "$ref": format!("https://example.com/v2/Users/{BABS}"), "value": BABS},
            {"display": "James Smith", "$ref": format!("https://example.com/v2/Users/{JAMES}"), "value": JAMES}
        ]
    }]), S)
    .unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            replace: Some(vec![m(BABS), m(JAMES)]),
            ..Default::default()
        }
    );
}

/// §3.5.2.3: replace all members, the remove-then-add form.
#[test]
fn remove_all_then_add_members() {
    let (_, delta) = group(
        group_doc(),
        json!([
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": BABS}, {"value": JAMES}]}
        ]),
        S,
    )
    .unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            replace: Some(vec![m(BABS), m(JAMES)]),
            ..Default::default()
        }
    );
}

/// §3.5.2.3: replace several attributes without a path.
#[test]
fn replace_multiple_attributes() {
    let d = user(
        bjensen(),
        json!([{
            "op": "replace",
            "value": {
                "emails": [
                    {"value": "bjensen@example.com", "type": "work", "primary": true},
                    {"value": "babs@jensen.org", "type": "home"}
                ],
                "nickname": "Babs"
            }
        }]),
        S,
    )
    .unwrap();
    assert_eq!(d["emails"], bjensen()["emails"]);
    assert_eq!(d["nickName"], "Babs");
    let d = user(
        bjensen(),
        json!([{"op": "replace", "value": {"emails": [{"value": "only@x"}]}}]),
        S,
    )
    .unwrap();
    assert_eq!(
        d["emails"],
        json!([{"value": "only@x"}]),
        "replace without a filter replaces the whole list"
    );
}

/// §3.5.2.3: replace the work address (the whole matching element's given sub-attributes).
#[test]
fn replace_work_address() {
    let d = user(
        bjensen(),
        json!([{
            "op": "replace",
            "path": "addresses[type eq \"work\"]",
            "value": {
                "type": "work",
                "streetAddress": "911 Universal City Plaza",
                "locality": "Hollywood",
                "region": "CA",
                "postalCode": "91608",
                "country": "US",
                "formatted": "911 Universal City Plaza\nHollywood, CA 91608 US",
                "primary": true
            }
        }]),
        S,
    )
    .unwrap();
    let work = &d["addresses"][0];
    assert_eq!(work["streetAddress"], "911 Universal City Plaza");
    assert_eq!(work["country"], "US");
    assert_eq!(
        work["formatted"],
        "911 Universal City Plaza\nHollywood, CA 91608 US"
    );
    assert_eq!(d["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

/// §3.5.2.3: replace one sub-attribute of the matching element.
#[test]
fn replace_street_address() {
    let d = user(
        bjensen(),
        json!([{
            "op": "replace",
            "path": "addresses[type eq \"work\"].streetAddress",
            "value": "1010 Broadway Ave"
        }]),
        S,
    )
    .unwrap();
    assert_eq!(d["addresses"][0]["streetAddress"], "1010 Broadway Ave");
    assert_eq!(d["addresses"][0]["locality"], "Hollywood");
    assert_eq!(d["addresses"][1]["streetAddress"], "456 Hollywood Blvd");
}

/// §3.5.2.3: replacing a complex attribute leaves unmentioned sub-attributes unchanged;
/// §3.5.2.1: adding to a single-valued attribute replaces its value.
#[test]
fn complex_and_simple_single_values() {
    let d = user(
        bjensen(),
        json!([
            {"op": "replace", "path": "name", "value": {"givenName": "Babs"}},
            {"op": "add", "path": "active", "value": false},
            {"op": "add", "path": "name.middleName", "value": "J"}
        ]),
        S,
    )
    .unwrap();
    assert_eq!(
        d["name"],
        json!({"familyName": "Jensen", "givenName": "Babs", "middleName": "J"})
    );
    assert_eq!(d["active"], false);
}
