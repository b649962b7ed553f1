//! Parsing, errors, mutability and robustness; shared helpers for the other test modules.

use super::*;
use crate::schema::{Extension, ResourceSchema};
use serde_json::json;
use std::sync::Arc;

pub(super) const ENT: &str = crate::urn::ENTERPRISE_USER;
pub(super) const S: Profile = Profile::Strict;
pub(super) const L: Profile = Profile::Lenient;

pub(super) fn body(ops: Value) -> Value {
    json!({"schemas": [crate::urn::PATCH_OP], "Operations": ops})
}

pub(super) fn run(
    schema: &ResourceSchema,
    mut doc: Value,
    ops: Value,
    target: Target,
    profile: Profile,
) -> Result<(Value, MemberDelta), ScimError> {
    let req = parse(&body(ops), profile)?;
    let delta = apply(schema, &mut doc, &req, target, profile)?;
    Ok((doc, delta))
}

pub(super) fn user(doc: Value, ops: Value, profile: Profile) -> Result<Value, ScimError> {
    run(&ResourceSchema::user(), doc, ops, Target::User, profile).map(|(d, _)| d)
}

pub(super) fn group(
    doc: Value,
    ops: Value,
    profile: Profile,
) -> Result<(Value, MemberDelta), ScimError> {
    run(&ResourceSchema::group(), doc, ops, Target::Group, profile)
}

pub(super) fn kind<T: std::fmt::Debug>(r: Result<T, ScimError>) -> ScimType {
    let e = r.unwrap_err();
    assert_eq!(e.status, 400, "{e:?}");
    e.scim_type.unwrap()
}

pub(super) fn bjensen() -> Value {
    json!({
        "schemas": [crate::urn::USER],
        "userName": "bjensen",
        "name": {"familyName": "Jensen", "givenName": "Barbara"},
        "emails": [
            {"value": "bjensen@example.com", "type": "work", "primary": true},
            {"value": "babs@jensen.org", "type": "home"}
        ],
        "addresses": [
            {"type": "work", "streetAddress": "100 Universal City Plaza", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA"},
            {"type": "home", "streetAddress": "456 Hollywood Blvd", "locality": "Hollywood",
             "region": "CA", "postalCode": "91608", "country": "USA"}
        ],
        "active": true
    })
}

#[test]
fn parse_reads_operations() {
    let req = parse(
        &body(json!([
            {"op": "add", "path": "emails[type eq \"work\"].value", "value": "x@y"},
            {"op": "remove", "path": "nickName"},
            {"op": "replace", "value": {"nickName": "B"}}
        ])),
        S,
    )
    .unwrap();
    assert_eq!(req.ops.len(), 3);
    assert_eq!(req.ops[0].op, OpKind::Add);
    assert!(matches!(req.ops[0].path, Some(PatchPath::Value(_))));
    assert_eq!(req.ops[1].op, OpKind::Remove);
    assert!(req.ops[2].path.is_none());
}

#[test]
fn parse_envelope_errors() {
    let syntax = |v: Value, p| kind(parse(&v, p));
    assert_eq!(syntax(json!([]), L), ScimType::InvalidSyntax);
    assert_eq!(
        syntax(
            json!({"Operations": [{"op": "remove", "path": "title"}]}),
            S
        ),
        ScimType::InvalidSyntax
    );
    assert!(
        parse(
            &json!({"Operations": [{"op": "remove", "path": "title"}]}),
            L
        )
        .is_ok()
    );
    assert!(parse(&json!({"schemas": crate::urn::PATCH_OP, "operations": [{"op": "remove", "path": "title"}]}), L).is_ok());
    let lower = json!({"schemas": [crate::urn::PATCH_OP], "operations": [{"op": "remove", "path": "title"}]});
    assert_eq!(syntax(lower, S), ScimType::InvalidSyntax);
    assert_eq!(
        syntax(
            json!({"schemas": [crate::urn::USER], "Operations": [{"op": "remove", "path": "title"}]}),
            L
        ),
        ScimType::InvalidSyntax
    );
    assert_eq!(syntax(body(json!([])), L), ScimType::InvalidSyntax);
    assert_eq!(
        syntax(body(json!({"op": "add"})), L),
        ScimType::InvalidSyntax
    );
    assert_eq!(syntax(body(json!(["add"])), L), ScimType::InvalidSyntax);
    assert_eq!(
        syntax(body(json!([{"op": 1, "path": "title"}])), L),
        ScimType::InvalidSyntax
    );
    assert_eq!(
        syntax(body(json!([{"op": "move", "path": "title"}])), L),
        ScimType::InvalidSyntax
    );
    assert_eq!(
        syntax(body(json!([{"path": "title"}])), L),
        ScimType::InvalidSyntax
    );
}

#[test]
fn parse_caps_operations() {
    let op = json!({"op": "remove", "path": "title"});
    let ok = Value::Array(vec![op.clone(); MAX_OPERATIONS]);
    assert_eq!(parse(&body(ok), S).unwrap().ops.len(), MAX_OPERATIONS);
    let many = Value::Array(vec![op; MAX_OPERATIONS + 1]);
    assert_eq!(kind(parse(&body(many), S)), ScimType::TooMany);
}

#[test]
fn parse_op_names_and_values() {
    let p = |ops: Value, prof| parse(&body(ops), prof);
    let cap = json!([{"op": "Replace", "path": "title", "value": "x"}]);
    assert_eq!(kind(p(cap.clone(), S)), ScimType::InvalidSyntax);
    assert_eq!(p(cap, L).unwrap().ops[0].op, OpKind::Replace);
    assert_eq!(
        p(json!([{"OP": "ADD", "PATH": "title", "VALUE": "x"}]), L)
            .unwrap()
            .ops[0]
            .op,
        OpKind::Add
    );
    assert_eq!(kind(p(json!([{"op": "remove"}]), L)), ScimType::NoTarget);
    assert_eq!(
        kind(p(json!([{"op": "remove", "path": null}]), S)),
        ScimType::NoTarget
    );
    assert_eq!(
        kind(p(json!([{"op": "add", "path": "title"}]), L)),
        ScimType::InvalidValue
    );
    assert_eq!(
        kind(p(
            json!([{"op": "replace", "path": "title", "value": null}]),
            L
        )),
        ScimType::InvalidValue
    );
    assert_eq!(
        kind(p(json!([{"op": "replace", "value": "x"}]), L)),
        ScimType::InvalidValue
    );
    assert_eq!(
        kind(p(json!([{"op": "add", "value": [1]}]), S)),
        ScimType::InvalidValue
    );
    assert_eq!(
        kind(p(
            json!([{"op": "remove", "path": "emails", "value": [{"value": "a"}]}]),
            S
        )),
        ScimType::InvalidValue
    );
    assert_eq!(
        kind(p(
            json!([{"op": "add", "path": "emails[type eq", "value": "x"}]),
            L
        )),
        ScimType::InvalidPath
    );
    assert_eq!(
        kind(p(json!([{"op": "add", "path": 3, "value": "x"}]), L)),
        ScimType::InvalidPath
    );
    assert_eq!(
        kind(p(json!([{"op": "add", "path": "", "value": "x"}]), S)),
        ScimType::InvalidPath
    );
    let e = p(
        json!([{"op": "add", "path": "title", "value": 1}, {"op": "nope"}]),
        L,
    )
    .unwrap_err();
    assert!(e.detail.starts_with("Operations[1]: "), "{}", e.detail);
}

#[test]
fn unknown_attributes_are_invalid_path_in_every_profile() {
    for prof in [S, Profile::Entra, Profile::Okta, L] {
        let k = |ops| kind(user(bjensen(), ops, prof));
        assert_eq!(
            k(json!([{"op": "add", "path": "nosuch", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "name.nosuch"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "replace", "path": "userName.x", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "replace", "path": "emails[type eq \"work\"].nosuch", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "replace", "path": "userName[value eq \"x\"]", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "add", "value": {"nosuch": 1}}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "add", "value": {ENT: {"nosuch": 1}}}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "add", "path": "urn:x:y:User:userName", "value": "x"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "members"}])),
            ScimType::InvalidPath
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "emails[nosuch eq \"x\"]"}])),
            ScimType::InvalidFilter
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "emails[primary gt true]"}])),
            ScimType::InvalidFilter
        );
    }
    // Strict path-less keys are attribute names only.
    let dotted = json!([{"op": "replace", "value": {"name.givenName": "B"}}]);
    assert_eq!(
        kind(user(bjensen(), dotted.clone(), S)),
        ScimType::InvalidPath
    );
    assert_eq!(
        user(bjensen(), dotted, L).unwrap()["name"]["givenName"],
        "B"
    );
}

#[test]
fn read_only_and_computed_attributes_are_mutability_errors() {
    for prof in [S, L] {
        let k = |ops| kind(user(bjensen(), ops, prof));
        assert_eq!(
            k(json!([{"op": "replace", "path": "id", "value": "x"}])),
            ScimType::Mutability
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "meta"}])),
            ScimType::Mutability
        );
        assert_eq!(
            k(
                json!([{"op": "replace", "path": "meta.lastModified", "value": "2020-01-01T00:00:00Z"}])
            ),
            ScimType::Mutability
        );
        assert_eq!(
            k(json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}])),
            ScimType::Mutability
        );
        assert_eq!(
            k(json!([{"op": "remove", "path": "groups[value eq \"g\"]"}])),
            ScimType::Mutability
        );
        assert_eq!(
            k(json!([{"op": "add", "value": {"groups": [{"value": "g"}]}}])),
            ScimType::Mutability
        );
        assert_eq!(
            k(json!([{"op": "replace", "value": {"meta": {}}}])),
            ScimType::Mutability
        );
        let path = format!("{ENT}:manager.displayName");
        assert_eq!(
            k(json!([{"op": "add", "path": path, "value": "Boss"}])),
            ScimType::Mutability
        );
    }
    // Okta group push sends the id in a path-less replace: ignored outside strict.
    let with_id = json!([{"op": "replace", "value": {"id": "abc", "nickName": "B"}}]);
    assert_eq!(
        kind(user(bjensen(), with_id.clone(), S)),
        ScimType::Mutability
    );
    assert_eq!(user(bjensen(), with_id, L).unwrap()["nickName"], "B");
    // readOnly sub-attributes inside a given value are ignored.
    let d = user(bjensen(), json!([{"op": "add", "path": format!("{ENT}:manager"), "value": {"value": "m1", "displayName": "Boss"}}]), S).unwrap();
    assert_eq!(d[ENT]["manager"], json!({"value": "m1"}));
}

#[test]
fn required_attributes_cannot_be_removed() {
    let k = |ops| kind(user(bjensen(), ops, L));
    assert_eq!(
        k(json!([{"op": "remove", "path": "userName"}])),
        ScimType::Mutability
    );
    assert_eq!(
        k(json!([{"op": "replace", "value": {"userName": null}}])),
        ScimType::Mutability
    );
    let (_, _) = group(
        json!({"displayName": "G"}),
        json!([{"op": "replace", "path": "displayName", "value": "H"}]),
        S,
    )
    .unwrap();
    assert_eq!(
        kind(group(
            json!({"displayName": "G"}),
            json!([{"op": "remove", "path": "displayName"}]),
            S
        )),
        ScimType::Mutability
    );
}

pub(super) fn badge_schema() -> ResourceSchema {
    let ext = crate::schema::parse_extension(&json!({
        "id": "urn:acme:scim:badge:2.0:User",
        "attributes": [
            {"name": "badgeNumber", "type": "integer", "mutability": "immutable"},
            {"name": "site", "type": "complex", "subAttributes": [
                {"name": "code", "type": "string", "mutability": "immutable"},
                {"name": "label", "type": "string"}
            ]},
            {"name": "tags", "type": "string", "multiValued": true}
        ]
    }))
    .unwrap();
    let mut s = ResourceSchema::user();
    s.extensions.push(Extension {
        schema: Arc::new(ext),
        required: false,
    });
    s
}

#[test]
fn immutable_attributes_are_set_once() {
    let s = badge_schema();
    let u = |doc: Value, ops: Value| run(&s, doc, ops, Target::User, S).map(|(d, _)| d);
    let b = "urn:acme:scim:badge:2.0:User";
    let d = u(
        bjensen(),
        json!([{"op": "add", "path": format!("{b}:badgeNumber"), "value": 7}]),
    )
    .unwrap();
    assert_eq!(d[b]["badgeNumber"], 7);
    assert_eq!(d["schemas"], json!([crate::urn::USER, b]));
    let again = |op: &str, v: Value| {
        let mut o = json!({"op": op, "path": format!("{b}:badgeNumber")});
        if !v.is_null() {
            o["value"] = v;
        }
        u(d.clone(), json!([o]))
    };
    assert_eq!(kind(again("add", json!(8))), ScimType::Mutability);
    assert_eq!(kind(again("replace", json!(8))), ScimType::Mutability);
    assert_eq!(kind(again("remove", Value::Null)), ScimType::Mutability);
    assert!(again("replace", json!(7)).is_ok());
    assert_eq!(
        kind(u(d.clone(), json!([{"op": "remove", "path": b}]))),
        ScimType::Mutability
    );
    // Immutable sub-attribute: set while absent, then fixed; siblings stay writable.
    let d = u(
        bjensen(),
        json!([{"op": "add", "path": format!("{b}:site"), "value": {"code": "X1", "label": "HQ"}}]),
    )
    .unwrap();
    let site = |v: Value| {
        u(
            d.clone(),
            json!([{"op": "replace", "path": format!("{b}:site"), "value": v}]),
        )
    };
    assert_eq!(
        site(json!({"label": "Main"})).unwrap()[b]["site"],
        json!({"code": "X1", "label": "Main"})
    );
    assert_eq!(kind(site(json!({"code": "X2"}))), ScimType::Mutability);
    assert_eq!(
        kind(u(
            d.clone(),
            json!([{"op": "remove", "path": format!("{b}:site.code")}])
        )),
        ScimType::Mutability
    );
}

#[test]
fn apply_refuses_a_non_object_document() {
    let req = parse(&body(json!([{"op": "remove", "path": "title"}])), S).unwrap();
    let e = apply(
        &ResourceSchema::user(),
        &mut json!([]),
        &req,
        Target::User,
        S,
    )
    .unwrap_err();
    assert_eq!(e.status, 500);
}

#[test]
fn garbage_never_panics() {
    let values = [
        json!(null),
        json!(true),
        json!(0),
        json!(-1.5),
        json!(""),
        json!("x"),
        json!([]),
        json!([null]),
        json!([1, "a", {}]),
        json!({}),
        json!({"value": null}),
        json!({"value": 5}),
        json!([{"value": [1]}]),
        json!({"a": {"b": {"c": []}}}),
        json!({ENT: 1}),
        json!({ENT: {"manager": []}}),
        json!({"emails[type eq \"x\"].value": 1}),
        json!({"members": "x"}),
        json!({"name.": 1}),
    ];
    let paths = [
        "",
        " ",
        "[",
        "]",
        "a[",
        "emails[",
        "emails[]",
        "emails[type]",
        "emails[type eq]",
        "emails.",
        ".value",
        "emails[type eq \"w\"].",
        "emails[type eq \"w\"].value.x",
        "name.givenName.x",
        ENT,
        "urn:",
        "urn:x",
        "members",
        "members[value eq \"a\"]",
        "members[display pr]",
        "members.value",
        "emails[not (type eq \"w\")]",
        "emails[(type eq \"w\" or primary eq true) and value co \"@\"]",
        "emails[value gt 5]",
        "emails[primary eq \"yes\"]",
        "groups",
        "id",
        "meta.version",
        "x509Certificates[value eq \"a\"].display",
        "name[givenName pr]",
        "addresses[type eq \"work\"]",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
        "\u{0}",
        "émails",
    ];
    let docs = [
        bjensen(),
        json!({}),
        json!({"emails": "notarray", "name": "notobj", ENT: "x"}),
        json!({"emails": [1, null, "s"], "name": [1]}),
    ];
    let mut runs = 0;
    for doc in &docs {
        for op in ["add", "replace", "remove", "Add"] {
            for path in paths {
                for v in &values {
                    let mut o = json!({"op": op, "path": path, "value": v});
                    for prof in [S, L] {
                        let _ = user(doc.clone(), json!([o.clone()]), prof);
                        let _ = group(doc.clone(), json!([o.clone()]), prof);
                        runs += 1;
                    }
                    o.as_object_mut().unwrap().remove("path");
                    let _ = user(doc.clone(), json!([o.clone()]), L);
                    let _ = group(doc.clone(), json!([o]), L);
                }
            }
        }
    }
    assert!(runs > 1000);
    for b in [
        json!(null),
        json!("x"),
        json!({"Operations": null}),
        json!({"Operations": [[]]}),
        json!({"Operations": [{"op": {}}]}),
    ] {
        for prof in [S, L] {
            assert!(parse(&b, prof).is_err());
        }
    }
}
