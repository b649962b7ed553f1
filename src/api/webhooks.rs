//! Webhooks of a tenant: signed event deliveries with retries, every attempt visible, and
//! manual redelivery. How receivers verify a delivery is documented in `crate::webhooks`
//! and README.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::pagination::page_request;
use super::security::{Auth, caller_actor, target_tenant};
use super::types::Text;
use super::users::NoContent;
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::rfc3339;
use crate::store::{Delivery, TenantStore, Webhook, WebhookUpdate};
use base64::Engine;
use poem::Request;
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use rand::RngCore;

#[derive(Object)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Event types or patterns (`user.created`, `group.*`, `*`).
    pub event_types: Vec<String>,
    pub active: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.clone(),
            url: w.url.clone(),
            description: w.description.clone(),
            event_types: w.event_types.clone(),
            active: w.active,
            created_at: rfc3339(w.created_at),
            updated_at: rfc3339(w.updated_at),
        }
    }
}

#[derive(Object)]
pub struct CreatedWebhook {
    #[oai(flatten)]
    pub webhook: WebhookView,
    /// The signing secret. Shown this once.
    pub secret: String,
}

#[derive(Object)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    pub total: i64,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct CreateWebhook {
    /// https URL (http and private addresses only where the operator allows).
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Text,
    #[oai(validator(min_items = 1, max_items = 50))]
    pub event_types: Vec<Text>,
    #[oai(validator(max_length = 500))]
    pub description: Option<Text>,
}

#[derive(Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Option<Text>,
    #[oai(validator(min_items = 1, max_items = 50))]
    pub event_types: Option<Vec<Text>>,
    #[oai(validator(max_length = 500))]
    pub description: Option<Text>,
    /// Pause (false) or resume (true) deliveries.
    pub active: Option<bool>,
}

#[derive(Object)]
pub struct AttemptView {
    pub attempted_at: String,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

#[derive(Object)]
pub struct DeliveryView {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// The delivered JSON body.
    pub payload: serde_json::Value,
    /// `pending`, `succeeded` or `failed` (retries exhausted).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub history: Vec<AttemptView>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> Self {
        Self {
            id: d.id.clone(),
            event_id: d.event_id.clone(),
            event_type: d.event_type.clone(),
            payload: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::Null),
            status: d.status.clone(),
            attempts: d.attempts,
            next_attempt_at: (d.status == "pending").then(|| rfc3339(d.next_attempt_at)),
            last_status_code: d.last_status_code,
            last_error: d.last_error.clone(),
            created_at: rfc3339(d.created_at),
            history: d
                .history
                .iter()
                .map(|a| AttemptView {
                    attempted_at: rfc3339(a.attempted_at),
                    status_code: a.status_code,
                    error: a.error.clone(),
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }
    }
}

#[derive(Object)]
pub struct DeliveryList {
    pub data: Vec<DeliveryView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(ApiResponse)]
pub enum WebhookCreated {
    /// Created; the secret is shown once.
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>, #[oai(header = "Location")] String),
}

fn event_types(raw: &[Text]) -> ApiResult<Vec<String>> {
    let mut out = Vec::new();
    for (i, t) in raw.iter().enumerate() {
        let t = t.trim();
        if crate::events::expand(t).is_none() {
            return Err(ApiError::unprocessable(
                &format!("event_types[{i}]"),
                format!("unknown event type {t:?}"),
            ));
        }
        if !out.iter().any(|o: &String| o == t) {
            out.push(t.to_owned());
        }
    }
    Ok(out)
}

async fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    let url = url.trim();
    crate::webhooks::check_target(url, state.config.webhook_allow_private)
        .await
        .map_err(|e| ApiError::unprocessable("url", e))?;
    Ok(url.to_owned())
}

async fn load(ts: &TenantStore, id: &str) -> ApiResult<Webhook> {
    ts.get_webhook(id)
        .await?
        .ok_or_else(|| ApiError::not_found("webhook"))
}

pub struct WebhooksApi;

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// The tenant's webhooks (permission `webhooks.manage`).
    #[oai(path = "/api/v1/webhooks", method = "get")]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
    ) -> ApiResult<Json<WebhookList>> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let hooks = ts.list_webhooks().await?;
        Ok(Json(WebhookList {
            total: i64::try_from(hooks.len()).unwrap_or(0),
            data: hooks.iter().map(WebhookView::from).collect(),
        }))
    }

    /// Create a webhook (permission `webhooks.manage`). It receives events committed from now
    /// on; the signing secret is in this answer only.
    #[oai(path = "/api/v1/webhooks", method = "post")]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        body: Json<CreateWebhook>,
    ) -> ApiResult<WebhookCreated> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let url = check_url(&state, &body.url).await?;
        let types = event_types(&body.event_types)?;
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
        );
        let id = crate::store::new_public_id();
        let sealed = state
            .sealer
            .seal(&format!("webhook:{id}"), secret.as_bytes())
            .map_err(|e| ApiError::unprocessable("secret", e.to_string()))?;
        let hook = ts
            .create_webhook(
                &caller_actor(c, req),
                &id,
                &url,
                body.description.as_deref().map(str::trim).unwrap_or(""),
                &types,
                &sealed,
            )
            .await?;
        Ok(WebhookCreated::Created(
            Json(CreatedWebhook {
                webhook: WebhookView::from(&hook),
                secret,
            }),
            format!("/api/v1/webhooks/{id}"),
        ))
    }

    /// One webhook (permission `webhooks.manage`).
    #[oai(path = "/api/v1/webhooks/:id", method = "get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<Json<WebhookView>> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        Ok(Json(WebhookView::from(&load(&ts, &id.0).await?)))
    }

    /// Change a webhook (permission `webhooks.manage`).
    #[oai(path = "/api/v1/webhooks/:id", method = "patch")]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        body: Json<UpdateWebhook>,
    ) -> ApiResult<Json<WebhookView>> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let url = match &body.url {
            Some(u) => Some(check_url(&state, u).await?),
            None => None,
        };
        let types = body.event_types.as_deref().map(event_types).transpose()?;
        let hook = ts
            .update_webhook(
                &caller_actor(c, req),
                &id.0,
                WebhookUpdate {
                    url,
                    description: body.description.as_deref().map(|d| d.trim().to_owned()),
                    event_types: types,
                    active: body.active,
                },
            )
            .await?;
        Ok(Json(WebhookView::from(&hook)))
    }

    /// Delete a webhook and its delivery history (permission `webhooks.manage`).
    #[oai(path = "/api/v1/webhooks/:id", method = "delete")]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        ts.delete_webhook(&caller_actor(c, req), &id.0).await?;
        Ok(NoContent::Done)
    }

    /// A webhook's deliveries, newest first, each with every attempt (permission
    /// `webhooks.manage`).
    #[oai(path = "/api/v1/webhooks/:id/deliveries", method = "get")]
    async fn deliveries(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        page: Query<Option<u32>>,
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<DeliveryList>> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        load(&ts, &id.0).await?;
        let req = page_request(page.0, limit.0)?;
        let found = ts.list_deliveries(&id.0, req).await?;
        Ok(Json(DeliveryList {
            data: found.items.iter().map(DeliveryView::from).collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// Send a delivery again now (permission `webhooks.manage`).
    #[oai(
        path = "/api/v1/webhooks/:id/deliveries/:delivery_id/redeliver",
        method = "post"
    )]
    async fn redeliver(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        req: &Request,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        id: Path<String>,
        delivery_id: Path<String>,
    ) -> ApiResult<NoContent> {
        let c = auth.caller();
        c.require(Permission::WebhooksManage)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        ts.redeliver(&caller_actor(c, req), &id.0, &delivery_id.0)
            .await?;
        Ok(NoContent::Done)
    }
}
