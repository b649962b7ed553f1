//! Tenants: the operator's view (list, show) and the public view of the tenant a host serves.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::pagination::{page_request, search_term};
use super::security::{Auth, caller_actor};
use super::types::Text;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::{Hostname, ScimProfile, Slug, Tenant, display_name, rfc3339};
use crate::store::TenantUpdate;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
pub struct TenantSettingsView {
    /// Maintenance mode.
    pub maintenance: bool,
    /// SCIM compatibility profile: strict | entra | okta | lenient.
    pub scim_profile: String,
    /// SCIM DELETE deactivates and hides instead of removing.
    pub soft_delete: bool,
}

#[derive(Object)]
pub struct TenantView {
    pub id: String,
    pub slug: String,
    pub display_name: String,
    pub hostnames: Vec<String>,
    pub settings: TenantSettingsView,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Tenant> for TenantView {
    fn from(t: &Tenant) -> Self {
        let profile = serde_json::to_value(t.settings.scim_profile)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        Self {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            display_name: t.display_name.clone(),
            hostnames: t.hostnames.clone(),
            settings: TenantSettingsView {
                maintenance: t.settings.maintenance,
                scim_profile: profile,
                soft_delete: t.settings.soft_delete,
            },
            version: t.version,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

#[derive(Object)]
pub struct TenantList {
    pub data: Vec<TenantView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(Object)]
pub struct CurrentTenant {
    pub slug: String,
    pub display_name: String,
}

/// A new tenant.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateTenant {
    /// URL-safe identifier: 1-63 of a-z, 0-9 and '-', not starting with '-'.
    #[oai(validator(min_length = 1, max_length = 63))]
    pub slug: Text,
    /// Human-readable name, 1-200 characters.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub display_name: Text,
    /// Hostnames that serve this tenant.
    #[oai(default, validator(max_items = 50))]
    pub hostnames: Vec<Text>,
}

/// Settings to change; absent fields stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct SettingsPatch {
    pub maintenance: Option<bool>,
    /// strict | entra | okta | lenient
    pub scim_profile: Option<Text>,
    pub soft_delete: Option<bool>,
}

/// A partial update of a tenant; absent fields stay as they are.
#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateTenant {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub display_name: Option<Text>,
    /// Replaces the whole hostname list.
    #[oai(validator(max_items = 50))]
    pub hostnames: Option<Vec<Text>>,
    pub settings: Option<SettingsPatch>,
}

#[derive(ApiResponse)]
pub enum Created {
    /// The tenant was created.
    #[oai(status = 201)]
    Created(Json<TenantView>, #[oai(header = "Location")] String),
}

fn parse_hostnames(raw: &[Text]) -> ApiResult<Vec<Hostname>> {
    raw.iter()
        .map(|h| {
            Hostname::parse(h).map_err(|e| ApiError::unprocessable("hostnames", e.to_string()))
        })
        .collect()
}

/// Parses an `If-Match` header carrying a version ETag (`W/"3"` or `"3"`).
fn if_match_version(h: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(h) = h else { return Ok(None) };
    let v = h.trim().trim_start_matches("W/").trim_matches('"');
    v.parse::<i64>()
        .map(Some)
        .map_err(|_| ApiError::bad_request("If-Match", "expected a version ETag such as W/\"3\""))
}

/// A settings patch applied to the current settings.
fn apply_settings(
    current: &crate::model::TenantSettings,
    patch: &SettingsPatch,
) -> ApiResult<crate::model::TenantSettings> {
    let mut s = current.clone();
    if let Some(m) = patch.maintenance {
        s.maintenance = m;
    }
    if let Some(d) = patch.soft_delete {
        s.soft_delete = d;
    }
    if let Some(p) = &patch.scim_profile {
        s.scim_profile = serde_json::from_value::<ScimProfile>(serde_json::Value::String(
            p.0.clone(),
        ))
        .map_err(|_| {
            ApiError::unprocessable(
                "settings.scim_profile",
                "expected strict, entra, okta or lenient",
            )
        })?;
    }
    Ok(s)
}

pub struct TenantsApi;

#[OpenApi(tag = "Tag::Tenants")]
impl TenantsApi {
    /// List tenants (operators; permission `tenants.manage`).
    #[oai(path = "/api/v1/tenants", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// 1-based page number (default 1).
        page: Query<Option<u32>>,
        /// Page size, 1-200 (default 20).
        limit: Query<Option<u32>>,
        /// Case-insensitive substring of slug or display name.
        search: Query<Option<String>>,
    ) -> ApiResult<Json<TenantList>> {
        auth.caller().require(Permission::TenantsManage)?;
        let req = page_request(page.0, limit.0)?;
        let search = search_term(search.0)?;
        let found = state.store.list_tenants(req, search.as_deref()).await?;
        Ok(Json(TenantList {
            data: found.items.iter().map(TenantView::from).collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// Show one tenant by slug (operators; permission `tenants.manage`).
    #[oai(path = "/api/v1/tenants/:slug", method = "get")]
    async fn show(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        slug: Path<String>,
    ) -> ApiResult<Json<TenantView>> {
        auth.caller().require(Permission::TenantsManage)?;
        let t = state
            .store
            .tenant_by_slug(&slug.0)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        Ok(Json(TenantView::from(&t)))
    }

    /// Create a tenant (operators; permission `tenants.manage`).
    #[oai(path = "/api/v1/tenants", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        body: Json<CreateTenant>,
    ) -> ApiResult<Created> {
        let p = auth.caller();
        p.require(Permission::TenantsManage)?;
        let slug =
            Slug::parse(&body.slug).map_err(|e| ApiError::unprocessable("slug", e.to_string()))?;
        let name = display_name(&body.display_name)
            .map_err(|e| ApiError::unprocessable("display_name", e.to_string()))?;
        let hosts = parse_hostnames(&body.hostnames)?;
        let t = state
            .store
            .create_tenant(&caller_actor(p, req), &slug, &name, &hosts)
            .await?;
        let location = format!("/api/v1/tenants/{}", t.slug);
        Ok(Created::Created(Json(TenantView::from(&t)), location))
    }

    /// Update a tenant (operators; permission `tenants.manage`). Honours `If-Match`.
    #[oai(path = "/api/v1/tenants/:slug", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        /// Version ETag the update is based on; 412 when the tenant changed since.
        #[oai(name = "If-Match")]
        if_match: Header<Option<String>>,
        body: Json<UpdateTenant>,
    ) -> ApiResult<Json<TenantView>> {
        let p = auth.caller();
        p.require(Permission::TenantsManage)?;
        let if_version = if_match_version(if_match.0.as_deref())?;
        let t = state
            .store
            .tenant_by_slug(&slug.0)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        let display_name = body
            .display_name
            .as_deref()
            .map(display_name)
            .transpose()
            .map_err(|e| ApiError::unprocessable("display_name", e.to_string()))?;
        let hostnames = body.hostnames.as_deref().map(parse_hostnames).transpose()?;
        let settings = body
            .settings
            .as_ref()
            .map(|patch| apply_settings(&t.settings, patch))
            .transpose()?;
        let t = state
            .store
            .update_tenant(
                &caller_actor(p, req),
                &t.id,
                TenantUpdate {
                    display_name,
                    hostnames,
                    settings,
                },
                if_version,
            )
            .await?;
        Ok(Json(TenantView::from(&t)))
    }

    /// Delete a tenant and all its data (operators; permission `tenants.manage`). Requires
    /// `confirm` equal to the slug; the default tenant cannot be deleted.
    #[oai(path = "/api/v1/tenants/:slug", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        /// The tenant's slug again, to confirm.
        confirm: Query<Option<String>>,
    ) -> ApiResult<super::users::NoContent> {
        let p = auth.caller();
        p.require(Permission::TenantsManage)?;
        let t = state
            .store
            .tenant_by_slug(&slug.0)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        if confirm.0.as_deref() != Some(slug.0.as_str()) {
            return Err(ApiError::bad_request(
                "confirm",
                "pass confirm=<slug> to delete a tenant and all its data",
            ));
        }
        if t.id == state.default_tenant {
            return Err(ApiError::conflict(
                "default_tenant",
                "the default tenant cannot be deleted",
            ));
        }
        state
            .store
            .delete_tenant(&caller_actor(p, req), &p.tenant_id, &t.id)
            .await?;
        Ok(super::users::NoContent::Done)
    }

    /// The caller's tenant settings (permission `settings.manage`).
    #[oai(path = "/api/v1/settings", method = "get")]
    async fn settings(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
    ) -> ApiResult<Json<TenantSettingsView>> {
        let c = auth.caller();
        c.require(Permission::SettingsManage)?;
        let ts = super::security::target_tenant(&state, c, tenant.0.as_deref()).await?;
        let t = state
            .store
            .tenant_by_id(ts.tenant_id())
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        Ok(Json(TenantView::from(&*t).settings))
    }

    /// Change the caller's tenant settings: SCIM compatibility profile and soft delete
    /// (permission `settings.manage`; maintenance mode is for operators, on the tenant).
    #[oai(path = "/api/v1/settings", method = "patch")]
    async fn patch_settings(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<SettingsPatch>,
    ) -> ApiResult<Json<TenantSettingsView>> {
        let c = auth.caller();
        c.require(Permission::SettingsManage)?;
        if body.maintenance.is_some() && !c.operator {
            return Err(ApiError::forbidden("maintenance mode is set by operators"));
        }
        let ts = super::security::target_tenant(&state, c, tenant.0.as_deref()).await?;
        let t = state
            .store
            .tenant_by_id(ts.tenant_id())
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        let settings = apply_settings(&t.settings, &body)?;
        let t = state
            .store
            .update_tenant(
                &caller_actor(c, req),
                &t.id,
                TenantUpdate {
                    settings: Some(settings),
                    ..TenantUpdate::default()
                },
                None,
            )
            .await?;
        Ok(Json(TenantView::from(&t).settings))
    }

    /// The tenant served at this request's host (public: slug and display name only).
    #[oai(path = "/api/v1/tenant", method = "get")]
    async fn current(
        &self,
        state: Data<&AppState>,
        req: &Request,
    ) -> ApiResult<Json<CurrentTenant>> {
        let id = crate::http::tenancy::resolve(&state, req).await?;
        let t = state
            .store
            .tenant_by_id(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant"))?;
        Ok(Json(CurrentTenant {
            slug: t.slug.to_string(),
            display_name: t.display_name.clone(),
        }))
    }
}
