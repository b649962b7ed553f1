//! In-memory evaluation of value filters (`attr[filter]`, RFC 7644 §3.4.2.2) against the
//! elements of a multi-valued (or complex) attribute.
//!
//! Strings compare case-insensitively unless the sub-attribute is `caseExact` (RFC 7643
//! §2.3.1); dateTimes compare as instants (§2.3.5); numbers numerically; booleans by value,
//! and outside strict the strings `"True"`/`"False"` (Entra ID) equal the booleans.

use super::invalid;
use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{AttrDef, AttrType};
use crate::value::datetime_micros;
use scim_v2::filter::{AttrExp, AttrPath, CompValue, CompareOp, ValFilter};
use serde_json::{Map, Value};
use std::cmp::Ordering;

/// What a filter attribute names inside an element.
#[derive(Clone, Copy)]
enum Field<'a> {
    /// A sub-attribute of a complex element.
    Sub(&'a AttrDef),
    /// `value` of a simple multi-valued attribute: the element itself.
    Elem(&'a AttrDef),
}

impl<'a> Field<'a> {
    fn def(self) -> &'a AttrDef {
        match self {
            Field::Sub(d) | Field::Elem(d) => d,
        }
    }
}

/// `type`, or `emails.type` inside `emails[…]`.
fn field<'a>(attr: &'a AttrDef, p: &AttrPath) -> Option<Field<'a>> {
    let name = match &p.sub_attr {
        Some(sub) if p.name.eq_ignore_ascii_case(&attr.name) => sub,
        Some(_) => return None,
        None if p.uri.is_some() => return None,
        None => &p.name,
    };
    if attr.is_complex() {
        attr.sub(name).map(Field::Sub)
    } else if name.eq_ignore_ascii_case("value") {
        Some(Field::Elem(attr))
    } else {
        None
    }
}

/// Checks that every attribute in `f` is a sub-attribute of `attr` and that ordering
/// operators are not used on booleans or binaries (RFC 7644 §3.4.2.2): 400 `invalidFilter`.
pub(crate) fn check(f: &ValFilter, attr: &AttrDef) -> Result<(), ScimError> {
    match f {
        ValFilter::Attr(e) => {
            let p = match e {
                AttrExp::Present(p) | AttrExp::Comparison(p, _, _) => p,
            };
            let Some(fd) = field(attr, p) else {
                return Err(invalid(
                    ScimType::InvalidFilter,
                    format!("`{p}` is not a sub-attribute of `{}`", attr.name),
                ));
            };
            if let AttrExp::Comparison(_, op, _) = e {
                let ordering = matches!(
                    op,
                    CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
                );
                if ordering && matches!(fd.def().ty, AttrType::Boolean | AttrType::Binary) {
                    return Err(invalid(
                        ScimType::InvalidFilter,
                        format!(
                            "`{op}` cannot compare the {:?} attribute `{p}`",
                            fd.def().ty
                        ),
                    ));
                }
            }
            Ok(())
        }
        ValFilter::Not(inner) => check(inner, attr),
        ValFilter::And(items) | ValFilter::Or(items) => {
            items.iter().try_for_each(|i| check(i, attr))
        }
    }
}

/// `key` in `obj`, exactly or else case-insensitively (RFC 7643 §2.1).
pub(crate) fn get_ci<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Whether `elem` (one value of `attr`) matches `f`. [`check`] must have passed.
pub(crate) fn matches(f: &ValFilter, elem: &Value, attr: &AttrDef, profile: Profile) -> bool {
    match f {
        ValFilter::Attr(e) => {
            let p = match e {
                AttrExp::Present(p) | AttrExp::Comparison(p, _, _) => p,
            };
            let Some(fd) = field(attr, p) else {
                return false;
            };
            let stored = match fd {
                Field::Elem(_) => Some(elem),
                Field::Sub(d) => elem.as_object().and_then(|o| get_ci(o, &d.name)),
            }
            .filter(|v| !v.is_null());
            match e {
                AttrExp::Present(_) => stored.is_some_and(present),
                AttrExp::Comparison(_, op, cv) => compare(fd.def(), stored, op, cv, profile),
            }
        }
        ValFilter::Not(inner) => !matches(inner, elem, attr, profile),
        ValFilter::And(items) => items.iter().all(|i| matches(i, elem, attr, profile)),
        ValFilter::Or(items) => items.iter().any(|i| matches(i, elem, attr, profile)),
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn compare(
    def: &AttrDef,
    stored: Option<&Value>,
    op: &CompareOp,
    cv: &CompValue,
    profile: Profile,
) -> bool {
    let Some(stored) = stored else {
        // An absent value equals null and differs from everything else.
        return match op {
            CompareOp::Eq => *cv == CompValue::Null,
            CompareOp::Ne => *cv != CompValue::Null,
            _ => false,
        };
    };
    if *cv == CompValue::Null {
        return *op == CompareOp::Ne;
    }
    match def.ty {
        AttrType::Boolean => {
            let (Some(a), Some(b)) = (as_bool(stored, profile), cv_bool(cv, profile)) else {
                return *op == CompareOp::Ne;
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                _ => false,
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            let (Some(a), CompValue::Number(b)) = (stored.as_f64(), cv) else {
                return *op == CompareOp::Ne;
            };
            b.as_f64()
                .and_then(|b| a.partial_cmp(&b))
                .is_some_and(|o| ordered(op, o))
        }
        AttrType::DateTime => {
            let (Some(a), CompValue::Str(b)) = (stored.as_str(), cv) else {
                return *op == CompareOp::Ne;
            };
            match (datetime_micros(a), datetime_micros(b)) {
                (Some(x), Some(y)) if !is_substring_op(op) => ordered(op, x.cmp(&y)),
                _ => strings(a, b, false, op),
            }
        }
        AttrType::String | AttrType::Reference | AttrType::Binary | AttrType::Complex => {
            match (stored, cv) {
                (Value::String(a), CompValue::Str(b)) => strings(a, b, def.case_exact, op),
                _ => *op == CompareOp::Ne,
            }
        }
    }
}

fn is_substring_op(op: &CompareOp) -> bool {
    matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew)
}

fn ordered(op: &CompareOp, o: Ordering) -> bool {
    match op {
        CompareOp::Eq => o == Ordering::Equal,
        CompareOp::Ne => o != Ordering::Equal,
        CompareOp::Gt => o == Ordering::Greater,
        CompareOp::Ge => o != Ordering::Less,
        CompareOp::Lt => o == Ordering::Less,
        CompareOp::Le => o != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn strings(a: &str, b: &str, case_exact: bool, op: &CompareOp) -> bool {
    let (a, b) = if case_exact {
        (a.to_owned(), b.to_owned())
    } else {
        (a.to_lowercase(), b.to_lowercase())
    };
    match op {
        CompareOp::Co => a.contains(&b),
        CompareOp::Sw => a.starts_with(&b),
        CompareOp::Ew => a.ends_with(&b),
        _ => ordered(op, a.cmp(&b)),
    }
}

/// A stored boolean; outside strict also the strings "true"/"false" in any case.
pub(crate) fn as_bool(v: &Value, profile: Profile) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if !profile.is_strict() => parse_bool(s),
        _ => None,
    }
}

fn cv_bool(cv: &CompValue, profile: Profile) -> Option<bool> {
    match cv {
        CompValue::True => Some(true),
        CompValue::False => Some(false),
        CompValue::Str(s) if !profile.is_strict() => parse_bool(s),
        _ => None,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The sub-attribute values a filter made only of `eq` (alone or joined by `and`) pins
/// down, under canonical names: `type eq "work"` gives `{"type": "work"}`. `None` for any
/// other shape, a `null` comparison, or two different values for one sub-attribute.
pub(crate) fn equalities(f: &ValFilter, attr: &AttrDef) -> Option<Map<String, Value>> {
    if !attr.is_complex() {
        return None;
    }
    let mut out = Map::new();
    let mut add = |f: &ValFilter| -> Option<()> {
        let ValFilter::Attr(AttrExp::Comparison(p, CompareOp::Eq, cv)) = f else {
            return None;
        };
        let Some(Field::Sub(d)) = field(attr, p) else {
            return None;
        };
        let v = match cv {
            CompValue::Null => return None,
            CompValue::True => Value::Bool(true),
            CompValue::False => Value::Bool(false),
            CompValue::Number(n) => Value::Number(n.clone()),
            CompValue::Str(s) => Value::String(s.clone()),
        };
        match out.get(&d.name) {
            Some(old) if *old != v => None,
            _ => {
                out.insert(d.name.clone(), v);
                Some(())
            }
        }
    };
    match f {
        ValFilter::And(items) => {
            for i in items {
                add(i)?;
            }
        }
        other => add(other)?,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ResourceSchema, USER};
    use serde_json::json;

    fn vf(s: &str) -> ValFilter {
        let p: scim_v2::filter::PatchPath = format!("emails[{s}]").parse().unwrap();
        match p {
            scim_v2::filter::PatchPath::Value(v) => v.filter,
            scim_v2::filter::PatchPath::Attr(_) => panic!("not a value path"),
        }
    }

    fn m(f: &str, elem: Value, profile: Profile) -> bool {
        let emails = USER.attr("emails").unwrap();
        let f = vf(f);
        check(&f, emails).unwrap();
        matches(&f, &elem, emails, profile)
    }

    #[test]
    fn operators() {
        let e = json!({"value": "Bjensen@Example.com", "type": "work", "primary": true});
        let l = Profile::Lenient;
        assert!(m(r#"type eq "WORK""#, e.clone(), l));
        assert!(m(r#"type ne "home""#, e.clone(), l));
        assert!(m(r#"value co "example""#, e.clone(), l));
        assert!(m(r#"value sw "bjensen@""#, e.clone(), l));
        assert!(m(r#"value ew ".COM""#, e.clone(), l));
        assert!(m(r#"value gt "a""#, e.clone(), l));
        assert!(m(r#"value ge "bjensen@example.com""#, e.clone(), l));
        assert!(m(r#"value lt "c""#, e.clone(), l));
        assert!(m(r#"value le "c""#, e.clone(), l));
        assert!(m("display pr or primary eq true", e.clone(), l));
        assert!(!m("display pr", e.clone(), l));
        assert!(m(
            r#"emails.type eq "work" and not (value co "zz")"#,
            e.clone(),
            l
        ));
        assert!(m(
            r#"(type eq "home" or type eq "work") and primary eq true"#,
            e.clone(),
            l
        ));
        assert!(m("display eq null", e.clone(), l));
        assert!(m(r#"display ne "x""#, e, l));
    }

    #[test]
    fn entra_boolean_strings_outside_strict() {
        let e = json!({"value": "a@b.c", "primary": "True"});
        assert!(m("primary eq true", e.clone(), Profile::Entra));
        assert!(!m("primary eq true", e.clone(), Profile::Strict));
        assert!(m(
            r#"primary eq "true""#,
            json!({"primary": true}),
            Profile::Lenient
        ));
    }

    #[test]
    fn numbers_and_datetimes() {
        let mut attr = USER.attr("emails").unwrap().clone();
        let mut n = attr.sub_attributes[0].clone();
        n.name = "rank".into();
        n.ty = AttrType::Integer;
        let mut d = n.clone();
        d.name = "since".into();
        d.ty = AttrType::DateTime;
        attr.sub_attributes.extend([n, d]);
        let e = json!({"rank": 5, "since": "2020-01-01T01:00:00+01:00"});
        let t = |s: &str| {
            let f = vf(s);
            check(&f, &attr).unwrap();
            matches(&f, &e, &attr, Profile::Strict)
        };
        assert!(t("rank gt 4"));
        assert!(t("rank le 5.0"));
        assert!(!t("rank lt 5"));
        assert!(t(r#"since eq "2020-01-01T00:00:00Z""#));
        assert!(t(r#"since lt "2020-01-01T00:00:01.000Z""#));
    }

    #[test]
    fn check_refuses_unknown_and_ordering_on_booleans() {
        let emails = USER.attr("emails").unwrap();
        let e = check(&vf(r#"nosuch eq "x""#), emails).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        let e = check(&vf("primary gt true"), emails).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidFilter));
        assert!(check(&vf(r#"phoneNumbers.type eq "x""#), emails).is_err());
        let _ = ResourceSchema::user();
    }

    #[test]
    fn equalities_of_eq_filters() {
        let emails = USER.attr("emails").unwrap();
        assert_eq!(
            equalities(&vf(r#"TYPE eq "work" and primary eq true"#), emails),
            json!({"type": "work", "primary": true})
                .as_object()
                .cloned()
        );
        assert!(equalities(&vf(r#"type eq "work" or type eq "home""#), emails).is_none());
        assert!(equalities(&vf(r#"type eq "a" and type eq "b""#), emails).is_none());
        assert!(equalities(&vf(r#"type co "work""#), emails).is_none());
    }
}
