//! Which attributes a response carries: the `attributes` and `excludedAttributes` parameters
//! (RFC 7644 §3.4.2.5, §3.9) and the `returned` characteristic (RFC 7643 §7).
//!
//! - `schemas` and `id` are always present, as is every `returned: always` attribute; neither
//!   parameter can remove them.
//! - `returned: never` (and writeOnly) attributes, such as `password`, are never present.
//! - Without `attributes`, `returned: default` attributes are present unless excluded, and
//!   `returned: request` ones are not.
//! - With `attributes`, only the named attributes (plus the always-returned ones) are present.
//!   `name.givenName` keeps only that sub-attribute; for a multi-valued complex attribute
//!   (`emails.value`) it keeps that sub-attribute in every value. `urn:…:User:department`
//!   names an extension attribute, and a bare extension URN the whole extension.
//! - `excludedAttributes` removes the named attributes and sub-attributes.
//!
//! Complex values and extension objects left empty are removed.

#[cfg(test)]
mod tests;

use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{AttrDef, Mutability, ResourceSchema, Returned};
use serde_json::{Map, Value};

/// One item of an `attributes` / `excludedAttributes` list, in canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    /// The extension URN for an extension attribute (or a whole extension); `None` for core
    /// and common attributes.
    pub urn: Option<String>,
    /// The attribute; `None` selects the whole extension named by `urn`.
    pub attr: Option<String>,
    /// The sub-attribute of a complex attribute.
    pub sub: Option<String>,
}

impl Selector {
    /// Whether this selector names the attribute `attr` of `urn` (whole or a sub-attribute).
    fn names(&self, urn: Option<&str>, attr: &str) -> bool {
        same_urn(self.urn.as_deref(), urn)
            && self
                .attr
                .as_deref()
                .is_some_and(|a| a.eq_ignore_ascii_case(attr))
    }

    /// Whether this selector names all of extension `urn`.
    fn whole_extension(&self, urn: Option<&str>) -> bool {
        self.attr.is_none() && urn.is_some() && same_urn(self.urn.as_deref(), urn)
    }
}

fn same_urn(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        _ => false,
    }
}

/// Parses an `attributes` or `excludedAttributes` value (RFC 7644 §3.4.2.5): a comma-separated
/// list of `[urn:]attr[.sub]` or bare extension URNs, matched case-insensitively, returned in
/// canonical spelling without duplicates. An unknown attribute is 400 `invalidValue` in strict
/// and ignored otherwise.
pub fn parse_list(
    schema: &ResourceSchema,
    raw: &str,
    profile: Profile,
) -> Result<Vec<Selector>, ScimError> {
    let mut out: Vec<Selector> = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        // `schemas` is always returned; naming it changes nothing.
        if item.eq_ignore_ascii_case("schemas") {
            continue;
        }
        match parse_one(schema, item) {
            Some(sel) if out.contains(&sel) => {}
            Some(sel) => out.push(sel),
            None if profile.is_strict() => {
                return Err(ScimError::bad_request(
                    ScimType::InvalidValue,
                    format!("unknown attribute `{item}`"),
                ));
            }
            None => {}
        }
    }
    Ok(out)
}

fn parse_one(schema: &ResourceSchema, item: &str) -> Option<Selector> {
    if let Some(ext) = schema.extension(item) {
        return Some(Selector {
            urn: Some(ext.schema.id.clone()),
            attr: None,
            sub: None,
        });
    }
    // The longest known schema URN followed by `:` is the prefix (URNs contain `.` and `:`).
    let mut prefix: Option<&str> = None;
    for urn in
        std::iter::once(&schema.core.id).chain(schema.extensions.iter().map(|e| &e.schema.id))
    {
        let matches = item
            .get(..urn.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(urn))
            && item.as_bytes().get(urn.len()) == Some(&b':');
        if matches && prefix.is_none_or(|p| p.len() < urn.len()) {
            prefix = Some(urn);
        }
    }
    let rest = match prefix {
        Some(p) => item.get(p.len() + 1..)?,
        None if item
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:")) =>
        {
            return None;
        }
        None => item,
    };
    let mut parts = rest.split('.');
    let name = parts.next().filter(|n| !n.is_empty())?;
    let sub = parts.next();
    if parts.next().is_some() || sub.is_some_and(str::is_empty) {
        return None;
    }
    let r = schema.resolve(prefix, name, sub)?;
    Some(Selector {
        urn: r.extension_urn().map(str::to_owned),
        attr: Some(r.attr.name.clone()),
        sub: r.sub.map(|s| s.name.clone()),
    })
}

/// Whether the top-level attribute `attr` (of extension `urn`, or core/common when `None` or
/// the core URN) would appear, at least in part, in a projected response. Lets the server skip
/// loading what will not be returned (e.g. Group `members` under `excludedAttributes=members`).
pub fn includes(
    schema: &ResourceSchema,
    attributes: &[Selector],
    excluded: &[Selector],
    urn: Option<&str>,
    attr: &str,
) -> bool {
    let urn = urn.filter(|u| !schema.core.id.eq_ignore_ascii_case(u));
    let Some(r) = schema.resolve(urn, attr, None) else {
        return attributes.is_empty();
    };
    plan(attributes, excluded, r.extension_urn(), r.attr).is_some()
}

/// Projects the full representation `full` (canonical document plus `id`, `meta` and
/// computed attributes) by `attributes` and `excluded` and the `returned` characteristics.
/// Infallible: anything it does not recognise is kept when no `attributes` were asked for
/// and dropped otherwise.
pub fn project(
    schema: &ResourceSchema,
    full: &Value,
    attributes: &[Selector],
    excluded: &[Selector],
) -> Value {
    let Some(obj) = full.as_object() else {
        return full.clone();
    };
    let mut out = Map::new();
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") || key == "id" {
            out.insert(key.clone(), v.clone());
            continue;
        }
        if let Some(ext) = schema.extension(key) {
            let Some(m) = v.as_object() else {
                continue;
            };
            let urn = Some(ext.schema.id.as_str());
            let mut em = Map::new();
            for (k, av) in m {
                let kept = match ext.schema.attr(k) {
                    Some(def) => project_attr(attributes, excluded, urn, def, av),
                    None => attributes.is_empty().then(|| av.clone()),
                };
                if let Some(x) = kept {
                    em.insert(k.clone(), x);
                }
            }
            if !em.is_empty() {
                out.insert(key.clone(), Value::Object(em));
            }
            continue;
        }
        let kept = match schema.resolve(None, key, None) {
            Some(r) => project_attr(attributes, excluded, None, r.attr, v),
            None => attributes.is_empty().then(|| v.clone()),
        };
        if let Some(x) = kept {
            out.insert(key.clone(), x);
        }
    }
    Value::Object(out)
}

/// Which sub-attributes of an included attribute are kept.
enum Subs<'a> {
    /// `returned: default` and `always` ones (no `attributes` parameter).
    Default,
    /// All but `never` (the attribute was named in `attributes`).
    All,
    /// The named ones, plus `always` ones.
    Only(Vec<&'a str>),
}

struct Plan<'a> {
    subs: Subs<'a>,
    excluded: Vec<&'a str>,
}

impl Plan<'_> {
    fn keeps(&self, def: Option<&AttrDef>, name: &str) -> bool {
        let (returned, mutability) = def.map_or((Returned::Default, Mutability::ReadWrite), |d| {
            (d.returned, d.mutability)
        });
        if returned == Returned::Never || mutability == Mutability::WriteOnly {
            return false;
        }
        if returned == Returned::Always {
            return true;
        }
        if self.excluded.iter().any(|e| e.eq_ignore_ascii_case(name)) {
            return false;
        }
        match &self.subs {
            Subs::Default => returned != Returned::Request,
            Subs::All => true,
            Subs::Only(names) => names.iter().any(|n| n.eq_ignore_ascii_case(name)),
        }
    }
}

/// Whether attribute `def` (of extension `urn`) is included, and how its sub-attributes are
/// filtered; `None` when it is left out.
fn plan<'a>(
    attributes: &'a [Selector],
    excluded: &'a [Selector],
    urn: Option<&str>,
    def: &AttrDef,
) -> Option<Plan<'a>> {
    if def.returned == Returned::Never || def.mutability == Mutability::WriteOnly {
        return None;
    }
    if def.returned == Returned::Always {
        // RFC 7644 §3.4.2.5: neither parameter affects `returned: always` attributes.
        return Some(Plan {
            subs: Subs::Default,
            excluded: Vec::new(),
        });
    }
    let whole =
        |s: &Selector| s.whole_extension(urn) || (s.names(urn, &def.name) && s.sub.is_none());
    if excluded.iter().any(&whole) {
        return None;
    }
    let excluded_subs = excluded
        .iter()
        .filter(|s| s.names(urn, &def.name))
        .filter_map(|s| s.sub.as_deref())
        .collect();
    let subs = if attributes.is_empty() {
        if def.returned == Returned::Request {
            return None;
        }
        Subs::Default
    } else if attributes.iter().any(&whole) {
        Subs::All
    } else {
        let named: Vec<&str> = attributes
            .iter()
            .filter(|s| s.names(urn, &def.name))
            .filter_map(|s| s.sub.as_deref())
            .collect();
        if named.is_empty() {
            return None;
        }
        Subs::Only(named)
    };
    Some(Plan {
        subs,
        excluded: excluded_subs,
    })
}

fn project_attr(
    attributes: &[Selector],
    excluded: &[Selector],
    urn: Option<&str>,
    def: &AttrDef,
    v: &Value,
) -> Option<Value> {
    let plan = plan(attributes, excluded, urn, def)?;
    if !def.is_complex() {
        return Some(v.clone());
    }
    let filter = |m: &Map<String, Value>| -> Option<Value> {
        let kept: Map<String, Value> = m
            .iter()
            .filter(|(k, _)| plan.keeps(def.sub(k), k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match v {
        Value::Object(m) => filter(m),
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|item| match item {
                    Value::Object(m) => filter(m),
                    other => Some(other.clone()),
                })
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other.clone()),
    }
}
