//! A small, strict, namespace-resolved XML tree built with quick-xml.
//!
//! Used for the structural pre-scan of untrusted messages, for metadata, and for reading the
//! reduced (signature-verified) XML that samael returns. It refuses what SAML never needs and
//! attackers love: DTDs (entity expansion, XXE), undeclared entities, unbound prefixes and, in
//! strict mode, comments and processing instructions (comment-injection into `NameID`).

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::{NsReader, XmlVersion};

use crate::reason::{Reason, Rejection};

pub(crate) const NS_SAMLP: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_SAML: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub(crate) const NS_XENC: &str = "http://www.w3.org/2001/04/xmlenc#";
pub(crate) const NS_MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_XS: &str = "http://www.w3.org/2001/XMLSchema";
pub(crate) const NS_XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Nesting deeper than this is refused (a SAML response is ~8 levels deep).
const MAX_DEPTH: usize = 64;

/// An interned name or namespace URI: a document repeats a handful of them hundreds of
/// times, so each distinct one is allocated once per parse.
pub(crate) type Name = std::sync::Arc<str>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Attr {
    pub ns: Option<Name>,
    pub local: Name,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    Element(Element),
    Text(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: Option<Name>,
    pub local: Name,
    pub attrs: Vec<Attr>,
    /// Namespace declarations made on this element (`""` is the default namespace).
    pub ns_decls: Vec<(String, String)>,
    pub children: Vec<Node>,
}

/// How picky the parser is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Strictness {
    /// Refuse comments (responses, logout messages) or skip them (metadata).
    pub allow_comments: bool,
}

pub(crate) const STRICT: Strictness = Strictness {
    allow_comments: false,
};
pub(crate) const LENIENT: Strictness = Strictness {
    allow_comments: true,
};

/// Cheap textual DTD check, done before any parser (ours or libxml2) sees the document: any
/// `<!DOCTYPE` (any case) or `<!ENTITY`. Only the few `<!` openings are examined.
pub(crate) fn contains_doctype(xml: &str) -> bool {
    let b = xml.as_bytes();
    xml.match_indices("<!").any(|(i, _)| {
        let rest = &b[i + 2..];
        rest.get(..7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"DOCTYPE"))
            || rest.starts_with(b"ENTITY")
    })
}

/// Interns names and namespace URIs for one parse.
#[derive(Default)]
struct Interner(std::collections::HashMap<Box<[u8]>, Name>);

impl Interner {
    fn get(&mut self, bytes: &[u8]) -> Name {
        if let Some(n) = self.0.get(bytes) {
            return n.clone();
        }
        let n: Name = Name::from(String::from_utf8_lossy(bytes).as_ref());
        self.0.insert(bytes.into(), n.clone());
        n
    }
}

fn malformed(detail: impl std::fmt::Display) -> Rejection {
    Rejection::new(Reason::Malformed, format!("XML: {detail}"))
}

/// Parses `xml` into a tree, refusing DTDs (`DtdForbidden`), comments when strict
/// (`XmlComment`) and anything ill-formed (`Malformed`).
pub(crate) fn parse(xml: &str, strictness: Strictness) -> Result<Element, Rejection> {
    if contains_doctype(xml) {
        return Err(Rejection::new(
            Reason::DtdForbidden,
            "document type declarations are refused",
        ));
    }
    let mut reader = NsReader::from_str(xml);
    let config = reader.config_mut();
    config.check_comments = true;
    config.check_end_names = true;
    config.expand_empty_elements = false;

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut names = Interner::default();
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(malformed)?;
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let ns = match resolved {
                    ResolveResult::Bound(ns) => Some(names.get(ns.as_ref())),
                    ResolveResult::Unbound => None,
                    ResolveResult::Unknown(p) => {
                        return Err(malformed(format!(
                            "unbound prefix {}",
                            String::from_utf8_lossy(&p)
                        )));
                    }
                };
                if stack.len() >= MAX_DEPTH {
                    return Err(malformed("nesting too deep"));
                }
                if root.is_some() {
                    return Err(malformed("content after the root element"));
                }
                let local = names.get(e.local_name().as_ref());
                let mut attrs = Vec::new();
                let mut ns_decls = Vec::new();
                for a in e.attributes() {
                    let a = a.map_err(malformed)?;
                    let value = a
                        .normalized_value(XmlVersion::Implicit1_0)
                        .map_err(malformed)?
                        .into_owned();
                    if let Some(binding) = a.key.as_namespace_binding() {
                        let prefix = match binding {
                            quick_xml::name::PrefixDeclaration::Default => String::new(),
                            quick_xml::name::PrefixDeclaration::Named(p) => {
                                String::from_utf8_lossy(p).into_owned()
                            }
                        };
                        ns_decls.push((prefix, value));
                        continue;
                    }
                    let (res, attr_local) = reader.resolver().resolve_attribute(a.key);
                    let attr_ns = match res {
                        ResolveResult::Bound(n) => Some(names.get(n.as_ref())),
                        ResolveResult::Unbound => None,
                        ResolveResult::Unknown(p) => {
                            return Err(malformed(format!(
                                "unbound attribute prefix {}",
                                String::from_utf8_lossy(&p)
                            )));
                        }
                    };
                    attrs.push(Attr {
                        ns: attr_ns,
                        local: names.get(attr_local.as_ref()),
                        value,
                    });
                }
                let el = Element {
                    ns,
                    local,
                    attrs,
                    ns_decls,
                    children: Vec::new(),
                };
                if matches!(event, Event::Empty(_)) {
                    attach(&mut stack, &mut root, el);
                } else {
                    stack.push(el);
                }
            }
            Event::End(_) => {
                let el = stack.pop().ok_or_else(|| malformed("unbalanced end tag"))?;
                attach(&mut stack, &mut root, el);
            }
            Event::Text(t) => {
                let s = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::CData(c) => {
                let s = c.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &s)?;
            }
            Event::GeneralRef(r) => {
                let s = if let Some(ch) = r.resolve_char_ref().map_err(malformed)? {
                    ch.to_string()
                } else {
                    let name = r.decode().map_err(malformed)?;
                    quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| malformed(format!("undeclared entity &{name};")))?
                        .to_string()
                };
                push_text(&mut stack, &s)?;
            }
            Event::Comment(_) => {
                if !strictness.allow_comments {
                    return Err(Rejection::new(
                        Reason::XmlComment,
                        "XML comments are refused (comment-injection defence)",
                    ));
                }
            }
            Event::PI(_) => {
                if !strictness.allow_comments {
                    return Err(malformed("processing instructions are refused"));
                }
            }
            Event::Decl(_) => {}
            Event::DocType(_) => {
                return Err(Rejection::new(
                    Reason::DtdForbidden,
                    "document type declarations are refused",
                ));
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, el: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(Node::Element(el)),
        None => *root = Some(el),
    }
}

fn push_text(stack: &mut [Element], s: &str) -> Result<(), Rejection> {
    match stack.last_mut() {
        Some(parent) => {
            if let Some(Node::Text(prev)) = parent.children.last_mut() {
                prev.push_str(s);
            } else {
                parent.children.push(Node::Text(s.to_string()));
            }
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None => Err(malformed("text outside the root element")),
    }
}

impl Element {
    pub fn is(&self, ns: &str, local: &str) -> bool {
        &*self.local == local && self.ns.as_deref() == Some(ns)
    }

    /// An attribute without namespace (all SAML attributes we read are unqualified).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_none() && &*a.local == local)
            .map(|a| a.value.as_str())
    }

    /// A namespace-qualified attribute.
    pub fn attr_ns(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.as_deref() == Some(ns) && &*a.local == local)
            .map(|a| a.value.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        local: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.is(ns, local))
    }

    pub fn child(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// All text directly inside this element, concatenated (so a comment or PI splitting a text
    /// value can never truncate it, even in lenient mode).
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        s
    }

    /// `text()` with surrounding XML whitespace removed.
    pub fn trimmed_text(&self) -> String {
        self.text()
            .trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n'))
            .to_string()
    }

    /// Depth-first walk over this element and all descendants, with each element's parent.
    pub fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Element, Option<&'a Element>)) {
        fn go<'a>(
            e: &'a Element,
            parent: Option<&'a Element>,
            f: &mut dyn FnMut(&'a Element, Option<&'a Element>),
        ) {
            f(e, parent);
            for c in e.elements() {
                go(c, Some(e), f);
            }
        }
        go(self, None, f);
    }
}

/// Escapes text content and attribute values (both quote styles) for XML we generate.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

/// Removes a leading `<?xml …?>` declaration (libxml2 adds one when serialising).
pub(crate) fn strip_xml_decl(s: &str) -> &str {
    let t = s.trim_start();
    if t.starts_with("<?xml")
        && let Some(end) = t.find("?>")
    {
        return t[end + 2..].trim_start();
    }
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_namespaces_entities_and_text() {
        let x = r#"<?xml version="1.0"?><a:r xmlns:a="urn:a" xmlns="urn:d" b="1 &amp; 2"><c>x&lt;y&#65;<![CDATA[<z>]]></c><e/></a:r>"#;
        let r = parse(x, STRICT).unwrap();
        assert!(r.is("urn:a", "r"));
        assert_eq!(r.attr("b"), Some("1 & 2"));
        let c = r.child("urn:d", "c").unwrap();
        assert_eq!(c.text(), "x<yA<z>");
        assert!(r.child("urn:d", "e").is_some());
        assert_eq!(r.ns_decls.len(), 2);
    }

    #[test]
    fn refuses_dtd_comments_pi_and_garbage() {
        let dtd = r#"<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>"#;
        assert_eq!(
            parse(dtd, LENIENT).unwrap_err().reason,
            Reason::DtdForbidden
        );
        assert_eq!(
            parse("<r><!-- c --></r>", STRICT).unwrap_err().reason,
            Reason::XmlComment
        );
        assert!(parse("<r><!-- c --></r>", LENIENT).is_ok());
        assert_eq!(
            parse("<r><?pi x?></r>", STRICT).unwrap_err().reason,
            Reason::Malformed
        );
        for bad in [
            "",
            "<r>",
            "<r></s>",
            "<r/><r/>",
            "<p:r/>",
            "<r>&foo;</r>",
            "x<r/>",
        ] {
            assert_eq!(
                parse(bad, STRICT).unwrap_err().reason,
                Reason::Malformed,
                "{bad}"
            );
        }
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert_eq!(parse(&deep, STRICT).unwrap_err().reason, Reason::Malformed);
    }

    #[test]
    fn text_is_concatenated_across_comments() {
        let r = parse("<r>admin@example.com<!--x-->.evil.test</r>", LENIENT).unwrap();
        assert_eq!(r.text(), "admin@example.com.evil.test");
    }

    #[test]
    fn escaping_and_decl() {
        assert_eq!(
            esc(r#"<a "b" & 'c'>"#),
            "&lt;a &quot;b&quot; &amp; &apos;c&apos;&gt;"
        );
        assert_eq!(strip_xml_decl("<?xml version=\"1.0\"?>\n<r/>"), "<r/>");
        assert_eq!(strip_xml_decl("<r/>"), "<r/>");
    }
}
