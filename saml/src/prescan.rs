//! Structural checks on the *unverified* document, before any signature is verified.
//!
//! XML-DSig verification alone says "some element with this ID was signed", not "the element
//! you are about to read was signed". Signature-wrapping attacks (XSW, Somorovsky et al. 2012)
//! exploit that gap. We close it twice: here by refusing every structure a conforming IdP
//! never produces (SAML core §5.4.1-§5.4.2: one enveloped signature per signed element, one
//! `Reference` whose URI is `#` + that element's ID, exclusive or inclusive c14n only), and
//! afterwards by reading only the content samael's reduction kept (see `response`).

use std::collections::HashSet;

use crate::algorithms::AlgorithmPolicy;
use crate::reason::{Reason, Rejection, reject};
use crate::xml::{Element, NS_DS};

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const C14N_METHODS: [&str; 6] = [
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];

/// Every `ds:Signature` in `root` with its parent element, in document order.
pub(crate) fn signatures(root: &Element) -> Vec<(&Element, &Element)> {
    let mut out = Vec::new();
    root.walk(&mut |e, parent| {
        if e.is(NS_DS, "Signature")
            && let Some(p) = parent
        {
            out.push((e, p));
        }
    });
    out
}

/// Refuses duplicate `ID` attributes anywhere (an ID must identify one element, or a
/// reference can be made to resolve to the attacker's copy).
pub(crate) fn check_unique_ids(root: &Element) -> Result<(), Rejection> {
    let mut seen = HashSet::new();
    let mut dup = None;
    root.walk(&mut |e, _| {
        // libxml2 registers any attribute named ID (whatever its namespace) as an ID when
        // xmlsec resolves a reference, so a namespaced one could hijack a reference.
        if e.attrs.iter().any(|a| a.ns.is_some() && &*a.local == "ID") && dup.is_none() {
            dup = Some("(namespaced ID attribute)".to_string());
        }
        if let Some(id) = e.attr("ID")
            && !seen.insert(id.to_string())
            && dup.is_none()
        {
            dup = Some(id.to_string());
        }
    });
    match dup {
        Some(id) => reject(Reason::SignatureWrapping, format!("duplicate ID {id}")),
        None => Ok(()),
    }
}

/// Checks every signature's algorithms against the policy (`AlgorithmNotAllowed`).
pub(crate) fn check_algorithms(
    sigs: &[(&Element, &Element)],
    policy: &AlgorithmPolicy,
) -> Result<(), Rejection> {
    for (sig, _) in sigs {
        let Some(si) = sig.child(NS_DS, "SignedInfo") else {
            return reject(
                Reason::SignatureInvalid,
                "ds:Signature without ds:SignedInfo",
            );
        };
        let method = si
            .child(NS_DS, "SignatureMethod")
            .and_then(|m| m.attr("Algorithm"))
            .unwrap_or("");
        if !policy.allows_uri(method) {
            return reject(
                Reason::AlgorithmNotAllowed,
                format!("SignatureMethod {method}"),
            );
        }
        let c14n = si
            .child(NS_DS, "CanonicalizationMethod")
            .and_then(|m| m.attr("Algorithm"))
            .unwrap_or("");
        if !C14N_METHODS.contains(&c14n) {
            return reject(
                Reason::AlgorithmNotAllowed,
                format!("CanonicalizationMethod {c14n}"),
            );
        }
        for r in si.children_named(NS_DS, "Reference") {
            let digest = r
                .child(NS_DS, "DigestMethod")
                .and_then(|m| m.attr("Algorithm"))
                .unwrap_or("");
            if !policy.allows_digest_uri(digest) {
                return reject(
                    Reason::AlgorithmNotAllowed,
                    format!("DigestMethod {digest}"),
                );
            }
            if let Some(ts) = r.child(NS_DS, "Transforms") {
                for t in ts.elements() {
                    let alg = t.attr("Algorithm").unwrap_or("");
                    if !t.is(NS_DS, "Transform")
                        || !(alg == ENVELOPED || C14N_METHODS.contains(&alg))
                    {
                        return reject(Reason::AlgorithmNotAllowed, format!("Transform {alg}"));
                    }
                }
            }
        }
    }
    Ok(())
}

/// Checks that every signature is an enveloped signature of an element in `allowed_parents`
/// (compared by identity), is that element's only signature, and has exactly one `Reference`
/// to that element's ID (SAML core §5.4.2). Returns the signed parents.
pub(crate) fn check_signature_sites<'a>(
    sigs: &[(&'a Element, &'a Element)],
    allowed_parents: &[&Element],
) -> Result<Vec<&'a Element>, Rejection> {
    let mut signed: Vec<&Element> = Vec::new();
    for (sig, parent) in sigs {
        if !allowed_parents.iter().any(|p| std::ptr::eq(*p, *parent)) {
            return reject(
                Reason::SignatureWrapping,
                format!(
                    "signature inside <{}>, which may not be signed there",
                    parent.local
                ),
            );
        }
        if signed.iter().any(|p| std::ptr::eq(*p, *parent)) {
            return reject(
                Reason::SignatureWrapping,
                format!("<{}> carries more than one signature", parent.local),
            );
        }
        let refs: Vec<&Element> = sig
            .child(NS_DS, "SignedInfo")
            .map(|si| si.children_named(NS_DS, "Reference").collect())
            .unwrap_or_default();
        let [reference] = refs.as_slice() else {
            return reject(
                Reason::SignatureWrapping,
                format!("signature has {} references, expected 1", refs.len()),
            );
        };
        let id = parent.attr("ID").unwrap_or("");
        let uri = reference.attr("URI").unwrap_or("");
        if id.is_empty() || uri.strip_prefix('#') != Some(id) {
            return reject(
                Reason::SignatureWrapping,
                format!(
                    "signature reference {uri:?} does not name its parent <{}> (ID {id:?})",
                    parent.local
                ),
            );
        }
        signed.push(parent);
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::xml::{STRICT, parse};

    fn sig(uri: &str, method: &str, digest: &str, transform: &str) -> String {
        format!(
            r##"<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/><ds:SignatureMethod Algorithm="{method}"/><ds:Reference URI="{uri}"><ds:Transforms><ds:Transform Algorithm="{transform}"/></ds:Transforms><ds:DigestMethod Algorithm="{digest}"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>"##
        )
    }
    const RSA256: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
    const SHA256: &str = "http://www.w3.org/2001/04/xmlenc#sha256";

    fn check(doc: &str) -> Result<usize, Reason> {
        let root = parse(doc, STRICT).unwrap();
        let sigs = signatures(&root);
        check_unique_ids(&root).map_err(|e| e.reason)?;
        check_algorithms(&sigs, &AlgorithmPolicy::default()).map_err(|e| e.reason)?;
        check_signature_sites(&sigs, &[&root])
            .map(|v| v.len())
            .map_err(|e| e.reason)
    }

    #[test]
    fn accepts_enveloped_signature_of_root() {
        let d = format!("<r ID=\"a\">{}</r>", sig("#a", RSA256, SHA256, ENVELOPED));
        assert_eq!(check(&d), Ok(1));
        assert_eq!(check("<r ID=\"a\"/>"), Ok(0));
    }

    #[test]
    fn refuses_wrapping_shapes_and_weak_algorithms() {
        let s = |uri| sig(uri, RSA256, SHA256, ENVELOPED);
        let wrong_ref = format!("<r ID=\"a\">{}<x ID=\"b\"/></r>", s("#b"));
        assert_eq!(check(&wrong_ref), Err(Reason::SignatureWrapping));
        let whole_doc = format!("<r ID=\"a\">{}</r>", s(""));
        assert_eq!(check(&whole_doc), Err(Reason::SignatureWrapping));
        let nested = format!("<r ID=\"a\"><x ID=\"b\">{}</x></r>", s("#b"));
        assert_eq!(check(&nested), Err(Reason::SignatureWrapping));
        let twice = format!("<r ID=\"a\">{}{}</r>", s("#a"), s("#a"));
        assert_eq!(check(&twice), Err(Reason::SignatureWrapping));
        let dup = "<r ID=\"a\"><x ID=\"a\"/></r>";
        assert_eq!(check(dup), Err(Reason::SignatureWrapping));
        // libxml2 would register x:ID as an ID too: refused outright.
        let ns_id = "<r ID=\"a\"><x xmlns:p=\"urn:p\" p:ID=\"a\"/></r>";
        assert_eq!(check(ns_id), Err(Reason::SignatureWrapping));
        let sha1 = format!(
            "<r ID=\"a\">{}</r>",
            sig(
                "#a",
                "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
                SHA256,
                ENVELOPED
            )
        );
        assert_eq!(check(&sha1), Err(Reason::AlgorithmNotAllowed));
        let sha1_digest = format!(
            "<r ID=\"a\">{}</r>",
            sig(
                "#a",
                RSA256,
                "http://www.w3.org/2000/09/xmldsig#sha1",
                ENVELOPED
            )
        );
        assert_eq!(check(&sha1_digest), Err(Reason::AlgorithmNotAllowed));
        let xslt = format!(
            "<r ID=\"a\">{}</r>",
            sig(
                "#a",
                RSA256,
                SHA256,
                "http://www.w3.org/TR/1999/REC-xslt-19991116"
            )
        );
        assert_eq!(check(&xslt), Err(Reason::AlgorithmNotAllowed));
    }
}
