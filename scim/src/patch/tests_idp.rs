//! Payloads sent by Microsoft Entra ID and Okta, and group membership semantics.

use super::tests::{ENT, L, S, bjensen, group, kind, user};
use super::*;
use serde_json::json;

fn m(id: &str) -> MemberRef {
    MemberRef {
        value: id.into(),
        ty: None,
    }
}

fn g() -> Value {
    json!({"schemas": [crate::urn::GROUP], "displayName": "Sales"})
}

#[test]
fn entra_update_user_with_capitalised_ops() {
    let ops = json!([
        {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
    ]);
    for prof in [Profile::Entra, L] {
        let d = user(bjensen(), ops.clone(), prof).unwrap();
        assert_eq!(d["emails"][0]["value"], "updatedEmail@microsoft.com");
        assert_eq!(d["emails"][0]["primary"], true);
        assert_eq!(d["name"]["familyName"], "updatedFamilyName");
    }
    assert_eq!(kind(user(bjensen(), ops, S)), ScimType::InvalidSyntax);
}

#[test]
fn entra_disable_user_with_string_boolean() {
    // The value is inserted as given; validation coerces "False" outside strict.
    let d = user(
        bjensen(),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
        Profile::Entra,
    )
    .unwrap();
    assert_eq!(d["active"], "False");
    let d = user(
        bjensen(),
        json!([{"op": "replace", "path": "active", "value": false}]),
        S,
    )
    .unwrap();
    assert_eq!(d["active"], false);
}

#[test]
fn entra_pathless_replace_with_path_keys() {
    let mut doc = bjensen();
    doc.as_object_mut().unwrap().remove("emails");
    let ops = json!([{"op": "Replace", "value": {
        "active": "False",
        "displayName": "Jane Doe",
        "name.givenName": "Jane",
        "emails[type eq \"work\"].value": "jane@contoso.com",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "26118915-6090-4610-87e4-49d8ca9f808d"
    }}]);
    let d = user(doc, ops.clone(), Profile::Entra).unwrap();
    assert_eq!(d["active"], "False");
    assert_eq!(d["displayName"], "Jane Doe");
    assert_eq!(
        d["name"],
        json!({"givenName": "Jane", "familyName": "Jensen"})
    );
    assert_eq!(
        d["emails"],
        json!([{"type": "work", "value": "jane@contoso.com"}])
    );
    assert_eq!(d[ENT]["department"], "Sales");
    assert_eq!(d[ENT]["manager"], "26118915-6090-4610-87e4-49d8ca9f808d");
    assert_eq!(d["schemas"], json!([crate::urn::USER, ENT]));
    let strict = json!([{"op": "replace", "value": {"emails[type eq \"work\"].value": "x@y"}}]);
    assert_eq!(kind(user(bjensen(), strict, S)), ScimType::InvalidPath);
}

#[test]
fn entra_manager_add_and_remove() {
    let path = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";
    let d = user(
        bjensen(),
        json!([{"op": "Add", "path": path, "value": "2819c223"}]),
        Profile::Entra,
    )
    .unwrap();
    assert_eq!(d[ENT], json!({"manager": "2819c223"}));
    let d = user(d, json!([{"op": "Remove", "path": path}]), Profile::Entra).unwrap();
    assert!(d.get(ENT).is_none());
    // The object form merges into an existing manager.
    let d = user(
        bjensen(),
        json!([
            {"op": "add", "path": path, "value": {"value": "m1"}},
            {"op": "replace", "path": format!("{path}.value"), "value": "m2"}
        ]),
        S,
    )
    .unwrap();
    assert_eq!(d[ENT]["manager"], json!({"value": "m2"}));
}

#[test]
fn entra_adds_work_email_and_phone_for_a_user_without_one() {
    let mut doc = bjensen();
    doc["emails"] = json!([{"value": "babs@jensen.org", "type": "home"}]);
    let d = user(doc, json!([
        {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "bjensen@contoso.com"},
        {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
        {"op": "Replace", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0199"},
        {"op": "Add", "path": "addresses[type eq \"other\"].locality", "value": "Redmond"}
    ]), Profile::Entra).unwrap();
    assert_eq!(
        d["emails"][1],
        json!({"type": "work", "value": "bjensen@contoso.com"})
    );
    assert_eq!(
        d["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0199"}])
    );
    assert_eq!(
        d["addresses"][2],
        json!({"type": "other", "locality": "Redmond"})
    );
}

#[test]
fn entra_remove_with_value_list() {
    let d = user(
        bjensen(),
        json!([{"op": "Remove", "path": "emails", "value": [{"value": "BABS@jensen.org"}]}]),
        Profile::Entra,
    )
    .unwrap();
    assert_eq!(
        d["emails"],
        json!([{"value": "bjensen@example.com", "type": "work", "primary": true}])
    );
    // On a single-valued attribute the value is irrelevant: the attribute goes.
    let d = user(
        bjensen(),
        json!([{"op": "Remove", "path": "name", "value": {"givenName": "x"}}]),
        L,
    )
    .unwrap();
    assert!(d.get("name").is_none());
}

#[test]
fn entra_group_members() {
    let add = json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]);
    let (doc, delta) = group(g(), add, Profile::Entra).unwrap();
    assert_eq!(doc, g());
    assert_eq!(delta.add, vec![m("f648f8d5ea4e4cd38e9c")]);
    let rm = json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "f648f8d5ea4e4cd38e9c"}]}]);
    let (_, delta) = group(g(), rm.clone(), Profile::Entra).unwrap();
    assert_eq!(
        delta,
        MemberDelta {
            remove: vec!["f648f8d5ea4e4cd38e9c".into()],
            ..Default::default()
        }
    );
    assert_eq!(
        kind(group(g(), rm, S)),
        ScimType::InvalidSyntax,
        "capitalised op in strict"
    );
    let rm = json!([{"op": "Remove", "path": "members[value eq \"a1\"]"}]);
    assert_eq!(
        group(g(), rm, Profile::Entra).unwrap().1.remove,
        vec!["a1".to_owned()]
    );
    // Adding a member twice (Entra retries) is not an error.
    let twice = json!([
        {"op": "Add", "path": "members", "value": [{"value": "a1"}]},
        {"op": "Add", "path": "members", "value": [{"value": "a1"}, {"value": "a2"}]}
    ]);
    assert_eq!(group(g(), twice, L).unwrap().1.add, vec![m("a1"), m("a2")]);
    let rename = json!([{"op": "Replace", "path": "displayName", "value": "Sales EMEA"}]);
    assert_eq!(
        group(g(), rename, Profile::Entra).unwrap().0["displayName"],
        "Sales EMEA"
    );
}

#[test]
fn okta_group_push() {
    let rename = json!([{"op": "replace", "value": {"id": "abf4dd94-a4c0-4f67-89c9-76b03340cb9b", "displayName": "Test SCIMv2"}}]);
    let (doc, delta) = group(g(), rename, Profile::Okta).unwrap();
    assert_eq!(doc["displayName"], "Test SCIMv2");
    assert!(doc.get("id").is_none());
    assert!(delta.is_empty());
    let add = json!([{"op": "add", "path": "members", "value": [{"value": "00u1", "display": "test.user@okta.local"}]}]);
    assert_eq!(
        group(g(), add, Profile::Okta).unwrap().1.add,
        vec![m("00u1")]
    );
    let rm = json!([{"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"}]);
    assert_eq!(
        group(g(), rm, S).unwrap().1.remove,
        vec!["89bb1940-b905-4575-9e7f-6f887cfb368e".to_owned()]
    );
    let rep = json!([{"op": "replace", "path": "members", "value": [{"value": "23a35c27", "display": "test.user@okta.local"}]}]);
    assert_eq!(
        group(g(), rep, Profile::Okta).unwrap().1.replace,
        Some(vec![m("23a35c27")])
    );
    let deactivate = json!([{"op": "replace", "value": {"active": false}}]);
    assert_eq!(
        user(bjensen(), deactivate, Profile::Okta).unwrap()["active"],
        false
    );
}

#[test]
fn member_operations_have_set_semantics_in_order() {
    let run = |ops: Value| group(g(), ops, S).unwrap().1;
    let add = |id: &str| json!({"op": "add", "path": "members", "value": [{"value": id}]});
    let rm = |id: &str| json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")});
    assert_eq!(
        run(json!([add("x"), rm("x")])),
        MemberDelta {
            remove: vec!["x".into()],
            ..Default::default()
        }
    );
    assert_eq!(
        run(json!([rm("x"), add("x")])),
        MemberDelta {
            add: vec![m("x")],
            ..Default::default()
        }
    );
    let rep =
        json!({"op": "replace", "path": "members", "value": [{"value": "a"}, {"value": "a"}]});
    assert_eq!(
        run(json!([add("z"), rep, add("b"), rm("a")])),
        MemberDelta {
            replace: Some(vec![m("b")]),
            ..Default::default()
        }
    );
    assert_eq!(
        run(json!([add("z"), {"op": "remove", "path": "members"}, add("c")])),
        MemberDelta {
            replace: Some(vec![m("c")]),
            ..Default::default()
        }
    );
    let or = json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\" or (value eq \"c\")]"}]);
    assert_eq!(run(or).remove, vec!["a".to_owned(), "b".into(), "c".into()]);
    // Path-less add/replace with a members key, a single object, a type, a qualified path.
    let pathless = json!([
        {"op": "replace", "value": {"displayName": "S2", "members": [{"value": "p", "type": "Group"}]}},
        {"op": "add", "value": {"members": {"value": "q"}}},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:core:2.0:Group:members", "value": [{"value": "r"}]}
    ]);
    let (doc, delta) = group(g(), pathless, S).unwrap();
    assert_eq!(
        doc,
        json!({"schemas": [crate::urn::GROUP], "displayName": "S2"})
    );
    let p = MemberRef {
        value: "p".into(),
        ty: Some("Group".into()),
    };
    assert_eq!(delta.replace, Some(vec![p, m("q"), m("r")]));
}

#[test]
fn member_errors() {
    let k = |ops: Value| kind(group(g(), ops, L));
    for path in [
        "members[display eq \"x\"]",
        "members[value ne \"a\"]",
        "members[value eq \"a\" and type eq \"User\"]",
        "members[not (value eq \"a\")]",
        "members[value eq 1]",
    ] {
        assert_eq!(
            k(json!([{"op": "remove", "path": path}])),
            ScimType::InvalidFilter,
            "{path}"
        );
    }
    assert_eq!(
        k(json!([{"op": "add", "path": "members[value eq \"a\"]", "value": {"value": "a"}}])),
        ScimType::InvalidFilter
    );
    assert_eq!(
        k(json!([{"op": "remove", "path": "members[value eq \"a\"].type"}])),
        ScimType::InvalidFilter
    );
    assert_eq!(
        k(json!([{"op": "replace", "path": "members.value", "value": "a"}])),
        ScimType::Mutability
    );
    assert_eq!(
        k(json!([{"op": "remove", "path": "members[nosuch eq \"a\"]"}])),
        ScimType::InvalidFilter
    );
    for bad in [
        json!([{"display": "x"}]),
        json!(["a"]),
        json!([{"value": 1}]),
        json!([{"value": ""}]),
        json!([{"value": "a", "type": 2}]),
    ] {
        assert_eq!(
            k(json!([{"op": "add", "path": "members", "value": bad}])),
            ScimType::InvalidValue
        );
    }
    assert_eq!(
        k(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null}]}])),
        ScimType::InvalidValue
    );
    // A failing operation fails the request, whatever came before.
    let e = group(g(), json!([{"op": "add", "path": "members", "value": [{"value": "a"}]}, {"op": "add", "path": "members", "value": [{}]}]), L).unwrap_err();
    assert!(e.detail.starts_with("Operations[1]"), "{}", e.detail);
}
