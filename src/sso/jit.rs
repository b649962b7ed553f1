//! Who a validated assertion signs in as: the user linked to the IdP subject before, else
//! an existing user found by the connection's link order (externalId, userName, email — the
//! records a SCIM client provisioned), else (with JIT on) a new user. With JIT on, the user's
//! names and email follow the assertion and its groups are joined (created when missing).
//! Writes go through the SCIM domain layer, so validation, ETags, the change log and events
//! are the same as for a SCIM client.

use super::{Runtime, SsoError};
use crate::app::AppState;
use crate::model::{Actor, User};
use crate::provisioning::{self, Projection, ScimCtx};
use crate::store::TenantStore;
use crate::store::saml::AttributeMapping;
use saml::ValidatedLogin;
use serde_json::{Value, json};

const NAME_ID: &str = "nameid";

/// Attribute names tried when a mapping leaves a field unset (SAML attribute names used by
/// Entra ID / ADFS claim URIs, Okta, Google and LDAP-style IdPs).
const DEFAULT_EMAIL: [&str; 5] = [
    "email",
    "mail",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
];
const DEFAULT_GIVEN: [&str; 4] = [
    "givenName",
    "firstName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "urn:oid:2.5.4.42",
];
const DEFAULT_FAMILY: [&str; 5] = [
    "sn",
    "surname",
    "lastName",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
    "urn:oid:2.5.4.4",
];
const DEFAULT_DISPLAY: [&str; 3] = [
    "displayName",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "urn:oid:2.16.840.1.113730.3.1.241",
];
const DEFAULT_GROUPS: [&str; 3] = [
    "groups",
    "memberOf",
    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
];

/// The user fields an assertion provides under a connection's mapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mapped {
    pub user_name: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub display_name: Option<String>,
    pub external_id: Option<String>,
    pub groups: Vec<String>,
}

fn values<'a>(login: &'a ValidatedLogin, source: &str) -> Vec<&'a str> {
    if source.eq_ignore_ascii_case(NAME_ID) {
        return vec![login.name_id.as_str()];
    }
    login
        .attributes
        .get(source)
        .map(|v| {
            v.iter()
                .map(String::as_str)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn first(login: &ValidatedLogin, configured: &Option<String>, defaults: &[&str]) -> Option<String> {
    match configured {
        Some(src) => values(login, src).first().map(|s| (*s).to_owned()),
        None => defaults
            .iter()
            .find_map(|d| values(login, d).first().map(|s| (*s).to_owned())),
    }
}

/// Applies a mapping (unset fields fall back to well-known attribute names; userName falls
/// back to the NameID).
pub fn map(login: &ValidatedLogin, m: &AttributeMapping) -> Mapped {
    let email = first(login, &m.email, &DEFAULT_EMAIL)
        .or_else(|| login.name_id.contains('@').then(|| login.name_id.clone()));
    let groups = match &m.groups {
        Some(src) => values(login, src).into_iter().map(str::to_owned).collect(),
        None => DEFAULT_GROUPS
            .iter()
            .map(|d| values(login, d))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
            .into_iter()
            .map(str::to_owned)
            .collect(),
    };
    Mapped {
        user_name: first(login, &m.user_name, &[NAME_ID]),
        email,
        given_name: first(login, &m.given_name, &DEFAULT_GIVEN),
        family_name: first(login, &m.family_name, &DEFAULT_FAMILY),
        display_name: first(login, &m.display_name, &DEFAULT_DISPLAY),
        external_id: m
            .external_id
            .as_ref()
            .and_then(|src| values(login, src).first().map(|s| (*s).to_owned())),
        groups,
    }
}

/// The user this login is for, created or updated as the connection says.
pub async fn resolve(
    state: &AppState,
    ts: &TenantStore,
    rt: &Runtime,
    login: &ValidatedLogin,
    actor: &Actor,
) -> Result<Resolved, SsoError> {
    let c = &rt.connection;
    let mapped = map(login, &c.attribute_mapping);
    let mut user = None;
    if let Some(uid) = ts.saml_identity_user(&c.id, &login.name_id).await? {
        user = ts.get_user_fresh(&uid).await?.map(|u| (*u).clone());
    }
    if user.is_none() {
        for key in &c.link_order {
            let found = match key.as_str() {
                "externalId" => match &mapped.external_id {
                    Some(v) => ts.find_user_by_external_id(v).await?,
                    None => None,
                },
                "userName" => match &mapped.user_name {
                    Some(v) => ts.find_user_by_user_name(v).await?,
                    None => None,
                },
                "email" => match &mapped.email {
                    Some(v) => ts.find_user_by_email(v).await?,
                    None => None,
                },
                _ => None,
            };
            if found.is_some() {
                user = found;
                break;
            }
        }
    }
    if let Some(u) = &user
        && ts.operator_ids().await?.contains(&u.id)
    {
        // An IdP controlled by a tenant admin must never be able to sign someone in as an
        // operator of the whole installation.
        return Err(SsoError::refused(
            "operator_account",
            "operator accounts cannot sign in through SAML",
        ));
    }
    let ctx = scim_ctx(state, ts, actor.clone()).await?;
    let user = match user {
        Some(u) if !u.active => {
            return Err(SsoError::refused(
                "user_inactive",
                "the user is deactivated (SCIM active=false)",
            ));
        }
        Some(u) => {
            if c.jit {
                update(&ctx, &u, &mapped).await?;
            }
            u
        }
        None if !c.jit => {
            return Err(SsoError::refused(
                "user_not_found",
                "no user matches this identity and JIT provisioning is off",
            ));
        }
        None => create(&ctx, ts, &mapped, login).await?,
    };
    let mut jit_groups = Vec::new();
    if c.jit {
        // Memberships follow the assertion: groups asserted are joined; groups JIT joined at
        // an earlier sign-in and no longer asserted are left. Memberships JIT did not make
        // (SCIM's, an admin's) are never touched.
        let previous = ts.saml_jit_groups(&c.id, &login.name_id).await?;
        let (asserted, added) = join_groups(&ctx, ts, &user.id, &mapped.groups).await?;
        let gone: Vec<&String> = previous.iter().filter(|g| !asserted.contains(g)).collect();
        leave_groups(&ctx, ts, &user.id, &gone).await?;
        jit_groups = previous
            .iter()
            .filter(|g| asserted.contains(g))
            .chain(added.iter())
            .cloned()
            .collect();
    }
    Ok(Resolved { user, jit_groups })
}

/// The user a login is for, and the groups JIT manages for that identity.
pub struct Resolved {
    pub user: User,
    pub jit_groups: Vec<String>,
}

async fn leave_groups(
    ctx: &ScimCtx,
    ts: &TenantStore,
    user_id: &str,
    groups: &[&String],
) -> Result<(), SsoError> {
    if groups.is_empty() {
        return Ok(());
    }
    let current = ts.groups_of(user_id).await?;
    for gid in groups {
        if !current.contains(gid) {
            continue;
        }
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "remove", "path": format!("members[value eq \"{user_id}\"]") }],
        });
        match provisioning::groups::patch(ctx, gid, &body, &Projection::default(), None).await {
            Ok(_) => {}
            // The group was deleted meanwhile: nothing to leave.
            Err(e) if e.status == 404 => {}
            Err(e) => return Err(provisioning_failed(e)),
        }
    }
    Ok(())
}

async fn scim_ctx(state: &AppState, ts: &TenantStore, actor: Actor) -> Result<ScimCtx, SsoError> {
    let tenant = state
        .store
        .tenant_by_id(ts.tenant_id())
        .await?
        .ok_or(SsoError::NotFound("tenant"))?;
    let extensions = ts.scim_schemas_cached().await?;
    let (users, groups) = provisioning::tenant_schemas(&extensions);
    Ok(ScimCtx {
        store: ts.clone(),
        profile: scim::Profile::Strict,
        soft_delete: tenant.settings.soft_delete,
        users: std::sync::Arc::new(users),
        groups: std::sync::Arc::new(groups),
        actor,
        base: format!("{}/scim/v2", state.config.public_url),
        admin: false,
    })
}

fn provisioning_failed(e: scim::ScimError) -> SsoError {
    SsoError::refused("provisioning_failed", e.to_string())
}

fn user_doc(m: &Mapped, user_name: &str) -> Value {
    let mut doc = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": true,
    });
    if let Some(v) = &m.external_id {
        doc["externalId"] = json!(v);
    }
    if let Some(v) = &m.display_name {
        doc["displayName"] = json!(v);
    }
    let mut name = serde_json::Map::new();
    if let Some(v) = &m.given_name {
        name.insert("givenName".into(), json!(v));
    }
    if let Some(v) = &m.family_name {
        name.insert("familyName".into(), json!(v));
    }
    if !name.is_empty() {
        doc["name"] = Value::Object(name);
    }
    if let Some(v) = &m.email {
        doc["emails"] = json!([{ "value": v, "type": "work", "primary": true }]);
    }
    doc
}

async fn create(
    ctx: &ScimCtx,
    ts: &TenantStore,
    m: &Mapped,
    login: &ValidatedLogin,
) -> Result<User, SsoError> {
    let user_name = m
        .user_name
        .clone()
        .or_else(|| m.email.clone())
        .unwrap_or_else(|| login.name_id.clone());
    let reply = provisioning::users::create(ctx, &user_doc(m, &user_name), &Projection::default())
        .await
        .map_err(provisioning_failed)?;
    let id = reply
        .body
        .as_ref()
        .and_then(|b| b.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| SsoError::Internal("created user has no id".into()))?
        .to_owned();
    ts.get_user_fresh(&id)
        .await?
        .map(|u| (*u).clone())
        .ok_or(SsoError::NotFound("user"))
}

/// Brings names and email in line with the assertion (only what it provides, only when it
/// differs, so a login that changes nothing writes nothing).
async fn update(ctx: &ScimCtx, u: &User, m: &Mapped) -> Result<(), SsoError> {
    let mut ops = Vec::new();
    let attrs = &u.attributes;
    let differs = |path: &[&str], v: &str| {
        let mut cur = attrs;
        for p in path {
            cur = match cur.get(p) {
                Some(x) => x,
                None => return true,
            };
        }
        cur.as_str() != Some(v)
    };
    if let Some(v) = &m.display_name
        && differs(&["displayName"], v)
    {
        ops.push(json!({ "op": "replace", "path": "displayName", "value": v }));
    }
    if let Some(v) = &m.given_name
        && differs(&["name", "givenName"], v)
    {
        ops.push(json!({ "op": "replace", "path": "name.givenName", "value": v }));
    }
    if let Some(v) = &m.family_name
        && differs(&["name", "familyName"], v)
    {
        ops.push(json!({ "op": "replace", "path": "name.familyName", "value": v }));
    }
    if let Some(v) = &m.email
        && u.email.as_deref().map(str::to_lowercase) != Some(v.to_lowercase())
    {
        ops.push(json!({ "op": "replace", "path": "emails", "value": [{ "value": v, "type": "work", "primary": true }] }));
    }
    if ops.is_empty() {
        return Ok(());
    }
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops,
    });
    provisioning::users::patch(ctx, &u.id, &body, &Projection::default(), None)
        .await
        .map(|_| ())
        .map_err(provisioning_failed)
}

/// Adds the user to each named group (creating missing groups). Membership adds are
/// idempotent, so a repeated login changes nothing.
async fn join_groups(
    ctx: &ScimCtx,
    ts: &TenantStore,
    user_id: &str,
    names: &[String],
) -> Result<(Vec<String>, Vec<String>), SsoError> {
    let current = ts.groups_of(user_id).await?;
    let (mut asserted, mut added) = (Vec::new(), Vec::new());
    for name in names.iter().take(100) {
        let gid = match ts.find_group_by_display_name(name).await? {
            Some(id) => id,
            None => {
                let doc = json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": name,
                });
                let created = provisioning::groups::create(ctx, &doc, &Projection::default()).await;
                match created {
                    Ok(r) => r
                        .body
                        .as_ref()
                        .and_then(|b| b.get("id"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .ok_or_else(|| SsoError::Internal("created group has no id".into()))?,
                    // Created by a concurrent login meanwhile.
                    Err(_) => ts
                        .find_group_by_display_name(name)
                        .await?
                        .ok_or(SsoError::NotFound("group"))?,
                }
            }
        };
        asserted.push(gid.clone());
        if current.contains(&gid) {
            continue;
        }
        let body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "Operations": [{ "op": "add", "path": "members", "value": [{ "value": user_id }] }],
        });
        provisioning::groups::patch(ctx, &gid, &body, &Projection::default(), None)
            .await
            .map_err(provisioning_failed)?;
        added.push(gid);
    }
    Ok((asserted, added))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn login(attrs: &[(&str, &[&str])]) -> ValidatedLogin {
        let mut attributes = BTreeMap::new();
        for (k, v) in attrs {
            attributes.insert(
                (*k).to_owned(),
                v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            );
        }
        ValidatedLogin {
            response_id: "_r".into(),
            assertion_id: "_a".into(),
            in_response_to: None,
            issuer: "https://idp".into(),
            name_id: "ada@example.com".into(),
            name_id_format: None,
            session_index: None,
            attributes,
            replay_expires_at: 0,
            response_signed: true,
            assertion_signed: false,
            encrypted: false,
        }
    }

    #[test]
    fn defaults_follow_well_known_attribute_names() {
        let l = login(&[
            (
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                &["Ada"],
            ),
            ("sn", &["Lovelace"]),
            ("memberOf", &["Eng", "Ops"]),
        ]);
        let m = map(&l, &AttributeMapping::default());
        assert_eq!(m.user_name.as_deref(), Some("ada@example.com"));
        assert_eq!(m.email.as_deref(), Some("ada@example.com"));
        assert_eq!(m.given_name.as_deref(), Some("Ada"));
        assert_eq!(m.family_name.as_deref(), Some("Lovelace"));
        assert_eq!(m.groups, vec!["Eng".to_owned(), "Ops".to_owned()]);
        assert_eq!(m.external_id, None);
    }

    #[test]
    fn explicit_mapping_wins_and_missing_attributes_stay_unset() {
        let l = login(&[
            ("uid", &["ada"]),
            ("oid", &["00u1"]),
            ("mail", &["a@x.test"]),
        ]);
        let m = map(
            &l,
            &AttributeMapping {
                user_name: Some("uid".into()),
                external_id: Some("oid".into()),
                email: Some("nothere".into()),
                groups: Some("nogroups".into()),
                ..Default::default()
            },
        );
        assert_eq!(m.user_name.as_deref(), Some("ada"));
        assert_eq!(m.external_id.as_deref(), Some("00u1"));
        assert_eq!(
            m.email.as_deref(),
            Some("ada@example.com"),
            "NameID is an email"
        );
        assert!(m.groups.is_empty());
    }
}
