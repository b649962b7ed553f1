//! Users of a tenant, for administrators. These are the records SCIM provisions: writes go
//! through the same domain layer (`provisioning`), so a change made here is visible over SCIM,
//! bumps the ETag and lands in the change log, and vice versa.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::pagination::{page_request, search_term};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use crate::app::AppState;
use crate::auth::rbac::{self, Permission};
use crate::auth::{self, AuthError};
use crate::model::{Actor, User, rfc3339};
use crate::provisioning::{self, Precondition, Projection, ScimCtx};
use crate::store::TenantStore;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use serde_json::{Value, json};

/// A user as administrators see it.
#[derive(Object)]
pub struct UserView {
    pub id: String,
    pub user_name: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub external_id: Option<String>,
    pub active: bool,
    /// Version ETag (the same as SCIM's `meta.version`).
    pub version: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        let name = |k: &str| {
            u.attributes
                .get("name")
                .and_then(|n| n.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            id: u.id.clone(),
            user_name: u.user_name.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            given_name: name("givenName"),
            family_name: name("familyName"),
            external_id: u.external_id.clone(),
            active: u.active,
            version: provisioning::etag(u.version),
            created_at: rfc3339(u.created_at),
            updated_at: rfc3339(u.updated_at),
        }
    }
}

#[derive(Object)]
pub struct UserList {
    pub data: Vec<UserView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateUser {
    /// Unique in the tenant (case-insensitively).
    #[oai(validator(min_length = 1, max_length = 256))]
    pub user_name: Text,
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub display_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub given_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub family_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 256))]
    pub external_id: Option<Text>,
    /// Default true.
    pub active: Option<bool>,
    /// Initial password, 12-1024 characters.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: Option<Text>,
}

/// Fields to change; absent fields stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateUser {
    #[oai(validator(min_length = 1, max_length = 256))]
    pub user_name: Option<Text>,
    #[oai(validator(min_length = 3, max_length = 254))]
    pub email: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub display_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub given_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub family_name: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 256))]
    pub external_id: Option<Text>,
    pub active: Option<bool>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct SetPassword {
    /// 12-1024 characters.
    #[oai(validator(min_length = 12, max_length = 1024))]
    pub password: Text,
}

#[derive(Object)]
pub struct RoleNames {
    /// Roles granted directly.
    pub direct: Vec<String>,
    /// Every role held, directly or through groups.
    pub effective: Vec<String>,
}

#[derive(Object)]
pub struct GroupRef {
    pub id: String,
    pub display_name: String,
    /// A direct membership (otherwise through a nested group).
    pub direct: bool,
}

#[derive(ApiResponse)]
pub enum UserResponse {
    /// The user.
    #[oai(status = 200)]
    Ok(Json<UserView>, #[oai(header = "ETag")] String),
    /// Created.
    #[oai(status = 201)]
    Created(
        Json<UserView>,
        #[oai(header = "ETag")] String,
        #[oai(header = "Location")] String,
    ),
}

#[derive(ApiResponse)]
pub enum NoContent {
    /// Done.
    #[oai(status = 204)]
    Done,
}

/// Renders a SCIM error from the shared domain layer in the REST envelope.
pub(super) fn scim_error(e: scim::ScimError) -> ApiError {
    ApiError::from_scim(&e)
}

/// A SCIM context for administrators acting on `ts` (operators' records visible).
pub(super) async fn scim_ctx(
    state: &AppState,
    ts: &TenantStore,
    actor: Actor,
) -> ApiResult<ScimCtx> {
    let tenant = state
        .store
        .tenant_by_id(ts.tenant_id())
        .await?
        .ok_or_else(|| ApiError::not_found("tenant"))?;
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
        admin: true,
    })
}

fn opt(v: &Option<Text>) -> Option<String> {
    v.as_ref().map(|t| t.trim().to_owned())
}

fn check_email(field: &str, e: &Option<Text>) -> ApiResult<()> {
    if let Some(e) = e {
        let e = e.trim();
        let ok = e
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
            && !e.contains(char::is_whitespace);
        if !ok {
            return Err(ApiError::unprocessable(field, "not a valid email address"));
        }
    }
    Ok(())
}

async fn load_user(ts: &TenantStore, id: &str) -> ApiResult<std::sync::Arc<User>> {
    ts.get_user(id)
        .await?
        .ok_or_else(|| ApiError::not_found("user"))
}

fn ok(u: &User) -> UserResponse {
    UserResponse::Ok(Json(UserView::from(u)), provisioning::etag(u.version))
}

/// Applies field changes as one SCIM PATCH (so validation, ETag and change log are SCIM's).
pub(super) async fn patch_user(
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
    provisioning::users::patch(ctx, id, &body, &Projection::default(), pre.as_ref())
        .await
        .map_err(scim_error)?;
    Ok(())
}

fn replace(path: &str, v: Value) -> Value {
    json!({ "op": "replace", "path": path, "value": v })
}

pub struct UsersApi;

#[OpenApi(tag = "Tag::Users")]
impl UsersApi {
    /// List users (permission `users.read`). `search` matches userName, email, display name
    /// and externalId (case-insensitive substring).
    #[oai(path = "/api/v1/users", method = "get")]
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
    ) -> ApiResult<Json<UserList>> {
        let c = auth.caller();
        c.require(Permission::UsersRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let req = page_request(page.0, limit.0)?;
        let search = search_term(search.0)?;
        let found = ts.list_users(req, search.as_deref()).await?;
        Ok(Json(UserList {
            data: found.items.iter().map(UserView::from).collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// Create a user (permission `users.write`).
    #[oai(path = "/api/v1/users", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<CreateUser>,
    ) -> ApiResult<UserResponse> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        check_email("email", &body.email)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let mut doc = json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": body.user_name.trim(),
            "active": body.active.unwrap_or(true),
        });
        if let Some(e) = opt(&body.email) {
            doc["emails"] = json!([{ "value": e, "primary": true, "type": "work" }]);
        }
        if let Some(d) = opt(&body.display_name) {
            doc["displayName"] = json!(d);
        }
        if let Some(x) = opt(&body.external_id) {
            doc["externalId"] = json!(x);
        }
        let mut name = serde_json::Map::new();
        if let Some(g) = opt(&body.given_name) {
            name.insert("givenName".into(), json!(g));
        }
        if let Some(f) = opt(&body.family_name) {
            name.insert("familyName".into(), json!(f));
        }
        if !name.is_empty() {
            doc["name"] = Value::Object(name);
        }
        if let Some(p) = &body.password {
            doc["password"] = json!(p.0);
        }
        let reply = provisioning::users::create(&ctx, &doc, &Projection::default())
            .await
            .map_err(scim_error)?;
        let id = reply
            .body
            .as_ref()
            .and_then(|b| b.get("id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let u = load_user(&ts, &id).await?;
        Ok(UserResponse::Created(
            Json(UserView::from(&*u)),
            provisioning::etag(u.version),
            format!("/api/v1/users/{id}"),
        ))
    }

    /// One user (permission `users.read`).
    #[oai(path = "/api/v1/users/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<UserResponse> {
        let c = auth.caller();
        c.require(Permission::UsersRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let u = load_user(&ts, &id.0).await?;
        Ok(ok(&u))
    }

    /// Change a user (permission `users.write`). Honours `If-Match`.
    #[oai(path = "/api/v1/users/:id", method = "patch")]
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        /// Version ETag the change is based on; 412 when the user changed since.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        id: Path<String>,
        body: Json<UpdateUser>,
    ) -> ApiResult<UserResponse> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        check_email("email", &body.email)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        let mut ops = Vec::new();
        if let Some(v) = opt(&body.user_name) {
            ops.push(replace("userName", json!(v)));
        }
        if let Some(v) = opt(&body.email) {
            ops.push(replace(
                "emails",
                json!([{ "value": v, "primary": true, "type": "work" }]),
            ));
        }
        if let Some(v) = opt(&body.display_name) {
            ops.push(replace("displayName", json!(v)));
        }
        if let Some(v) = opt(&body.given_name) {
            ops.push(replace("name.givenName", json!(v)));
        }
        if let Some(v) = opt(&body.family_name) {
            ops.push(replace("name.familyName", json!(v)));
        }
        if let Some(v) = opt(&body.external_id) {
            ops.push(replace("externalId", json!(v)));
        }
        if let Some(v) = body.active {
            ops.push(replace("active", json!(v)));
        }
        patch_user(&ctx, &id.0, ops, if_match.0.as_deref()).await?;
        let u = ts
            .get_user_fresh(&id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(ok(&u))
    }

    /// Delete a user (permission `users.write`). With the tenant's soft-delete setting the
    /// user is deactivated and hidden instead.
    #[oai(path = "/api/v1/users/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        if id.0 == c.user_id && ts.tenant_id() == &c.tenant_id {
            return Err(ApiError::conflict(
                "self_delete",
                "you cannot delete your own account",
            ));
        }
        let ctx = scim_ctx(&state, &ts, caller_actor(c, req)).await?;
        provisioning::users::delete(&ctx, &id.0, None)
            .await
            .map_err(scim_error)?;
        Ok(NoContent::Done)
    }

    /// Disable a user: sign-in, tokens and sessions stop working (permission `users.write`).
    #[oai(path = "/api/v1/users/:id/disable", method = "post")]
    async fn disable(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<UserResponse> {
        self.set_active(&state, auth, req, tenant.0, &id.0, false)
            .await
    }

    /// Enable a user (permission `users.write`).
    #[oai(path = "/api/v1/users/:id/enable", method = "post")]
    async fn enable(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<UserResponse> {
        self.set_active(&state, auth, req, tenant.0, &id.0, true)
            .await
    }

    /// Set a user's password; their sessions end (permission `users.write`).
    #[oai(path = "/api/v1/users/:id/password", method = "put")]
    async fn set_password(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        body: Json<SetPassword>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        let hash = auth::password::hash(body.password.0.clone())
            .await
            .map_err(AuthError::from)?;
        let actor = caller_actor(c, req);
        ts.set_password_hash(&actor, &id.0, &hash).await?;
        ts.clear_login_failures(&id.0).await?;
        let keep = (id.0 == c.user_id)
            .then_some(c.session_id.as_deref())
            .flatten();
        ts.revoke_user_sessions(&actor, &id.0, keep, "password_reset")
            .await?;
        Ok(NoContent::Done)
    }

    /// Lift a lockout after failed sign-ins (permission `users.write`).
    #[oai(path = "/api/v1/users/:id/unlock", method = "post")]
    async fn unlock(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        ts.clear_login_failures(&id.0).await?;
        Ok(NoContent::Done)
    }

    /// A user's roles, direct and effective (permission `users.read`).
    #[oai(path = "/api/v1/users/:id/roles", method = "get")]
    async fn roles(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<RoleNames>> {
        let c = auth.caller();
        c.require(Permission::UsersRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        Ok(Json(role_names(&ts, &id.0).await?))
    }

    /// Grant a role to a user (permission `roles.manage`; `superadmin` only by operators,
    /// only in the default tenant).
    #[oai(path = "/api/v1/users/:id/roles/:role", method = "put")]
    async fn grant(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        role: Path<String>,
    ) -> ApiResult<Json<RoleNames>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        check_assignable(&state, c, &ts, &role.0).await?;
        ts.grant_role(&caller_actor(c, req), &id.0, &role.0).await?;
        Ok(Json(role_names(&ts, &id.0).await?))
    }

    /// Remove a role from a user (permission `roles.manage`).
    #[oai(path = "/api/v1/users/:id/roles/:role", method = "delete")]
    async fn revoke(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        role: Path<String>,
    ) -> ApiResult<Json<RoleNames>> {
        let c = auth.caller();
        c.require(Permission::RolesManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        if role.0 == rbac::ROLE_SUPERADMIN && !c.operator {
            return Err(ApiError::forbidden("only operators manage superadmin"));
        }
        load_user(&ts, &id.0).await?;
        ts.revoke_role(&caller_actor(c, req), &id.0, &role.0)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict { .. } => ApiError::conflict(
                    "last_superadmin",
                    "the last superadmin cannot lose the role",
                ),
                other => other.into(),
            })?;
        Ok(Json(role_names(&ts, &id.0).await?))
    }

    /// The groups a user belongs to, directly or through nesting (permission `users.read`).
    #[oai(path = "/api/v1/users/:id/groups", method = "get")]
    async fn groups(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<Vec<GroupRef>>> {
        let c = auth.caller();
        c.require(Permission::UsersRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        let m = ts.group_memberships(&id.0).await?;
        Ok(Json(
            m.iter()
                .map(|(id, name, direct)| GroupRef {
                    id: id.clone(),
                    display_name: name.clone(),
                    direct: *direct,
                })
                .collect(),
        ))
    }

    /// A user's live sessions (permission `sessions.manage`).
    #[oai(path = "/api/v1/users/:id/sessions", method = "get")]
    async fn sessions(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<super::auth::SessionList>> {
        let c = auth.caller();
        c.require(Permission::SessionsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        let list = ts.list_sessions(&id.0).await?;
        Ok(Json(super::auth::SessionList {
            total: i64::try_from(list.len()).unwrap_or(0),
            data: list
                .iter()
                .map(|s| super::auth::session_view(s, c.session_id.as_deref()))
                .collect(),
        }))
    }

    /// End every session of a user (permission `sessions.manage`).
    #[oai(path = "/api/v1/users/:id/sessions", method = "delete")]
    async fn revoke_sessions(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<super::auth::RevokedCount>> {
        let c = auth.caller();
        c.require(Permission::SessionsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load_user(&ts, &id.0).await?;
        let n = ts
            .revoke_user_sessions(&caller_actor(c, req), &id.0, None, "revoked_by_admin")
            .await?;
        Ok(Json(super::auth::RevokedCount { revoked: n }))
    }
}

impl UsersApi {
    async fn set_active(
        &self,
        state: &AppState,
        auth: Auth,
        req: &Request,
        tenant: Option<String>,
        id: &str,
        active: bool,
    ) -> ApiResult<UserResponse> {
        let c = auth.caller();
        c.require(Permission::UsersWrite)?;
        let ts = target_tenant(state, c, tenant.as_deref()).await?;
        if !active && id == c.user_id && ts.tenant_id() == &c.tenant_id {
            return Err(ApiError::conflict(
                "self_disable",
                "you cannot disable your own account",
            ));
        }
        load_user(&ts, id).await?;
        let ctx = scim_ctx(state, &ts, caller_actor(c, req)).await?;
        patch_user(&ctx, id, vec![replace("active", json!(active))], None).await?;
        let u = ts
            .get_user_fresh(id)
            .await?
            .ok_or_else(|| ApiError::not_found("user"))?;
        Ok(ok(&u))
    }
}

/// A user's direct and effective roles.
async fn role_names(ts: &TenantStore, user_id: &str) -> ApiResult<RoleNames> {
    Ok(RoleNames {
        direct: ts.user_roles(user_id).await?,
        effective: ts.effective_roles(user_id).await?,
    })
}

/// A role may be assigned when it exists in the tenant; `superadmin` only by operators and
/// only in the default tenant.
pub(super) async fn check_assignable(
    state: &AppState,
    c: &auth::Caller,
    ts: &TenantStore,
    role: &str,
) -> ApiResult<()> {
    if role == rbac::ROLE_SUPERADMIN
        && (!c.operator || !state.store.is_default_tenant(ts.tenant_id()))
    {
        return Err(ApiError::forbidden(
            "superadmin is granted only by operators, in the default tenant",
        ));
    }
    if ts.role(role).await?.is_none() {
        return Err(ApiError::unprocessable(
            "role",
            format!("no role named {role:?}"),
        ));
    }
    Ok(())
}
