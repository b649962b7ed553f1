//! Fast paths for the filter and PATCH-path shapes identity providers send on nearly every
//! request — `userName eq "…"`, `externalId eq "…"`, `members[value eq "…"]`, `displayName`,
//! `name.givenName` — built straight into the `scim_v2` AST (RFC 7644 §3.4.2.2, §3.5.2).
//!
//! Why: `scim_v2`'s generated lexer (lalrpop-util's `MatcherBuilder::matcher`) creates a fresh
//! lazy-DFA cache for every input, so every parse determinizes its automaton states from
//! scratch: ~15 µs for `userName eq "…"` and ~7 µs for a bare `displayName` on this machine,
//! and 3.6% of the node's CPU in the multi-tenant benchmark was regex determinization
//! (BENCHMARKS.md, eighth session).
//!
//! Contract: each function returns `None` for anything outside its narrow shape — the caller
//! then parses with the full grammar, which also produces every error message. When it returns
//! `Some`, the value is exactly what the grammar produces for that input (checked against the
//! grammar on a corpus in the tests below), so the fast path can change speed, never meaning.
//!
//! The shapes, after trimming like the grammar does (`str::trim`):
//! - attribute path: `ATTRNAME` or `ATTRNAME "." ATTRNAME` (no schema URN prefix);
//! - filter: `attrPath SP+ compareOp SP+ string` or `attrPath SP+ "pr"`, where the string has
//!   no escapes, quotes or control characters and the spaces are ASCII spaces;
//! - PATCH path: an attribute path, or `attrPath "[" comparison "]" ["." ATTRNAME]`.

use scim_v2::filter::{
    AttrExp, AttrPath, CompValue, CompareOp, Filter, ParseError, PatchPath, PatchValuePath,
    ValFilter,
};

/// A filter through the fast path when it has the shape, the full grammar otherwise.
pub fn parse_filter(s: &str) -> Result<Filter, ParseError> {
    filter(s).map_or_else(|| s.parse(), Ok)
}

/// A PATCH path through the fast path when it has the shape, the full grammar otherwise.
pub fn parse_patch_path(s: &str) -> Result<PatchPath, ParseError> {
    patch_path(s).map_or_else(|| s.parse(), Ok)
}

/// Words the grammar's lexer may take as keywords or literals instead of attribute names
/// (`true`, `not (`, …): a path holding one is left to the grammar.
const RESERVED: [&str; 16] = [
    "true", "false", "null", "not", "and", "or", "pr", "eq", "ne", "co", "sw", "ew", "gt", "lt",
    "ge", "le",
];

/// RFC 7644 §3.4.2.2 `ATTRNAME = ALPHA *(nameChar)`, and not a keyword.
fn attr_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s))
}

/// `ATTRNAME` or `ATTRNAME.ATTRNAME`.
pub fn attr_path(s: &str) -> Option<AttrPath> {
    let (name, sub) = match s.split_once('.') {
        Some((n, sub)) => (n, Some(sub)),
        None => (s, None),
    };
    if !attr_name(name) || sub.is_some_and(|s| !attr_name(s)) {
        return None;
    }
    Some(AttrPath {
        uri: None,
        name: name.to_owned(),
        sub_attr: sub.map(str::to_owned),
    })
}

fn compare_op(s: &str) -> Option<CompareOp> {
    const OPS: [(&str, CompareOp); 9] = [
        ("eq", CompareOp::Eq),
        ("ne", CompareOp::Ne),
        ("co", CompareOp::Co),
        ("sw", CompareOp::Sw),
        ("ew", CompareOp::Ew),
        ("gt", CompareOp::Gt),
        ("lt", CompareOp::Lt),
        ("ge", CompareOp::Ge),
        ("le", CompareOp::Le),
    ];
    OPS.iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .map(|(_, op)| op.clone())
}

/// A string literal with nothing to unescape: the text between the quotes, as JSON would
/// decode it (JSON refuses raw control characters, so those go to the grammar for its error).
fn plain_string(s: &str) -> Option<String> {
    let inner = s.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains(|c: char| c == '"' || c == '\\' || c < ' ') {
        return None;
    }
    Some(inner.to_owned())
}

/// `attrPath SP+ op SP+ string` or `attrPath SP+ pr`.
fn attr_exp(s: &str) -> Option<AttrExp> {
    let (attr, rest) = s.split_once(' ')?;
    let path = attr_path(attr)?;
    let rest = rest.trim_start_matches(' ');
    if rest.eq_ignore_ascii_case("pr") {
        return Some(AttrExp::Present(path));
    }
    let op = compare_op(rest.get(..2)?)?;
    let value = rest.get(2..)?.strip_prefix(' ')?.trim_start_matches(' ');
    Some(AttrExp::Comparison(
        path,
        op,
        CompValue::Str(plain_string(value)?),
    ))
}

/// A filter of one attribute expression (see the module documentation).
pub fn filter(s: &str) -> Option<Filter> {
    attr_exp(s.trim()).map(Filter::Attr)
}

/// A PATCH path of one of the shapes in the module documentation.
pub fn patch_path(s: &str) -> Option<PatchPath> {
    let s = s.trim();
    let Some((attr, rest)) = s.split_once('[') else {
        return attr_path(s).map(PatchPath::Attr);
    };
    let attr = attr_path(attr)?;
    // The comparison's string may itself hold `]`: the value filter ends at the last one.
    let (inner, after) = rest.rsplit_once(']')?;
    let sub_attr = match after {
        "" => None,
        _ => {
            let sub = after.strip_prefix('.')?;
            if !attr_name(sub) {
                return None;
            }
            Some(sub.to_owned())
        }
    };
    // Inside the brackets the grammar has no room for padding: `[value eq "x"]` only.
    if inner.starts_with(' ') || inner.ends_with(' ') {
        return None;
    }
    Some(PatchPath::Value(PatchValuePath {
        attr,
        filter: ValFilter::Attr(attr_exp(inner)?),
        sub_attr,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Inputs around every edge of the shapes: keywords as names, padding, escapes, control
    /// characters, URN prefixes, brackets inside strings, malformed forms.
    fn corpus() -> Vec<String> {
        let mut v: Vec<String> = [
            r#"userName eq "bjensen""#,
            r#"userName eq "benchuser000123@example.com""#,
            r#"  userName   EQ   "x"  "#,
            r#"externalId eq "00aa-11bb""#,
            r#"displayName eq "Sales & Marketing (EU) [all]""#,
            r#"name.givenName sw "Ba""#,
            r#"emails.value co "@example.com""#,
            r#"userName eq """#,
            r#"userName eq "a\"b""#,
            r#"userName eq "a\\b""#,
            r#"userName eq "a\u0041""#,
            "userName eq \"tab\there\"",
            "userName eq \"nul\u{0}\"",
            "userName eq \"ünïcödé 名前\"",
            "userName\teq \"x\"",
            "userName eq\t\"x\"",
            r#"userName eq "x" and active eq "true""#,
            r#"userName eq "x" or userName eq "y""#,
            r#"userName eq "a" "b""#,
            r#"userName eq "a"b""#,
            r#"userName eq 'x'"#,
            r#"userName eq x"#,
            r#"userName eq true"#,
            r#"userName eq 12"#,
            r#"userName xx "x""#,
            r#"userName eqq "x""#,
            r#"userName pr"#,
            r#"title PR"#,
            r#"userName pr and title pr"#,
            r#"userName"#,
            r#"true eq "x""#,
            r#"not eq "x""#,
            r#"NOT eq "x""#,
            r#"and eq "x""#,
            r#"pr eq "x""#,
            r#"null pr"#,
            r#"trueName eq "x""#,
            r#"nothing eq "x""#,
            r#"a.b.c eq "x""#,
            r#"name. eq "x""#,
            r#"name.1x eq "x""#,
            r#"1name eq "x""#,
            r#"-name eq "x""#,
            r#"user_name-2 eq "x""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "x""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "x""#,
            r#"emails[type eq "work"]"#,
            r#"emails[type eq "work"].value"#,
            r#"emails[type eq "work"].value.x"#,
            r#"emails[type eq "work"]value"#,
            r#"emails[type eq "work"] "#,
            r#"emails[ type eq "work"]"#,
            r#"emails[type eq "work" ]"#,
            r#"emails [type eq "work"]"#,
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            r#"members[value eq "a]b"]"#,
            r#"members[value eq "a]b"].display"#,
            r#"members[value eq "x"].true"#,
            r#"members[value eq "x"] and title pr"#,
            r#"members[value eq "x" or value eq "y"]"#,
            r#"members[value pr]"#,
            r#"members[value eq "x"]]"#,
            r#"members[[value eq "x"]"#,
            r#"name.familyName"#,
            r#"displayName"#,
            r#"members"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"#,
            r#"emails[type eq "work"].value"#,
            r#""#,
            r#" "#,
            r#"."#,
            r#"a."#,
            r#".a"#,
            r#"a[b eq "c"].d.e"#,
            r#"a.b[c eq "d"]"#,
            r#"a[b.c eq "d"]"#,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for name in ["userName", "name.givenName", "x", "Q_1-z"] {
            for op in [
                "eq", "Ne", "CO", "sw", "ew", "gt", "lt", "ge", "le", "pr", "Pr", "xx",
            ] {
                for pad in [" ", "  ", "\t"] {
                    for value in [r#""v""#, r#""""#, r#""a b""#, "", "1", "null"] {
                        v.push(format!("{name}{pad}{op}{pad}{value}").trim_end().to_owned());
                        v.push(format!("m[{name}{pad}{op}{pad}{value}]").replace(" ]", "]"));
                    }
                }
            }
        }
        v
    }

    /// Every corpus input `fast` answers, the grammar parses to the identical value; and the
    /// fast path does answer the bulk of the well-formed ones.
    fn agrees<T: PartialEq + std::fmt::Debug>(
        fast: fn(&str) -> Option<T>,
        full: fn(&str) -> Result<T, ParseError>,
    ) {
        let mut answered = 0;
        for s in corpus() {
            if let Some(f) = fast(&s) {
                answered += 1;
                let g = full(&s)
                    .unwrap_or_else(|e| panic!("fast path took {s:?}, the grammar refuses: {e}"));
                assert_eq!(f, g, "{s:?}");
            }
        }
        assert!(answered > 100, "only {answered} inputs took the fast path");
    }

    #[test]
    fn filters_agree_with_the_grammar_wherever_they_answer() {
        agrees(filter, |s| s.parse::<Filter>());
    }

    #[test]
    fn patch_paths_agree_with_the_grammar_wherever_they_answer() {
        agrees(patch_path, |s| s.parse::<PatchPath>());
    }

    #[test]
    fn attribute_paths_agree_with_the_grammar_wherever_they_answer() {
        for s in corpus() {
            if let Some(fast) = attr_path(&s) {
                let full: Filter = format!("{s} pr").parse().expect("the grammar agrees");
                assert_eq!(Filter::Attr(AttrExp::Present(fast)), full, "{s:?}");
            }
        }
    }

    /// The shapes Entra ID and Okta send on every provisioning cycle do take the fast path.
    #[test]
    fn the_identity_provider_shapes_take_the_fast_path() {
        for f in [
            r#"userName eq "ryan@contoso.com""#,
            r#"externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef""#,
            r#"displayName eq "Engineering""#,
            r#"userName eq "ryan@contoso.com" "#,
        ] {
            assert!(filter(f).is_some(), "{f}");
        }
        for p in [
            r#"members[value eq "2819c223-7f76-453a-919d-413861904646"]"#,
            r#"emails[type eq "work"].value"#,
            "displayName",
            "name.givenName",
            "active",
            "members",
        ] {
            assert!(patch_path(p).is_some(), "{p}");
        }
        // Outside the shapes: left to the grammar.
        assert!(filter(r#"userName eq "x" and active eq true"#).is_none());
        assert!(filter(r#"userName eq "a\"b""#).is_none());
        assert!(
            patch_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager")
                .is_none()
        );
    }
}
