//! The REST API (poem-openapi): one file per tag; this module assembles the OpenAPI service.

pub mod error;
pub mod health;
pub mod pagination;
pub mod scim_admin;
pub mod tenants;
pub mod types;

use poem_openapi::auth::Basic;
use poem_openapi::{OpenApiService, SecurityScheme, Tags};

#[derive(Tags)]
pub enum Tag {
    /// Liveness, readiness and version.
    Health,
    /// Tenants (customer organisations).
    Tenants,
    /// SCIM tokens and extension schemas of a tenant.
    Scim,
}

/// HTTP Basic with an administrator's user name and password.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct AdminBasic(Basic);

pub type Apis = (
    health::HealthApi,
    tenants::TenantsApi,
    scim_admin::ScimAdminApi,
);

/// The OpenAPI service with every REST operation. The committed `docs/openapi.json` must equal
/// `service().spec()` (a test checks it; `idhub openapi > docs/openapi.json` regenerates it).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            tenants::TenantsApi,
            scim_admin::ScimAdminApi,
        ),
        "idhub",
        env!("CARGO_PKG_VERSION"),
    )
    .description("SCIM 2.0 and SAML 2.0 enterprise provisioning hub: administration REST API.")
}
