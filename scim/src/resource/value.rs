//! Type checking and normalisation of one attribute value (RFC 7643 §2.3, §2.4).

use super::{MAX_MULTI_VALUES, MAX_STRING_CHARS};
use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema};
use serde_json::{Map, Value};

/// What validation needs to know besides the attribute definition.
pub(super) struct Ctx<'a> {
    pub(super) schema: &'a ResourceSchema,
    pub(super) strict: bool,
    /// Entra ID's string booleans are accepted.
    entra: bool,
    /// The Group core `members` definition, which has rules of its own.
    members: Option<&'a AttrDef>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(schema: &'a ResourceSchema, profile: Profile) -> Self {
        let members = if crate::urn::same(&schema.core.id, crate::urn::GROUP) {
            schema.core.attr("members")
        } else {
            None
        };
        Self {
            schema,
            strict: profile.is_strict(),
            entra: !profile.is_strict() && profile.accepts_entra_quirks(),
            members,
        }
    }

    fn is_members(&self, def: &AttrDef) -> bool {
        self.members.is_some_and(|m| std::ptr::eq(m, def))
    }
}

/// Input for this attribute is ignored: readOnly (RFC 7643 §7 "SHALL be ignored") or
/// computed by the server.
pub(super) fn server_managed(def: &AttrDef) -> bool {
    def.mutability == Mutability::ReadOnly || def.computed
}

/// Validates and normalises one attribute's value. `Ok(None)` means unassigned (null, an
/// empty array, a complex value with nothing left in it).
pub(super) fn attribute(
    ctx: &Ctx<'_>,
    def: &AttrDef,
    path: &str,
    v: &Value,
) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    if !def.multi_valued {
        if v.is_array() {
            return Err(invalid(path, "expected a single value, not an array"));
        }
        return single(ctx, def, path, v);
    }
    // RFC 7643 §2.4: multi-valued attributes are arrays; outside strict a lone value is
    // taken as a one-element array.
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other if !ctx.strict => vec![other],
        _ => return Err(invalid(path, "expected an array")),
    };
    if items.len() > MAX_MULTI_VALUES && !ctx.is_members(def) {
        return Err(invalid(
            path,
            &format!("more than {MAX_MULTI_VALUES} values"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = format!("{path}[{i}]");
        if item.is_array() {
            return Err(invalid(&p, "nested arrays are not allowed"));
        }
        if let Some(x) = single(ctx, def, &p, item)? {
            out.push(x);
        }
    }
    if def.is_complex() {
        primary(ctx, path, &mut out)?;
    }
    Ok((!out.is_empty()).then_some(Value::Array(out)))
}

/// One value (an element of a multi-valued attribute, or a singular attribute's value).
fn single(ctx: &Ctx<'_>, def: &AttrDef, path: &str, v: &Value) -> Result<Option<Value>, ScimError> {
    match v {
        Value::Null => Ok(None),
        _ if def.is_complex() => complex(ctx, def, path, v),
        _ => scalar(ctx, def, path, v).map(Some),
    }
}

/// A complex value (RFC 7643 §2.3.8): an object of sub-attributes, which do not nest.
fn complex(
    ctx: &Ctx<'_>,
    def: &AttrDef,
    path: &str,
    v: &Value,
) -> Result<Option<Value>, ScimError> {
    let wrapped;
    let obj = match v {
        Value::Object(m) => m,
        // Entra ID sends `"manager": "<id>"`; clients also send bare strings in arrays such
        // as `emails`. Outside strict a string is the `value` sub-attribute.
        Value::String(s) if !ctx.strict && def.sub("value").is_some() => {
            if s.trim().is_empty() && !def.multi_valued {
                return Ok(None);
            }
            let mut m = Map::new();
            m.insert("value".into(), Value::String(s.clone()));
            wrapped = m;
            &wrapped
        }
        _ => return Err(invalid(path, "expected a complex value (JSON object)")),
    };
    let members = ctx.is_members(def);
    let mut out = Map::new();
    let mut seen: Vec<&str> = Vec::new();
    for (key, sv) in obj {
        let Some(sub) = def.sub(key) else {
            if ctx.strict {
                return Err(ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    format!("unknown attribute `{path}.{key}`"),
                ));
            }
            continue;
        };
        let p = format!("{path}.{}", sub.name);
        if seen.contains(&sub.name.as_str()) {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                format!("attribute `{p}` is given more than once"),
            ));
        }
        seen.push(&sub.name);
        // Group members: `display` is readOnly and `$ref` is computed from `value`.
        if server_managed(sub) || (members && sub.name == "$ref") {
            continue;
        }
        if sub.is_complex() {
            return Err(invalid(&p, "complex attributes cannot nest"));
        }
        let Some(mut norm) = attribute(ctx, sub, &p, sv)? else {
            continue;
        };
        if members && sub.name == "type" {
            norm = member_type(&p, &norm)?;
        }
        out.insert(sub.name.clone(), norm);
    }
    for sub in &def.sub_attributes {
        let required = sub.required || (members && sub.name == "value");
        if required && !server_managed(sub) && !present(out.get(&sub.name)) {
            return Err(invalid(&format!("{path}.{}", sub.name), "is required"));
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// A value that counts as present for `required` (RFC 7643 §2.2): strings must not be blank.
pub(super) fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    }
}

/// Group `members[].type`: `User` or `Group` (RFC 7643 §4.2 canonical values), any case.
fn member_type(path: &str, v: &Value) -> Result<Value, ScimError> {
    let s = v.as_str().unwrap_or_default();
    ["User", "Group"]
        .iter()
        .find(|t| t.eq_ignore_ascii_case(s))
        .map(|t| Value::String((*t).to_owned()))
        .ok_or_else(|| invalid(path, "must be `User` or `Group`"))
}

/// At most one element has `primary: true` (RFC 7643 §2.4). Outside strict the first keeps it.
fn primary(ctx: &Ctx<'_>, path: &str, items: &mut [Value]) -> Result<(), ScimError> {
    let mut seen = false;
    for item in items.iter_mut() {
        let Some(p) = item.get_mut("primary") else {
            continue;
        };
        if *p == Value::Bool(true) {
            if seen {
                if ctx.strict {
                    return Err(invalid(path, "more than one value has `primary: true`"));
                }
                *p = Value::Bool(false);
            }
            seen = true;
        }
    }
    Ok(())
}

/// A simple value of the attribute's type (RFC 7643 §2.3.1–§2.3.7).
fn scalar(ctx: &Ctx<'_>, def: &AttrDef, path: &str, v: &Value) -> Result<Value, ScimError> {
    let expected = |what: &str| invalid(path, &format!("expected {what}"));
    match def.ty {
        AttrType::String | AttrType::Reference => match v {
            Value::String(s) => {
                check_len(path, s)?;
                Ok(v.clone())
            }
            _ if def.ty == AttrType::Reference => Err(expected("a reference (string)")),
            _ => Err(expected("string")),
        },
        AttrType::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            // Entra ID sends "True" / "False".
            Value::String(s) if ctx.entra && s.eq_ignore_ascii_case("true") => {
                Ok(Value::Bool(true))
            }
            Value::String(s) if ctx.entra && s.eq_ignore_ascii_case("false") => {
                Ok(Value::Bool(false))
            }
            _ => Err(expected("boolean")),
        },
        AttrType::Integer => match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(v.clone()),
            _ => Err(expected("integer")),
        },
        AttrType::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            _ => Err(expected("decimal")),
        },
        AttrType::DateTime => {
            let s = v
                .as_str()
                .ok_or_else(|| expected("dateTime (RFC 3339 string)"))?;
            check_len(path, s)?;
            crate::value::canonical_datetime(s)
                .map(Value::String)
                .ok_or_else(|| expected("dateTime (RFC 3339, e.g. 2011-05-13T04:42:34Z)"))
        }
        AttrType::Binary => {
            let s = v.as_str().ok_or_else(|| expected("base64 string"))?;
            check_len(path, s)?;
            if base64(s, ctx.strict) {
                Ok(v.clone())
            } else {
                Err(expected("base64 string"))
            }
        }
        AttrType::Complex => Err(expected("complex value")),
    }
}

/// Whether `s` is base64 (RFC 4648 §4), as RFC 7643 §2.3.6 requires for binary. Outside
/// strict, whitespace (line breaks in PEM-style bodies) is ignored and padding is optional.
pub(super) fn base64(s: &str, strict: bool) -> bool {
    let bytes: Vec<u8> = if strict {
        s.bytes().collect()
    } else {
        s.bytes().filter(|b| !b.is_ascii_whitespace()).collect()
    };
    let body_len = bytes.iter().rposition(|b| *b != b'=').map_or(0, |i| i + 1);
    let (body, pad) = bytes.split_at(body_len);
    let alphabet = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    if !body.iter().all(alphabet) || pad.len() > 2 {
        return false;
    }
    if pad.is_empty() {
        match bytes.len() % 4 {
            0 => true,
            1 => false,
            _ => !strict,
        }
    } else {
        bytes.len().is_multiple_of(4)
    }
}

/// No string value over [`MAX_STRING_CHARS`] characters, and none holding U+0000: JSON
/// allows `\u0000`, but PostgreSQL text cannot store it (the write would fail as a server
/// error, and in a Bulk run or an import take every user of the batch with it), so both
/// backends refuse it here as the invalid value it is.
pub(super) fn check_len(path: &str, s: &str) -> Result<(), ScimError> {
    if s.len() > MAX_STRING_CHARS && s.chars().count() > MAX_STRING_CHARS {
        return Err(invalid(
            path,
            &format!("longer than {MAX_STRING_CHARS} characters"),
        ));
    }
    if s.contains('\0') {
        return Err(invalid(path, "contains U+0000 (NUL)"));
    }
    Ok(())
}

/// 400 `invalidValue` naming the attribute path.
pub(super) fn invalid(path: &str, what: &str) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, format!("{path}: {what}"))
}
