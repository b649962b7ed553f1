//! SAML 2.0 protocol logic for idhub (Web Browser SSO profile and Single Logout, SP side).
//!
//! Pure: validation receives its configuration, its clock and its signature-algorithm
//! allow-list explicitly, so a test can fix the time and no caller can forget a check. No I/O.
//! XML-DSig is delegated to samael (libxmlsec1); everything read after verification comes from
//! samael's reduced, signed-only document.
//!
//! Entry points: [`validate_response`] (ACS), [`authn_request_redirect`] (login),
//! [`IdpMetadata::parse`] / [`sp_metadata`], and the logout functions in [`logout`].

pub mod algorithms;
pub mod cert;
pub mod clock;
mod conditions;
#[cfg(test)]
mod conformance_tests;
mod decrypt;
mod instant;
pub mod keys;
pub mod logout;
pub mod metadata;
mod prescan;
pub mod reason;
mod redirect;
pub mod request;
pub mod response;
#[cfg(any(test, feature = "test-idp"))]
pub mod testidp;
mod verify;
mod xml;

pub use algorithms::{AlgorithmPolicy, SignatureAlgorithm};
pub use cert::{CertError, Certificate};
pub use clock::{Clock, FixedClock, SkewWindow};
pub use keys::{KeyError, SpKeyPair};
pub use logout::{
    LogoutRequestIn, logout_request_from_post, logout_request_from_redirect,
    logout_request_redirect, logout_response_redirect,
};
pub use metadata::{IdpMetadata, SpMetadataParams, sp_metadata};
pub use reason::{Reason, Rejection};
pub use request::{AuthnRequestParams, RedirectRequest, authn_request_redirect};
pub use response::{
    AcsPolicy, Peek, SigningRequirement, ValidatedLogin, peek_response, validate_response,
};
