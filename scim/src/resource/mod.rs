//! Validating and normalising resources on input (RFC 7643 §2, §7; RFC 7644 §3.3, §3.5.1).
//!
//! [`validate`] turns a client's JSON body into the canonical resource document every other
//! module works with:
//!
//! - `schemas`: the core URN first, then the URNs of the extensions present (or required), in
//!   their canonical spelling.
//! - core attributes and `externalId` at the top level under their canonical names; extension
//!   attributes in an object under the extension URN;
//! - never `id`, `meta`, computed or readOnly attributes (RFC 7643 §7: readOnly input "SHALL be
//!   ignored"), nor the writeOnly `password` (returned separately in [`Validated::password`]);
//! - unassigned means absent (RFC 7643 §2.5): nulls, empty arrays and empty complex values are
//!   removed;
//! - dateTimes in the canonical form of [`crate::value::canonical_datetime`].
//!
//! Deviations accepted outside [`Profile::Strict`], and the providers that need them: a missing
//! `schemas` and extension objects whose URN is not listed (several clients); the
//! `…/ADSCIM/2.0/User|Group` URNs (Microsoft Entra ID); booleans sent as `"True"`/`"False"`
//! (Entra ID); `manager` and other complex values sent as a bare string (Entra ID); a single
//! value where an array is expected; more than one `primary: true`; unknown attributes (dropped).

mod check;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_idp;
#[cfg(test)]
mod tests_values;

use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{AttrDef, COMMON, Mutability, ResourceSchema};
use serde_json::{Map, Value};

/// The longest string value accepted, in characters.
pub const MAX_STRING_CHARS: usize = 8192;
/// The most elements a multi-valued attribute may have (Group `members` excepted: the request
/// body limit caps it).
pub const MAX_MULTI_VALUES: usize = 10_000;

/// Microsoft Entra ID lists these schema URNs on the resources it sends; they name no
/// attributes and are dropped outside strict.
const MS_ADSCIM: [&str; 2] = [
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/User",
    "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group",
];

/// What the input is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// POST (RFC 7644 §3.3).
    Create,
    /// PUT (RFC 7644 §3.5.1), or re-validating the result of a PATCH: immutable attributes
    /// are checked against the existing document.
    Replace,
}

/// A validated, normalised resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Validated {
    /// The canonical resource document.
    pub doc: Value,
    /// The writeOnly `password` (RFC 7643 §4.1.1), never part of the document.
    pub password: Option<String>,
}

/// Validates `input` against `schema` and returns the canonical document (see the module
/// documentation). `existing` is the current canonical document for [`Mode::Replace`]: an
/// immutable attribute that has a value there must not change (RFC 7644 §3.5.1), and one
/// the input omits keeps its value.
///
/// Errors are 400 with `invalidSyntax` (not an object, `schemas` wrong, unknown schema or,
/// in strict, unknown attribute), `invalidValue` (wrong type, required value missing, limits)
/// or `mutability` (an immutable value changed).
pub fn validate(
    schema: &ResourceSchema,
    input: &Value,
    mode: Mode,
    profile: Profile,
    existing: Option<&Value>,
) -> Result<Validated, ScimError> {
    let obj = input
        .as_object()
        .ok_or_else(|| syntax("the resource must be a JSON object"))?;
    let ctx = value::Ctx::new(schema, profile);
    let listed = listed_schemas(&ctx, obj)?;

    // Gather (owner, definition, path, value), rejecting the same attribute given twice.
    let mut gathered: Vec<(Option<usize>, &AttrDef, String, &Value)> = Vec::new();
    for (key, v) in obj {
        if key.eq_ignore_ascii_case("schemas") {
            continue;
        }
        if looks_like_urn(key) {
            let (idx, ext) = schema
                .extensions
                .iter()
                .enumerate()
                .find(|(_, e)| e.schema.id.eq_ignore_ascii_case(key))
                .ok_or_else(|| syntax(format!("unknown schema extension `{key}`")))?;
            let members = match v {
                Value::Null => continue,
                Value::Object(m) => m,
                _ => {
                    return Err(syntax(format!("`{}` must be a JSON object", ext.schema.id)));
                }
            };
            if ctx.strict && !listed.contains(&Some(idx)) {
                return Err(syntax(format!(
                    "`{}` is not listed in `schemas`",
                    ext.schema.id
                )));
            }
            for (name, sv) in members {
                match ext.schema.attr(name) {
                    Some(def) => {
                        let path = format!("{}:{}", ext.schema.id, def.name);
                        add(&mut gathered, Some(idx), def, path, sv)?;
                    }
                    None if ctx.strict => {
                        return Err(syntax(format!(
                            "unknown attribute `{}:{name}`",
                            ext.schema.id
                        )));
                    }
                    None => {}
                }
            }
            continue;
        }
        let def = COMMON
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(key))
            .or_else(|| schema.core.attr(key));
        match def {
            Some(def) => add(&mut gathered, None, def, def.name.clone(), v)?,
            None if ctx.strict => return Err(syntax(format!("unknown attribute `{key}`"))),
            None => {}
        }
    }

    // Normalise each value.
    let mut top = Map::new();
    let mut exts: Vec<Map<String, Value>> = vec![Map::new(); schema.extensions.len()];
    let mut password = None;
    for (owner, def, path, v) in gathered {
        if value::server_managed(def) {
            continue;
        }
        if owner.is_none() && def.mutability == Mutability::WriteOnly && def.name == "password" {
            password = match v {
                Value::Null => None,
                Value::String(s) => {
                    value::check_len(&path, s)?;
                    Some(s.clone())
                }
                _ => return Err(value::invalid(&path, "expected string")),
            };
            continue;
        }
        if let Some(norm) = value::attribute(&ctx, def, &path, v)? {
            let target = match owner {
                None => &mut top,
                Some(i) => match exts.get_mut(i) {
                    Some(m) => m,
                    None => continue,
                },
            };
            target.insert(def.name.clone(), norm);
        }
    }

    if mode == Mode::Replace
        && let Some(existing) = existing
    {
        check::immutable(schema, existing, &mut top, &mut exts)?;
    }
    check::required(schema, &top, &exts)?;

    let mut urns = vec![Value::String(schema.core.id.clone())];
    for (ext, attrs) in schema.extensions.iter().zip(exts) {
        if !attrs.is_empty() || ext.required {
            urns.push(Value::String(ext.schema.id.clone()));
        }
        if !attrs.is_empty() {
            top.insert(ext.schema.id.clone(), Value::Object(attrs));
        }
    }
    top.insert("schemas".into(), Value::Array(urns));
    Ok(Validated {
        doc: Value::Object(top),
        password,
    })
}

/// Removes `members` from a Group document and returns each member's `value` and `type`.
/// Elements without a string `value` (which [`validate`] never produces) are skipped.
pub fn extract_members(doc: &mut Value) -> Vec<(String, Option<String>)> {
    let Some(members) = doc.as_object_mut().and_then(|m| m.remove("members")) else {
        return Vec::new();
    };
    let Value::Array(items) = members else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|m| {
            let value = m.get("value")?.as_str()?.to_owned();
            let ty = m.get("type").and_then(Value::as_str).map(str::to_owned);
            Some((value, ty))
        })
        .collect()
}

/// Records one input attribute; the same attribute under two spellings is ambiguous.
fn add<'a>(
    gathered: &mut Vec<(Option<usize>, &'a AttrDef, String, &'a Value)>,
    owner: Option<usize>,
    def: &'a AttrDef,
    path: String,
    v: &'a Value,
) -> Result<(), ScimError> {
    if gathered
        .iter()
        .any(|(o, d, _, _)| *o == owner && std::ptr::eq(*d, def))
    {
        return Err(syntax(format!(
            "attribute `{path}` is given more than once"
        )));
    }
    gathered.push((owner, def, path, v));
    Ok(())
}

/// The schemas listed in `schemas` (RFC 7643 §3): `None` for the core schema, `Some(i)` for
/// extension `i`. Strict requires the list and the core URN in it.
fn listed_schemas(
    ctx: &value::Ctx<'_>,
    obj: &Map<String, Value>,
) -> Result<Vec<Option<usize>>, ScimError> {
    let raw = obj
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("schemas"))
        .map(|(_, v)| v);
    let items: Vec<&Value> = match raw {
        None | Some(Value::Null) if ctx.strict => {
            return Err(syntax("`schemas` is required"));
        }
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.iter().collect(),
        Some(v @ Value::String(_)) if !ctx.strict => vec![v],
        Some(_) => return Err(syntax("`schemas` must be an array of schema URNs")),
    };
    let schema = ctx.schema;
    let mut listed = Vec::new();
    for item in items {
        let urn = item
            .as_str()
            .ok_or_else(|| syntax("`schemas` must be an array of schema URNs"))?;
        if schema.core.id.eq_ignore_ascii_case(urn) {
            listed.push(None);
        } else if let Some(i) = schema
            .extensions
            .iter()
            .position(|e| e.schema.id.eq_ignore_ascii_case(urn))
        {
            listed.push(Some(i));
        } else if !ctx.strict && MS_ADSCIM.iter().any(|m| m.eq_ignore_ascii_case(urn)) {
            // Entra ID's marker URNs: no attributes, nothing to keep.
        } else {
            return Err(syntax(format!(
                "schema `{urn}` is not a schema of the {} resource type",
                schema.name
            )));
        }
    }
    if ctx.strict && !listed.contains(&None) {
        return Err(syntax(format!(
            "`schemas` must contain `{}`",
            schema.core.id
        )));
    }
    Ok(listed)
}

/// An object key that names a schema rather than an attribute.
fn looks_like_urn(key: &str) -> bool {
    key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidSyntax, detail)
}
