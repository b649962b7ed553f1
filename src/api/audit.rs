//! The audit log (read only: nothing in the API updates or deletes it), the pull events API
//! over the change log, and the dashboard counts.

use super::Tag;
use super::error::{ApiError, ApiResult};
use super::pagination::page_request;
use super::security::{Auth, target_tenant};
use crate::app::AppState;
use crate::auth::rbac::Permission;
use crate::model::{AuditEvent, rfc3339};
use crate::store::{AuditQuery, EventCursor};
use poem::web::Data;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

#[derive(Object)]
pub struct AuditView {
    pub id: String,
    pub occurred_at: String,
    /// `user`, `api_key`, `scim_token`, `cli`, `system` or `anonymous`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// `success` or `failure`.
    pub outcome: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

impl From<&AuditEvent> for AuditView {
    fn from(e: &AuditEvent) -> Self {
        Self {
            id: e.id.clone(),
            occurred_at: rfc3339(e.occurred_at),
            actor_type: e.actor_type.clone(),
            actor_id: e.actor_id.clone(),
            action: e.action.clone(),
            target_type: e.target_type.clone(),
            target_id: e.target_id.clone(),
            outcome: e.outcome.clone(),
            ip: e.ip.clone(),
            user_agent: e.user_agent.clone(),
            request_id: e.request_id.clone(),
            details: e.details.clone(),
        }
    }
}

#[derive(Object)]
pub struct AuditList {
    pub data: Vec<AuditView>,
    pub total: i64,
    pub page: u32,
    pub limit: u32,
}

#[derive(Object)]
pub struct EventView {
    /// Resume after this event with `after=<cursor>`.
    pub cursor: String,
    /// e.g. `user.created`, `group.updated`, `user.deleted`.
    #[oai(rename = "type")]
    pub ty: String,
    pub resource_type: String,
    /// The resource's id; for `membership.*`, `<group id>/<member id>`.
    pub resource_id: String,
    /// The resource's version after the change (its ETag is `W/"<version>"`).
    pub version: i64,
    pub occurred_at: String,
}

#[derive(Object)]
pub struct EventPage {
    pub data: Vec<EventView>,
    /// Pass as `after` for the next page (the same cursor when nothing new arrived).
    pub next_cursor: String,
    /// More events are available now.
    pub has_more: bool,
}

#[derive(Object)]
pub struct DashboardView {
    pub users: i64,
    pub active_users: i64,
    pub groups: i64,
    /// SAML connections (none until SAML SSO is configured).
    pub connections: i64,
    pub scim_writes_24h: i64,
    pub scim_writes_7d: i64,
    pub failed_logins_24h: i64,
    pub successful_logins_24h: i64,
}

fn parse_time(field: &str, v: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(v) = v else { return Ok(None) };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::bad_request(field, "expected an RFC 3339 timestamp"))?;
    Ok(Some(
        i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX),
    ))
}

fn short(field: &str, v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(s) if s.chars().count() > 200 => {
            Err(ApiError::bad_request(field, "at most 200 characters"))
        }
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

pub struct AuditApi;

#[OpenApi(tag = "Tag::Audit")]
impl AuditApi {
    /// Query the audit log, newest first (permission `audit.read`).
    #[oai(path = "/api/v1/audit", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn audit(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        /// Operators: the tenant to act on (slug).
        #[oai(name = "X-Idhub-Tenant")]
        tenant: Header<Option<String>>,
        /// Actor id (a user, API key or SCIM token id).
        actor: Query<Option<String>>,
        /// An action (`user.create`), or a prefix ending in `*` (`auth.*`).
        action: Query<Option<String>>,
        /// Target id.
        target: Query<Option<String>>,
        /// `success` or `failure`.
        outcome: Query<Option<String>>,
        /// From this time (RFC 3339, inclusive).
        from: Query<Option<String>>,
        /// Until this time (RFC 3339, exclusive).
        to: Query<Option<String>>,
        page: Query<Option<u32>>,
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<AuditList>> {
        let c = auth.caller();
        c.require(Permission::AuditRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let req = page_request(page.0, limit.0)?;
        let outcome = short("outcome", outcome.0)?;
        if let Some(o) = &outcome
            && o != "success"
            && o != "failure"
        {
            return Err(ApiError::bad_request(
                "outcome",
                "expected success or failure",
            ));
        }
        let q = AuditQuery {
            actor_id: short("actor", actor.0)?,
            action: short("action", action.0)?,
            target_id: short("target", target.0)?,
            outcome,
            from: parse_time("from", from.0.as_deref())?,
            to: parse_time("to", to.0.as_deref())?,
        };
        let found = ts.query_audit(&q, req).await?;
        Ok(Json(AuditList {
            data: found.items.iter().map(AuditView::from).collect(),
            total: found.total,
            page: req.page,
            limit: req.limit,
        }))
    }

    /// The change log as events, in order, after a cursor (permission `events.read`). Start
    /// without `after`; keep the `next_cursor` of each answer: no event is ever skipped, even
    /// one whose transaction commits after a later-numbered one.
    #[oai(path = "/api/v1/events", method = "get")]
    async fn events(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
        /// The `next_cursor` of the previous page.
        after: Query<Option<String>>,
        /// Comma-separated event types, e.g. `user.created,user.deleted`.
        types: Query<Option<String>>,
        /// Page size, 1-1000 (default 100).
        limit: Query<Option<u32>>,
    ) -> ApiResult<Json<EventPage>> {
        let c = auth.caller();
        c.require(Permission::EventsRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let cursor = match after.0.as_deref() {
            None | Some("") => EventCursor::default(),
            Some(s) => EventCursor::decode(s)
                .ok_or_else(|| ApiError::bad_request("after", "not a cursor from this API"))?,
        };
        let limit = limit.0.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(ApiError::bad_request(
                "limit",
                "limit must be between 1 and 1000",
            ));
        }
        let mut kinds = Vec::new();
        if let Some(t) = types.0.as_deref() {
            for part in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let ks = crate::events::expand(part).ok_or_else(|| {
                    ApiError::bad_request("types", format!("unknown event type {part:?}"))
                })?;
                for k in ks {
                    if !kinds.contains(&k) {
                        kinds.push(k);
                    }
                }
            }
        }
        let rows = ts.events_after(cursor, &kinds, limit + 1).await?;
        let has_more = rows.len() > limit as usize;
        let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = rows.last().map_or(cursor, |(c, _)| *c);
        Ok(Json(EventPage {
            data: rows
                .iter()
                .map(|(cur, ch)| EventView {
                    cursor: cur.encode(),
                    ty: crate::events::event_type(&ch.resource_type, &ch.operation),
                    resource_type: ch.resource_type.clone(),
                    resource_id: ch.resource_id.clone(),
                    version: ch.resource_version,
                    occurred_at: rfc3339(ch.occurred_at),
                })
                .collect(),
            next_cursor: next.encode(),
            has_more,
        }))
    }

    /// Counts for the tenant dashboard (permission `audit.read`).
    #[oai(path = "/api/v1/dashboard", method = "get")]
    async fn dashboard(
        &self,
        state: Data<&AppState>,
        auth: Auth,
        #[oai(name = "X-Idhub-Tenant")] tenant: Header<Option<String>>,
    ) -> ApiResult<Json<DashboardView>> {
        let c = auth.caller();
        c.require(Permission::AuditRead)?;
        let ts = target_tenant(&state, c, tenant.0.as_deref()).await?;
        let d = ts.dashboard().await?;
        Ok(Json(DashboardView {
            users: d.users,
            active_users: d.active_users,
            groups: d.groups,
            connections: 0,
            scim_writes_24h: d.scim_writes_24h,
            scim_writes_7d: d.scim_writes_7d,
            failed_logins_24h: d.failed_logins_24h,
            successful_logins_24h: d.successful_logins_24h,
        }))
    }
}
