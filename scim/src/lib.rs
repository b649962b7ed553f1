//! SCIM 2.0 protocol logic for idhub (RFC 7643 core schema, RFC 7644 protocol).
//!
//! Pure: no database, no HTTP framework, no clock. The server turns these types into SQL and
//! HTTP responses.
//!
//! - [`schema`]: attribute definitions and resolution (RFC 7643 §7).
//! - [`resource`]: validating and normalising resources on input (RFC 7643 §2, §7).
//! - [`projection`]: `attributes` / `excludedAttributes` and `returned` (RFC 7644 §3.4.2.5).
//! - [`filter`]: filters resolved against a schema into a typed expression (RFC 7644 §3.4.2.2).
//! - [`patch`]: PATCH operations (RFC 7644 §3.5.2).
//! - [`fastpath`]: the common filter and PATCH-path shapes without the full grammar.
//! - [`profile`]: per-tenant compatibility with real identity providers.

pub mod error;
pub mod fastpath;
pub mod filter;
pub mod patch;
pub mod profile;
pub mod projection;
pub mod resource;
pub mod schema;
pub mod urn;
pub mod value;

pub use error::{ScimError, ScimType};
pub use profile::Profile;
