//! Roles: the built-in ones and a tenant's custom roles (sets of permissions).

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use super::users::NoContent;
use crate::app::AppState;
use crate::auth::rbac::{self, PermSet, Permission};
use crate::model::rfc3339;
use crate::store::Role;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
pub struct RoleView {
    pub name: String,
    pub description: String,
    pub permissions: Vec<String>,
    /// Built-in roles cannot be changed or deleted.
    pub builtin: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            permissions: r
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            builtin: r.builtin,
            created_at: (!r.builtin).then(|| rfc3339(r.created_at)),
            updated_at: (!r.builtin).then(|| rfc3339(r.updated_at)),
        }
    }
}

#[derive(Object)]
pub struct RoleList {
    pub data: Vec<RoleView>,
    pub total: i64,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateRole {
    /// 1-64 of a-z, 0-9, '-', '_' and '.', starting with a letter.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub name: Text,
    #[oai(default, validator(max_length = 500))]
    pub description: Option<Text>,
    #[oai(validator(max_items = 50))]
    pub permissions: Vec<Text>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateRole {
    #[oai(validator(max_length = 500))]
    pub description: Option<Text>,
    #[oai(validator(max_items = 50))]
    pub permissions: Option<Vec<Text>>,
}

#[derive(ApiResponse)]
pub enum RoleCreated {
    /// Created.
    #[oai(status = 201)]
    Created(Json<RoleView>, #[oai(header = "Location")] String),
}

/// Parses permission names; operator-only permissions cannot go into tenant roles.
fn parse_perms(raw: &[Text]) -> ApiResult<PermSet> {
    raw.iter()
        .enumerate()
        .map(|(i, p)| {
            let field = format!("permissions[{i}]");
            let perm = Permission::parse(p).ok_or_else(|| {
                ApiError::unprocessable(&field, format!("unknown permission {:?}", p.0))
            })?;
            if perm.operator_only() {
                return Err(ApiError::unprocessable(
                    &field,
                    format!("{perm} belongs to operators and cannot be put in a role"),
                ));
            }
            Ok(perm)
        })
        .collect()
}

pub struct RolesApi;

#[OpenApi(tag = "Tag::Roles")]
impl RolesApi {
    /// Built-in and custom roles of the tenant (permission `roles.manage`).
    #[oai(path = "/api/v1/roles", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
    ) -> ApiResult<Json<RoleList>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let roles = ts.list_roles().await?;
        Ok(Json(RoleList {
            total: i64::try_from(roles.len()).unwrap_or(0),
            data: roles.iter().map(RoleView::from).collect(),
        }))
    }

    /// Create a custom role (permission `roles.manage`).
    #[oai(path = "/api/v1/roles", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<CreateRole>,
    ) -> ApiResult<RoleCreated> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let name = body.name.trim();
        if !rbac::valid_role_name(name) {
            return Err(ApiError::unprocessable(
                "name",
                "1-64 of a-z, 0-9, '-', '_' and '.', starting with a letter",
            ));
        }
        let perms = parse_perms(&body.permissions)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let role = ts
            .create_role(
                &caller_actor(c, req),
                name,
                body.description.as_deref().map(str::trim).unwrap_or(""),
                &perms,
            )
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict { .. } => {
                    ApiError::conflict("conflict", format!("a role named {name:?} exists"))
                }
                other => other.into(),
            })?;
        Ok(RoleCreated::Created(
            Json(RoleView::from(&role)),
            format!("/api/v1/roles/{name}"),
        ))
    }

    /// One role (permission `roles.manage`).
    #[oai(path = "/api/v1/roles/:name", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        name: Path<String>,
    ) -> ApiResult<Json<RoleView>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let role = ts
            .role(&name.0)
            .await?
            .ok_or_else(|| ApiError::not_found("role"))?;
        Ok(Json(RoleView::from(&role)))
    }

    /// Change a custom role (permission `roles.manage`). Holders gain or lose permissions
    /// on their next request.
    #[oai(path = "/api/v1/roles/:name", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        name: Path<String>,
        body: Json<UpdateRole>,
    ) -> ApiResult<Json<RoleView>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        if rbac::is_builtin(&name.0) {
            return Err(ApiError::conflict(
                "builtin_role",
                "built-in roles cannot be changed",
            ));
        }
        let perms = body.permissions.as_deref().map(parse_perms).transpose()?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let role = ts
            .update_role(
                &caller_actor(c, req),
                &name.0,
                body.description.as_deref().map(str::trim),
                perms.as_ref(),
            )
            .await?;
        Ok(Json(RoleView::from(&role)))
    }

    /// Delete a custom role and every assignment of it (permission `roles.manage`).
    #[oai(path = "/api/v1/roles/:name", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        name: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        if rbac::is_builtin(&name.0) {
            return Err(ApiError::conflict(
                "builtin_role",
                "built-in roles cannot be deleted",
            ));
        }
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        ts.delete_role(&caller_actor(c, req), &name.0).await?;
        Ok(NoContent::Done)
    }
}
