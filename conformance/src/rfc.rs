//! RFC 7643 / RFC 7644 behaviour, checked through the wire.

use crate::client::{Client, Reply, enc};
use crate::{Outcome, Report};
use serde_json::json;

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

fn expect(cond: bool, what: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(what()) }
}

fn status(r: &Reply, want: u16) -> Result<(), String> {
    expect(r.status == want, || {
        format!("expected {want}, got {}: {}", r.status, r.body)
    })
}

fn scim_error(r: &Reply, want: u16, scim_type: Option<&str>) -> Result<(), String> {
    status(r, want)?;
    expect(
        r.body["schemas"]
            .as_array()
            .is_some_and(|s| s.iter().any(|u| u == ERROR)),
        || format!("no Error schema: {}", r.body),
    )?;
    expect(r.body["status"] == json!(want.to_string()), || {
        format!("status must be the string \"{want}\": {}", r.body)
    })?;
    if let Some(t) = scim_type {
        expect(r.body["scimType"] == json!(t), || {
            format!("expected scimType {t}: {}", r.body)
        })?;
    }
    Ok(())
}

fn record(report: &mut Report, name: &str, r: Result<(), String>) {
    report.outcomes.push(Outcome {
        name: name.to_owned(),
        passed: r.is_ok(),
        detail: r.err().unwrap_or_default(),
    });
}

fn id(r: &Reply) -> String {
    r.body["id"].as_str().unwrap_or_default().to_owned()
}

fn user_names(r: &Reply) -> Vec<String> {
    let mut v: Vec<String> = r.body["Resources"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u["userName"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs every RFC check; resources are named with a run-unique suffix and removed at the end.
pub async fn run(c: &Client, report: &mut Report) {
    let sfx = uuid::Uuid::new_v4().simple().to_string();
    let sfx = &sfx[..10];
    let mut users: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();

    record(
        report,
        "discovery: ServiceProviderConfig advertises patch, filter, etag, bulk",
        async {
            let r = c.get("/ServiceProviderConfig").await?;
            status(&r, 200)?;
            for k in ["patch", "filter", "etag", "bulk", "sort", "changePassword"] {
                expect(r.body[k]["supported"].is_boolean(), || {
                    format!("{k}.supported missing: {}", r.body)
                })?;
            }
            expect(
                r.body["filter"]["maxResults"]
                    .as_i64()
                    .is_some_and(|n| n > 0),
                || "filter.maxResults missing".into(),
            )
        }
        .await,
    );

    record(
        report,
        "discovery: ResourceTypes and Schemas list User and Group",
        async {
            let r = c.get("/ResourceTypes").await?;
            status(&r, 200)?;
            let names: Vec<&str> = r.body["Resources"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t["name"].as_str()).collect())
                .unwrap_or_default();
            expect(names.contains(&"User") && names.contains(&"Group"), || {
                format!("resource types: {names:?}")
            })?;
            let s = c.get("/Schemas").await?;
            status(&s, 200)?;
            let ids: Vec<&str> = s.body["Resources"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t["id"].as_str()).collect())
                .unwrap_or_default();
            expect(ids.contains(&USER) && ids.contains(&GROUP), || {
                format!("schemas: {ids:?}")
            })?;
            let one = c.get(&format!("/Schemas/{USER}")).await?;
            status(&one, 200)?;
            expect(
                one.body["attributes"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["name"] == "userName")),
                || "User schema lacks userName".into(),
            )
        }
        .await,
    );

    record(
        report,
        "auth: a request without a token is 401 with WWW-Authenticate",
        async {
            let r = c.request("GET", "/Users", None, &[], false).await?;
            status(&r, 401)?;
            expect(r.www_authenticate.is_some(), || {
                "no WWW-Authenticate header".into()
            })
        }
        .await,
    );

    let bjensen = format!("bjensen-{sfx}@example.com");
    let created = async {
        let r = c
            .post("/Users", &json!({
                "schemas": [USER, ENTERPRISE],
                "userName": bjensen,
                "externalId": format!("ext-{sfx}"),
                "name": {"familyName": "Jensen", "givenName": "Barbara"},
                "title": "Tour Guide",
                "emails": [{"value": bjensen, "type": "work", "primary": true}, {"value": format!("babs-{sfx}@home.example"), "type": "home"}],
                "password": "t1meMa$heen-and-more",
                ENTERPRISE: {"department": "Tour Operations"}
            }))
            .await?;
        status(&r, 201)?;
        expect(r.location.is_some() && r.location.as_deref() == r.body["meta"]["location"].as_str(), || "Location must equal meta.location".into())?;
        expect(r.etag.is_some() && r.etag.as_deref() == r.body["meta"]["version"].as_str(), || "ETag must equal meta.version".into())?;
        expect(r.body.get("password").is_none(), || "password returned".into())?;
        expect(r.body["id"].is_string() && r.body["meta"]["resourceType"] == "User", || format!("bad body {}", r.body))?;
        Ok::<Reply, String>(r)
    }
    .await;
    let user = match created {
        Ok(r) => {
            record(
                report,
                "users: POST creates (201, Location, ETag, no password)",
                Ok(()),
            );
            users.push(id(&r));
            r
        }
        Err(e) => {
            record(
                report,
                "users: POST creates (201, Location, ETag, no password)",
                Err(e),
            );
            cleanup(c, &users, &groups).await;
            return;
        }
    };
    let uid = id(&user);

    record(
        report,
        "users: GET returns the stored attributes",
        async {
            let r = c.get(&format!("/Users/{uid}")).await?;
            status(&r, 200)?;
            expect(
                r.body["name"]["givenName"] == "Barbara"
                    && r.body[ENTERPRISE]["department"] == "Tour Operations",
                || format!("{}", r.body),
            )
        }
        .await,
    );

    record(
        report,
        "users: userName is unique case-insensitively (409 uniqueness)",
        async {
            let r = c
                .post(
                    "/Users",
                    &json!({"schemas": [USER], "userName": bjensen.to_uppercase()}),
                )
                .await?;
            scim_error(&r, 409, Some("uniqueness"))
        }
        .await,
    );

    record(
        report,
        "users: required userName missing is 400",
        async {
            let r = c
                .post(
                    "/Users",
                    &json!({"schemas": [USER], "displayName": "nobody"}),
                )
                .await?;
            scim_error(&r, 400, None)
        }
        .await,
    );

    record(
        report,
        "filter: userName eq is case-insensitive",
        async {
            let r = c
                .get(&format!(
                    "/Users?filter={}",
                    enc(&format!("userName eq \"{}\"", bjensen.to_uppercase()))
                ))
                .await?;
            status(&r, 200)?;
            expect(
                r.body["schemas"] == json!([LIST]) && r.body["totalResults"] == 1,
                || format!("{}", r.body),
            )
        }
        .await,
    );

    record(
        report,
        "filter: complex attribute filter emails[type eq \"work\" and value co …]",
        async {
            let f = format!("emails[type eq \"work\" and value co \"{sfx}\"]");
            let r = c.get(&format!("/Users?filter={}", enc(&f))).await?;
            status(&r, 200)?;
            expect(user_names(&r) == vec![bjensen.clone()], || {
                format!("{}", r.body)
            })
        }
        .await,
    );

    record(
        report,
        "filter: unknown attribute is 400 invalidFilter",
        async {
            let r = c
                .get(&format!(
                    "/Users?filter={}",
                    enc("noSuchAttribute eq \"x\"")
                ))
                .await?;
            scim_error(&r, 400, Some("invalidFilter"))
        }
        .await,
    );

    // Three more users for paging and sorting.
    let mut extra = Vec::new();
    for n in ["a", "b", "c"] {
        if let Ok(r) = c.post("/Users", &json!({"schemas": [USER], "userName": format!("page-{n}-{sfx}"), "title": "pager"})).await
            && r.status == 201 {
                users.push(id(&r));
                extra.push(id(&r));
            }
    }
    record(
        report,
        "paging: startIndex/count with totalResults and sortBy",
        async {
            let f = enc(&format!("userName sw \"page-\" and userName ew \"{sfx}\""));
            let r = c
                .get(&format!(
                    "/Users?filter={f}&sortBy=userName&sortOrder=descending&startIndex=2&count=1"
                ))
                .await?;
            status(&r, 200)?;
            expect(
                r.body["totalResults"] == 3
                    && r.body["itemsPerPage"] == 1
                    && r.body["startIndex"] == 2,
                || format!("{}", r.body),
            )?;
            expect(user_names(&r) == vec![format!("page-b-{sfx}")], || {
                format!("{}", r.body)
            })?;
            let z = c.get(&format!("/Users?filter={f}&count=0")).await?;
            status(&z, 200)?;
            expect(
                z.body["totalResults"] == 3
                    && z.body["Resources"].as_array().is_none_or(Vec::is_empty),
                || format!("count=0: {}", z.body),
            )
        }
        .await,
    );

    record(
        report,
        "PUT replaces the resource and bumps the version",
        async {
            let r = c
                .put(
                    &format!("/Users/{uid}"),
                    &json!({"schemas": [USER], "userName": bjensen, "displayName": "Babs"}),
                )
                .await?;
            status(&r, 200)?;
            expect(
                r.body["displayName"] == "Babs" && r.body.get("title").is_none(),
                || format!("{}", r.body),
            )?;
            expect(
                r.body["meta"]["version"] != user.body["meta"]["version"],
                || "version unchanged".into(),
            )
        }
        .await,
    );

    record(report, "PATCH add/replace/remove per RFC 7644 §3.5.2", async {
        let r = c.patch(&format!("/Users/{uid}"), &json!({"schemas": [PATCH], "Operations": [
            {"op": "add", "path": "nickName", "value": "Babs"},
            {"op": "replace", "path": "name.givenName", "value": "Barb"},
            {"op": "add", "path": "emails", "value": [{"value": format!("b2-{sfx}@example.com"), "type": "other"}]},
            {"op": "remove", "path": "displayName"}
        ]})).await?;
        let got = c.get(&format!("/Users/{uid}")).await?;
        expect(r.status == 200 || r.status == 204, || format!("status {}", r.status))?;
        expect(got.body["nickName"] == "Babs" && got.body["name"]["givenName"] == "Barb" && got.body.get("displayName").is_none(), || format!("{}", got.body))?;
        expect(got.body["emails"].as_array().is_some_and(|e| e.len() == 1), || "emails add".into())
    }.await);

    record(
        report,
        "PATCH is atomic: a failing operation changes nothing",
        async {
            let before = c.get(&format!("/Users/{uid}")).await?;
            let r = c
                .patch(
                    &format!("/Users/{uid}"),
                    &json!({"schemas": [PATCH], "Operations": [
                        {"op": "replace", "path": "nickName", "value": "Changed"},
                        {"op": "replace", "path": "noSuchAttribute", "value": 1}
                    ]}),
                )
                .await?;
            scim_error(&r, 400, None)?;
            let after = c.get(&format!("/Users/{uid}")).await?;
            expect(after.body == before.body, || {
                "the first operation was applied".into()
            })
        }
        .await,
    );

    record(report, "ETag: If-None-Match gives 304, stale If-Match gives 412", async {
        let cur = c.get(&format!("/Users/{uid}")).await?;
        let tag = cur.etag.clone().unwrap_or_default();
        let r = c.request("GET", &format!("/Users/{uid}"), None, &[("If-None-Match", &tag)], true).await?;
        status(&r, 304)?;
        let r = c.request("PUT", &format!("/Users/{uid}"), Some(&json!({"schemas": [USER], "userName": bjensen})), &[("If-Match", "W/\"999999\"")], true).await?;
        status(&r, 412)?;
        let r = c.request("PATCH", &format!("/Users/{uid}"), Some(&json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "title", "value": "x"}]})), &[("If-Match", &tag)], true).await?;
        expect(r.status == 200 || r.status == 204, || format!("matching If-Match: {}", r.status))
    }.await);

    record(
        report,
        "attributes / excludedAttributes",
        async {
            let r = c.get(&format!("/Users/{uid}?attributes=userName")).await?;
            status(&r, 200)?;
            expect(
                r.body["id"] == json!(uid)
                    && r.body["userName"].is_string()
                    && r.body.get("name").is_none(),
                || format!("{}", r.body),
            )?;
            let r = c
                .get(&format!("/Users/{uid}?excludedAttributes=emails"))
                .await?;
            expect(
                r.body.get("emails").is_none() && r.body["userName"].is_string(),
                || format!("{}", r.body),
            )
        }
        .await,
    );

    let group = async {
        let r = c.post("/Groups", &json!({"schemas": [GROUP], "displayName": format!("Tour Guides {sfx}"), "members": [{"value": uid}]})).await?;
        status(&r, 201)?;
        expect(r.body["members"].as_array().is_some_and(|m| m.iter().any(|x| x["value"] == json!(uid))), || format!("{}", r.body))?;
        Ok::<Reply, String>(r)
    }
    .await;
    let gid = match &group {
        Ok(r) => {
            groups.push(id(r));
            id(r)
        }
        Err(_) => String::new(),
    };
    record(report, "groups: POST with members", group.map(|_| ()));

    if !gid.is_empty() {
        record(
            report,
            "groups: excludedAttributes=members omits members",
            async {
                let r = c
                    .get(&format!("/Groups/{gid}?excludedAttributes=members"))
                    .await?;
                status(&r, 200)?;
                expect(
                    r.body.get("members").is_none() && r.body["displayName"].is_string(),
                    || format!("{}", r.body),
                )
            }
            .await,
        );

        record(report, "groups: PATCH members add (idempotent) and remove by filter", async {
            let second = extra.first().cloned().unwrap_or_default();
            for _ in 0..2 {
                let r = c.patch(&format!("/Groups/{gid}"), &json!({"schemas": [PATCH], "Operations": [{"op": "add", "path": "members", "value": [{"value": second}]}]})).await?;
                expect(r.status == 200 || r.status == 204, || format!("add member: {} {}", r.status, r.body))?;
            }
            let r = c.patch(&format!("/Groups/{gid}"), &json!({"schemas": [PATCH], "Operations": [{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}]})).await?;
            expect(r.status == 200 || r.status == 204, || format!("remove member: {} {}", r.status, r.body))?;
            let g = c.get(&format!("/Groups/{gid}")).await?;
            let ids: Vec<&str> = g.body["members"].as_array().map(|m| m.iter().filter_map(|x| x["value"].as_str()).collect()).unwrap_or_default();
            expect(ids == vec![second.as_str()], || format!("members {ids:?}"))
        }.await);

        record(
            report,
            "filter: members via groups.value on Users",
            async {
                let r = c
                    .get(&format!(
                        "/Users?filter={}",
                        enc(&format!("groups.value eq \"{gid}\""))
                    ))
                    .await?;
                status(&r, 200)?;
                expect(r.body["totalResults"] == 1, || format!("{}", r.body))
            }
            .await,
        );
    }

    record(report, "bulk: bulkId references between operations", async {
        let r = c.post("/Bulk", &json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [
                {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"schemas": [USER], "userName": format!("bulk-{sfx}")}},
                {"method": "POST", "path": "/Groups", "bulkId": "g1", "data": {"schemas": [GROUP], "displayName": format!("Bulk {sfx}"), "members": [{"type": "User", "value": "bulkId:u1"}]}}
            ]
        })).await?;
        status(&r, 200)?;
        let ops = r.body["Operations"].as_array().cloned().unwrap_or_default();
        expect(ops.len() == 2 && ops.iter().all(|o| o["status"] == "201"), || format!("{}", r.body))?;
        let gloc = ops.get(1).and_then(|o| o["location"].as_str()).unwrap_or_default();
        let g_id = gloc.rsplit('/').next().unwrap_or_default().to_owned();
        let u_id = ops.first().and_then(|o| o["location"].as_str()).and_then(|l| l.rsplit('/').next()).unwrap_or_default().to_owned();
        let g = c.get(&format!("/Groups/{g_id}")).await?;
        expect(g.body["members"][0]["value"] == json!(u_id), || format!("{}", g.body))?;
        Ok(())
    }.await);

    record(
        report,
        "DELETE is 204 and the resource is gone (404)",
        async {
            let r = c.delete(&format!("/Users/{uid}")).await?;
            status(&r, 204)?;
            let g = c.get(&format!("/Users/{uid}")).await?;
            scim_error(&g, 404, None)
        }
        .await,
    );

    // Remove the bulk-created resources too.
    if let Ok(r) = c
        .get(&format!(
            "/Users?filter={}",
            enc(&format!("userName eq \"bulk-{sfx}\""))
        ))
        .await
    {
        users.extend(
            r.body["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u["id"].as_str().map(str::to_owned)),
        );
    }
    if let Ok(r) = c
        .get(&format!(
            "/Groups?filter={}",
            enc(&format!("displayName eq \"Bulk {sfx}\""))
        ))
        .await
    {
        groups.extend(
            r.body["Resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g["id"].as_str().map(str::to_owned)),
        );
    }
    cleanup(c, &users, &groups).await;
}

async fn cleanup(c: &Client, users: &[String], groups: &[String]) {
    for g in groups {
        let _ = c.delete(&format!("/Groups/{g}")).await;
    }
    for u in users {
        let _ = c.delete(&format!("/Users/{u}")).await;
    }
}
