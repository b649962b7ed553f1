//! Tests of `attributes` / `excludedAttributes` and `returned` (RFC 7644 §3.4.2.5, §3.9;
//! RFC 7643 §7).

use super::*;
use crate::schema::{Extension, parse_extension};
use crate::urn;
use serde_json::json;
use std::sync::Arc;

const EXT: &str = urn::ENTERPRISE_USER;

/// The full representation of the RFC 7643 §8.3 user, as the server builds it (canonical doc
/// plus `id`, `meta` and the computed `groups`). `password` is there to show it never leaks.
fn full_user() -> Value {
    json!({
      "schemas": [urn::USER, EXT],
      "id": "2819c223-7f76-453a-919d-413861904646",
      "externalId": "701984",
      "userName": "bjensen@example.com",
      "name": {"formatted": "Ms. Barbara J Jensen, III", "familyName": "Jensen", "givenName": "Barbara"},
      "displayName": "Babs Jensen",
      "password": "t1meMa$heen",
      "emails": [
        {"value": "bjensen@example.com", "type": "work", "primary": true},
        {"value": "babs@jensen.org", "type": "home"}
      ],
      "groups": [{"value": "e9e30dba", "$ref": "https://example.com/v2/Groups/e9e30dba", "display": "Tour Guides"}],
      EXT: {
        "employeeNumber": "701984",
        "department": "Tour Operations",
        "manager": {"value": "26118915", "$ref": "../Users/26118915", "displayName": "John Smith"}
      },
      "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22.000Z",
               "lastModified": "2011-05-13T04:42:34.000Z", "version": "W/\"3694e05e9dff591\"",
               "location": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646"}
    })
}

fn full_group() -> Value {
    json!({
      "schemas": [urn::GROUP],
      "id": "e9e30dba",
      "displayName": "Tour Guides",
      "members": [
        {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen", "type": "User"},
        {"value": "902c246b", "$ref": "https://example.com/v2/Users/902c246b", "display": "Mandy Pepperidge", "type": "User"}
      ],
      "meta": {"resourceType": "Group", "location": "https://example.com/v2/Groups/e9e30dba"}
    })
}

fn sel(schema: &ResourceSchema, raw: &str) -> Vec<Selector> {
    parse_list(schema, raw, Profile::Strict).expect("valid list")
}

fn user_proj(attributes: &str, excluded: &str) -> Value {
    let s = ResourceSchema::user();
    project(&s, &full_user(), &sel(&s, attributes), &sel(&s, excluded))
}

#[test]
fn parse_list_canonicalises() {
    let s = ResourceSchema::user();
    let got = sel(
        &s,
        " USERNAME , name.GIVENNAME,urn:ietf:params:scim:schemas:extension:enterprise:2.0:user:Manager.VALUE, \
         URN:IETF:PARAMS:SCIM:SCHEMAS:EXTENSION:ENTERPRISE:2.0:USER,urn:ietf:params:scim:schemas:core:2.0:User:emails.value,\
         meta.lastModified,userName,,schemas",
    );
    let a = |urn: Option<&str>, attr: &str, sub: Option<&str>| Selector {
        urn: urn.map(str::to_owned),
        attr: Some(attr.to_owned()),
        sub: sub.map(str::to_owned),
    };
    assert_eq!(
        got,
        vec![
            a(None, "userName", None),
            a(None, "name", Some("givenName")),
            a(Some(EXT), "manager", Some("value")),
            Selector {
                urn: Some(EXT.to_owned()),
                attr: None,
                sub: None
            },
            a(None, "emails", Some("value")),
            a(None, "meta", Some("lastModified")),
        ]
    );
}

#[test]
fn parse_list_unknown_strict_vs_lenient() {
    let s = ResourceSchema::user();
    for bad in [
        "nickname.x",
        "favouriteColour",
        "name.",
        "name.givenName.x",
        "urn:acme:x:User:foo",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:nosuch",
        urn::USER,
    ] {
        let e = parse_list(&s, &format!("userName,{bad}"), Profile::Strict).expect_err(bad);
        assert_eq!(e.status, 400);
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert!(e.detail.contains(bad), "{}", e.detail);
        let ok = parse_list(&s, &format!("userName,{bad}"), Profile::Lenient).expect(bad);
        assert_eq!(ok.len(), 1, "{bad}");
    }
    assert!(
        parse_list(&s, "", Profile::Strict)
            .expect("empty")
            .is_empty()
    );
    let g = ResourceSchema::group();
    assert_eq!(sel(&g, "members.$REF")[0].sub.as_deref(), Some("$ref"));
}

#[test]
fn default_projection_applies_returned() {
    let out = user_proj("", "");
    let mut expected = full_user();
    if let Some(m) = expected.as_object_mut() {
        m.remove("password");
    }
    assert_eq!(out, expected);
}

#[test]
fn attributes_select_plus_always() {
    assert_eq!(
        user_proj("userName", ""),
        json!({"schemas": [urn::USER, EXT], "id": "2819c223-7f76-453a-919d-413861904646",
               "userName": "bjensen@example.com"})
    );
    // Naming `password` does not return it (returned: never).
    assert_eq!(
        user_proj("password,displayName", ""),
        json!({"schemas": [urn::USER, EXT], "id": "2819c223-7f76-453a-919d-413861904646",
               "displayName": "Babs Jensen"})
    );
}

#[test]
fn sub_attribute_selection() {
    let out = user_proj("name.givenName,emails.value,meta.lastModified", "");
    assert_eq!(
        out,
        json!({"schemas": [urn::USER, EXT], "id": "2819c223-7f76-453a-919d-413861904646",
               "name": {"givenName": "Barbara"},
               "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}],
               "meta": {"lastModified": "2011-05-13T04:42:34.000Z"}})
    );
    // Both the whole attribute and a sub-attribute: the whole attribute wins.
    assert_eq!(
        user_proj("name,name.givenName", "")["name"],
        full_user()["name"]
    );
    // A selected sub-attribute with no value leaves nothing behind.
    let out = user_proj("name.middleName", "");
    assert!(out.get("name").is_none());
}

#[test]
fn extension_selection() {
    let id = "2819c223-7f76-453a-919d-413861904646";
    assert_eq!(
        user_proj(&format!("{EXT}:department"), ""),
        json!({"schemas": [urn::USER, EXT], "id": id, EXT: {"department": "Tour Operations"}})
    );
    assert_eq!(
        user_proj(&format!("{EXT}:manager.value"), ""),
        json!({"schemas": [urn::USER, EXT], "id": id, EXT: {"manager": {"value": "26118915"}}})
    );
    assert_eq!(
        user_proj(&format!("userName,{EXT}"), ""),
        json!({"schemas": [urn::USER, EXT], "id": id, "userName": "bjensen@example.com",
               EXT: full_user()[EXT].clone()})
    );
    // An extension attribute's name without the URN is not a core attribute.
    assert!(parse_list(&ResourceSchema::user(), "department", Profile::Strict).is_err());
}

#[test]
fn excluded_attributes() {
    let out = user_proj("", "emails.type,name,groups,meta");
    let o = out.as_object().expect("object");
    assert!(!o.contains_key("name") && !o.contains_key("groups") && !o.contains_key("meta"));
    assert_eq!(
        o["emails"],
        json!([{"value": "bjensen@example.com", "primary": true}, {"value": "babs@jensen.org"}])
    );
    // id and schemas cannot be excluded.
    let out = user_proj("", "id,schemas");
    assert_eq!(out["id"], json!("2819c223-7f76-453a-919d-413861904646"));
    assert_eq!(out["schemas"], json!([urn::USER, EXT]));
    // Excluding a whole extension, or everything in it, removes the extension object.
    assert!(user_proj("", EXT).get(EXT).is_none());
    let out = user_proj(
        "",
        &format!("{EXT}:employeeNumber,{EXT}:department,{EXT}:manager"),
    );
    assert!(out.get(EXT).is_none());
    assert_eq!(out["userName"], json!("bjensen@example.com"));
    let out = user_proj("", &format!("{EXT}:manager.displayName"));
    assert_eq!(
        out[EXT]["manager"],
        json!({"value": "26118915", "$ref": "../Users/26118915"})
    );
    // Both parameters: selection first, then exclusion.
    assert_eq!(
        user_proj("emails", "emails.primary")["emails"],
        json!([{"value": "bjensen@example.com", "type": "work"}, {"value": "babs@jensen.org", "type": "home"}])
    );
}

#[test]
fn group_members_excluded_or_selected() {
    let g = ResourceSchema::group();
    let full = full_group();
    let out = project(&g, &full, &[], &sel(&g, "members"));
    assert_eq!(
        out,
        json!({"schemas": [urn::GROUP], "id": "e9e30dba", "displayName": "Tour Guides",
               "meta": {"resourceType": "Group", "location": "https://example.com/v2/Groups/e9e30dba"}})
    );
    let out = project(&g, &full, &sel(&g, "members.value,displayName"), &[]);
    assert_eq!(
        out,
        json!({"schemas": [urn::GROUP], "id": "e9e30dba", "displayName": "Tour Guides",
               "members": [{"value": "2819c223"}, {"value": "902c246b"}]})
    );
}

#[test]
fn includes_predicts_projection() {
    let g = ResourceSchema::group();
    let none: &[Selector] = &[];
    assert!(includes(&g, none, none, None, "members"));
    assert!(!includes(&g, none, &sel(&g, "members"), None, "members"));
    assert!(includes(
        &g,
        none,
        &sel(&g, "members.display"),
        None,
        "MEMBERS"
    ));
    assert!(!includes(
        &g,
        &sel(&g, "displayName"),
        none,
        None,
        "members"
    ));
    assert!(includes(
        &g,
        &sel(&g, "members.value"),
        none,
        None,
        "members"
    ));
    assert!(includes(&g, &sel(&g, "displayName"), none, None, "id"));
    assert!(includes(&g, none, &sel(&g, "id"), Some(urn::GROUP), "id"));

    let u = ResourceSchema::user();
    assert!(!includes(&u, none, none, None, "password"));
    assert!(includes(&u, none, none, None, "groups"));
    assert!(!includes(&u, none, &sel(&u, "groups"), None, "groups"));
    assert!(includes(&u, &sel(&u, EXT), none, Some(EXT), "manager"));
    assert!(!includes(&u, none, &sel(&u, EXT), Some(EXT), "manager"));
    assert!(includes(
        &u,
        &sel(&u, &format!("{EXT}:manager")),
        none,
        Some(EXT),
        "Manager"
    ));
    assert!(!includes(
        &u,
        &sel(&u, &format!("{EXT}:manager")),
        none,
        None,
        "userName"
    ));
}

/// A user schema with an extension holding `returned: request`, `always` and `never`
/// attributes and sub-attributes.
fn returned_schema() -> ResourceSchema {
    let ext = parse_extension(&json!({
        "id": "urn:acme:params:scim:schemas:extension:audit:2.0:User",
        "attributes": [
            {"name": "riskScore", "type": "integer", "returned": "request"},
            {"name": "tenantKey", "type": "string", "returned": "always"},
            {"name": "secret", "type": "string", "returned": "never"},
            {"name": "login", "type": "complex", "subAttributes": [
                {"name": "last", "type": "dateTime"},
                {"name": "ip", "type": "string", "returned": "request"},
                {"name": "hash", "type": "string", "returned": "never"}
            ]}
        ]
    }))
    .expect("extension");
    let mut s = ResourceSchema::user();
    s.extensions.push(Extension {
        schema: Arc::new(ext),
        required: false,
    });
    s
}

const AUDIT: &str = "urn:acme:params:scim:schemas:extension:audit:2.0:User";

#[test]
fn returned_request_always_never() {
    let s = returned_schema();
    let full = json!({
        "schemas": [urn::USER, AUDIT], "id": "u1", "userName": "a",
        AUDIT: {"riskScore": 7, "tenantKey": "k", "secret": "s",
                "login": {"last": "2024-01-01T00:00:00.000Z", "ip": "10.0.0.1", "hash": "h"}}
    });
    let p = |a: &str, e: &str| project(&s, &full, &sel(&s, a), &sel(&s, e));
    // Default: request and never left out, always kept.
    assert_eq!(
        p("", ""),
        json!({"schemas": [urn::USER, AUDIT], "id": "u1", "userName": "a",
               AUDIT: {"tenantKey": "k", "login": {"last": "2024-01-01T00:00:00.000Z"}}})
    );
    // Named in `attributes`: request attributes and sub-attributes come back.
    assert_eq!(
        p(&format!("{AUDIT}:riskScore,{AUDIT}:login"), ""),
        json!({"schemas": [urn::USER, AUDIT], "id": "u1",
               AUDIT: {"riskScore": 7, "tenantKey": "k",
                       "login": {"last": "2024-01-01T00:00:00.000Z", "ip": "10.0.0.1"}}})
    );
    assert_eq!(
        p(&format!("{AUDIT}:login.ip"), "")[AUDIT],
        json!({"tenantKey": "k", "login": {"ip": "10.0.0.1"}})
    );
    // The whole extension: everything but `never`.
    assert_eq!(
        p(AUDIT, "")[AUDIT],
        json!({"riskScore": 7, "tenantKey": "k",
               "login": {"last": "2024-01-01T00:00:00.000Z", "ip": "10.0.0.1"}})
    );
    // `always` survives exclusion; `never` stays out even when named.
    assert_eq!(
        p("userName", &format!("{AUDIT}:tenantKey,{AUDIT}"))[AUDIT],
        json!({"tenantKey": "k"})
    );
    assert_eq!(
        p(&format!("{AUDIT}:secret,{AUDIT}:login.hash"), "")[AUDIT],
        json!({"tenantKey": "k"})
    );
    let none: &[Selector] = &[];
    assert!(!includes(&s, none, none, Some(AUDIT), "riskScore"));
    assert!(includes(
        &s,
        &sel(&s, &format!("{AUDIT}:riskScore")),
        none,
        Some(AUDIT),
        "riskScore"
    ));
    assert!(includes(
        &s,
        &sel(&s, "userName"),
        &sel(&s, AUDIT),
        Some(AUDIT),
        "tenantKey"
    ));
    assert!(!includes(&s, &sel(&s, AUDIT), none, Some(AUDIT), "secret"));
}

#[test]
fn projection_is_infallible() {
    let s = ResourceSchema::user();
    assert_eq!(project(&s, &json!("x"), &[], &[]), json!("x"));
    let odd = json!({"schemas": [urn::USER], "id": "1", "emails": "not-an-array",
                     "unknownKey": 1, EXT: "not-an-object"});
    let out = project(&s, &odd, &[], &[]);
    assert_eq!(out["emails"], json!("not-an-array"));
    assert_eq!(out["unknownKey"], json!(1));
    assert!(out.get(EXT).is_none());
    let out = project(&s, &odd, &sel(&s, "userName"), &[]);
    assert_eq!(out, json!({"schemas": [urn::USER], "id": "1"}));
}
