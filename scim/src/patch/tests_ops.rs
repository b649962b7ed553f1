//! Operation semantics: unmatched filters, `primary`, empty values, extensions, canonical
//! names, multi-valued add.

use super::tests::{ENT, L, S, badge_schema, bjensen, kind, run, user};
use super::*;
use serde_json::json;

#[test]
fn filtered_replace_without_match() {
    let ops = json!([{"op": "replace", "path": "emails[type eq \"other\"].value", "value": "o@x"}]);
    assert_eq!(kind(user(bjensen(), ops.clone(), S)), ScimType::NoTarget);
    let d = user(bjensen(), ops, L).unwrap();
    assert_eq!(d["emails"][2], json!({"type": "other", "value": "o@x"}));
    // Only eq/and filters describe an element that can be created.
    let or = json!([{"op": "replace", "path": "emails[type eq \"a\" or type eq \"b\"].value", "value": "o@x"}]);
    assert_eq!(kind(user(bjensen(), or, L)), ScimType::NoTarget);
    let co = json!([{"op": "replace", "path": "emails[type co \"a\"]", "value": {"value": "o@x"}}]);
    assert_eq!(kind(user(bjensen(), co, L)), ScimType::NoTarget);
    // Remove with a filter matching nothing changes nothing.
    let none = json!([{"op": "remove", "path": "emails[type eq \"other\"]"}]);
    assert_eq!(user(bjensen(), none, S).unwrap(), bjensen());
}

#[test]
fn primary_stays_unique() {
    let add = json!([{"op": "add", "path": "emails", "value": {"value": "new@x.org", "type": "other", "primary": true}}]);
    let d = user(bjensen(), add, S).unwrap();
    assert_eq!(d["emails"][0]["primary"], false);
    assert_eq!(d["emails"][2]["primary"], true);
    let rep = json!([{"op": "replace", "path": "emails[type eq \"home\"].primary", "value": true}]);
    let d = user(bjensen(), rep, S).unwrap();
    assert_eq!(d["emails"][0]["primary"], false);
    assert_eq!(d["emails"][1]["primary"], true);
    // A stored "True" string (Entra ID) also counts as primary.
    let mut doc = bjensen();
    doc["emails"][0]["primary"] = json!("True");
    let rep =
        json!([{"op": "replace", "path": "emails[type eq \"home\"]", "value": {"primary": true}}]);
    assert_eq!(user(doc, rep, L).unwrap()["emails"][0]["primary"], false);
    // An op that writes no primary leaves the existing one alone.
    let d = user(
        bjensen(),
        json!([{"op": "add", "path": "emails", "value": [{"value": "z@z"}]}]),
        S,
    )
    .unwrap();
    assert_eq!(d["emails"][0]["primary"], true);
}

#[test]
fn removal_leaves_no_empty_values() {
    let ops = json!([
        {"op": "remove", "path": "name.givenName"},
        {"op": "remove", "path": "name.familyName"},
        {"op": "remove", "path": "emails[type eq \"work\"]"},
        {"op": "remove", "path": "emails[type eq \"home\"]"},
        {"op": "remove", "path": "addresses.streetAddress"}
    ]);
    let d = user(bjensen(), ops, S).unwrap();
    assert!(d.get("name").is_none());
    assert!(d.get("emails").is_none());
    assert!(d["addresses"][0].get("streetAddress").is_none());
    assert_eq!(d["addresses"][1]["type"], "home");
    // Removing sub-attributes down to nothing drops the elements too.
    let d = user(bjensen(), json!([{"op": "remove", "path": "emails.value"}, {"op": "remove", "path": "emails.type"}, {"op": "remove", "path": "emails.primary"}]), S).unwrap();
    assert!(d.get("emails").is_none());
    // Empty values given to add/replace leave the attribute unassigned.
    let d = user(bjensen(), json!([{"op": "replace", "path": "emails", "value": []}, {"op": "replace", "value": {"name": null}}]), S).unwrap();
    assert!(d.get("emails").is_none() && d.get("name").is_none());
}

#[test]
fn extensions_are_kept_in_step_with_schemas() {
    let d = user(
        bjensen(),
        json!([{"op": "add", "path": format!("{ENT}:department"), "value": "R&D"}]),
        S,
    )
    .unwrap();
    assert_eq!(d[ENT], json!({"department": "R&D"}));
    assert_eq!(d["schemas"], json!([crate::urn::USER, ENT]));
    let rm = user(
        d.clone(),
        json!([{"op": "remove", "path": format!("{ENT}:department")}]),
        S,
    )
    .unwrap();
    assert!(rm.get(ENT).is_none());
    assert_eq!(rm["schemas"], json!([crate::urn::USER]));
    let rm = user(d.clone(), json!([{"op": "remove", "path": ENT}]), S).unwrap();
    assert!(rm.get(ENT).is_none());
    let d = user(
        d,
        json!([{"op": "replace", "path": ENT, "value": {"costCenter": "4130"}}]),
        S,
    )
    .unwrap();
    assert_eq!(d[ENT], json!({"department": "R&D", "costCenter": "4130"}));
    // Path-less add with an extension URN key merges into the extension object.
    let ops = json!([{"op": "add", "value": {
        "externalId": "e1",
        ENT: {"Division": "West", "manager": {"value": "m"}}
    }}]);
    let d = user(d, ops, S).unwrap();
    assert_eq!(d["externalId"], "e1");
    assert_eq!(
        d[ENT],
        json!({"department": "R&D", "costCenter": "4130", "division": "West", "manager": {"value": "m"}})
    );
    let d = user(d, json!([{"op": "replace", "value": {ENT: null}}]), S).unwrap();
    assert!(d.get(ENT).is_none());
}

#[test]
fn names_are_written_canonically() {
    let ops = json!([
        {"op": "add", "path": "NICKNAME", "value": "Babs"},
        {"op": "add", "path": "Emails", "value": [{"Value": "z@z.org", "TYPE": "other"}]},
        {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.GIVENNAME", "value": "B"},
        {"op": "add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Department", "value": "D"}
    ]);
    let d = user(bjensen(), ops, S).unwrap();
    assert_eq!(d["nickName"], "Babs");
    assert_eq!(d["emails"][2], json!({"value": "z@z.org", "type": "other"}));
    assert_eq!(d["name"]["givenName"], "B");
    assert_eq!(d[ENT]["department"], "D");
}

#[test]
fn add_to_multi_valued_skips_existing_values() {
    let ops = json!([{"op": "add", "path": "emails", "value": [{"value": "BJENSEN@example.com", "type": "work"}, {"value": "n@x"}]}]);
    let d = user(bjensen(), ops, S).unwrap();
    assert_eq!(d["emails"].as_array().unwrap().len(), 3);
    assert_eq!(d["emails"][0]["primary"], true);
    let s = badge_schema();
    let b = "urn:acme:scim:badge:2.0:User";
    let ops = json!([{"op": "add", "path": format!("{b}:tags"), "value": ["a", "b"]}, {"op": "add", "path": format!("{b}:tags"), "value": "a"}, {"op": "remove", "path": format!("{b}:tags[value eq \"b\"]")}]);
    let (d, _) = run(&s, bjensen(), ops, Target::User, S).unwrap();
    assert_eq!(d[b]["tags"], json!(["a"]));
}

#[test]
fn filters_on_single_valued_complex_attributes() {
    let ok = json!([{"op": "replace", "path": "name[givenName eq \"barbara\"].familyName", "value": "J"}]);
    assert_eq!(user(bjensen(), ok, S).unwrap()["name"]["familyName"], "J");
    let miss =
        json!([{"op": "replace", "path": "name[givenName eq \"x\"].familyName", "value": "J"}]);
    assert_eq!(kind(user(bjensen(), miss, L)), ScimType::NoTarget);
    let rm = json!([{"op": "remove", "path": "name[givenName sw \"bar\"]"}]);
    assert!(user(bjensen(), rm, S).unwrap().get("name").is_none());
}
