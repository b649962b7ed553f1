//! The integration suite: the real server on SQLite and on PostgreSQL, driven over HTTP, and
//! the real binary driven as an operator would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

mod admin_api;
mod admin_auth;
mod admin_walk;
mod cache;
mod cli;
mod cluster;
mod conformance;
mod http_basics;
mod oidc;
mod openapi;
mod saml;
mod scim_basics;
mod scim_bulk;
mod scim_compat;
mod scim_groups;
mod scim_query;
mod scim_users;
mod store_isolation;
mod store_writes;
mod tenancy;
mod tenants_api;
mod webhooks;
