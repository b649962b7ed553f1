//! The REST API (poem-openapi): one file per tag; this module assembles the OpenAPI service.

pub mod audit;
pub mod auth;
pub mod error;
pub mod groups;
pub mod health;
pub mod mfa;
pub mod oauth_clients;
pub mod pagination;
pub mod roles;
pub mod scim_admin;
pub mod security;
pub mod sso;
pub mod tenants;
pub mod types;
pub mod users;
pub mod webhooks;

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum Tag {
    /// Liveness, readiness and version.
    Health,
    /// Sign-in, tokens, sessions and the caller's own account.
    Auth,
    /// Tenants (customer organisations).
    Tenants,
    /// Users of a tenant (the records SCIM provisions).
    Users,
    /// Groups of a tenant and their members.
    Groups,
    /// Roles and permissions.
    Roles,
    /// The audit log, the change events and the dashboard.
    Audit,
    /// SCIM tokens and extension schemas of a tenant.
    Scim,
    /// Webhooks and their deliveries.
    Webhooks,
    /// SAML single sign-on: connections, login-flow logs, SP keys, email domains.
    Sso,
    /// Applications (OAuth 2.0 / OpenID Connect clients) of the sign-in bridge.
    Apps,
}

pub type Apis = (
    health::HealthApi,
    auth::AuthApi,
    mfa::MfaApi,
    tenants::TenantsApi,
    users::UsersApi,
    groups::GroupsApi,
    roles::RolesApi,
    audit::AuditApi,
    webhooks::WebhooksApi,
    scim_admin::ScimAdminApi,
    sso::SsoApi,
    oauth_clients::OAuthClientsApi,
);

/// The OpenAPI service with every REST operation. The committed `docs/openapi.json` must equal
/// `service().spec()` (a test checks it; `idhub openapi > docs/openapi.json` regenerates it).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            health::HealthApi,
            auth::AuthApi,
            mfa::MfaApi,
            tenants::TenantsApi,
            users::UsersApi,
            groups::GroupsApi,
            roles::RolesApi,
            audit::AuditApi,
            webhooks::WebhooksApi,
            scim_admin::ScimAdminApi,
            sso::SsoApi,
            oauth_clients::OAuthClientsApi,
        ),
        "idhub",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "SCIM 2.0 and SAML 2.0 enterprise provisioning hub: administration REST API. \
         Authenticate with a JWT access token from POST /api/v1/auth/login, an API key \
         (X-Api-Key), or HTTP Basic. Each operation names the permission it requires; \
         operators select another tenant with the X-Idhub-Tenant header.",
    )
}
