//! Whole-resource checks after normalisation: `required` (RFC 7643 §2.2, §7) and
//! `immutable` (RFC 7643 §7, RFC 7644 §3.5.1).

use super::value::{invalid, present, server_managed};
use crate::error::{ScimError, ScimType};
use crate::schema::{AttrDef, AttrType, Mutability, ResourceSchema, Schema};
use serde_json::{Map, Value};

/// Every required attribute is present: the core schema's always, an extension's when the
/// extension is required or used. Required sub-attributes are checked per value during
/// normalisation.
pub(super) fn required(
    schema: &ResourceSchema,
    top: &Map<String, Value>,
    exts: &[Map<String, Value>],
) -> Result<(), ScimError> {
    check_required(&schema.core, top, "")?;
    for (ext, attrs) in schema.extensions.iter().zip(exts) {
        if ext.required || !attrs.is_empty() {
            check_required(&ext.schema, attrs, &format!("{}:", ext.schema.id))?;
        }
    }
    Ok(())
}

fn check_required(s: &Schema, attrs: &Map<String, Value>, prefix: &str) -> Result<(), ScimError> {
    for def in &s.attributes {
        if def.required
            && !server_managed(def)
            && def.mutability != Mutability::WriteOnly
            && !present(attrs.get(&def.name))
        {
            return Err(invalid(&format!("{prefix}{}", def.name), "is required"));
        }
    }
    Ok(())
}

/// RFC 7644 §3.5.1 immutable: "If one or more values are already set for the attribute, the
/// input value(s) MUST match" (400 `mutability` otherwise). An immutable value the input omits
/// is kept, since the client cannot change it. Checked for top-level and extension attributes
/// and the sub-attributes of singular complex attributes; not inside multi-valued complex
/// attributes, whose elements (Group `members`) may be replaced as a whole.
pub(super) fn immutable(
    schema: &ResourceSchema,
    existing: &Value,
    top: &mut Map<String, Value>,
    exts: &mut [Map<String, Value>],
) -> Result<(), ScimError> {
    let Some(old) = existing.as_object() else {
        return Ok(());
    };
    check_schema(&schema.core, old, top, "")?;
    for (ext, attrs) in schema.extensions.iter().zip(exts.iter_mut()) {
        let old_ext = old
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&ext.schema.id))
            .and_then(|(_, v)| v.as_object());
        if let Some(old_ext) = old_ext {
            check_schema(&ext.schema, old_ext, attrs, &format!("{}:", ext.schema.id))?;
        }
    }
    Ok(())
}

fn check_schema(
    s: &Schema,
    old: &Map<String, Value>,
    new: &mut Map<String, Value>,
    prefix: &str,
) -> Result<(), ScimError> {
    for def in &s.attributes {
        if server_managed(def) {
            continue;
        }
        let path = format!("{prefix}{}", def.name);
        let old_v = old.get(&def.name).filter(|v| !v.is_null());
        if def.mutability == Mutability::Immutable {
            if let Some(o) = old_v {
                match new.get(&def.name) {
                    None => {
                        new.insert(def.name.clone(), o.clone());
                    }
                    Some(n) if !same(def, o, n) => return Err(changed(&path)),
                    Some(_) => {}
                }
            }
            continue;
        }
        if def.is_complex() && !def.multi_valued {
            let (Some(Value::Object(o)), Some(Value::Object(n))) = (old_v, new.get_mut(&def.name))
            else {
                continue;
            };
            for sub in &def.sub_attributes {
                if sub.mutability != Mutability::Immutable {
                    continue;
                }
                let Some(ov) = o.get(&sub.name).filter(|v| !v.is_null()) else {
                    continue;
                };
                match n.get(&sub.name) {
                    None => {
                        n.insert(sub.name.clone(), ov.clone());
                    }
                    Some(nv) if !same(sub, ov, nv) => {
                        return Err(changed(&format!("{path}.{}", sub.name)));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    Ok(())
}

fn changed(path: &str) -> ScimError {
    ScimError::bad_request(
        ScimType::Mutability,
        format!("{path} is immutable and already has a different value"),
    )
}

/// Whether two normalised values of `def` are the same value: strings compare by `caseExact`
/// (RFC 7643 §2.3.1), multi-valued attributes as sets, complex values per sub-attribute.
pub(super) fn same(def: &AttrDef, a: &Value, b: &Value) -> bool {
    if def.multi_valued {
        let (Value::Array(x), Value::Array(y)) = (a, b) else {
            return false;
        };
        return x.len() == y.len()
            && x.iter().all(|e| y.iter().any(|f| same_one(def, e, f)))
            && y.iter().all(|f| x.iter().any(|e| same_one(def, e, f)));
    }
    same_one(def, a, b)
}

fn same_one(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match (def.ty, a, b) {
        (AttrType::Complex, Value::Object(x), Value::Object(y)) => {
            let keys = x.keys().chain(y.keys());
            keys.into_iter().all(|k| match def.sub(k) {
                Some(sub) => match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => same(sub, p, q),
                    _ => false,
                },
                None => x.get(k) == y.get(k),
            })
        }
        (AttrType::String | AttrType::Reference, Value::String(x), Value::String(y))
            if !def.case_exact =>
        {
            x.to_lowercase() == y.to_lowercase()
        }
        (AttrType::Decimal | AttrType::Integer, Value::Number(x), Value::Number(y)) => {
            x.as_f64() == y.as_f64()
        }
        _ => a == b,
    }
}
