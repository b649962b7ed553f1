//! Compatibility profiles: how far idhub bends to what real identity providers send.
//!
//! `Strict` is RFC 7643/7644 behaviour exactly. The others accept documented deviations
//! (each accepted deviation is listed where it is handled, with the provider that needs it).

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// RFC behaviour exactly.
    Strict,
    /// Microsoft Entra ID's deviations accepted.
    Entra,
    /// Okta's deviations accepted.
    Okta,
    /// Every known deviation accepted (the default).
    #[default]
    Lenient,
}

impl Profile {
    pub fn is_strict(self) -> bool {
        self == Self::Strict
    }

    /// Entra ID sends booleans as the strings "True"/"False" and capitalised PATCH op
    /// names ("Replace"); idhub accepts these outside `strict`.
    pub fn accepts_entra_quirks(self) -> bool {
        matches!(self, Self::Entra | Self::Lenient)
    }

    /// Okta quirks (accepted outside `strict`).
    pub fn accepts_okta_quirks(self) -> bool {
        matches!(self, Self::Okta | Self::Lenient)
    }
}
