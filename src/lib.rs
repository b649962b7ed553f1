//! idhub: a SCIM 2.0 and SAML 2.0 enterprise provisioning hub.
//!
//! `main.rs` only parses the command line and calls into [`cli`]; everything else lives here
//! so integration tests build the very same application.

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod oauth;
pub mod provisioning;
pub mod sso;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod webhooks;
