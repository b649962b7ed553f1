//! Health endpoints: unauthenticated, cheap, for load balancers and orchestrators.

use crate::app::AppState;
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::Tag;

#[derive(Object)]
pub struct Status {
    /// Always `ok`.
    pub status: String,
}

#[derive(Object)]
pub struct Liveness {
    /// Always `alive`.
    pub status: String,
    /// Current server time (RFC 3339).
    pub timestamp: String,
}

#[derive(Object)]
pub struct ReadinessChecks {
    /// `ok`, or `unavailable` when a round trip to the database failed.
    pub database: String,
    /// Whether the installation is in maintenance mode (the default tenant's setting).
    pub maintenance: bool,
}

#[derive(Object)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// The individual checks.
    pub checks: ReadinessChecks,
    /// The database engine (`sqlite` or `postgres`).
    pub backend: String,
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Ready to serve traffic.
    #[oai(status = 200)]
    Ready(Json<Readiness>),
    /// Not ready: the database is unreachable or maintenance mode is on.
    #[oai(status = 503)]
    NotReady(Json<Readiness>),
}

#[derive(Object)]
pub struct Version {
    /// Always `idhub`.
    pub product: String,
    /// The server version.
    pub version: String,
}

pub struct HealthApi;

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// Process is up.
    #[oai(path = "/health", method = "get")]
    async fn health(&self) -> Json<Status> {
        Json(Status {
            status: "ok".into(),
        })
    }

    /// Liveness: the process answers.
    #[oai(path = "/health/live", method = "get")]
    async fn live(&self) -> Json<Liveness> {
        Json(Liveness {
            status: "alive".into(),
            timestamp: crate::model::rfc3339(crate::model::now_micros()),
        })
    }

    /// Readiness: the database answers and maintenance mode is off.
    #[oai(path = "/health/ready", method = "get")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        let db_ok = state.store.ping().await.is_ok();
        let maintenance = if db_ok {
            matches!(
                state.store.tenant_by_id(&state.default_tenant).await,
                Ok(Some(t)) if t.settings.maintenance
            )
        } else {
            false
        };
        let ready = db_ok && !maintenance;
        let body = Json(Readiness {
            status: if ready { "ready" } else { "not_ready" }.into(),
            checks: ReadinessChecks {
                database: if db_ok { "ok" } else { "unavailable" }.into(),
                maintenance,
            },
            backend: state.store.backend().name().into(),
        });
        if ready {
            ReadyResponse::Ready(body)
        } else {
            ReadyResponse::NotReady(body)
        }
    }

    /// Product and version.
    #[oai(path = "/health/version", method = "get")]
    async fn version(&self) -> Json<Version> {
        Json(Version {
            product: "idhub".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        })
    }
}
