//! [`validate`] on realistic payloads: the RFC examples and what Entra ID and Okta send.

use super::*;
use crate::urn;
use serde_json::json;

/// RFC 7643 §8.3: the enterprise User example (the §8.2 full User plus the extension), as a
/// client would POST it back (with `id`, `meta` and `groups`, which are ignored).
fn rfc7643_enterprise_user() -> Value {
    json!({
      "schemas": [urn::USER, urn::ENTERPRISE_USER],
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
        {"value": "e9e30dba-f08f-4109-8486-d5c6a331660a",
         "$ref": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a",
         "display": "Tour Guides"},
        {"value": "fc348aa8-3835-40eb-a20b-c726e15c55b5",
         "$ref": "https://example.com/v2/Groups/fc348aa8-3835-40eb-a20b-c726e15c55b5",
         "display": "Employees"}
      ],
      "x509Certificates": [
        {"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMxEzARBgNVBAgMCkNhbGlmb3JuaWExFDASBgNVBAoMC2V4YW1wbGUuY29tMRQwEgYDVQQDDAtleGFtcGxlLmNvbQ=="}
      ],
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
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

#[test]
fn rfc7643_enterprise_user_example() {
    let input = rfc7643_enterprise_user();
    let v = validate(
        &ResourceSchema::user(),
        &input,
        Mode::Create,
        Profile::Lenient,
        None,
    )
    .expect("valid");
    assert_eq!(v.password.as_deref(), Some("t1meMa$heen"));
    let doc = v.doc.as_object().expect("object");
    for gone in ["id", "meta", "groups", "password"] {
        assert!(!doc.contains_key(gone), "{gone}");
    }
    assert_eq!(doc["schemas"], json!([urn::USER, urn::ENTERPRISE_USER]));
    assert_eq!(doc["name"], input["name"]);
    assert_eq!(doc["emails"], input["emails"]);
    assert_eq!(doc["x509Certificates"], input["x509Certificates"]);
    assert_eq!(
        doc[urn::ENTERPRISE_USER]["manager"],
        json!({"value": "26118915-6090-4610-87e4-49d8ca9f808d",
               "$ref": "../Users/26118915-6090-4610-87e4-49d8ca9f808d"})
    );
    assert_eq!(
        doc[urn::ENTERPRISE_USER]["department"],
        json!("Tour Operations")
    );
    // idhub's user schema adds `addresses.primary` (RFC 7643 §4.1.2; see schemas/README.md).
    assert_eq!(doc["addresses"][0]["primary"], json!(true));
    assert_eq!(doc["addresses"][0]["locality"], json!("Hollywood"));

    // Strict accepts the RFC example as it is.
    let strict_input = input;
    let s = validate(
        &ResourceSchema::user(),
        &strict_input,
        Mode::Create,
        Profile::Strict,
        None,
    )
    .expect("valid in strict");
    assert_eq!(s.doc, v.doc);
    // Validation is idempotent: the canonical document validates to itself.
    let again = validate(
        &ResourceSchema::user(),
        &s.doc,
        Mode::Replace,
        Profile::Strict,
        Some(&s.doc),
    )
    .expect("canonical doc is valid");
    assert_eq!(again.doc, s.doc);
    assert_eq!(again.password, None);
}

#[test]
fn rfc7644_create_example() {
    // RFC 7644 §3.3.
    let input = json!({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
      "userName": "bjensen",
      "externalId": "bjensen",
      "name": {
        "formatted": "Ms. Barbara J Jensen III",
        "familyName": "Jensen",
        "givenName": "Barbara"
      }
    });
    let v = validate(
        &ResourceSchema::user(),
        &input,
        Mode::Create,
        Profile::Strict,
        None,
    )
    .expect("valid");
    assert_eq!(v.doc, input);
    assert_eq!(v.password, None);
}

#[test]
fn rfc7643_group_example() {
    // RFC 7643 §8.4, POSTed back.
    let input = json!({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
      "displayName": "Tour Guides",
      "members": [
        {"value": "2819c223-7f76-453a-919d-413861904646",
         "$ref": "https://example.com/v2/Users/2819c223-7f76-453a-919d-413861904646",
         "display": "Babs Jensen"},
        {"value": "902c246b-6245-4190-8e05-00816be7344a",
         "$ref": "https://example.com/v2/Users/902c246b-6245-4190-8e05-00816be7344a",
         "display": "Mandy Pepperidge"}
      ],
      "meta": {"resourceType": "Group", "created": "2010-01-23T04:56:22Z",
               "lastModified": "2011-05-13T04:42:34Z", "version": "W/\"3694e05e9dff592\"",
               "location": "https://example.com/v2/Groups/e9e30dba-f08f-4109-8486-d5c6a331660a"}
    });
    let v = validate(
        &ResourceSchema::group(),
        &input,
        Mode::Create,
        Profile::Strict,
        None,
    )
    .expect("valid");
    assert_eq!(
        v.doc,
        json!({"schemas": [urn::GROUP], "displayName": "Tour Guides", "members": [
            {"value": "2819c223-7f76-453a-919d-413861904646"},
            {"value": "902c246b-6245-4190-8e05-00816be7344a"}]})
    );
}

#[test]
fn entra_user_create() {
    // The shape of Microsoft Entra ID's create request, with the quirks it is known for:
    // string booleans, `manager` as a plain id.
    let input = json!({
      "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:User",
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
      ],
      "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
      "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com",
      "active": "True",
      "displayName": "Test User",
      "emails": [{
        "primary": "True",
        "type": "work",
        "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
      }],
      "meta": {"resourceType": "User"},
      "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
      "roles": [],
      "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
        "department": "Sales",
        "employeeNumber": "1234",
        "manager": "b3c5a8f2-5d71-4c8b-a1a4-1e2a4d4c7e10"
      }
    });
    for p in [Profile::Entra, Profile::Lenient] {
        let v = validate(&ResourceSchema::user(), &input, Mode::Create, p, None).expect("valid");
        assert_eq!(
            v.doc,
            json!({
              "schemas": [urn::USER, urn::ENTERPRISE_USER],
              "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
              "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1@testuser.com",
              "active": true,
              "displayName": "Test User",
              "emails": [{"primary": true, "type": "work",
                          "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
              "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
              urn::ENTERPRISE_USER: {
                "department": "Sales",
                "employeeNumber": "1234",
                "manager": {"value": "b3c5a8f2-5d71-4c8b-a1a4-1e2a4d4c7e10"}
              }
            })
        );
    }
    let e = validate(
        &ResourceSchema::user(),
        &input,
        Mode::Create,
        Profile::Strict,
        None,
    )
    .expect_err("strict refuses string booleans");
    assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
}

#[test]
fn entra_group_create() {
    let input = json!({
      "schemas": [
        "urn:ietf:params:scim:schemas:core:2.0:Group",
        "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
      ],
      "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
      "displayName": "displayName",
      "meta": {"resourceType": "Group"}
    });
    let v = validate(
        &ResourceSchema::group(),
        &input,
        Mode::Create,
        Profile::Entra,
        None,
    )
    .expect("valid");
    assert_eq!(
        v.doc,
        json!({"schemas": [urn::GROUP], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
               "displayName": "displayName"})
    );
    let e = validate(
        &ResourceSchema::group(),
        &input,
        Mode::Create,
        Profile::Strict,
        None,
    )
    .expect_err("unknown schema in strict");
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    assert!(e.detail.contains("ADSCIM"));
}

#[test]
fn okta_user_and_group_create() {
    // The shape of Okta's create request: readOnly `groups: []`, a password.
    let input = json!({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
      "userName": "test.user@okta.local",
      "name": {"givenName": "Test", "familyName": "User"},
      "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
      "displayName": "Test User",
      "locale": "en-US",
      "externalId": "00ujl29u0le5T6Aj10h7",
      "groups": [],
      "password": "1mz050nq",
      "active": true
    });
    for p in [Profile::Okta, Profile::Strict] {
        let v = validate(&ResourceSchema::user(), &input, Mode::Create, p, None).expect("valid");
        assert_eq!(v.password.as_deref(), Some("1mz050nq"));
        let mut expected = input.clone();
        if let Some(m) = expected.as_object_mut() {
            m.remove("groups");
            m.remove("password");
        }
        assert_eq!(v.doc, expected);
    }
    let g = json!({
      "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
      "displayName": "Test SCIMv2",
      "members": []
    });
    let v = validate(
        &ResourceSchema::group(),
        &g,
        Mode::Create,
        Profile::Okta,
        None,
    )
    .expect("valid");
    assert_eq!(
        v.doc,
        json!({"schemas": [urn::GROUP], "displayName": "Test SCIMv2"})
    );
}
