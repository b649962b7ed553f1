//! Tests of [`validate`]: values, limits, `primary`, `required`, `password`, Group `members`
//! and immutability (RFC 7643 §2.3, §2.4, §4.2, §7; RFC 7644 §3.5.1).

use super::tests::{LENIENT, STRICT, err, group, user};
use super::*;
use crate::urn;
use serde_json::json;

/// A resource schema with one extension exercising the types the core schemas lack.
fn typed() -> ResourceSchema {
    let ext = crate::schema::parse_extension(&json!({
        "id": "urn:acme:params:scim:schemas:extension:hr:2.0:User",
        "attributes": [
            {"name": "level", "type": "integer"},
            {"name": "fte", "type": "decimal"},
            {"name": "hired", "type": "dateTime"},
            {"name": "badge", "type": "binary"},
            {"name": "tags", "type": "string", "multiValued": true},
            {"name": "badgeId", "type": "string", "mutability": "immutable"},
            {"name": "site", "type": "complex", "subAttributes": [
                {"name": "code", "type": "string", "required": true},
                {"name": "since", "type": "dateTime", "mutability": "immutable"}
            ]}
        ]
    }))
    .expect("extension");
    let mut s = ResourceSchema::user();
    s.extensions.push(crate::schema::Extension {
        schema: std::sync::Arc::new(ext),
        required: false,
    });
    s
}

const HR: &str = "urn:acme:params:scim:schemas:extension:hr:2.0:User";

fn hr(attrs: Value, profile: Profile) -> Result<Validated, ScimError> {
    let body = json!({"schemas": [urn::USER, HR], "userName": "a", HR: attrs});
    validate(&typed(), &body, Mode::Create, profile, None)
}

#[test]
fn numbers_datetimes_and_binary() {
    let v = hr(
        json!({"level": 3, "fte": 0.8, "hired": "2011-05-13T04:42:34+02:00", "badge": "aGVsbG8="}),
        STRICT,
    )
    .expect("valid");
    assert_eq!(
        v.doc[HR],
        json!({"level": 3, "fte": 0.8, "hired": "2011-05-13T02:42:34.000Z", "badge": "aGVsbG8="})
    );
    assert_eq!(
        hr(json!({"fte": 2}), STRICT).expect("int is decimal").doc[HR]["fte"],
        json!(2)
    );
    err(
        hr(json!({"level": 3.5}), LENIENT),
        ScimType::InvalidValue,
        "level: expected integer",
    );
    err(
        hr(json!({"level": "3"}), LENIENT),
        ScimType::InvalidValue,
        "level: expected integer",
    );
    err(
        hr(json!({"fte": "0.8"}), LENIENT),
        ScimType::InvalidValue,
        "fte: expected decimal",
    );
    err(
        hr(json!({"hired": "yesterday"}), LENIENT),
        ScimType::InvalidValue,
        "hired: expected dateTime",
    );
    err(
        hr(json!({"hired": 1_300_000_000}), LENIENT),
        ScimType::InvalidValue,
        "hired",
    );
    err(
        hr(json!({"badge": "aGVsbG8"}), STRICT),
        ScimType::InvalidValue,
        "badge: expected base64",
    );
    assert!(hr(json!({"badge": "aGVs\nbG8"}), LENIENT).is_ok());
    err(
        hr(json!({"badge": "a==="}), LENIENT),
        ScimType::InvalidValue,
        "badge",
    );
    err(
        hr(json!({"tags": "x"}), STRICT),
        ScimType::InvalidValue,
        "tags: expected an array",
    );
    assert_eq!(
        hr(json!({"tags": "x"}), LENIENT).expect("wrapped").doc[HR]["tags"],
        json!(["x"])
    );
}

#[test]
fn base64_validator() {
    use super::value::base64;
    for ok in ["", "YQ==", "YWI=", "YWJj", "TWFu+/8="] {
        assert!(base64(ok, true), "{ok}");
    }
    for bad in ["Y", "YQ=", "YQ===", "Y=Q=", "YW-j", "YWJj\n", "=", "YWJ"] {
        assert!(!base64(bad, true), "{bad}");
    }
    assert!(base64("YWJ", false));
    assert!(base64("YW\r\nJj", false));
    assert!(!base64("Y", false));
}

#[test]
fn multi_valued_wrapping_and_bare_strings() {
    let body = json!({"schemas": [urn::USER], "userName": "a",
        "emails": {"value": "a@example.com", "type": "work"}, "phoneNumbers": ["555-555-5555"]});
    err(
        user(body.clone(), STRICT),
        ScimType::InvalidValue,
        "emails: expected an array",
    );
    let v = user(body, LENIENT).expect("wrapped");
    assert_eq!(
        v.doc["emails"],
        json!([{"value": "a@example.com", "type": "work"}])
    );
    assert_eq!(v.doc["phoneNumbers"], json!([{"value": "555-555-5555"}]));
    err(
        user(
            json!({"schemas": [urn::USER], "userName": "a", "emails": ["a@b"]}),
            STRICT,
        ),
        ScimType::InvalidValue,
        "emails[0]: expected a complex value",
    );
}

#[test]
fn unassigned_values_are_removed() {
    let v = user(
        json!({"schemas": [urn::USER], "userName": "a", "nickName": null, "emails": [],
            "roles": [null], "name": {"givenName": null}, "phoneNumbers": [{"value": null}],
            urn::ENTERPRISE_USER: {"department": null}}),
        LENIENT,
    )
    .expect("valid");
    assert_eq!(v.doc, json!({"schemas": [urn::USER], "userName": "a"}));
}

#[test]
fn primary_at_most_once() {
    let body = json!({"schemas": [urn::USER], "userName": "a", "emails": [
        {"value": "a@example.com", "primary": false},
        {"value": "b@example.com", "primary": true},
        {"value": "c@example.com", "primary": true}]});
    err(
        user(body.clone(), STRICT),
        ScimType::InvalidValue,
        "emails: more than one",
    );
    let v = user(body, LENIENT).expect("first primary kept");
    let flags: Vec<&Value> = v.doc["emails"]
        .as_array()
        .expect("array")
        .iter()
        .map(|e| &e["primary"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(true), &json!(false)]);
}

#[test]
fn required_attributes() {
    err(
        user(json!({"schemas": [urn::USER]}), LENIENT),
        ScimType::InvalidValue,
        "userName: is required",
    );
    err(
        user(json!({"schemas": [urn::USER], "userName": "   "}), LENIENT),
        ScimType::InvalidValue,
        "userName",
    );
    err(
        user(json!({"schemas": [urn::USER], "userName": null}), STRICT),
        ScimType::InvalidValue,
        "userName",
    );
    err(
        group(json!({"schemas": [urn::GROUP]}), STRICT),
        ScimType::InvalidValue,
        "displayName: is required",
    );
    // Required sub-attributes, when the complex value is given.
    err(
        hr(json!({"site": {"since": "2020-01-01T00:00:00Z"}}), LENIENT),
        ScimType::InvalidValue,
        "site.code: is required",
    );
    assert!(hr(json!({"site": {"code": "LHR"}}), STRICT).is_ok());
}

#[test]
fn password_is_extracted() {
    let v = user(
        json!({"schemas": [urn::USER], "userName": "a", "PASSWORD": "t1meMa$heen"}),
        STRICT,
    )
    .expect("valid");
    assert_eq!(v.password.as_deref(), Some("t1meMa$heen"));
    assert_eq!(v.doc, json!({"schemas": [urn::USER], "userName": "a"}));
    let v = user(json!({"userName": "a", "password": null}), LENIENT).expect("valid");
    assert_eq!(v.password, None);
}

#[test]
fn limits() {
    let long = "x".repeat(MAX_STRING_CHARS + 1);
    err(
        user(json!({"userName": long}), LENIENT),
        ScimType::InvalidValue,
        "longer than 8192",
    );
    err(
        user(
            json!({"userName": "a", "emails": [{"value": long}]}),
            LENIENT,
        ),
        ScimType::InvalidValue,
        "emails[0].value: longer",
    );
    err(
        user(json!({"userName": "a", "password": long}), LENIENT),
        ScimType::InvalidValue,
        "password",
    );
    // 8192 multi-byte characters are fine.
    assert!(user(json!({"userName": "é".repeat(MAX_STRING_CHARS)}), LENIENT).is_ok());
    // U+0000 anywhere in a string value (PostgreSQL text cannot hold it).
    err(
        user(json!({"userName": "a\u{0}b"}), LENIENT),
        ScimType::InvalidValue,
        "userName: contains U+0000",
    );
    err(
        user(
            json!({"userName": "a", "addresses": [{"locality": "x\u{0}"}]}),
            LENIENT,
        ),
        ScimType::InvalidValue,
        "addresses[0].locality: contains U+0000",
    );

    let many: Vec<Value> = (0..=MAX_MULTI_VALUES)
        .map(|i| json!({"value": format!("r{i}")}))
        .collect();
    err(
        user(json!({"userName": "a", "roles": many}), LENIENT),
        ScimType::InvalidValue,
        "roles: more than 10000",
    );
    let members: Vec<Value> = (0..=MAX_MULTI_VALUES)
        .map(|i| json!({"value": format!("u{i}")}))
        .collect();
    let v = group(json!({"displayName": "All", "members": members}), LENIENT).expect("uncapped");
    assert_eq!(
        v.doc["members"].as_array().map(Vec::len),
        Some(MAX_MULTI_VALUES + 1)
    );
}

#[test]
fn group_members() {
    let v = group(
        json!({"schemas": [urn::GROUP], "displayName": "Tour Guides", "members": [
            {"value": "2819c223", "$ref": "https://example.com/v2/Users/2819c223", "display": "Babs Jensen", "type": "user"},
            {"value": "902c246b", "type": "GROUP"},
            {"value": "c3a26dd3"}]}),
        STRICT,
    )
    .expect("valid");
    assert_eq!(
        v.doc["members"],
        json!([{"value": "2819c223", "type": "User"}, {"value": "902c246b", "type": "Group"}, {"value": "c3a26dd3"}])
    );
    err(
        group(
            json!({"displayName": "g", "members": [{"value": "x", "type": "Device"}]}),
            LENIENT,
        ),
        ScimType::InvalidValue,
        "members[0].type",
    );
    err(
        group(
            json!({"displayName": "g", "members": [{"display": "Babs"}]}),
            LENIENT,
        ),
        ScimType::InvalidValue,
        "members[0].value: is required",
    );
    err(
        group(
            json!({"displayName": "g", "members": [{"value": ""}]}),
            LENIENT,
        ),
        ScimType::InvalidValue,
        "members[0].value",
    );
    let mut doc = v.doc;
    assert_eq!(
        extract_members(&mut doc),
        vec![
            ("2819c223".to_owned(), Some("User".to_owned())),
            ("902c246b".to_owned(), Some("Group".to_owned())),
            ("c3a26dd3".to_owned(), None),
        ]
    );
    assert_eq!(
        doc,
        json!({"schemas": [urn::GROUP], "displayName": "Tour Guides"})
    );
    assert!(extract_members(&mut doc).is_empty());
}

#[test]
fn immutable_attributes_on_replace() {
    let s = typed();
    let existing = json!({"schemas": [urn::USER, HR], "userName": "a",
        HR: {"badgeId": "B-1", "site": {"code": "LHR", "since": "2020-01-01T00:00:00.000Z"}}});
    let put = |attrs: Value, mode: Mode| {
        let body = json!({"schemas": [urn::USER, HR], "userName": "a", HR: attrs});
        validate(&s, &body, mode, STRICT, Some(&existing))
    };
    // Same value (case-insensitively, since caseExact is false), or an equal instant.
    let v = put(
        json!({"badgeId": "b-1", "site": {"code": "CDG", "since": "2020-01-01T01:00:00+01:00"}}),
        Mode::Replace,
    )
    .expect("unchanged");
    assert_eq!(v.doc[HR]["site"]["code"], json!("CDG"));
    err(
        put(json!({"badgeId": "B-2"}), Mode::Replace),
        ScimType::Mutability,
        "badgeId",
    );
    err(
        put(
            json!({"badgeId": "B-1", "site": {"code": "LHR", "since": "2021-01-01T00:00:00Z"}}),
            Mode::Replace,
        ),
        ScimType::Mutability,
        "site.since",
    );
    // Omitted: the existing value is kept.
    let v = put(json!({"tags": ["x"]}), Mode::Replace).expect("kept");
    assert_eq!(v.doc[HR]["badgeId"], json!("B-1"));
    // Create ignores `existing`.
    assert!(put(json!({"badgeId": "B-2"}), Mode::Create).is_ok());
    // No existing value: setting it is fine.
    let bare = json!({"schemas": [urn::USER], "userName": "a"});
    let body = json!({"schemas": [urn::USER, HR], "userName": "a", HR: {"badgeId": "B-9"}});
    assert!(validate(&s, &body, Mode::Replace, STRICT, Some(&bare)).is_ok());
}

#[test]
fn replacing_group_members_is_allowed() {
    let existing = json!({"schemas": [urn::GROUP], "displayName": "g",
        "members": [{"value": "u1", "type": "User"}]});
    let body = json!({"schemas": [urn::GROUP], "displayName": "g", "members": [{"value": "u2"}]});
    let v = validate(
        &ResourceSchema::group(),
        &body,
        Mode::Replace,
        STRICT,
        Some(&existing),
    )
    .expect("members.value is immutable per element only");
    assert_eq!(v.doc["members"], json!([{"value": "u2"}]));
}
