//! SAML 2.0 protocol logic for idhub.
//!
//! Pure: validation receives its configuration, its clock and its signature-algorithm
//! allow-list explicitly, so a test can fix the time and no caller can forget a check. This
//! crate starts with those injected pieces; the samael-backed AuthnRequest, metadata and
//! Response validation build on them.

pub mod algorithms;
pub mod clock;

pub use algorithms::{AlgorithmPolicy, SignatureAlgorithm};
pub use clock::{Clock, FixedClock, SkewWindow};
