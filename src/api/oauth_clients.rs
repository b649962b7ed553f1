//! Applications (OAuth 2.0 clients) of the OIDC bridge: exact redirect URIs, allowed scopes,
//! a hashed secret shown once (confidential clients) or none (public clients, PKCE required).
//! A tenant's client signs in only that tenant's users; a global client (operators) any
//! tenant's. Permission `apps.manage`.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use super::users::NoContent;
use crate::app::AppState;
use crate::auth::Caller;
use crate::auth::rbac::Permission;
use crate::model::rfc3339;
use crate::oauth::{SCOPES, flow, valid_redirect_uri};
use crate::store::hash_token;
use crate::store::oauth::OAuthClient;
use crate::store::{StoreError, TenantStore};
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

#[derive(Object)]
pub struct ClientView {
    /// The `client_id`.
    pub id: String,
    pub name: String,
    /// Usable with every tenant's connections (operators only).
    pub global: bool,
    /// No secret: PKCE (S256) is required.
    pub public: bool,
    /// Compared exactly at authorization and token time.
    pub redirect_uris: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&OAuthClient> for ClientView {
    fn from(c: &OAuthClient) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            global: c.tenant_id.is_none(),
            public: c.secret_hash.is_none(),
            redirect_uris: c.redirect_uris.clone(),
            allowed_scopes: c.allowed_scopes.clone(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Object)]
pub struct CreatedClient {
    #[oai(flatten)]
    pub client: ClientView,
    /// The client secret (confidential clients). Shown this once.
    #[oai(skip_serializing_if_is_none)]
    pub client_secret: Option<String>,
}

#[derive(Object)]
pub struct ClientList {
    pub data: Vec<ClientView>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateClient {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    /// https URLs (http only on loopback), no fragment.
    #[oai(validator(min_items = 1, max_items = 20))]
    pub redirect_uris: Vec<Text>,
    /// Among openid, profile, email, groups, offline_access (default: openid profile email
    /// offline_access).
    #[oai(validator(min_items = 1, max_items = 5))]
    pub allowed_scopes: Option<Vec<Text>>,
    /// A public client (SPA, native app) has no secret and must use PKCE.
    pub public: Option<bool>,
    /// A client for every tenant (operators only).
    pub global: Option<bool>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateClient {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Option<Text>,
    #[oai(validator(min_items = 1, max_items = 20))]
    pub redirect_uris: Option<Vec<Text>>,
    #[oai(validator(min_items = 1, max_items = 5))]
    pub allowed_scopes: Option<Vec<Text>>,
}

#[derive(ApiResponse)]
pub enum ClientCreated {
    /// Created; a confidential client's secret is shown once.
    #[oai(status = 201)]
    Created(Json<CreatedClient>, #[oai(header = "Location")] String),
}

fn redirect_uris(raw: &[Text]) -> ApiResult<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (i, u) in raw.iter().enumerate() {
        let u = u.trim();
        if !valid_redirect_uri(u) {
            return Err(ApiError::unprocessable(
                &format!("redirect_uris[{i}]"),
                "must be an absolute https URL (http only on loopback) without a fragment",
            ));
        }
        if !out.iter().any(|o| o == u) {
            out.push(u.to_owned());
        }
    }
    Ok(out)
}

fn scopes(raw: Option<&[Text]>) -> ApiResult<Vec<String>> {
    let Some(raw) = raw else {
        return Ok(["openid", "profile", "email", "offline_access"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect());
    };
    let mut out: Vec<String> = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        if !SCOPES.contains(&s.trim()) {
            return Err(ApiError::unprocessable(
                &format!("allowed_scopes[{i}]"),
                format!("unknown scope; known: {}", SCOPES.join(", ")),
            ));
        }
        if !out.iter().any(|o| o == s.trim()) {
            out.push(s.trim().to_owned());
        }
    }
    Ok(out)
}

/// A client the caller may manage in `ts`: the tenant's own, or (operators) a global one.
async fn manageable(
    state: &AppState,
    c: &Caller,
    ts: &TenantStore,
    id: &str,
) -> ApiResult<OAuthClient> {
    let client = state
        .store
        .oauth_client(id)
        .await?
        .ok_or_else(|| ApiError::not_found("client"))?;
    let ok = match &client.tenant_id {
        Some(t) => t == ts.tenant_id(),
        None => c.operator,
    };
    if !ok {
        return Err(ApiError::not_found("client"));
    }
    Ok(client)
}

fn not_found(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::not_found("client"),
        e => e.into(),
    }
}

pub struct OAuthClientsApi;

#[OpenApi(tag = "Tag::Apps")]
impl OAuthClientsApi {
    /// The tenant's applications, and for operators the global ones (permission
    /// `apps.manage`).
    #[oai(path = "/api/v1/oauth/clients", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
    ) -> ApiResult<Json<ClientList>> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let mut all = ts.oauth_clients().await?;
        if c.operator {
            all.extend(state.store.global_oauth_clients().await?);
        }
        Ok(Json(ClientList {
            data: all.iter().map(ClientView::from).collect(),
        }))
    }

    /// Register an application (permission `apps.manage`; `global` needs an operator).
    #[oai(path = "/api/v1/oauth/clients", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<CreateClient>,
    ) -> ApiResult<ClientCreated> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let global = body.global.unwrap_or(false);
        if global && !c.operator {
            return Err(ApiError::forbidden(
                "only operators register global clients",
            ));
        }
        let secret = (!body.public.unwrap_or(false)).then(flow::new_client_secret);
        let client = OAuthClient {
            id: format!(
                "idh_client_{}",
                crate::store::new_public_id().replace('-', "")
            ),
            tenant_id: None,
            name: body.name.trim().to_owned(),
            secret_hash: secret.as_deref().map(hash_token),
            redirect_uris: redirect_uris(&body.redirect_uris)?,
            allowed_scopes: scopes(body.allowed_scopes.as_deref())?,
            created_at: 0,
            updated_at: 0,
        };
        let stored = ts
            .create_oauth_client(&caller_actor(c, req), &client, global)
            .await?;
        Ok(ClientCreated::Created(
            Json(CreatedClient {
                client: ClientView::from(&stored),
                client_secret: secret,
            }),
            format!("/api/v1/oauth/clients/{}", stored.id),
        ))
    }

    /// One application (permission `apps.manage`).
    #[oai(path = "/api/v1/oauth/clients/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<ClientView>> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let client = manageable(&state, c, &ts, &id).await?;
        Ok(Json(ClientView::from(&client)))
    }

    /// Change an application's name, redirect URIs or scopes (permission `apps.manage`).
    #[oai(path = "/api/v1/oauth/clients/:id", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        body: Json<UpdateClient>,
    ) -> ApiResult<Json<ClientView>> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let mut client = manageable(&state, c, &ts, &id).await?;
        if let Some(n) = &body.name {
            client.name = n.trim().to_owned();
        }
        if let Some(r) = &body.redirect_uris {
            client.redirect_uris = redirect_uris(r)?;
        }
        if let Some(s) = &body.allowed_scopes {
            client.allowed_scopes = scopes(Some(s))?;
        }
        let stored = ts
            .update_oauth_client(&caller_actor(c, req), &client, c.operator)
            .await
            .map_err(not_found)?;
        Ok(Json(ClientView::from(&stored)))
    }

    /// Replace a confidential client's secret; the old one stops working at once (permission
    /// `apps.manage`).
    #[oai(path = "/api/v1/oauth/clients/:id/rotate-secret", method = "post")]
    async fn rotate_secret(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<CreatedClient>> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let mut client = manageable(&state, c, &ts, &id).await?;
        if client.secret_hash.is_none() {
            return Err(ApiError::unprocessable(
                "public",
                "a public client has no secret",
            ));
        }
        let secret = flow::new_client_secret();
        client.secret_hash = Some(hash_token(&secret));
        let stored = ts
            .update_oauth_client(&caller_actor(c, req), &client, c.operator)
            .await
            .map_err(not_found)?;
        Ok(Json(CreatedClient {
            client: ClientView::from(&stored),
            client_secret: Some(secret),
        }))
    }

    /// Delete an application; its codes and refresh tokens go with it (permission
    /// `apps.manage`).
    #[oai(path = "/api/v1/oauth/clients/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::AppsManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        manageable(&state, c, &ts, &id).await?;
        ts.delete_oauth_client(&caller_actor(c, req), &id, c.operator)
            .await
            .map_err(not_found)?;
        Ok(NoContent::Done)
    }
}
