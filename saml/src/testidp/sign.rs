//! Enveloped XML-DSig signatures as IdPs produce them (SAML core §5.4): exclusive c14n,
//! enveloped-signature + exc-c14n transforms, one Reference to the signed element's ID, the
//! signer's certificate in KeyInfo. Templates are written here rather than taken from samael's
//! `Signature::template`, which pins a SHA-1 digest.

use samael::crypto::{Crypto, CryptoProvider};

use crate::algorithms::SignatureAlgorithm;
use crate::keys::SpKeyPair;
use crate::xml::strip_xml_decl;

/// Marker that a document builder puts where the signature template goes.
pub const SIG_PLACEHOLDER: &str = "<!--idhub-signature-->";

/// The unsigned `ds:Signature` template for the element with ID `id`.
pub fn signature_template(id: &str, algorithm: SignatureAlgorithm, cert_b64: &str) -> String {
    format!(
        concat!(
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>",
            "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            "<ds:SignatureMethod Algorithm=\"{method}\"/>",
            "<ds:Reference URI=\"#{id}\"><ds:Transforms>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
            "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>",
            "</ds:Transforms><ds:DigestMethod Algorithm=\"{digest}\"/><ds:DigestValue></ds:DigestValue>",
            "</ds:Reference></ds:SignedInfo><ds:SignatureValue></ds:SignatureValue>",
            "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
            "</ds:Signature>"
        ),
        method = algorithm.uri(),
        id = id,
        digest = algorithm.digest_uri(),
        cert = cert_b64,
    )
}

/// Replaces [`SIG_PLACEHOLDER`] in `xml` by a template for `id` and signs it with xmlsec
/// (which signs the first `ds:Signature` in document order, so the placeholder must precede
/// any already-signed child). Returns the document without XML declaration.
#[allow(clippy::expect_used)]
pub fn sign_document(
    xml: &str,
    id: &str,
    key: &SpKeyPair,
    algorithm: SignatureAlgorithm,
) -> String {
    let with_template = xml.replacen(
        SIG_PLACEHOLDER,
        &signature_template(id, algorithm, &key.certificate().base64()),
        1,
    );
    let der = key
        .pkey()
        .private_key_to_der()
        .expect("test IdP key serialises");
    let signed =
        Crypto::sign_xml(with_template.as_bytes(), &der).expect("xmlsec signs the test document");
    strip_xml_decl(&signed).trim_end().to_string()
}
