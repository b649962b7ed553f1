//! Composition of every route and the middleware stack around them.

pub mod allow;
pub mod error;
pub mod middleware;
pub mod oauth;
pub mod saml;
pub mod scim;
pub mod tenancy;

use crate::app::AppState;
use middleware::{BodyLimit, Observe, TimeLimit};
use poem::http::header;
use poem::web::Data;
use poem::{Endpoint, EndpointExt, Response, Route, get, handler};

/// `GET /metrics`: Prometheus text format.
#[handler]
fn metrics(state: Data<&AppState>) -> Response {
    let (open, idle, max) = state.store.pool_state();
    state.metrics.set_pool(open, idle, max);
    Response::builder()
        .header(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(state.metrics.render())
}

/// The whole HTTP application.
pub fn app(state: AppState) -> impl Endpoint {
    let api = crate::api::service();
    let spec_json = api.spec_endpoint();
    let spec_yaml = api.spec_endpoint_yaml();
    let swagger = api.swagger_ui();
    let observe = Observe {
        metrics: state.metrics.clone(),
    };
    let body_limit = BodyLimit(state.config.body_limit_bytes);
    // SCIM Bulk carries up to its advertised maxPayloadSize; other SCIM requests are held to
    // the configured limit by the SCIM layer itself.
    let scim_limit = BodyLimit(
        state
            .config
            .body_limit_bytes
            .max(crate::provisioning::bulk::MAX_PAYLOAD),
    );
    let time_limit = TimeLimit(state.config.request_timeout);
    let rest = Route::new()
        .at("/metrics", get(metrics))
        .at("/openapi.json", spec_json)
        .at("/openapi.yaml", spec_yaml)
        .nest("/swagger", swagger)
        .nest("/", api.around(crate::api::security::keep_auth_failure))
        .with(body_limit);
    Route::new()
        .nest("/scim/v2", scim::routes(state.clone(), scim_limit))
        .nest("/saml", saml::routes())
        .nest("/oauth2", oauth::routes().with(BodyLimit(64 * 1024)))
        .at(
            "/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .nest("/", rest)
        .with(time_limit)
        .data(state)
        .with(observe)
}
