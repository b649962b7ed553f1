//! Why a SAML message was refused.
//!
//! Every refusal carries a [`Reason`] (stable, machine-readable, written to the audit log and the
//! login-flow log) and a free-text `detail` for operators. The detail never contains key material;
//! it may quote values taken from the (untrusted) message, truncated and stripped of control
//! characters by [`Rejection::new`].

/// Why a SAML message was refused; `code()` is the stable snake_case string written to the audit
/// log and login-flow log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    Malformed,
    TooLarge,
    DtdForbidden,
    XmlComment,
    StatusNotSuccess,
    SignatureMissing,
    SignatureInvalid,
    AlgorithmNotAllowed,
    SignatureWrapping,
    SigningRequirementUnmet,
    MultipleAssertions,
    EncryptionRequired,
    DecryptionFailed,
    IssuerMismatch,
    AudienceMismatch,
    DestinationMismatch,
    RecipientMismatch,
    NotYetValid,
    Expired,
    BearerConfirmationMissing,
    InResponseToMismatch,
    NoSubject,
    VersionUnsupported,
}

impl Reason {
    /// Every reason, in declaration order (tests and documentation iterate over it).
    pub const ALL: [Reason; 23] = [
        Reason::Malformed,
        Reason::TooLarge,
        Reason::DtdForbidden,
        Reason::XmlComment,
        Reason::StatusNotSuccess,
        Reason::SignatureMissing,
        Reason::SignatureInvalid,
        Reason::AlgorithmNotAllowed,
        Reason::SignatureWrapping,
        Reason::SigningRequirementUnmet,
        Reason::MultipleAssertions,
        Reason::EncryptionRequired,
        Reason::DecryptionFailed,
        Reason::IssuerMismatch,
        Reason::AudienceMismatch,
        Reason::DestinationMismatch,
        Reason::RecipientMismatch,
        Reason::NotYetValid,
        Reason::Expired,
        Reason::BearerConfirmationMissing,
        Reason::InResponseToMismatch,
        Reason::NoSubject,
        Reason::VersionUnsupported,
    ];

    /// The stable snake_case code (audit log, login-flow log, conformance vectors).
    pub fn code(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::TooLarge => "too_large",
            Reason::DtdForbidden => "dtd_forbidden",
            Reason::XmlComment => "xml_comment",
            Reason::StatusNotSuccess => "status_not_success",
            Reason::SignatureMissing => "signature_missing",
            Reason::SignatureInvalid => "signature_invalid",
            Reason::AlgorithmNotAllowed => "algorithm_not_allowed",
            Reason::SignatureWrapping => "signature_wrapping",
            Reason::SigningRequirementUnmet => "signing_requirement_unmet",
            Reason::MultipleAssertions => "multiple_assertions",
            Reason::EncryptionRequired => "encryption_required",
            Reason::DecryptionFailed => "decryption_failed",
            Reason::IssuerMismatch => "issuer_mismatch",
            Reason::AudienceMismatch => "audience_mismatch",
            Reason::DestinationMismatch => "destination_mismatch",
            Reason::RecipientMismatch => "recipient_mismatch",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Expired => "expired",
            Reason::BearerConfirmationMissing => "bearer_confirmation_missing",
            Reason::InResponseToMismatch => "in_response_to_mismatch",
            Reason::NoSubject => "no_subject",
            Reason::VersionUnsupported => "version_unsupported",
        }
    }

    /// Parses a code produced by [`Reason::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// One human sentence for an error page (safe to show to the end user).
    pub fn message(self) -> &'static str {
        match self {
            Reason::Malformed => "The identity provider sent a message that is not valid SAML.",
            Reason::TooLarge => "The identity provider sent a message that is too large.",
            Reason::DtdForbidden => {
                "The message contains a document type declaration, which is not allowed."
            }
            Reason::XmlComment => "The message contains XML comments, which are not allowed.",
            Reason::StatusNotSuccess => {
                "The identity provider reported that sign-in did not succeed."
            }
            Reason::SignatureMissing => "The message is not signed by the identity provider.",
            Reason::SignatureInvalid => {
                "The message signature could not be verified with the configured certificates."
            }
            Reason::AlgorithmNotAllowed => {
                "The message is signed with an algorithm that is not allowed."
            }
            Reason::SignatureWrapping => {
                "The message signature does not cover the content it claims to protect."
            }
            Reason::SigningRequirementUnmet => {
                "The message is not signed the way this connection requires."
            }
            Reason::MultipleAssertions => "The response contains more than one assertion.",
            Reason::EncryptionRequired => "This connection requires encrypted assertions.",
            Reason::DecryptionFailed => "The encrypted assertion could not be decrypted.",
            Reason::IssuerMismatch => "The message was issued by an unexpected identity provider.",
            Reason::AudienceMismatch => "The assertion is not intended for this service.",
            Reason::DestinationMismatch => "The response was sent to a different address.",
            Reason::RecipientMismatch => "The assertion was issued for a different address.",
            Reason::NotYetValid => {
                "The message is not valid yet; check the clocks of both systems."
            }
            Reason::Expired => "The message has expired; please sign in again.",
            Reason::BearerConfirmationMissing => {
                "The assertion has no usable bearer subject confirmation."
            }
            Reason::InResponseToMismatch => {
                "The response does not answer the sign-in request it claims to."
            }
            Reason::NoSubject => "The response does not identify a user.",
            Reason::VersionUnsupported => "Only SAML 2.0 messages are supported.",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// A refused SAML message: the reason plus safe diagnostic text (never key material).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {detail}", reason.code())]
pub struct Rejection {
    pub reason: Reason,
    pub detail: String,
}

/// Longest detail kept; values quoted from a message are attacker-controlled.
const MAX_DETAIL: usize = 300;

impl Rejection {
    /// Builds a rejection; the detail is truncated and control characters are replaced so that
    /// quoting untrusted values cannot forge log lines.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: sanitize(&detail.into()),
        }
    }
}

pub(crate) fn reject<T>(reason: Reason, detail: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::new(reason, detail))
}

fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_DETAIL)
        .collect();
    if s.chars().count() > MAX_DETAIL {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let c = r.code();
            assert!(
                c.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "{c}"
            );
            assert!(seen.insert(c));
            assert_eq!(Reason::from_code(c), Some(r));
            assert!(r.message().ends_with('.'));
        }
        assert_eq!(Reason::from_code("nope"), None);
    }

    #[test]
    fn detail_is_sanitized_and_display_uses_code() {
        let r = Rejection::new(Reason::Expired, "a\nb");
        assert_eq!(r.to_string(), "expired: a b");
        let long = Rejection::new(Reason::Malformed, "x".repeat(1000));
        assert!(long.detail.chars().count() <= MAX_DETAIL + 1);
    }
}
