//! SCIM 2.0 over HTTP (RFC 7644 §3): routing, bearer authentication, the SCIM wire format
//! (`application/scim+json`, RFC 7644 §3.12 errors, ETag headers). Thin: every operation is
//! in `provisioning`.

use crate::app::AppState;
use crate::http::middleware::RequestId;
use crate::model::{Actor, PrincipalKind};
use crate::provisioning::query::{Kind, ListParams};
use crate::provisioning::{
    self, Precondition, Projection, Reply, ScimCtx, bulk, discovery, groups, users,
};
use poem::http::{HeaderValue, StatusCode, header};
use poem::web::{Data, Path};
use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Route, handler,
};
use scim::{ScimError, ScimType};
use serde_json::Value;
use std::sync::Arc;

pub const CONTENT_TYPE: &str = "application/scim+json";

fn scim_response(status: u16, body: Option<&Value>) -> Response {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
    match body {
        Some(b) => {
            r = r.header(header::CONTENT_TYPE, CONTENT_TYPE);
            r.body(b.to_string())
        }
        None => r.finish(),
    }
}

/// A SCIM error as an HTTP response (RFC 7644 §3.12).
pub fn error_response(e: &ScimError) -> Response {
    let mut r = scim_response(e.status, Some(&e.to_json()));
    if e.status == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"idhub\""),
        );
    }
    r
}

fn reply_response(reply: Result<Reply, ScimError>) -> Response {
    match reply {
        Err(e) => error_response(&e),
        Ok(r) => {
            let mut resp = scim_response(r.status, r.body.as_ref());
            if let Some(tag) = r.etag.and_then(|t| HeaderValue::from_str(&t).ok()) {
                resp.headers_mut().insert(header::ETAG, tag);
            }
            if r.status == 201
                && let Some(loc) = r.location.and_then(|l| HeaderValue::from_str(&l).ok())
            {
                resp.headers_mut().insert(header::LOCATION, loc);
            }
            resp
        }
    }
}

fn json_response(v: Result<Value, ScimError>) -> Response {
    match v {
        Ok(body) => scim_response(200, Some(&body)),
        Err(e) => error_response(&e),
    }
}

/// Reads a JSON body: `application/scim+json` or `application/json` (RFC 7644 §3.1), at most
/// `limit` bytes.
async fn read_json(
    req: &Request,
    body: Body,
    limit: usize,
    strict: bool,
) -> Result<Value, ScimError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match ct.as_deref() {
        Some("application/scim+json") | Some("application/json") => {}
        None if !strict => {}
        other => {
            return Err(ScimError::status(
                415,
                format!(
                    "requests must be application/scim+json or application/json, not {}",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    }
    let bytes = body
        .into_bytes_limit(limit)
        .await
        .map_err(|_| ScimError::status(413, format!("the request body exceeds {limit} bytes")))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ScimError::bad_request(ScimType::InvalidSyntax, format!("malformed JSON: {e}"))
    })
}

fn header_pre(req: &Request, name: header::HeaderName) -> Option<Precondition> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(Precondition::parse)
}

fn params(req: &Request) -> ListParams {
    ListParams::from_pairs(req.params::<Vec<(String, String)>>().unwrap_or_default())
}

fn projection(ctx: &ScimCtx, kind: Kind, req: &Request) -> Result<Projection, ScimError> {
    let p = params(req);
    let schema = match kind {
        Kind::Users => &ctx.users,
        Kind::Groups => &ctx.groups,
    };
    Projection::parse(
        schema,
        p.attributes.as_deref(),
        p.excluded_attributes.as_deref(),
        ctx.profile,
    )
}

// ---- Users ----

#[handler]
async fn list_users(req: &Request, ctx: Data<&ScimCtx>) -> Response {
    json_response(provisioning::query::list(&ctx, Kind::Users, &params(req)).await)
}

#[handler]
async fn list_groups(req: &Request, ctx: Data<&ScimCtx>) -> Response {
    json_response(provisioning::query::list(&ctx, Kind::Groups, &params(req)).await)
}

async fn search_body(
    req: &Request,
    body: Body,
    ctx: &ScimCtx,
    limit: usize,
) -> Result<ListParams, ScimError> {
    let v = read_json(req, body, limit, ctx.profile.is_strict()).await?;
    ListParams::from_search_body(&v, ctx.profile.is_strict())
}

#[handler]
async fn search_users(
    req: &Request,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    match search_body(req, body, &ctx, limit.0.0).await {
        Ok(p) => json_response(provisioning::query::list(&ctx, Kind::Users, &p).await),
        Err(e) => error_response(&e),
    }
}

#[handler]
async fn search_groups(
    req: &Request,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    match search_body(req, body, &ctx, limit.0.0).await {
        Ok(p) => json_response(provisioning::query::list(&ctx, Kind::Groups, &p).await),
        Err(e) => error_response(&e),
    }
}

#[handler]
async fn search_root(
    req: &Request,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    match search_body(req, body, &ctx, limit.0.0).await {
        Ok(p) => json_response(provisioning::query::search_all(&ctx, &p).await),
        Err(e) => error_response(&e),
    }
}

#[handler]
async fn create_user(
    req: &Request,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Users, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        users::create(&ctx, &v, &proj).await
    };
    reply_response(r.await)
}

#[handler]
async fn get_user(req: &Request, Path(id): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Users, req)?;
        users::get(
            &ctx,
            &id,
            &proj,
            header_pre(req, header::IF_NONE_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn put_user(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Users, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        users::replace(
            &ctx,
            &id,
            &v,
            &proj,
            header_pre(req, header::IF_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn patch_user(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Users, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        users::patch(
            &ctx,
            &id,
            &v,
            &proj,
            header_pre(req, header::IF_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn delete_user(req: &Request, Path(id): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    reply_response(users::delete(&ctx, &id, header_pre(req, header::IF_MATCH).as_ref()).await)
}

// ---- Groups ----

#[handler]
async fn create_group(
    req: &Request,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Groups, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        groups::create(&ctx, &v, &proj).await
    };
    reply_response(r.await)
}

#[handler]
async fn get_group(req: &Request, Path(id): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Groups, req)?;
        groups::get(
            &ctx,
            &id,
            &proj,
            header_pre(req, header::IF_NONE_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn put_group(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Groups, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        groups::replace(
            &ctx,
            &id,
            &v,
            &proj,
            header_pre(req, header::IF_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn patch_group(
    req: &Request,
    Path(id): Path<String>,
    body: Body,
    ctx: Data<&ScimCtx>,
    limit: Data<&BodyLimit>,
) -> Response {
    let r = async {
        let proj = projection(&ctx, Kind::Groups, req)?;
        let v = read_json(req, body, limit.0.0, ctx.profile.is_strict()).await?;
        groups::patch(
            &ctx,
            &id,
            &v,
            &proj,
            header_pre(req, header::IF_MATCH).as_ref(),
        )
        .await
    };
    reply_response(r.await)
}

#[handler]
async fn delete_group(req: &Request, Path(id): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    reply_response(groups::delete(&ctx, &id, header_pre(req, header::IF_MATCH).as_ref()).await)
}

// ---- Bulk, discovery, /Me ----

#[handler]
async fn bulk_request(req: &Request, body: Body, ctx: Data<&ScimCtx>) -> Response {
    let r = async {
        let v = read_json(req, body, bulk::MAX_PAYLOAD, ctx.profile.is_strict())
            .await
            .map_err(|e| {
                if e.status == 413 {
                    ScimError::status(
                        413,
                        format!(
                            "the bulk request exceeds maxPayloadSize ({} bytes)",
                            bulk::MAX_PAYLOAD
                        ),
                    )
                } else {
                    e
                }
            })?;
        bulk::run(&ctx, &v).await
    };
    json_response(r.await)
}

#[handler]
async fn service_provider_config(ctx: Data<&ScimCtx>) -> Response {
    json_response(Ok(discovery::service_provider_config(&ctx)))
}

#[handler]
async fn resource_types(ctx: Data<&ScimCtx>) -> Response {
    json_response(Ok(discovery::resource_types(&ctx)))
}

#[handler]
async fn resource_type(Path(name): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    json_response(discovery::resource_type(&ctx, &name))
}

#[handler]
async fn list_schemas(ctx: Data<&ScimCtx>) -> Response {
    json_response(Ok(discovery::schemas(&ctx)))
}

#[handler]
async fn get_schema(Path(urn): Path<String>, ctx: Data<&ScimCtx>) -> Response {
    json_response(discovery::schema(&ctx, &urn))
}

/// `/Me` (RFC 7644 §3.11): idhub's SCIM tokens belong to a tenant, not to a user.
#[handler]
async fn me() -> Response {
    error_response(&ScimError::status(
        501,
        "/Me is not supported: SCIM tokens are not bound to a user",
    ))
}

/// The size limit for single-resource requests (the configured body limit).
#[derive(Clone, Copy)]
struct BodyLimit(usize);

/// Authenticates the bearer token, builds the [`ScimCtx`], and renders routing errors in the
/// SCIM error format.
struct ScimLayer {
    state: AppState,
}

type Extensions = Arc<Vec<(String, bool, Value)>>;

/// A tenant's resource schemas, built once per version of its extension list.
type BuiltSchemas = (
    Extensions,
    Arc<scim::schema::ResourceSchema>,
    Arc<scim::schema::ResourceSchema>,
);

impl<E: Endpoint> Middleware<E> for ScimLayer {
    type Output = ScimLayerEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ScimLayerEndpoint {
            inner: ep,
            state: self.state.clone(),
            built: moka::future::Cache::new(10_000),
        }
    }
}

struct ScimLayerEndpoint<E> {
    inner: E,
    state: AppState,
    built: moka::future::Cache<crate::model::TenantId, BuiltSchemas>,
}

fn unauthorized(detail: &str) -> Response {
    error_response(&ScimError::status(401, detail))
}

impl<E: Endpoint> ScimLayerEndpoint<E> {
    async fn context(&self, req: &Request) -> Result<ScimCtx, Response> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().to_owned())
            })
            .ok_or_else(|| unauthorized("a bearer token is required"))?;
        let store = &self.state.store;
        let err = |e| error_response(&provisioning::errors::from_store(e, "tenant"));
        let auth = store
            .authenticate_token(&token)
            .await
            .map_err(err)?
            .ok_or_else(|| unauthorized("the bearer token is invalid, expired or revoked"))?;
        let PrincipalKind::ScimToken { token_id } = &auth.principal.kind else {
            return Err(unauthorized("not a SCIM token"));
        };
        let tenant = store
            .tenant_by_id(&auth.principal.tenant_id)
            .await
            .map_err(err)?
            .ok_or_else(|| unauthorized("the token's tenant no longer exists"))?;
        let ts = store.tenant(tenant.id.clone());
        let extensions = ts.scim_schemas_cached().await.map_err(err)?;
        let (users, groups) = match self.built.get(&tenant.id).await {
            Some((ext, u, g)) if Arc::ptr_eq(&ext, &extensions) => (u, g),
            _ => {
                let (u, g) = provisioning::tenant_schemas(&extensions);
                let (u, g) = (Arc::new(u), Arc::new(g));
                self.built
                    .insert(
                        tenant.id.clone(),
                        (extensions.clone(), u.clone(), g.clone()),
                    )
                    .await;
                (u, g)
            }
        };
        let profile = provisioning::profile_of(tenant.settings.scim_profile);
        Ok(ScimCtx {
            admin: false,
            store: ts,
            profile,
            soft_delete: tenant.settings.soft_delete,
            users,
            groups,
            actor: Actor {
                actor_type: "scim_token".into(),
                actor_id: Some(token_id.clone()),
                ip: req
                    .remote_addr()
                    .as_socket_addr()
                    .map(|a| a.ip().to_string()),
                user_agent: req
                    .headers()
                    .get(header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.chars().take(512).collect()),
                request_id: req.extensions().get::<RequestId>().map(|r| r.0.clone()),
            },
            base: format!("{}/scim/v2", self.state.config.public_url),
        })
    }
}

impl<E: Endpoint> Endpoint for ScimLayerEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let ctx = match self.context(&req).await {
            Ok(c) => c,
            Err(resp) => return Ok(resp),
        };
        req.extensions_mut().insert(ctx);
        req.extensions_mut()
            .insert(BodyLimit(self.state.config.body_limit_bytes));
        match self.inner.call(req).await {
            Ok(r) => Ok(r.into_response()),
            Err(e) if e.is_from_response() => Err(e),
            Err(e) => {
                let status = e.status().as_u16();
                let detail = match status {
                    404 => "no such SCIM endpoint".to_owned(),
                    405 => "method not allowed on this SCIM endpoint".to_owned(),
                    413 => format!(
                        "the request body exceeds the limit ({} bytes for Bulk)",
                        bulk::MAX_PAYLOAD
                    ),
                    _ => e.to_string(),
                };
                let mut resp = error_response(&ScimError::status(status, detail));
                if let Some(p) = e.data::<poem::PathPattern>() {
                    resp.set_data(p.clone());
                }
                Ok(resp)
            }
        }
    }
}

/// The SCIM routes, to be nested at `/scim/v2`.
pub fn routes(state: AppState, limit: crate::http::middleware::BodyLimit) -> impl Endpoint {
    Route::new()
        .at("/Users", poem::get(list_users).post(create_user))
        .at("/Users/.search", poem::post(search_users))
        .at(
            "/Users/:id",
            poem::get(get_user)
                .put(put_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .at("/Groups", poem::get(list_groups).post(create_group))
        .at("/Groups/.search", poem::post(search_groups))
        .at(
            "/Groups/:id",
            poem::get(get_group)
                .put(put_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .at("/.search", poem::post(search_root))
        .at("/Bulk", poem::post(bulk_request))
        .at("/ServiceProviderConfig", poem::get(service_provider_config))
        .at("/ResourceTypes", poem::get(resource_types))
        .at("/ResourceTypes/:name", poem::get(resource_type))
        .at("/Schemas", poem::get(list_schemas))
        .at("/Schemas/:urn", poem::get(get_schema))
        .at("/Me", me)
        .with(limit)
        .with(ScimLayer { state })
}
