//! Filters (RFC 7644 §3.4.2.2): parse (the `scim_v2` grammar, with its depth and size
//! limits), then resolve every attribute against the resource schema into a typed [`Expr`].
//!
//! Resolution is where a filter becomes safe to compile: attribute names are matched
//! case-insensitively and replaced by their canonical names, values are typed by the
//! attribute's type, and operators that make no sense for a type are refused. Anything
//! unknown or unsupported is `400 invalidFilter`, never an empty result.

use crate::error::{ScimError, ScimType};
use crate::schema::{AttrDef, AttrType, Owner, ResourceSchema, Returned};
use crate::value::{canonical_datetime, datetime_micros};
use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, Filter, ValFilter, ValuePath};

/// Comparison operators (RFC 7644 §3.4.2.2, Table 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A comparison value, typed by the attribute it is compared with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Bool(bool),
    Int(i64),
    Dec(f64),
    /// Canonical dateTime text and the instant in microseconds.
    DateTime {
        text: String,
        micros: i64,
    },
}

/// Where a filtered attribute lives, with the characteristics compilation needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrRef {
    /// `None` for core and common attributes, the URN for an extension attribute.
    pub extension: Option<String>,
    /// Whether this is a common attribute (`id`, `externalId`, `meta`).
    pub common: bool,
    /// Canonical top-level attribute name.
    pub name: String,
    /// Canonical sub-attribute name.
    pub sub: Option<String>,
    /// Type of the compared value (the sub-attribute's when there is one).
    pub ty: AttrType,
    pub case_exact: bool,
    /// Whether the top-level attribute is multi-valued.
    pub multi_valued: bool,
    /// Whether the top-level attribute is computed by the server (`groups`, `members`
    /// display, `meta`): compilation maps these to their tables or columns.
    pub computed: bool,
}

/// A resolved, typed filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Present(AttrRef),
    Cmp(AttrRef, Op, Value),
    /// `attr[filter]`: some element of the multi-valued attribute satisfies `filter`, whose
    /// attribute references all name sub-attributes of `attr`.
    Any(AttrRef, Box<Expr>),
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidFilter, detail)
}

/// Parses and resolves a filter string.
pub fn parse(schema: &ResourceSchema, raw: &str) -> Result<Expr, ScimError> {
    if raw.len() > 8192 {
        return Err(invalid("filter is longer than 8192 characters"));
    }
    let f = crate::fastpath::parse_filter(raw)
        .map_err(|e| invalid(format!("cannot parse filter: {e}")))?;
    resolve(schema, &f)
}

/// Resolves a parsed filter against a resource schema.
pub fn resolve(schema: &ResourceSchema, f: &Filter) -> Result<Expr, ScimError> {
    Ok(match f {
        Filter::Attr(e) => attr_exp(schema, e, None)?,
        Filter::ValuePath(vp) => value_path(schema, vp)?,
        Filter::Not(inner) => Expr::Not(Box::new(resolve(schema, inner)?)),
        Filter::And(items) => Expr::And(
            items
                .iter()
                .map(|i| resolve(schema, i))
                .collect::<Result<_, _>>()?,
        ),
        Filter::Or(items) => Expr::Or(
            items
                .iter()
                .map(|i| resolve(schema, i))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn value_path(schema: &ResourceSchema, vp: &ValuePath) -> Result<Expr, ScimError> {
    if vp.attr.sub_attr.is_some() {
        return Err(invalid(
            "a value filter applies to an attribute, not a sub-attribute",
        ));
    }
    let parent = reference(schema, &vp.attr)?;
    let def = top_def(schema, &vp.attr)?;
    if !def.is_complex() {
        return Err(invalid(format!(
            "`{}` has no sub-attributes to filter on",
            def.name
        )));
    }
    let inner = val_filter(schema, &vp.attr, def, &vp.filter)?;
    Ok(Expr::Any(parent, Box::new(inner)))
}

fn val_filter(
    schema: &ResourceSchema,
    parent: &AttrPath,
    def: &AttrDef,
    f: &ValFilter,
) -> Result<Expr, ScimError> {
    Ok(match f {
        ValFilter::Attr(e) => attr_exp(schema, e, Some((parent, def)))?,
        ValFilter::Not(inner) => Expr::Not(Box::new(val_filter(schema, parent, def, inner)?)),
        ValFilter::And(items) => Expr::And(
            items
                .iter()
                .map(|i| val_filter(schema, parent, def, i))
                .collect::<Result<_, _>>()?,
        ),
        ValFilter::Or(items) => Expr::Or(
            items
                .iter()
                .map(|i| val_filter(schema, parent, def, i))
                .collect::<Result<_, _>>()?,
        ),
    })
}

fn top_def<'a>(schema: &'a ResourceSchema, p: &AttrPath) -> Result<&'a AttrDef, ScimError> {
    schema
        .resolve(p.uri.as_deref(), &p.name, None)
        .map(|r| r.attr)
        .ok_or_else(|| invalid(format!("unknown attribute `{}`", display_path(p))))
}

fn display_path(p: &AttrPath) -> String {
    let mut s = String::new();
    if let Some(u) = &p.uri {
        s.push_str(u);
        s.push(':');
    }
    s.push_str(&p.name);
    if let Some(sub) = &p.sub_attr {
        s.push('.');
        s.push_str(sub);
    }
    s
}

/// Resolves an attribute path to an [`AttrRef`]. A multi-valued complex attribute named
/// without a sub-attribute means its `value` sub-attribute (RFC 7644 §3.4.2.2: "emails co …"
/// compares the values).
fn reference(schema: &ResourceSchema, p: &AttrPath) -> Result<AttrRef, ScimError> {
    let r = schema
        .resolve(p.uri.as_deref(), &p.name, p.sub_attr.as_deref())
        .ok_or_else(|| invalid(format!("unknown attribute `{}`", display_path(p))))?;
    if r.leaf().returned == Returned::Never || r.attr.returned == Returned::Never {
        return Err(invalid(format!("`{}` cannot be filtered on", r.attr.name)));
    }
    Ok(AttrRef {
        extension: r.extension_urn().map(str::to_owned),
        common: r.owner == Owner::Common,
        name: r.attr.name.clone(),
        sub: r.sub.map(|s| s.name.clone()),
        ty: r.leaf().ty,
        case_exact: r.leaf().case_exact,
        multi_valued: r.attr.multi_valued,
        computed: r.attr.computed,
    })
}

fn attr_exp(
    schema: &ResourceSchema,
    e: &AttrExp,
    parent: Option<(&AttrPath, &AttrDef)>,
) -> Result<Expr, ScimError> {
    let path = match e {
        AttrExp::Present(p) | AttrExp::Comparison(p, _, _) => p,
    };
    let mut attr = match parent {
        None => reference(schema, path)?,
        Some((pp, pdef)) => {
            // Inside `parent[...]` a path names a sub-attribute of the parent.
            if path.uri.is_some() || path.sub_attr.is_some() {
                return Err(invalid(format!(
                    "inside `{}[...]` only sub-attributes of `{}` may be named",
                    pdef.name, pdef.name
                )));
            }
            let sub = AttrPath {
                uri: pp.uri.clone(),
                name: pp.name.clone(),
                sub_attr: Some(path.name.clone()),
            };
            reference(schema, &sub)?
        }
    };
    if attr.sub.is_none() && attr.ty == AttrType::Complex {
        if attr.multi_valued && top_def(schema, path)?.sub("value").is_some() {
            let value_def = top_def(schema, path)?.sub("value");
            attr.sub = Some("value".into());
            if let Some(v) = value_def {
                attr.ty = v.ty;
                attr.case_exact = v.case_exact;
            }
        } else if matches!(e, AttrExp::Comparison(..)) {
            return Err(invalid(format!(
                "`{}` is complex: compare one of its sub-attributes",
                attr.name
            )));
        }
    }
    match e {
        AttrExp::Present(_) => Ok(Expr::Present(attr)),
        AttrExp::Comparison(_, op, value) => comparison(attr, op, value),
    }
}

fn comparison(attr: AttrRef, op: &CompareOp, value: &CompValue) -> Result<Expr, ScimError> {
    let op = match op {
        CompareOp::Eq => Op::Eq,
        CompareOp::Ne => Op::Ne,
        CompareOp::Co => Op::Co,
        CompareOp::Sw => Op::Sw,
        CompareOp::Ew => Op::Ew,
        CompareOp::Gt => Op::Gt,
        CompareOp::Ge => Op::Ge,
        CompareOp::Lt => Op::Lt,
        CompareOp::Le => Op::Le,
    };
    let name = match &attr.sub {
        Some(s) => format!("{}.{}", attr.name, s),
        None => attr.name.clone(),
    };
    // `attr eq null` means "has no value" (RFC 7644 §3.4.2.2 treats null as unassigned).
    if matches!(value, CompValue::Null) {
        return match op {
            Op::Eq => Ok(Expr::Not(Box::new(Expr::Present(attr)))),
            Op::Ne => Ok(Expr::Present(attr)),
            _ => Err(invalid(format!(
                "`{name}`: null can only be compared with eq or ne"
            ))),
        };
    }
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    let typed = match attr.ty {
        AttrType::String | AttrType::Reference => match value {
            CompValue::Str(s) => Value::Str(s.clone()),
            _ => {
                return Err(invalid(format!(
                    "`{name}` is a string: compare it with a string"
                )));
            }
        },
        AttrType::Binary => match value {
            CompValue::Str(s) if op == Op::Eq || op == Op::Ne => Value::Str(s.clone()),
            _ => {
                return Err(invalid(format!(
                    "`{name}` is binary: only eq and ne with a string apply"
                )));
            }
        },
        AttrType::Boolean => {
            if ordering || substring {
                return Err(invalid(format!(
                    "`{name}` is boolean: only eq and ne apply"
                )));
            }
            match value {
                CompValue::True => Value::Bool(true),
                CompValue::False => Value::Bool(false),
                _ => {
                    return Err(invalid(format!(
                        "`{name}` is boolean: compare it with true or false"
                    )));
                }
            }
        }
        AttrType::Integer => {
            if substring {
                return Err(invalid(format!(
                    "`{name}` is an integer: co, sw and ew do not apply"
                )));
            }
            match value {
                CompValue::Number(n) => match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Dec(n.as_f64().unwrap_or(f64::NAN)),
                },
                _ => {
                    return Err(invalid(format!(
                        "`{name}` is an integer: compare it with a number"
                    )));
                }
            }
        }
        AttrType::Decimal => {
            if substring {
                return Err(invalid(format!(
                    "`{name}` is a decimal: co, sw and ew do not apply"
                )));
            }
            match value {
                CompValue::Number(n) => Value::Dec(n.as_f64().unwrap_or(f64::NAN)),
                _ => {
                    return Err(invalid(format!(
                        "`{name}` is a decimal: compare it with a number"
                    )));
                }
            }
        }
        AttrType::DateTime => {
            if substring {
                return Err(invalid(format!(
                    "`{name}` is a dateTime: co, sw and ew do not apply"
                )));
            }
            match value {
                CompValue::Str(s) => match (canonical_datetime(s), datetime_micros(s)) {
                    (Some(text), Some(micros)) => Value::DateTime { text, micros },
                    _ => {
                        return Err(invalid(format!(
                            "`{name}`: {s:?} is not an RFC 3339 dateTime"
                        )));
                    }
                },
                _ => {
                    return Err(invalid(format!(
                        "`{name}` is a dateTime: compare it with a dateTime string"
                    )));
                }
            }
        }
        AttrType::Complex => {
            return Err(invalid(format!(
                "`{name}` is complex: compare one of its sub-attributes"
            )));
        }
    };
    if let Value::Dec(d) = typed
        && !d.is_finite()
    {
        return Err(invalid(format!("`{name}`: number out of range")));
    }
    Ok(Expr::Cmp(attr, op, typed))
}

/// Resolves `sortBy` (RFC 7644 §3.4.2.3): a single-valued attribute or sub-attribute, or a
/// multi-valued complex attribute (sorted by its primary / first `value`).
pub fn sort_by(schema: &ResourceSchema, raw: &str) -> Result<AttrRef, ScimError> {
    let bad = || ScimError::bad_request(ScimType::InvalidValue, format!("cannot sort by `{raw}`"));
    let p: AttrPath = parse_attr_path(raw).ok_or_else(bad)?;
    let mut r = reference(schema, &p).map_err(|_| bad())?;
    if r.sub.is_none() && r.ty == AttrType::Complex {
        let def = top_def(schema, &p).map_err(|_| bad())?;
        let v = def.sub("value").ok_or_else(bad)?;
        r.sub = Some("value".into());
        r.ty = v.ty;
        r.case_exact = v.case_exact;
    }
    Ok(r)
}

/// Parses `[urn:]name[.sub]` through the filter grammar (`<path> pr`).
pub fn parse_attr_path(raw: &str) -> Option<AttrPath> {
    let raw = raw.trim();
    if let Some(p) = crate::fastpath::attr_path(raw) {
        return Some(p);
    }
    if raw.is_empty() || raw.contains(|c: char| c.is_whitespace() || "[]()\"".contains(c)) {
        return None;
    }
    match format!("{raw} pr").parse::<Filter>().ok()? {
        Filter::Attr(AttrExp::Present(p)) => Some(p),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::urn;

    fn user(f: &str) -> Result<Expr, ScimError> {
        parse(&ResourceSchema::user(), f)
    }

    fn invalid_filter(f: &str) {
        let e = user(f).expect_err(f);
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}: {e:?}");
        assert_eq!(e.status, 400);
    }

    #[test]
    fn names_resolve_case_insensitively_to_canonical() {
        let Expr::Cmp(a, Op::Eq, Value::Str(v)) = user(r#"USERNAME Eq "bjensen""#).unwrap() else {
            panic!()
        };
        assert_eq!(a.name, "userName");
        assert!(!a.case_exact);
        assert_eq!(v, "bjensen");
        let Expr::Cmp(a, Op::Gt, Value::DateTime { micros, .. }) =
            user(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#).unwrap()
        else {
            panic!()
        };
        assert!(a.common && a.computed);
        assert_eq!(a.sub.as_deref(), Some("lastModified"));
        assert_eq!(micros, 1_305_261_754_000_000);
    }

    #[test]
    fn urn_qualified_and_extension_paths() {
        let Expr::Cmp(a, ..) = user(&format!("{}:name.familyName eq \"J\"", urn::USER)).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (a.name.as_str(), a.sub.as_deref(), a.extension.as_deref()),
            ("name", Some("familyName"), None)
        );
        let Expr::Cmp(a, ..) =
            user(&format!("{}:department eq \"Tour\"", urn::ENTERPRISE_USER)).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.extension.as_deref(), Some(urn::ENTERPRISE_USER));
        let Expr::Cmp(a, ..) =
            user(&format!("{}:manager.value eq \"26\"", urn::ENTERPRISE_USER)).unwrap()
        else {
            panic!()
        };
        assert_eq!(a.sub.as_deref(), Some("value"));
    }

    #[test]
    fn complex_value_filters() {
        let e = user(r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#).unwrap();
        let Expr::Or(items) = e else { panic!() };
        let Expr::Any(parent, inner) = &items[0] else {
            panic!()
        };
        assert_eq!(parent.name, "emails");
        let Expr::And(conds) = inner.as_ref() else {
            panic!()
        };
        let Expr::Cmp(t, Op::Eq, _) = &conds[0] else {
            panic!()
        };
        assert_eq!(
            (t.name.as_str(), t.sub.as_deref()),
            ("emails", Some("type"))
        );
    }

    #[test]
    fn multi_valued_without_sub_means_value() {
        let Expr::Cmp(a, Op::Co, _) = user(r#"emails co "example.com""#).unwrap() else {
            panic!()
        };
        assert_eq!(a.sub.as_deref(), Some("value"));
        assert!(a.multi_valued);
        let Expr::Present(a) = user("phoneNumbers pr").unwrap() else {
            panic!()
        };
        assert_eq!(a.sub.as_deref(), Some("value"));
    }

    #[test]
    fn all_operators_and_grouping_parse() {
        for f in [
            r#"title pr"#,
            r#"userName sw "J""#,
            r#"userName ew "n""#,
            r#"userName ne "x""#,
            r#"not (userName eq "x")"#,
            r#"(userName eq "a" or userName eq "b") and active eq true"#,
            r#"meta.created ge "2020-01-01T00:00:00Z" and meta.created lt "2030-01-01T00:00:00+01:00""#,
            r#"groups.value eq "abc""#,
            r#"userName eq null"#,
        ] {
            user(f).unwrap_or_else(|e| panic!("{f}: {e:?}"));
        }
    }

    #[test]
    fn bad_filters_are_invalid_filter() {
        for f in [
            r#"nosuch eq "x""#,
            r#"userName.foo eq "x""#,
            r#"name eq "x""#,
            r#"active gt true"#,
            r#"active eq "yes""#,
            r#"userName eq 5"#,
            r#"meta.created co "2020""#,
            r#"meta.created gt "not a date""#,
            r#"password eq "x""#,
            r#"emails[nosuch eq "x"]"#,
            r#"userName[value eq "x"]"#,
            r#"urn:x:y:attr eq "x""#,
            r#"userName eq"#,
            r#"((("#,
            "",
        ] {
            invalid_filter(f);
        }
        invalid_filter(&format!("userName eq \"{}\"", "x".repeat(9000)));
    }

    #[test]
    fn group_filters() {
        let g = ResourceSchema::group();
        let Expr::Cmp(a, ..) = parse(&g, r#"displayName eq "Admins""#).unwrap() else {
            panic!()
        };
        assert_eq!(a.name, "displayName");
        let Expr::Cmp(a, ..) = parse(&g, r#"members.value eq "123""#).unwrap() else {
            panic!()
        };
        assert_eq!(a.sub.as_deref(), Some("value"));
        assert!(parse(&g, r#"userName eq "x""#).is_err());
    }

    #[test]
    fn sort_by_resolves() {
        let u = ResourceSchema::user();
        assert_eq!(sort_by(&u, "userName").unwrap().name, "userName");
        assert_eq!(
            sort_by(&u, "name.familyName").unwrap().sub.as_deref(),
            Some("familyName")
        );
        assert_eq!(sort_by(&u, "emails").unwrap().sub.as_deref(), Some("value"));
        assert_eq!(
            sort_by(&u, "meta.lastModified").unwrap().ty,
            AttrType::DateTime
        );
        assert!(sort_by(&u, "nosuch").is_err());
        assert!(sort_by(&u, "name").is_err());
        assert!(sort_by(&u, "userName eq \"x\"").is_err());
    }
}
