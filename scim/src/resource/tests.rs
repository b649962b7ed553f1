//! Tests of [`validate`]: structure, `schemas`, unknown and readOnly input, types
//! (RFC 7643 §2, §3, §7; RFC 7644 §3.3).

use super::*;
use crate::urn;
use serde_json::json;

pub(super) const STRICT: Profile = Profile::Strict;
pub(super) const LENIENT: Profile = Profile::Lenient;

pub(super) fn user(input: Value, profile: Profile) -> Result<Validated, ScimError> {
    validate(&ResourceSchema::user(), &input, Mode::Create, profile, None)
}

pub(super) fn group(input: Value, profile: Profile) -> Result<Validated, ScimError> {
    validate(
        &ResourceSchema::group(),
        &input,
        Mode::Create,
        profile,
        None,
    )
}

pub(super) fn err(r: Result<Validated, ScimError>, t: ScimType, needle: &str) {
    let e = r.expect_err("expected an error");
    assert_eq!(e.status, 400, "{e:?}");
    assert_eq!(e.scim_type, Some(t), "{e:?}");
    assert!(e.detail.contains(needle), "`{}` lacks `{needle}`", e.detail);
}

#[test]
fn input_must_be_an_object() {
    err(user(json!([1]), LENIENT), ScimType::InvalidSyntax, "object");
    err(user(json!("x"), STRICT), ScimType::InvalidSyntax, "object");
}

#[test]
fn names_are_case_insensitive_and_output_canonical() {
    let v = user(
        json!({
            "SCHEMAS": [
                "URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER",
                "urn:ietf:params:scim:schemas:extension:ENTERPRISE:2.0:User"
            ],
            "USERNAME": "bjensen",
            "Name": {"GIVENNAME": "Barbara"},
            "externalid": "x1",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"DEPARTMENT": "Ops"}
        }),
        STRICT,
    )
    .expect("valid");
    assert_eq!(
        v.doc,
        json!({
            "schemas": [urn::USER, urn::ENTERPRISE_USER],
            "userName": "bjensen",
            "name": {"givenName": "Barbara"},
            "externalId": "x1",
            urn::ENTERPRISE_USER: {"department": "Ops"}
        })
    );
}

#[test]
fn same_attribute_twice_is_ambiguous() {
    err(
        user(json!({"userName": "a", "USERNAME": "b"}), LENIENT),
        ScimType::InvalidSyntax,
        "more than once",
    );
    err(
        user(
            json!({"userName": "a", "name": {"givenName": "x", "GivenName": "y"}}),
            LENIENT,
        ),
        ScimType::InvalidSyntax,
        "name.givenName",
    );
}

#[test]
fn schemas_rules_strict() {
    err(
        user(json!({"userName": "a"}), STRICT),
        ScimType::InvalidSyntax,
        "`schemas`",
    );
    err(
        user(
            json!({"schemas": [urn::ENTERPRISE_USER], "userName": "a"}),
            STRICT,
        ),
        ScimType::InvalidSyntax,
        urn::USER,
    );
    err(
        user(json!({"schemas": urn::USER, "userName": "a"}), STRICT),
        ScimType::InvalidSyntax,
        "array",
    );
    err(
        user(
            json!({"schemas": [urn::USER, "urn:acme:schemas:Foo"], "userName": "a"}),
            STRICT,
        ),
        ScimType::InvalidSyntax,
        "urn:acme:schemas:Foo",
    );
    // A Group URN on a User is not a schema of the resource type.
    err(
        user(
            json!({"schemas": [urn::USER, urn::GROUP], "userName": "a"}),
            LENIENT,
        ),
        ScimType::InvalidSyntax,
        urn::GROUP,
    );
    // Extension data whose URN is not listed.
    err(
        user(
            json!({"schemas": [urn::USER], "userName": "a", urn::ENTERPRISE_USER: {"department": "x"}}),
            STRICT,
        ),
        ScimType::InvalidSyntax,
        "not listed",
    );
}

#[test]
fn schemas_rules_lenient() {
    let v = user(
        json!({"userName": "a", urn::ENTERPRISE_USER: {"department": "x"}}),
        LENIENT,
    )
    .expect("missing schemas tolerated, unlisted extension accepted");
    assert_eq!(v.doc["schemas"], json!([urn::USER, urn::ENTERPRISE_USER]));
    // A listed extension without attributes is not kept in `schemas`.
    let v = user(
        json!({"schemas": [urn::USER, urn::ENTERPRISE_USER], "userName": "a"}),
        STRICT,
    )
    .expect("valid");
    assert_eq!(v.doc["schemas"], json!([urn::USER]));
    // The Microsoft URNs are only accepted outside strict.
    let ms = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User";
    assert!(
        user(
            json!({"schemas": [urn::USER, ms], "userName": "a"}),
            Profile::Okta
        )
        .is_ok()
    );
    err(
        user(json!({"schemas": [urn::USER, ms], "userName": "a"}), STRICT),
        ScimType::InvalidSyntax,
        ms,
    );
}

#[test]
fn unknown_urn_keys_are_rejected_in_every_profile() {
    for p in [STRICT, LENIENT] {
        err(
            user(
                json!({"schemas": [urn::USER], "userName": "a", "urn:acme:ext:1.0:User": {"x": 1}}),
                p,
            ),
            ScimType::InvalidSyntax,
            "urn:acme:ext:1.0:User",
        );
    }
    err(
        user(
            json!({"userName": "a", "URN:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "x"}),
            LENIENT,
        ),
        ScimType::InvalidSyntax,
        "unknown schema extension",
    );
    err(
        user(
            json!({"userName": "a", urn::ENTERPRISE_USER: "Ops"}),
            LENIENT,
        ),
        ScimType::InvalidSyntax,
        "JSON object",
    );
}

#[test]
fn unknown_attributes_strict_vs_lenient() {
    let body = json!({"schemas": [urn::USER], "userName": "a", "favouriteColour": "blue"});
    err(
        user(body.clone(), STRICT),
        ScimType::InvalidSyntax,
        "favouriteColour",
    );
    let v = user(body, LENIENT).expect("dropped");
    assert!(v.doc.get("favouriteColour").is_none());

    let body =
        json!({"schemas": [urn::USER], "userName": "a", "name": {"givenName": "B", "nick": "x"}});
    err(
        user(body.clone(), STRICT),
        ScimType::InvalidSyntax,
        "name.nick",
    );
    assert_eq!(
        user(body, LENIENT).expect("dropped").doc["name"],
        json!({"givenName": "B"})
    );

    let body = json!({"schemas": [urn::USER, urn::ENTERPRISE_USER], "userName": "a",
        urn::ENTERPRISE_USER: {"badge": "7"}});
    err(
        user(body.clone(), STRICT),
        ScimType::InvalidSyntax,
        &format!("{}:badge", urn::ENTERPRISE_USER),
    );
    let v = user(body, LENIENT).expect("dropped");
    assert_eq!(v.doc, json!({"schemas": [urn::USER], "userName": "a"}));
}

#[test]
fn read_only_and_computed_input_is_ignored() {
    let v = user(
        json!({
            "schemas": [urn::USER, urn::ENTERPRISE_USER],
            "id": "client-chosen",
            "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"},
            "userName": "a",
            "groups": [{"value": "g1", "display": "Tour Guides"}],
            urn::ENTERPRISE_USER: {"manager": {"value": "m1", "displayName": "John Smith"}}
        }),
        STRICT,
    )
    .expect("readOnly input is ignored, not an error");
    assert_eq!(
        v.doc,
        json!({"schemas": [urn::USER, urn::ENTERPRISE_USER], "userName": "a",
               urn::ENTERPRISE_USER: {"manager": {"value": "m1"}}})
    );
    // A manager with only the readOnly displayName is unassigned.
    let v = user(
        json!({"userName": "a", urn::ENTERPRISE_USER: {"manager": {"displayName": "J"}}}),
        LENIENT,
    )
    .expect("valid");
    assert_eq!(v.doc, json!({"schemas": [urn::USER], "userName": "a"}));
}

#[test]
fn wrong_types_are_invalid_value_naming_the_path() {
    let cases = [
        (json!({"userName": 5}), "userName: expected string"),
        (json!({"active": "yes"}), "active: expected boolean"),
        (
            json!({"emails": [{"value": "a@b", "primary": "maybe"}]}),
            "emails[0].primary: expected boolean",
        ),
        (json!({"name": "Barbara"}), "name: expected a complex value"),
        (
            json!({"name": [{"givenName": "B"}]}),
            "name: expected a single value",
        ),
        (json!({"emails": [["a@b"]]}), "emails[0]: nested arrays"),
        (
            json!({"emails": [{"value": {"x": 1}}]}),
            "emails[0].value: expected string",
        ),
        (json!({"profileUrl": 3}), "profileUrl: expected a reference"),
        (
            json!({"x509Certificates": [{"value": "not base64!"}]}),
            "x509Certificates[0].value: expected base64",
        ),
        (json!({"externalId": true}), "externalId: expected string"),
        (json!({"password": 1234}), "password: expected string"),
    ];
    for (mut body, needle) in cases {
        body["schemas"] = json!([urn::USER]);
        if body.get("userName").is_none() {
            body["userName"] = json!("a");
        }
        for p in [STRICT, LENIENT] {
            err(user(body.clone(), p), ScimType::InvalidValue, needle);
        }
    }
}

#[test]
fn booleans_as_strings_only_with_entra_quirks() {
    let body = json!({"schemas": [urn::USER], "userName": "a", "active": "True",
        "emails": [{"value": "a@b", "primary": "FALSE"}]});
    for p in [Profile::Entra, LENIENT] {
        let v = user(body.clone(), p).expect("Entra booleans");
        assert_eq!(v.doc["active"], json!(true));
        assert_eq!(v.doc["emails"][0]["primary"], json!(false));
    }
    for p in [STRICT, Profile::Okta] {
        err(
            user(body.clone(), p),
            ScimType::InvalidValue,
            "active: expected boolean",
        );
    }
}

#[test]
fn manager_as_string() {
    let body = json!({"schemas": [urn::USER, urn::ENTERPRISE_USER], "userName": "a",
        urn::ENTERPRISE_USER: {"manager": "26118915-6090-4610-87e4-49d8ca9f808d"}});
    let v = user(body.clone(), LENIENT).expect("wrapped");
    assert_eq!(
        v.doc[urn::ENTERPRISE_USER]["manager"],
        json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d"})
    );
    err(
        user(body, STRICT),
        ScimType::InvalidValue,
        "manager: expected a complex value",
    );
    let v = user(
        json!({"userName": "a", urn::ENTERPRISE_USER: {"manager": ""}}),
        LENIENT,
    )
    .expect("empty manager is unassigned");
    assert_eq!(v.doc, json!({"schemas": [urn::USER], "userName": "a"}));
}
