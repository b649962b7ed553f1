//! Administration of a tenant's SCIM surface: bearer tokens and extension schemas.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::{TokenInfo, now_micros, rfc3339};
use crate::store::StoreError;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    /// The first characters of the token, to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl From<&TokenInfo> for TokenView {
    fn from(t: &TokenInfo) -> Self {
        Self {
            id: t.id.clone(),
            name: t.name.clone(),
            prefix: t.prefix.clone(),
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
            revoked_at: t.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Object)]
pub struct IssuedTokenView {
    #[oai(flatten)]
    pub info: TokenView,
    /// The bearer token. Shown this once; only its hash is stored.
    pub token: String,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, e.g. "Okta production".
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    /// Days until the token expires (none: never).
    #[oai(validator(minimum(value = "1"), maximum(value = "3650")))]
    pub expires_in_days: Option<u32>,
}

#[derive(Object)]
pub struct TokenList {
    pub data: Vec<TokenView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(ApiResponse)]
pub enum TokenCreated {
    /// Issued; the response carries the token once.
    #[oai(status = 201)]
    Created(Json<IssuedTokenView>),
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct PutSchema {
    /// `User` or `Group`.
    pub resource_type: Text,
    /// Whether resources must carry this extension.
    #[oai(default)]
    pub required: bool,
    /// The schema in the RFC 7643 §7 representation (`id` is the URN).
    pub schema: serde_json::Value,
}

#[derive(Object)]
pub struct SchemaView {
    pub urn: String,
    pub resource_type: String,
    pub required: bool,
    pub schema: serde_json::Value,
}

#[derive(Object)]
pub struct SchemaList {
    pub data: Vec<SchemaView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

pub struct ScimAdminApi;

#[OpenApi(tag = "Tag::Scim")]
impl ScimAdminApi {
    /// Issue a SCIM bearer token for a tenant (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-tokens", method = "post")]
    async fn create_token(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        body: Json<CreateToken>,
    ) -> ApiResult<TokenCreated> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        let name = body.name.trim();
        if name.is_empty() {
            return Err(ApiError::unprocessable("name", "name must not be blank"));
        }
        let expires = body
            .expires_in_days
            .map(|d| now_micros() + i64::from(d) * 86_400 * 1_000_000);
        let issued = ts
            .create_token(&caller_actor(p, req), "scim", name, expires)
            .await?;
        Ok(TokenCreated::Created(Json(IssuedTokenView {
            info: TokenView::from(&issued.info),
            token: issued.secret,
        })))
    }

    /// List a tenant's SCIM tokens (never their secrets) (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-tokens", method = "get")]
    async fn list_tokens(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        slug: Path<String>,
    ) -> ApiResult<Json<TokenList>> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        let tokens = ts.list_tokens("scim").await?;
        let total = i64::try_from(tokens.len()).unwrap_or(i64::MAX);
        let limit = u32::try_from(tokens.len()).unwrap_or(u32::MAX).max(1);
        Ok(Json(TokenList {
            data: tokens.iter().map(TokenView::from).collect(),
            total,
            page: 1,
            limit,
        }))
    }

    /// Revoke a SCIM token; the next request with it is refused (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-tokens/:id", method = "delete")]
    async fn revoke_token(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        id: Path<String>,
    ) -> ApiResult<Json<TokenView>> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        let t = ts
            .revoke_token(&caller_actor(p, req), &id.0)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("token"),
                other => other.into(),
            })?;
        Ok(Json(TokenView::from(&t)))
    }

    /// List a tenant's SCIM extension schemas (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-schemas", method = "get")]
    async fn list_schemas(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        slug: Path<String>,
    ) -> ApiResult<Json<SchemaList>> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        let found = ts.scim_schemas().await?;
        let data: Vec<SchemaView> = found
            .into_iter()
            .map(|(resource_type, required, schema)| SchemaView {
                urn: schema
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned(),
                resource_type,
                required,
                schema,
            })
            .collect();
        let total = i64::try_from(data.len()).unwrap_or(i64::MAX);
        let limit = u32::try_from(data.len()).unwrap_or(u32::MAX).max(1);
        Ok(Json(SchemaList {
            data,
            total,
            page: 1,
            limit,
        }))
    }

    /// Register or replace a SCIM extension schema (RFC 7643 §3.3). Its attributes are then
    /// validated, stored, filterable, sortable and returned, and it appears in `/Schemas` and
    /// `/ResourceTypes` (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-schemas", method = "put")]
    async fn put_schema(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        body: Json<PutSchema>,
    ) -> ApiResult<Json<SchemaView>> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        let resource_type = match body.resource_type.as_ref() {
            "User" | "user" => "User",
            "Group" | "group" => "Group",
            _ => {
                return Err(ApiError::unprocessable(
                    "resource_type",
                    "expected User or Group",
                ));
            }
        };
        let schema = scim::schema::parse_extension(&body.schema)
            .map_err(|e| ApiError::unprocessable("schema", e.to_string()))?;
        let definition = serde_json::to_value(&schema)
            .map_err(|e| ApiError::unprocessable("schema", e.to_string()))?;
        ts.put_scim_schema(
            &caller_actor(p, req),
            &schema.id,
            resource_type,
            body.required,
            &definition,
        )
        .await?;
        Ok(Json(SchemaView {
            urn: schema.id,
            resource_type: resource_type.to_owned(),
            required: body.required,
            schema: definition,
        }))
    }

    /// Remove a SCIM extension schema (permission `scim_tokens.manage`).
    #[oai(path = "/api/v1/tenants/:slug/scim-schemas/:urn", method = "delete")]
    async fn delete_schema(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        slug: Path<String>,
        urn: Path<String>,
    ) -> ApiResult<Json<serde_json::Value>> {
        let p = auth.caller();
        p.require(Permission::ScimTokensManage)?;
        let ts = target_tenant(&state, p, Some(&slug.0)).await?;
        ts.delete_scim_schema(&caller_actor(p, req), &urn.0)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => ApiError::not_found("schema"),
                other => other.into(),
            })?;
        Ok(Json(serde_json::json!({ "deleted": urn.0 })))
    }
}
