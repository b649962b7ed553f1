//! Requests replayed as identity providers send them: Microsoft Entra ID (its provisioning
//! tutorial's request/response sequence and the quirks listed in its SCIM compliance notes)
//! and Okta (its SCIM 2.0 provisioning guide), and the tenant's compatibility profile deciding
//! whether the quirks are accepted.

use crate::backend_tests;
use crate::harness::{Backend, Scim, TestApp, url_encode};
use idhub::model::ScimProfile;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

backend_tests!(
    entra_user_sequence,
    entra_pathless_replace_and_manager,
    entra_group_sequence,
    okta_user_sequence,
    okta_group_push,
    lenient_profile_accepts_entra_quirks,
    entra_profile_accepts_entra_quirks,
    strict_profile_refuses_entra_quirks,
);

const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH_URN: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ADSCIM_GROUP: &str =
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";
const ADSCIM_USER: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User";

/// An identity provider's client: the body is sent as the exact text given, with the
/// provider's headers.
struct Idp<'a> {
    app: &'a TestApp,
    token: String,
    content_type: &'static str,
    user_agent: &'static str,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl<'a> Idp<'a> {
    fn entra(scim: &Scim<'a>) -> Self {
        Self {
            app: scim.app,
            token: scim.token.clone(),
            content_type: "application/scim+json",
            user_agent: "Azure Active Directory SCIM Client",
        }
    }

    fn okta(scim: &Scim<'a>) -> Self {
        Self {
            app: scim.app,
            token: scim.token.clone(),
            content_type: "application/scim+json; charset=utf-8",
            user_agent: "Okta SCIM Client 1.0.0",
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> Reply {
        let mut rb = self
            .app
            .client
            .request(method, self.app.url(&format!("/scim/v2{path}")))
            .bearer_auth(&self.token)
            .header("Accept", "application/scim+json")
            .header("User-Agent", self.user_agent);
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", self.content_type)
                .body(b.to_owned());
        }
        let r = rb.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            assert!(
                ct.starts_with("application/scim+json"),
                "content type {ct:?} for {path}"
            );
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON body ({e}): {text}"))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, None).await
    }
    async fn post(&self, path: &str, body: &str) -> Reply {
        self.send(Method::POST, path, Some(body)).await
    }
    async fn put(&self, path: &str, body: &str) -> Reply {
        self.send(Method::PUT, path, Some(body)).await
    }
    async fn patch(&self, path: &str, body: &str) -> Reply {
        self.send(Method::PATCH, path, Some(body)).await
    }
    async fn delete(&self, path: &str) -> Reply {
        self.send(Method::DELETE, path, None).await
    }
}

fn assert_error(r: &Reply, status: u16) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:Error"])
    );
    assert_eq!(r.body["status"], json!(status.to_string()));
}

fn member_set(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| m["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

fn work_email(user: &Value) -> Option<String> {
    user["emails"]
        .as_array()?
        .iter()
        .find(|e| e["type"] == "work")
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
}

// ---- Microsoft Entra ID ----

const ENTRA_USER_NAME: &str = "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1";
const ENTRA_EXTERNAL_ID: &str = "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef";

fn entra_create_user() -> String {
    r#"{
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
        "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
        "active": true,
        "emails": [{
            "primary": true,
            "type": "work",
            "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
        }],
        "meta": {
            "resourceType": "User"
        },
        "name": {
            "formatted": "givenName familyName",
            "familyName": "familyName",
            "givenName": "givenName"
        },
        "roles": []
    }"#
    .to_owned()
}

async fn entra_user_sequence(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let entra = Idp::entra(&scim);

    // Before creating, Entra ID looks the user up (zero results).
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{ENTRA_USER_NAME}\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(
        r.body["schemas"],
        json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
    );

    // Create User.
    let r = entra.post("/Users", &entra_create_user()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["userName"], ENTRA_USER_NAME);
    assert_eq!(r.body["externalId"], ENTRA_EXTERNAL_ID);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["name"]["familyName"], "familyName");
    assert_eq!(r.body["name"]["givenName"], "givenName");
    assert_eq!(r.body["name"]["formatted"], "givenName familyName");
    assert_eq!(
        r.body["emails"][0]["value"],
        "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"
    );
    assert_eq!(r.body["emails"][0]["primary"], true);
    assert_eq!(r.body["meta"]["resourceType"], "User");
    assert!(r.body["meta"]["created"].is_string());
    assert!(r.body["meta"]["lastModified"].is_string());
    assert!(
        r.body["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(USER_URN))
    );
    let location = r.headers["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with(&format!("/Users/{id}")), "{location}");

    // Creating it again: 409 uniqueness.
    let r = entra.post("/Users", &entra_create_user()).await;
    assert_error(&r, 409);
    assert_eq!(r.body["scimType"], "uniqueness");

    // Get User.
    let r = entra.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(id));
    assert_eq!(r.body["userName"], ENTRA_USER_NAME);

    // Get User by query: userName, then externalId.
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{ENTRA_USER_NAME}\""))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(r.body["startIndex"], 1);
    assert_eq!(r.body["Resources"][0]["id"], json!(id));
    // userName is caseExact false: Entra ID's lookups match regardless of case.
    let r = entra
        .get(&format!(
            "/Users?filter={}",
            url_encode(&format!(
                "userName eq \"{}\"",
                ENTRA_USER_NAME.to_uppercase()
            ))
        ))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = entra
        .get(&format!(
            "/Users?filter=externalId+eq+\"{ENTRA_EXTERNAL_ID}\""
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], json!(id));
    let r = entra
        .get("/Users?filter=externalId+eq+\"00000000-0000-0000-0000-000000000000\"")
        .await;
    assert_eq!(r.body["totalResults"], 0);

    // Update User [Multi-valued properties].
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            r#"{
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [
                    {
                    "op": "Replace",
                    "path": "emails[type eq \"work\"].value",
                    "value": "updatedEmail@microsoft.com"
                    },
                    {
                    "op": "Replace",
                    "path": "name.familyName",
                    "value": "updatedFamilyName"
                    }
                ]
            }"#,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(
        work_email(&got).as_deref(),
        Some("updatedEmail@microsoft.com")
    );
    assert_eq!(got["emails"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["emails"][0]["primary"], true);
    assert_eq!(got["name"]["familyName"], "updatedFamilyName");
    assert_eq!(got["name"]["givenName"], "givenName");

    // Update User [Single-valued properties].
    let new_name = "5b50642d-79fc-4410-9e90-4c077cdd1a59@testuser.com";
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "Replace",
                        "path": "userName",
                        "value": "{new_name}"
                    }}]
                }}"#
            ),
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{new_name}\""))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{ENTRA_USER_NAME}\""))
        .await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);

    // Disable User: first as the tutorial shows it, then with the string boolean.
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            r#"{
                "Operations": [
                    {
                        "op": "Replace",
                        "path": "active",
                        "value": false
                    }
                ],
                "schemas": [
                    "urn:ietf:params:scim:api:messages:2.0:PatchOp"
                ]
            }"#,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got["active"], false, "{got}");
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{new_name}\""))
        .await;
    assert_eq!(r.body["Resources"][0]["active"], false, "{}", r.body);
    entra
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"True"}]}"#,
        )
        .await;
    assert_eq!(
        entra.get(&format!("/Users/{id}")).await.body["active"],
        true
    );
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"False"}]}"#,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(
        got["active"],
        json!(false),
        "stored as a real boolean: {got}"
    );
    let r = entra
        .get(&format!("/Users?filter={}", url_encode("active eq false")))
        .await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);

    // Delete User.
    let r = entra.delete(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert!(r.body.is_null());
    let r = entra.get(&format!("/Users/{id}")).await;
    assert_error(&r, 404);
    let r = entra
        .get(&format!("/Users?filter=userName+eq+\"{new_name}\""))
        .await;
    assert_eq!(r.body["totalResults"], 0);
    let r = entra.delete(&format!("/Users/{id}")).await;
    assert_error(&r, 404);
    app.stop().await;
}

async fn entra_pathless_replace_and_manager(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let entra = Idp::entra(&scim);
    let r = entra.post("/Users", &entra_create_user()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let manager = scim
        .create_user("boss@testuser.com", json!({"displayName": "The Boss"}))
        .await;

    // A path-less Replace whose keys are paths, with a string boolean.
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            r#"{
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{
                    "op": "Replace",
                    "value": {
                        "displayName": "Jane Doe",
                        "name.givenName": "Jane",
                        "name.familyName": "Doe",
                        "emails[type eq \"work\"].value": "jane.doe@contoso.com",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Sales",
                        "active": "True"
                    }
                }]
            }"#,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got["displayName"], "Jane Doe", "{got}");
    assert_eq!(got["name"]["givenName"], "Jane");
    assert_eq!(got["name"]["familyName"], "Doe");
    assert_eq!(got["name"]["formatted"], "givenName familyName");
    assert_eq!(work_email(&got).as_deref(), Some("jane.doe@contoso.com"));
    assert_eq!(got["emails"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got[ENTERPRISE]["department"], "Sales", "{got}");
    assert_eq!(got["active"], true);
    assert!(
        got["schemas"]
            .as_array()
            .unwrap()
            .contains(&json!(ENTERPRISE))
    );
    // The new work email is what a filter on work emails finds.
    let q = url_encode("emails[type eq \"work\" and value eq \"jane.doe@contoso.com\"]");
    let r = entra.get(&format!("/Users?filter={q}")).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);

    // manager added as a plain string.
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "Add",
                        "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
                        "value": "{manager}"
                    }}]
                }}"#
            ),
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got[ENTERPRISE]["manager"]["value"], json!(manager), "{got}");
    assert_eq!(got[ENTERPRISE]["department"], "Sales", "{got}");
    let q = url_encode(&format!("{ENTERPRISE}:manager.value eq \"{manager}\""));
    let r = entra.get(&format!("/Users?filter={q}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    // Replaced, then removed, the same way.
    let other = scim.create_user("boss2@testuser.com", json!({})).await;
    entra
        .patch(
            &format!("/Users/{id}"),
            &format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Replace","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager","value":"{other}"}}]}}"#
            ),
        )
        .await;
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got[ENTERPRISE]["manager"]["value"], json!(other), "{got}");
    let r = entra
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Remove","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]}"#,
        )
        .await;
    assert!(
        r.status == 200 || r.status == 204,
        "{} {}",
        r.status,
        r.body
    );
    let got = entra.get(&format!("/Users/{id}")).await.body;
    assert!(got[ENTERPRISE].get("manager").is_none(), "{got}");
    assert_eq!(got[ENTERPRISE]["department"], "Sales", "{got}");

    // Users created with the ADSCIM User schema listed are accepted too (the URN is dropped).
    let r = entra
        .post(
            "/Users",
            &json!({
                "schemas": [USER_URN, ADSCIM_USER],
                "userName": "adscim.user@testuser.com",
                "active": "True"
            })
            .to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([USER_URN]), "{}", r.body);
    assert_eq!(r.body["active"], true);
    app.stop().await;
}

async fn entra_group_sequence(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let entra = Idp::entra(&scim);
    let u1 = scim.create_user("member1@testuser.com", json!({})).await;
    let u2 = scim.create_user("member2@testuser.com", json!({})).await;

    // Create Group.
    let r = entra
        .post(
            "/Groups",
            r#"{
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {
                    "resourceType": "Group"
                }
            }"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["schemas"], json!([GROUP_URN]), "{}", r.body);
    assert_eq!(r.body["externalId"], "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159");
    assert_eq!(r.body["displayName"], "displayName");
    assert_eq!(r.body["meta"]["resourceType"], "Group");
    assert!(member_set(&r.body).is_empty());

    // Get Group, and Get Group by displayName, without members.
    let r = entra
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["id"], json!(gid));
    assert_eq!(r.body["displayName"], "displayName");
    assert!(r.body.get("members").is_none());
    let r = entra
        .get("/Groups?excludedAttributes=members&filter=displayName+eq+\"displayName\"")
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["id"], json!(gid));
    assert!(r.body["Resources"][0].get("members").is_none());

    // Update Group [Non-member attributes].
    let r = entra
        .patch(
            &format!("/Groups/{gid}"),
            r#"{
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{
                    "op": "Replace",
                    "path": "displayName",
                    "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
                }]
            }"#,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(
        got["displayName"],
        "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"
    );

    // Update Group [Add Members], twice: re-adding is not a conflict.
    let add = |id: &str| {
        format!(
            r#"{{
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{{
                    "op": "Add",
                    "path": "members",
                    "value": [{{
                        "$ref": null,
                        "value": "{id}"
                    }}]
                }}]
            }}"#
        )
    };
    for _ in 0..2 {
        let r = entra.patch(&format!("/Groups/{gid}"), &add(&u1)).await;
        assert_eq!(r.status, 204, "{}", r.body);
    }
    let r = entra.patch(&format!("/Groups/{gid}"), &add(&u2)).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u1, &u2]), "{got}");
    // Entra ID checks membership with a members filter.
    let q = url_encode(&format!("id eq \"{gid}\" and members[value eq \"{u1}\"]"));
    let r = entra
        .get(&format!("/Groups?filter={q}&excludedAttributes=members"))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);

    // Update Group [Remove Members], by filter and by value list.
    let r = entra
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Remove","path":"members[value eq \"{u1}\"]"}}]}}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u2]), "{got}");
    let r = entra
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "Remove",
                        "path": "members",
                        "value": [{{
                            "$ref": null,
                            "value": "{u2}"
                        }}]
                    }}]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{gid}")).await.body;
    assert!(member_set(&got).is_empty(), "{got}");
    // Removing one of several by value list keeps the others.
    entra.patch(&format!("/Groups/{gid}"), &add(&u1)).await;
    entra.patch(&format!("/Groups/{gid}"), &add(&u2)).await;
    let r = entra
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{{"op":"Remove","path":"members","value":[{{"value":"{u1}"}}]}}]}}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = entra.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u2]), "{got}");

    // Delete Group.
    let r = entra.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&entra.get(&format!("/Groups/{gid}")).await, 404);
    app.stop().await;
}

// ---- Okta ----

async fn okta_user_sequence(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let okta = Idp::okta(&scim);

    // Test connection.
    let r = okta.get("/Users?startIndex=1&count=2").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["totalResults"].is_number(), "{}", r.body);
    assert!(r.body["Resources"].as_array().unwrap().len() <= 2);
    assert!(r.body["itemsPerPage"].is_number());
    assert_eq!(r.body["startIndex"], 1);

    // Does the user exist? No.
    let lookup =
        "/Users?filter=userName%20eq%20%22test.user%40okta.local%22&startIndex=1&count=100";
    let r = okta.get(lookup).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["totalResults"], 0);
    assert_eq!(r.body["Resources"], json!([]));
    assert_eq!(r.body["startIndex"], 1);

    // Create the user.
    let r = okta
        .post(
            "/Users",
            r#"{
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": "test.user@okta.local",
                "name": {
                    "givenName": "Test",
                    "familyName": "User"
                },
                "emails": [{
                    "primary": true,
                    "value": "test.user@okta.local",
                    "type": "work"
                }],
                "displayName": "Test User",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mz050nq",
                "active": true
            }"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert!(
        r.body.get("password").is_none(),
        "password returned: {}",
        r.body
    );
    assert_eq!(r.body["userName"], "test.user@okta.local");
    assert_eq!(r.body["displayName"], "Test User");
    assert_eq!(r.body["locale"], "en-US");
    assert_eq!(r.body["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(r.body["active"], true);

    // Found now.
    let r = okta.get(lookup).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["itemsPerPage"], 1);
    assert_eq!(r.body["Resources"][0]["id"], json!(id));
    assert!(r.body["Resources"][0].get("password").is_none());

    // Retrieve.
    let r = okta.get(&format!("/Users/{id}")).await;
    assert_eq!(r.status, 200);
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let created = r.body["meta"]["created"].clone();

    // Update with PUT (Okta sends the whole user, with id and meta), deactivating it.
    let r = okta
        .put(
            &format!("/Users/{id}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": "{id}",
                    "userName": "test.user@okta.local",
                    "name": {{
                        "givenName": "Another",
                        "middleName": "",
                        "familyName": "User"
                    }},
                    "emails": [{{
                        "primary": true,
                        "value": "test.user@okta.local",
                        "type": "work"
                    }}],
                    "displayName": "Another User",
                    "locale": "en-US",
                    "externalId": "00ujl29u0le5T6Aj10h7",
                    "groups": [],
                    "password": "1mz050nq",
                    "active": false,
                    "meta": {{
                        "resourceType": "User",
                        "created": "2019-01-01T00:00:00.000Z",
                        "lastModified": "2019-01-01T00:00:00.000Z"
                    }}
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    assert_eq!(r.body["displayName"], "Another User");
    assert_eq!(r.body["name"]["givenName"], "Another");
    assert_eq!(
        r.body["meta"]["created"], created,
        "meta from the client was used"
    );
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);
    assert!(r.body.get("password").is_none());
    let got = okta.get(&format!("/Users/{id}")).await.body;
    assert_eq!(got["active"], false);
    let r = okta.get(lookup).await;
    assert_eq!(r.body["Resources"][0]["active"], false, "{}", r.body);

    // Reactivate and deactivate with PATCH, as Okta's OIN integrations do.
    let r = okta
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":true}}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], true);
    let r = okta
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], false);
    // A password change by PATCH is accepted and never echoed.
    let r = okta
        .patch(
            &format!("/Users/{id}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"password":"n3w-Passw0rd"}}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("password").is_none());
    assert_eq!(r.body["active"], false);
    // Creating the same userName again is a 409 Okta understands.
    let r = okta
        .post(
            "/Users",
            r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"test.user@okta.local","active":true}"#,
        )
        .await;
    assert_error(&r, 409);
    assert_eq!(r.body["scimType"], "uniqueness");
    app.stop().await;
}

async fn okta_group_push(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let okta = Idp::okta(&scim);
    let u1 = scim.create_user("u1@okta.local", json!({})).await;
    let u2 = scim.create_user("u2@okta.local", json!({})).await;
    let u3 = scim.create_user("u3@okta.local", json!({})).await;

    // Group lookup, then creation with a member.
    let lookup = "/Groups?filter=displayName%20eq%20%22Test%20SCIMv2%22&startIndex=1&count=100";
    let r = okta.get(lookup).await;
    assert_eq!(r.body["totalResults"], 0, "{}", r.body);
    let r = okta
        .post(
            "/Groups",
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Test SCIMv2",
                    "members": [{{"value": "{u1}", "display": "u1@okta.local"}}]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let gid = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(member_set(&r.body), set(&[&u1]));
    let r = okta.get(lookup).await;
    assert_eq!(r.body["totalResults"], 1, "{}", r.body);
    assert_eq!(r.body["Resources"][0]["id"], json!(gid));

    // Rename: a path-less replace carrying the id.
    let r = okta
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "replace",
                        "value": {{
                            "id": "{gid}",
                            "displayName": "Test SCIMv2 renamed"
                        }}
                    }}]
                }}"#
            ),
        )
        .await;
    assert!(
        r.status == 204 || r.status == 200,
        "{} {}",
        r.status,
        r.body
    );
    let got = okta.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(got["displayName"], "Test SCIMv2 renamed");
    assert_eq!(got["id"], json!(gid));
    assert_eq!(
        member_set(&got),
        set(&[&u1]),
        "the rename touched the members: {got}"
    );

    // Add members.
    let r = okta
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "add",
                        "path": "members",
                        "value": [{{"value": "{u2}", "display": "u2@okta.local"}}, {{"value": "{u3}", "display": "u3@okta.local"}}]
                    }}]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = okta.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u1, &u2, &u3]));

    // Remove a member.
    let r = okta
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "remove",
                        "path": "members[value eq \"{u1}\"]"
                    }}]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = okta.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u2, &u3]));

    // Replace the member list.
    let r = okta
        .patch(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                    "Operations": [{{
                        "op": "replace",
                        "path": "members",
                        "value": [{{"value": "{u1}", "display": "u1@okta.local"}}]
                    }}]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.body);
    let got = okta.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u1]));

    // PUT with name and members (older Okta group push).
    let r = okta
        .put(
            &format!("/Groups/{gid}"),
            &format!(
                r#"{{
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "id": "{gid}",
                    "displayName": "Test SCIMv2 put",
                    "members": [
                        {{"value": "{u2}", "display": "u2@okta.local"}},
                        {{"value": "{u3}", "display": "u3@okta.local"}}
                    ]
                }}"#
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Test SCIMv2 put");
    assert_eq!(member_set(&r.body), set(&[&u2, &u3]));
    let got = okta.get(&format!("/Groups/{gid}")).await.body;
    assert_eq!(member_set(&got), set(&[&u2, &u3]));
    // The users see their membership.
    let u = okta.get(&format!("/Users/{u2}")).await.body;
    assert_eq!(u["groups"][0]["value"], json!(gid), "{u}");
    assert_eq!(u["groups"][0]["display"], "Test SCIMv2 put");
    let u = okta.get(&format!("/Users/{u1}")).await.body;
    assert!(u.get("groups").is_none(), "{u}");

    // Delete the group.
    let r = okta.delete(&format!("/Groups/{gid}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    assert_error(&okta.get(&format!("/Groups/{gid}")).await, 404);
    app.stop().await;
}

// ---- Profiles ----

/// One request of each Entra ID quirk, against user `uid` and group `gid` (member `member`).
/// Returns (what, method, path, body).
fn entra_quirks(uid: &str, gid: &str, member: &str) -> Vec<(&'static str, Method, String, String)> {
    vec![
        (
            "capitalised op",
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "Replace", "path": "displayName", "value": "Quirk"}]}).to_string(),
        ),
        (
            "\"False\" boolean string",
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "path": "active", "value": "False"}]}).to_string(),
        ),
        (
            "PATCH without schemas",
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"Operations": [{"op": "replace", "path": "nickName", "value": "Quirky"}]}).to_string(),
        ),
        (
            "path keys in a path-less value",
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "replace", "value": {"name.givenName": "Quirk"}}]}).to_string(),
        ),
        (
            "manager as a string",
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "add", "path": format!("{ENTERPRISE}:manager"), "value": member}]}).to_string(),
        ),
        (
            "remove members by value list",
            Method::PATCH,
            format!("/Groups/{gid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": "members", "value": [{"value": member}]}]}).to_string(),
        ),
        (
            "ADSCIM group schema",
            Method::POST,
            "/Groups".to_owned(),
            json!({"schemas": [GROUP_URN, ADSCIM_GROUP], "displayName": "Quirk Group"}).to_string(),
        ),
        (
            "user without schemas",
            Method::POST,
            "/Users".to_owned(),
            json!({"userName": "quirk.user", "active": "True"}).to_string(),
        ),
    ]
}

struct Fixture {
    uid: String,
    gid: String,
    member: String,
}

async fn fixture(scim: &Scim<'_>) -> Fixture {
    let uid = scim
        .create_user(
            "profile.user",
            json!({"displayName": "Profile User", "name": {"givenName": "Pro", "familyName": "File"}}),
        )
        .await;
    let member = scim.create_user("profile.member", json!({})).await;
    let gid = scim.create_group("Profile Group", &[&member]).await;
    Fixture { uid, gid, member }
}

async fn state(scim: &Scim<'_>, f: &Fixture) -> (Value, Value) {
    let u = scim.get(&format!("/Users/{}", f.uid)).await.body;
    let g = scim.get(&format!("/Groups/{}", f.gid)).await.body;
    (u, g)
}

/// Each quirk is accepted and takes effect.
async fn quirks_accepted(scim: &Scim<'_>) {
    let f = fixture(scim).await;
    let idp = Idp::entra(scim);
    for (what, method, path, body) in entra_quirks(&f.uid, &f.gid, &f.member) {
        let r = idp.send(method, &path, Some(&body)).await;
        assert!(
            (200..300).contains(&r.status),
            "{what} refused: {} {}",
            r.status,
            r.body
        );
    }
    let (u, g) = state(scim, &f).await;
    assert_eq!(u["displayName"], "Quirk", "{u}");
    assert_eq!(u["active"], false, "{u}");
    assert_eq!(u["nickName"], "Quirky", "{u}");
    assert_eq!(u["name"]["givenName"], "Quirk", "{u}");
    assert_eq!(u["name"]["familyName"], "File", "{u}");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], json!(f.member), "{u}");
    assert!(member_set(&g).is_empty(), "{g}");
    let r = scim
        .filter("Groups", "displayName eq \"Quirk Group\"")
        .await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["schemas"], json!([GROUP_URN]));
    let r = scim.filter("Users", "userName eq \"quirk.user\"").await;
    assert_eq!(r.body["totalResults"], 1);
    assert_eq!(r.body["Resources"][0]["active"], true);
}

async fn lenient_profile_accepts_entra_quirks(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    quirks_accepted(&scim).await;
    app.stop().await;
}

async fn entra_profile_accepts_entra_quirks(b: Backend) {
    let app = TestApp::spawn(&b).await;
    app.set_scim_settings("default", ScimProfile::Entra, false)
        .await;
    let scim = app.scim().await;
    quirks_accepted(&scim).await;
    app.stop().await;
}

async fn strict_profile_refuses_entra_quirks(b: Backend) {
    let app = TestApp::spawn(&b).await;
    let scim = app.scim().await;
    let f = fixture(&scim).await;
    // Switched at run time: the very next request follows the new profile.
    app.set_scim_settings("default", ScimProfile::Strict, false)
        .await;
    let before = state(&scim, &f).await;
    let idp = Idp::entra(&scim);
    for (what, method, path, body) in entra_quirks(&f.uid, &f.gid, &f.member) {
        let r = idp.send(method, &path, Some(&body)).await;
        assert_eq!(r.status, 400, "{what} accepted in strict: {}", r.body);
        assert_error(&r, 400);
        assert!(r.body["scimType"].is_string(), "{what}: {}", r.body);
    }
    // A string boolean on create, and the ADSCIM user schema, are refused too.
    let r = idp
        .post(
            "/Users",
            &json!({"schemas": [USER_URN], "userName": "strict.bool", "active": "True"})
                .to_string(),
        )
        .await;
    assert_error(&r, 400);
    let r = idp
        .post(
            "/Users",
            &json!({"schemas": [USER_URN, ADSCIM_USER], "userName": "strict.adscim"}).to_string(),
        )
        .await;
    assert_error(&r, 400);
    // Nothing changed, nothing was created.
    assert_eq!(state(&scim, &f).await, before);
    for name in ["quirk.user", "strict.bool", "strict.adscim"] {
        let r = scim
            .filter("Users", &format!("userName eq \"{name}\""))
            .await;
        assert_eq!(r.body["totalResults"], 0, "{name} was created");
    }
    let r = scim
        .filter("Groups", "displayName eq \"Quirk Group\"")
        .await;
    assert_eq!(r.body["totalResults"], 0);

    // The RFC forms of the same changes are accepted in strict.
    let uid = &f.uid;
    let gid = &f.gid;
    let member = &f.member;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/Users/{uid}"),
            json!({"schemas": [PATCH_URN], "Operations": [
                {"op": "replace", "path": "displayName", "value": "Quirk"},
                {"op": "replace", "path": "active", "value": false},
                {"op": "replace", "path": "name.givenName", "value": "Quirk"},
                {"op": "add", "path": format!("{ENTERPRISE}:manager"), "value": {"value": member}}
            ]}),
        ),
        (
            Method::PATCH,
            format!("/Groups/{gid}"),
            json!({"schemas": [PATCH_URN], "Operations": [{"op": "remove", "path": format!("members[value eq \"{member}\"]")}]}),
        ),
        (
            Method::POST,
            "/Groups".to_owned(),
            json!({"schemas": [GROUP_URN], "displayName": "Quirk Group"}),
        ),
        (
            Method::POST,
            "/Users".to_owned(),
            json!({"schemas": [USER_URN], "userName": "quirk.user", "active": true}),
        ),
    ] {
        let r = idp.send(method, &path, Some(&body.to_string())).await;
        assert!(
            (200..300).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
    let (u, g) = state(&scim, &f).await;
    assert_eq!(u["displayName"], "Quirk");
    assert_eq!(u["active"], false);
    assert_eq!(u["name"]["givenName"], "Quirk");
    assert_eq!(u[ENTERPRISE]["manager"]["value"], json!(member), "{u}");
    assert!(member_set(&g).is_empty());

    // Back to lenient: the quirks are accepted again.
    app.set_scim_settings("default", ScimProfile::Lenient, false)
        .await;
    let r = idp
        .patch(
            &format!("/Users/{uid}"),
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"active","value":"True"}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["active"], true);
    app.stop().await;
}
