//! Groups of a tenant, for administrators: the same records SCIM provisions, written through
//! the same domain layer (member changes are SCIM PATCH operations, so concurrent changes from
//! an identity provider and an administrator never lose a membership).

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::pagination::{page_request, search_term};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use super::users::{NoContent, check_assignable, scim_ctx, scim_error};
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::{Group, rfc3339};
use crate::provisioning::{self, Precondition, Projection, ScimCtx};
use crate::store::TenantStore;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Value, json};

#[derive(Object)]
pub struct GroupView {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// Version ETag (the same as SCIM's `meta.version`).
    pub version: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Group> for GroupView {
    fn from(g: &Group) -> Self {
        Self {
            id: g.id.clone(),
            display_name: g.display_name.clone(),
            external_id: g.external_id.clone(),
            version: provisioning::etag(g.version),
            created_at: rfc3339(g.created_at),
            updated_at: rfc3339(g.updated_at),
        }
    }
}

#[derive(Object)]
pub struct GroupList {
    pub data: Vec<GroupView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateGroup {
    #[oai(validator(min_length = 1, max_length = 256))]
    pub display_name: Text,
    #[oai(validator(min_length = 1, max_length = 256))]
    pub external_id: Option<Text>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateGroup {
    #[oai(validator(min_length = 1, max_length = 256))]
    pub display_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 256))]
    pub external_id: Option<Text>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct MemberRef {
    /// A user or group id of this tenant.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub id: Text,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct AddMembers {
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub members: Vec<MemberRef>,
}

#[derive(Object)]
pub struct MemberItem {
    pub id: String,
    /// `User` or `Group`.
    #[oai(rename = "type")]
    pub ty: String,
}

#[derive(Object)]
pub struct MemberList {
    pub data: Vec<MemberItem>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(ApiResponse)]
pub enum GroupResponse {
    /// The group.
    #[oai(status = 200)]
    Ok(Json<GroupView>, #[oai(header = "ETag")] String),
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<GroupView>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Location")] String,
    ),
}

async fn load_group(ts: &TenantStore, id: &str) -> ApiResult<std::sync::Arc<Group>> {
    ts.get_group(id)
        .await?
        .ok_or_else(|| ApiError::not_found("group"))
}

async fn patch_group(
    ctx: &ScimCtx,
    id: &str,
    ops: Vec<Value>,
    if_match: Option<&str>,
) -> ApiResult<()> {
    if ops.is_empty() {
        return Ok(());
    }
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": ops,
    });
    let pre = if_match.map(Precondition::parse);
    provisioning::groups::patch(ctx, id, &body, &Projection::default(), pre.as_ref())
        .await
        .map_err(scim_error)?;
    Ok(())
}

fn ok(g: &Group) -> GroupResponse {
    GroupResponse::Ok(Json(GroupView::from(g)), provisioning::etag(g.version))
}

pub struct GroupsApi;

#[OpenApi(tag = "Tag::Groups")]
impl GroupsApi {
    /// List groups (permission `groups.read`). `search` matches display name and externalId.
    #[oai(path = "/api/v1/groups", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
        page: Query<Option<u32>>,
        limit: Query<Option<u32>>,
        search: Query<Option<String>>,
    ) -> ApiResult<Json<GroupList>> {
        let c = auth.caller();
        c.require(Permission::GroupsRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let req = page_request(page.0, limit.0)?;
        let search = search_term(search.0)?;
        let found = ts.list_groups(req, search.as_deref()).await?;
        Ok(Json(GroupList {
            data: found.items.iter().map(GroupView::from).collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// Create a group (permission `groups.write`).
    #[oai(path = "/api/v1/groups", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<CreateGroup>,
    ) -> ApiResult<GroupResponse> {
        let c = auth.caller();
        c.require(Permission::GroupsWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let mut doc = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": body.display_name.trim(),
        });
        if let Some(x) = &body.external_id {
            doc["externalId"] = json!(x.trim());
        }
        let reply = provisioning::groups::create(&ctx, &doc, &Projection::default())
            .await
            .map_err(scim_error)?;
        let id = reply
            .body
            .as_ref()
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let g = load_group(&ts, &id).await?;
        Ok(GroupResponse::Created(
            Json(GroupView::from(&*g)),
            provisioning::etag(g.version),
            format!("/api/v1/groups/{id}"),
        ))
    }

    /// One group (permission `groups.read`).
    #[oai(path = "/api/v1/groups/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<GroupResponse> {
        let c = auth.caller();
        c.require(Permission::GroupsRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        Ok(ok(&*load_group(&ts, &id.0).await?))
    }

    /// Change a group (permission `groups.write`). Honours `If-Match`.
    #[oai(path = "/api/v1/groups/:id", method = "patch")]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        #[oai(name = "If-Match")] if_match: Header<Option<String>>,
        id: Path<String>,
        body: Json<UpdateGroup>,
    ) -> ApiResult<GroupResponse> {
        let c = auth.caller();
        c.require(Permission::GroupsWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_group(&ts, &id.0).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let mut ops = Vec::new();
        if let Some(v) = &body.display_name {
            ops.push(json!({ "op": "replace", "path": "displayName", "value": v.trim() }));
        }
        if let Some(v) = &body.external_id {
            ops.push(json!({ "op": "replace", "path": "externalId", "value": v.trim() }));
        }
        patch_group(&ctx, &id.0, ops, if_match.0.as_deref()).await?;
        let g = ts
            .get_group_fresh(&id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))?;
        Ok(ok(&g))
    }

    /// Delete a group (permission `groups.write`).
    #[oai(path = "/api/v1/groups/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::GroupsWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        provisioning::groups::delete(&ctx, &id.0, None)
            .await
            .map_err(scim_error)?;
        Ok(NoContent::Done)
    }

    /// A page of a group's direct members (permission `groups.read`).
    #[oai(path = "/api/v1/groups/:id/members", method = "get")]
    async fn members(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        page: Query<Option<u32>>,
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<MemberList>> {
        let c = auth.caller();
        c.require(Permission::GroupsRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_group(&ts, &id.0).await?;
        let req = page_request(page.0, limit.0)?;
        let found = ts.list_members(&id.0, req).await?;
        Ok(Json(MemberList {
            data: found
                .items
                .iter()
                .map(|m| MemberItem {
                    id: m.member_id.clone(),
                    ty: m.member_type.as_str().to_owned(),
                })
                .collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// Add members (users or groups) to a group (permission `groups.write`).
    #[oai(path = "/api/v1/groups/:id/members", method = "post")]
    async fn add_members(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        body: Json<AddMembers>,
    ) -> ApiResult<GroupResponse> {
        let c = auth.caller();
        c.require(Permission::GroupsWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_group(&ts, &id.0).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let values: Vec<Value> = body
            .members
            .iter()
            .map(|m| json!({ "value": m.id.trim() }))
            .collect();
        patch_group(
            &ctx,
            &id.0,
            vec![json!({ "op": "add", "path": "members", "value": values })],
            None,
        )
        .await?;
        let g = ts
            .get_group_fresh(&id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("group"))?;
        Ok(ok(&g))
    }

    /// Remove one member from a group (permission `groups.write`).
    #[oai(path = "/api/v1/groups/:id/members/:member_id", method = "delete")]
    async fn remove_member(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        member_id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::GroupsWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_group(&ts, &id.0).await?;
        if !ts.groups_of(&member_id.0).await?.contains(&id.0) {
            return Err(ApiError::not_found("member"));
        }
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let member = member_id.0.replace('"', "");
        patch_group(
            &ctx,
            &id.0,
            vec![json!({ "op": "remove", "path": format!("members[value eq \"{member}\"]") })],
            None,
        )
        .await?;
        Ok(NoContent::Done)
    }

    /// The roles granted to a group; its members inherit them (permission `groups.read`).
    #[oai(path = "/api/v1/groups/:id/roles", method = "get")]
    async fn roles(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<String>>> {
        let c = auth.caller();
        c.require(Permission::GroupsRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_group(&ts, &id.0).await?;
        Ok(Json(ts.group_roles(&id.0).await?))
    }

    /// Grant a role to a group (permission `roles.manage`).
    #[oai(path = "/api/v1/groups/:id/roles/:role", method = "put")]
    async fn grant(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        role: Path<String>,
    ) -> ApiResult<Json<Vec<String>>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        if role.0 == crate::auth::rbac::ROLE_SUPERADMIN {
            return Err(ApiError::forbidden(
                "superadmin is granted to users only, never to groups",
            ));
        }
        check_assignable(&state, c, &ts, &role.0).await?;
        ts.set_group_role(&caller_actor(c, req), &id.0, &role.0, true)
            .await?;
        Ok(Json(ts.group_roles(&id.0).await?))
    }

    /// Remove a role from a group (permission `roles.manage`).
    #[oai(path = "/api/v1/groups/:id/roles/:role", method = "delete")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        role: Path<String>,
    ) -> ApiResult<Json<Vec<String>>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        ts.set_group_role(&caller_actor(c, req), &id.0, &role.0, false)
            .await?;
        Ok(Json(ts.group_roles(&id.0).await?))
    }
}
