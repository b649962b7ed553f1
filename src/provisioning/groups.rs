//! SCIM Groups (RFC 7643 §4.2; RFC 7644 §3.3–§3.6). Members live in their own table; a
//! membership change touches only the members changed.

use super::errors::from_store;
use super::{Precondition, Projection, Reply, ScimCtx, etag, meta, precondition_failed};
use crate::model::{Group, MemberDelta, MemberSpec, MemberType, NewGroup};
use crate::store::StoreError;
use scim::patch::{self, Target};
use scim::resource::{self, Mode};
use scim::{ScimError, ScimType};
use serde_json::{Value, json};

const PATCH_ATTEMPTS: usize = 20;

fn location(ctx: &ScimCtx, id: &str) -> String {
    format!("{}/Groups/{id}", ctx.base)
}

fn member_type(raw: Option<&str>) -> Result<Option<MemberType>, ScimError> {
    match raw {
        None => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("user") => Ok(Some(MemberType::User)),
        Some(t) if t.eq_ignore_ascii_case("group") => Ok(Some(MemberType::Group)),
        Some(t) => Err(ScimError::bad_request(
            ScimType::InvalidValue,
            format!("member type must be User or Group, not {t:?}"),
        )),
    }
}

fn specs(members: Vec<(String, Option<String>)>) -> Result<Vec<MemberSpec>, ScimError> {
    members
        .into_iter()
        .map(|(id, ty)| {
            Ok(MemberSpec {
                ty: member_type(ty.as_deref())?,
                id,
            })
        })
        .collect()
}

fn new_group(doc: Value) -> Result<NewGroup, ScimError> {
    let display_name = doc
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ScimError::bad_request(ScimType::InvalidValue, "displayName is required"))?;
    Ok(NewGroup {
        display_name,
        external_id: doc
            .get("externalId")
            .and_then(Value::as_str)
            .map(str::to_owned),
        attributes: doc,
    })
}

/// The full representation: stored document, `id`, `meta`, and (when wanted) `members`.
pub async fn representation(
    ctx: &ScimCtx,
    group: &Group,
    with_members: bool,
) -> Result<Value, ScimError> {
    let mut full = group.attributes.clone();
    if !full.is_object() {
        full = json!({});
    }
    full["id"] = Value::String(group.id.clone());
    full["displayName"] = Value::String(group.display_name.clone());
    full["meta"] = meta(
        "Group",
        &location(ctx, &group.id),
        group.created_at,
        group.updated_at,
        group.version,
    );
    if full.get("schemas").is_none() {
        full["schemas"] = json!([scim::urn::GROUP]);
    }
    if with_members {
        let members = ctx
            .store
            .member_views(&group.id)
            .await
            .map_err(|e| from_store(e, "Group"))?;
        if !members.is_empty() {
            full["members"] = Value::Array(
                members
                    .into_iter()
                    .map(|m| {
                        let endpoint = match m.ty {
                            MemberType::User => "Users",
                            MemberType::Group => "Groups",
                        };
                        let mut v = json!({
                            "value": m.id,
                            "$ref": format!("{}/{endpoint}/{}", ctx.base, m.id),
                            "type": m.ty.as_str(),
                        });
                        if let Some(d) = m.display {
                            v["display"] = Value::String(d);
                        }
                        v
                    })
                    .collect(),
            );
        }
    }
    Ok(full)
}

pub async fn render(ctx: &ScimCtx, group: &Group, proj: &Projection) -> Result<Value, ScimError> {
    let with_members = proj.includes(&ctx.groups, "members");
    let full = representation(ctx, group, with_members).await?;
    Ok(proj.apply(&ctx.groups, &full))
}

fn reply(ctx: &ScimCtx, status: u16, group: &Group, body: Option<Value>) -> Reply {
    Reply {
        status,
        body,
        etag: Some(etag(group.version)),
        location: Some(location(ctx, &group.id)),
    }
}

/// POST /Groups, with its members in the same transaction.
pub async fn create(ctx: &ScimCtx, input: &Value, proj: &Projection) -> Result<Reply, ScimError> {
    let mut v = resource::validate(&ctx.groups, input, Mode::Create, ctx.profile, None)?;
    let members = specs(resource::extract_members(&mut v.doc))?;
    let group = ctx
        .store
        .create_group_with(&ctx.actor, new_group(v.doc)?, &members)
        .await
        .map_err(|e| from_store(e, "Group"))?;
    let body = render(ctx, &group, proj).await?;
    Ok(reply(ctx, 201, &group, Some(body)))
}

async fn load(ctx: &ScimCtx, id: &str) -> Result<std::sync::Arc<Group>, ScimError> {
    ctx.store
        .get_group(id)
        .await
        .map_err(|e| from_store(e, "Group"))?
        .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))
}

pub async fn get(
    ctx: &ScimCtx,
    id: &str,
    proj: &Projection,
    if_none_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let group = load(ctx, id).await?;
    if if_none_match.is_some_and(|p| p.matches(group.version)) {
        return Ok(Reply {
            status: 304,
            body: None,
            etag: Some(etag(group.version)),
            location: None,
        });
    }
    let body = render(ctx, &group, proj).await?;
    Ok(reply(ctx, 200, &group, Some(body)))
}

/// PUT /Groups/{id}: replaces the attributes and the whole member list.
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
    let mut v = resource::validate(
        &ctx.groups,
        input,
        Mode::Replace,
        ctx.profile,
        Some(&current.attributes),
    )?;
    let members = specs(resource::extract_members(&mut v.doc))?;
    let delta = MemberDelta {
        replace: Some(members),
        ..MemberDelta::default()
    };
    let group = ctx
        .store
        .update_group(
            &ctx.actor,
            id,
            Some(new_group(v.doc)?),
            &delta,
            if_match.and_then(Precondition::single),
            Some(current.version),
        )
        .await
        .map_err(|e| from_store(e, "Group"))?;
    let body = render(ctx, &group, proj).await?;
    Ok(reply(ctx, 200, &group, Some(body)))
}

/// PATCH /Groups/{id}. Member operations become a delta applied row by row under the group's
/// lock, so concurrent PATCHes never lose a membership; other attributes are re-validated and
/// written in the same transaction. Answers 204 unless the client asked for attributes
/// (RFC 7644 §3.5.2 allows either), so a 100,000-member group is never rendered by a PATCH.
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
            ctx.store
                .get_group_fresh(id)
                .await
                .map_err(|e| from_store(e, "Group"))?
                .ok_or_else(|| ScimError::not_found(format!("Group {id} not found")))?
        };
        if if_match.is_some_and(|p| !p.matches(current.version)) {
            return Err(precondition_failed());
        }
        let mut doc = current.attributes.clone();
        let delta = patch::apply(&ctx.groups, &mut doc, &req, Target::Group, ctx.profile)?;
        let new = if doc == current.attributes {
            None
        } else {
            let v = resource::validate(
                &ctx.groups,
                &doc,
                Mode::Replace,
                ctx.profile,
                Some(&current.attributes),
            )?;
            Some(new_group(v.doc)?)
        };
        let delta = MemberDelta {
            replace: delta
                .replace
                .map(|list| specs(list.into_iter().map(|m| (m.value, m.ty)).collect()))
                .transpose()?,
            add: specs(delta.add.into_iter().map(|m| (m.value, m.ty)).collect())?,
            remove: delta.remove,
        };
        let base = new.as_ref().map(|_| current.version);
        match ctx
            .store
            .update_group(
                &ctx.actor,
                id,
                new,
                &delta,
                if_match.and_then(Precondition::single),
                base,
            )
            .await
        {
            Ok(group) => {
                return Ok(if proj.requested {
                    let body = render(ctx, &group, proj).await?;
                    reply(ctx, 200, &group, Some(body))
                } else {
                    reply(ctx, 204, &group, None)
                });
            }
            Err(StoreError::VersionMismatch) if if_match.is_none() => continue,
            Err(e) => return Err(from_store(e, "Group")),
        }
    }
    Err(ScimError::status(
        409,
        "the group kept changing while the PATCH was applied; retry",
    ))
}

pub async fn delete(
    ctx: &ScimCtx,
    id: &str,
    if_match: Option<&Precondition>,
) -> Result<Reply, ScimError> {
    let guard = match if_match {
        Some(p) => {
            let current = load(ctx, id).await?;
            if !p.matches(current.version) {
                return Err(precondition_failed());
            }
            Some(current.version)
        }
        None => None,
    };
    ctx.store
        .delete_group_as(&ctx.actor, id, guard, ctx.soft_delete)
        .await
        .map_err(|e| from_store(e, "Group"))?;
    Ok(Reply {
        status: 204,
        body: None,
        etag: None,
        location: None,
    })
}
