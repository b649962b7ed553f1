//! SCIM Users (RFC 7643 §4.1; RFC 7644 §3.3, §3.4.1, §3.5, §3.6).

use super::errors::from_store;
use super::{Precondition, Projection, Reply, ScimCtx, etag, meta, precondition_failed};
use crate::auth::password;
use crate::model::{Membership, NewUser, User};
use crate::store::StoreError;
use scim::patch::{self, Target};
use scim::resource::{self, Mode};
use scim::{ScimError, ScimType};
use serde_json::{Value, json};

/// How often a PATCH is re-applied when a concurrent write changed the user in between.
const PATCH_ATTEMPTS: usize = 20;

fn location(ctx: &ScimCtx, id: &str) -> String {
    format!("{}/Users/{id}", ctx.base)
}

/// The stored columns of a validated document.
async fn new_user(mut doc: Value, password_given: Option<String>) -> Result<NewUser, ScimError> {
    let user_name = doc
        .get("userName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ScimError::bad_request(ScimType::InvalidValue, "userName is required"))?;
    let emails = doc.get("emails").and_then(Value::as_array);
    let email = emails
        .and_then(|list| {
            list.iter()
                .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
                .or_else(|| list.first())
        })
        .and_then(|e| e.get("value"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let active = doc.get("active").and_then(Value::as_bool).unwrap_or(true);
    if let Some(obj) = doc.as_object_mut() {
        obj.insert("active".into(), Value::Bool(active));
    }
    let password_hash = match password_given {
        Some(p) => Some(password::hash(p).await.map_err(|e| {
            tracing::error!(error = %e, "password hashing failed");
            ScimError::status(500, "internal error")
        })?),
        None => None,
    };
    Ok(NewUser {
        user_name,
        external_id: doc
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        display_name: doc
            .get("displayName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        email,
        active,
        attributes: doc,
        password_hash,
    })
}

/// The user's document with the columns folded in: users created outside SCIM
/// (administrators) have their core fields only in columns, and `active` lives in its column.
pub fn stored_doc(user: &User) -> Value {
    let mut doc = user.attributes.clone();
    if !doc.is_object() {
        doc = json!({});
    }
    doc["active"] = Value::Bool(user.active);
    if doc.get("userName").is_none() {
        doc["userName"] = Value::String(user.user_name.clone());
    }
    if let (None, Some(d)) = (doc.get("displayName"), &user.display_name) {
        doc["displayName"] = Value::String(d.clone());
    }
    if let (None, Some(e)) = (doc.get("externalId"), &user.external_id) {
        doc["externalId"] = Value::String(e.clone());
    }
    if doc.get("schemas").is_none() {
        doc["schemas"] = json!([scim::urn::USER]);
    }
    doc
}

/// The full representation: stored document, `id`, `meta`, and (when wanted) `groups`.
pub async fn representation(
    ctx: &ScimCtx,
    user: &User,
    with_groups: bool,
) -> Result<Value, ScimError> {
    let groups = if with_groups {
        Some(
            ctx.store
                .group_memberships(&user.id)
                .await
                .map_err(|e| from_store(e, "User"))?,
        )
    } else {
        None
    };
    Ok(representation_with(
        ctx,
        user,
        groups.as_deref().map(Vec::as_slice),
    ))
}

/// [`representation`] with the memberships already at hand (`None`: without `groups`).
fn representation_with(ctx: &ScimCtx, user: &User, groups: Option<&[Membership]>) -> Value {
    let mut full = stored_doc(user);
    full["id"] = Value::String(user.id.clone());
    full["meta"] = meta(
        "User",
        &location(ctx, &user.id),
        user.created_at,
        user.updated_at,
        user.version,
    );
    if full.get("schemas").is_none() {
        full["schemas"] = json!([scim::urn::USER]);
    }
    if let Some(groups) = groups.filter(|g| !g.is_empty()) {
        full["groups"] = Value::Array(
            groups
                .iter()
                .map(|(id, display, direct)| {
                    json!({
                        "value": id,
                        "$ref": format!("{}/Groups/{id}", ctx.base),
                        "display": display,
                        "type": if *direct { "direct" } else { "indirect" },
                    })
                })
                .collect(),
        );
    }
    full
}

/// A user's response body under a projection.
pub async fn render(ctx: &ScimCtx, user: &User, proj: &Projection) -> Result<Value, ScimError> {
    render_found(ctx, user, None, proj).await
}

/// [`render`] with the user's groups when already at hand (read with a search page).
pub async fn render_found(
    ctx: &ScimCtx,
    user: &User,
    groups: Option<&[Membership]>,
    proj: &Projection,
) -> Result<Value, ScimError> {
    let with_groups = proj.includes(&ctx.users, "groups");
    let full = match groups {
        Some(g) if with_groups => representation_with(ctx, user, Some(g)),
        _ => representation(ctx, user, with_groups).await?,
    };
    Ok(proj.apply(&ctx.users, &full))
}

fn reply(ctx: &ScimCtx, status: u16, user: &User, body: Value) -> Reply {
    Reply {
        status,
        body: Some(body),
        etag: Some(etag(user.version)),
        location: Some(location(ctx, &user.id)),
    }
}

/// POST /Users (RFC 7644 §3.3).
pub async fn create(ctx: &ScimCtx, input: &Value, proj: &Projection) -> Result<Reply, ScimError> {
    let v = resource::validate(&ctx.users, input, Mode::Create, ctx.profile, None)?;
    let new = new_user(v.doc, v.password).await?;
    let user = ctx
        .store
        .create_user(&ctx.actor, new)
        .await
        .map_err(|e| from_store(e, "User"))?;
    // A user created a moment ago under a new id belongs to no group: no membership lookup.
    let full = representation(ctx, &user, false).await?;
    let body = proj.apply(&ctx.users, &full);
    Ok(reply(ctx, 201, &user, body))
}

/// A POST /Users body validated against the tenant's schemas and profile, as the row to
/// store (the password hashed).
pub async fn prepare_new(ctx: &ScimCtx, input: &Value) -> Result<NewUser, ScimError> {
    let v = resource::validate(&ctx.users, input, Mode::Create, ctx.profile, None)?;
    new_user(v.doc, v.password).await
}

/// Many POST /Users at once (Bulk imports): each input is validated and created on its own
/// terms, in one transaction. Replies carry status, Location and ETag, not the body.
pub async fn create_many(ctx: &ScimCtx, inputs: &[&Value]) -> Vec<Result<Reply, ScimError>> {
    let mut out: Vec<Option<Result<Reply, ScimError>>> = Vec::with_capacity(inputs.len());
    let mut batch = Vec::new();
    let mut slots = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        match prepare_new(ctx, input).await {
            Ok(u) => {
                batch.push(u);
                slots.push(i);
                out.push(None);
            }
            Err(e) => out.push(Some(Err(e))),
        }
    }
    match ctx.store.create_users(&ctx.actor, batch).await {
        Ok(results) => {
            for (slot, r) in slots.into_iter().zip(results) {
                if let Some(o) = out.get_mut(slot) {
                    *o = Some(
                        r.map(|user| Reply {
                            status: 201,
                            body: None,
                            etag: Some(etag(user.version)),
                            location: Some(location(ctx, &user.id)),
                        })
                        .map_err(|e| from_store(e, "User")),
                    );
                }
            }
        }
        Err(e) => {
            let err = from_store(e, "User");
            for slot in slots {
                if let Some(o) = out.get_mut(slot) {
                    *o = Some(Err(err.clone()));
                }
            }
        }
    }
    out.into_iter()
        .map(|o| o.unwrap_or_else(|| Err(ScimError::status(500, "internal error"))))
        .collect()
}

async fn load(ctx: &ScimCtx, id: &str) -> Result<std::sync::Arc<User>, ScimError> {
    let user = ctx
        .store
        .get_user(id)
        .await
        .map_err(|e| from_store(e, "User"))?
        .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
    hide_operators(ctx, &user).await?;
    Ok(user)
}

/// Operators (the installation's superadmins) are not provisioned by any identity provider: a
/// SCIM token of the default tenant must not read, change, take over or delete them.
async fn hide_operators(ctx: &ScimCtx, user: &User) -> Result<(), ScimError> {
    if ctx.admin {
        return Ok(());
    }
    let operators = ctx
        .store
        .operator_ids()
        .await
        .map_err(|e| from_store(e, "User"))?;
    if operators.contains(&user.id) {
        return Err(ScimError::not_found(format!("User {} not found", user.id)));
    }
    Ok(())
}

/// GET /Users/{id} (RFC 7644 §3.4.1), honouring `If-None-Match` (304).
pub async fn get(
    ctx: &ScimCtx,
    id: &str,
    proj: &Projection,
    if_none_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let (user, groups) = if proj.includes(&ctx.users, "groups") {
        // The user and its groups: one statement when neither is cached.
        let (user, groups) = ctx
            .store
            .get_user_with_memberships(id)
            .await
            .map_err(|e| from_store(e, "User"))?
            .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
        hide_operators(ctx, &user).await?;
        (user, Some(groups))
    } else {
        (load(ctx, id).await?, None)
    };
    if if_none_match.is_some_and(|p| p.matches(user.version)) {
        return Ok(Reply {
            status: 304,
            body: None,
            etag: Some(etag(user.version)),
            location: None,
        });
    }
    let full = representation_with(ctx, &user, groups.as_deref().map(Vec::as_slice));
    Ok(reply(ctx, 200, &user, proj.apply(&ctx.users, &full)))
}

/// PUT /Users/{id} (RFC 7644 §3.5.1): replaces every writable attribute.
pub async fn replace(
    ctx: &ScimCtx,
    id: &str,
    input: &Value,
    proj: &Projection,
    if_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let current = load(ctx, id).await?;
    if if_match.is_some_and(|p| !p.matches(current.version)) {
        return Err(precondition_failed());
    }
    let v = resource::validate(
        &ctx.users,
        input,
        Mode::Replace,
        ctx.profile,
        Some(&current.attributes),
    )?;
    let new = new_user(v.doc, v.password).await?;
    let user = ctx
        .store
        .replace_user(&ctx.actor, id, new, Some(current.version))
        .await
        .map_err(|e| from_store(e, "User"))?;
    let body = render(ctx, &user, proj).await?;
    Ok(reply(ctx, 200, &user, body))
}

/// PATCH /Users/{id} (RFC 7644 §3.5.2): all operations apply, or none does. A concurrent
/// change between read and write is detected by version and the PATCH re-applied to the new
/// state (unless the client pinned a version with `If-Match`).
pub async fn patch(
    ctx: &ScimCtx,
    id: &str,
    input: &Value,
    proj: &Projection,
    if_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let req = patch::parse(input, ctx.profile)?;
    for attempt in 0..PATCH_ATTEMPTS {
        let current = if attempt == 0 {
            load(ctx, id).await?
        } else {
            let u = ctx
                .store
                .get_user_fresh(id)
                .await
                .map_err(|e| from_store(e, "User"))?
                .ok_or_else(|| ScimError::not_found(format!("User {id} not found")))?;
            hide_operators(ctx, &u).await?;
            u
        };
        if if_match.is_some_and(|p| !p.matches(current.version)) {
            return Err(precondition_failed());
        }
        let mut doc = stored_doc(&current);
        patch::apply(&ctx.users, &mut doc, &req, Target::User, ctx.profile)?;
        let v = resource::validate(
            &ctx.users,
            &doc,
            Mode::Replace,
            ctx.profile,
            Some(&current.attributes),
        )?;
        let new = new_user(v.doc, v.password).await?;
        match ctx
            .store
            .replace_user(&ctx.actor, id, new, Some(current.version))
            .await
        {
            Ok(user) => {
                let body = render(ctx, &user, proj).await?;
                return Ok(reply(ctx, 200, &user, body));
            }
            Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
            Err(e) => return Err(from_store(e, "User")),
        }
    }
    Err(ScimError::status(
        409,
        "the user kept changing while the PATCH was applied; retry",
    ))
}

/// DELETE /Users/{id} (RFC 7644 §3.6); with the tenant's soft-delete setting the user is
/// deactivated and hidden instead.
pub async fn delete(
    ctx: &ScimCtx,
    id: &str,
    if_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let current = load(ctx, id).await?;
    let guard = match if_match {
        Some(p) => {
            if !p.matches(current.version) {
                return Err(precondition_failed());
            }
            Some(current.version)
        }
        None => None,
    };
    ctx.store
        .delete_user_as(&ctx.actor, id, guard, ctx.soft_delete)
        .await
        .map_err(|e| from_store(e, "User"))?;
    Ok(Reply {
        status: 204,
        body: None,
        etag: None,
        location: None,
    })
}
