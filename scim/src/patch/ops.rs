//! The add, replace and remove operations on the resource document (RFC 7644 §3.5.2.1–3).

use super::eval::{self, as_bool};
use super::path::{AttrLoc, immutable, immutable_err};
use super::{OpKind, invalid};
use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{AttrDef, Mutability, Owner, Schema};
use scim_v2::filter::ValFilter;
use serde_json::{Map, Value};

type Obj = Map<String, Value>;

/// Renames a key that matches `name` case-insensitively to `name` (RFC 7643 §2.1).
pub(crate) fn canon_key(map: &mut Obj, name: &str) {
    if map.contains_key(name) {
        return;
    }
    let found = map.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned();
    if let Some(v) = found.and_then(|k| map.remove(&k)) {
        map.insert(name.to_owned(), v);
    }
}

/// Drops nulls, empty objects and empty arrays at `name` (RFC 7643 §2.5: unassigned
/// attributes are absent), including null or empty elements and null sub-attributes.
pub(crate) fn tidy(map: &mut Obj, name: &str) {
    let keep = match map.get_mut(name) {
        None => return,
        Some(Value::Array(a)) => {
            for e in a.iter_mut() {
                if let Value::Object(o) = e {
                    o.retain(|_, v| !v.is_null());
                }
            }
            a.retain(|e| !e.is_null() && !e.as_object().is_some_and(Obj::is_empty));
            !a.is_empty()
        }
        Some(Value::Object(o)) => {
            o.retain(|_, v| !v.is_null() && !v.as_array().is_some_and(Vec::is_empty));
            !o.is_empty()
        }
        Some(v) => !v.is_null(),
    };
    if !keep {
        map.remove(name);
    }
}

/// The object holding attributes of `owner`: the document itself, or the extension object.
fn container<'m>(map: &'m mut Obj, owner: Owner<'_>, create: bool) -> Option<&'m mut Obj> {
    match owner {
        Owner::Extension(s) => {
            canon_key(map, &s.id);
            if create && !map.get(&s.id).is_some_and(Value::is_object) {
                map.insert(s.id.clone(), Value::Object(Obj::new()));
            }
            map.get_mut(&s.id).and_then(Value::as_object_mut)
        }
        Owner::Common | Owner::Core => Some(map),
    }
}

/// RFC 7644 §3.5.2: a required attribute that a PATCH would leave unassigned is 400
/// `mutability`.
pub(crate) fn required_err(name: &str) -> ScimError {
    invalid(
        ScimType::Mutability,
        format!("`{name}` is required and cannot be removed"),
    )
}

/// Whether the attribute at `l` currently has a value.
pub(crate) fn has_value(map: &mut Obj, l: &AttrLoc<'_, '_>) -> bool {
    container(map, l.owner, false).is_some_and(|c| {
        canon_key(c, &l.attr.name);
        present(c.get(&l.attr.name))
    })
}

fn read_only(d: &AttrDef) -> bool {
    d.computed || d.mutability == Mutability::ReadOnly
}

/// A value as given, with sub-attribute keys renamed to their canonical names and readOnly
/// sub-attributes dropped (RFC 7643 §7: clients cannot set them; as for POST, they are
/// ignored).
fn prep(attr: &AttrDef, v: &Value) -> Value {
    match v {
        Value::Array(a) if attr.multi_valued => {
            Value::Array(a.iter().map(|e| prep_elem(attr, e)).collect())
        }
        _ => prep_elem(attr, v),
    }
}

fn prep_elem(attr: &AttrDef, v: &Value) -> Value {
    let (true, Value::Object(o)) = (attr.is_complex(), v) else {
        return v.clone();
    };
    let mut out = Obj::new();
    for (k, x) in o {
        match attr.sub(k) {
            Some(d) if read_only(d) => {}
            Some(d) => {
                out.insert(d.name.clone(), x.clone());
            }
            None => {
                out.insert(k.clone(), x.clone());
            }
        }
    }
    Value::Object(out)
}

fn present(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    }
}

/// The elements stored at `name` (a single value counts as one element), removed from the
/// map so they can be edited and put back with [`put`].
fn take_array(cont: &mut Obj, name: &str) -> Vec<Value> {
    match cont.remove(name) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(v) => vec![v],
    }
}

/// Puts edited elements back: an array for a multi-valued attribute, else the one element.
fn put(cont: &mut Obj, attr: &AttrDef, mut arr: Vec<Value>) {
    let v = if attr.multi_valued {
        Value::Array(arr)
    } else if arr.is_empty() {
        return;
    } else {
        arr.swap_remove(0)
    };
    cont.insert(attr.name.clone(), v);
}

/// Whether two values of a multi-valued attribute are the same value: complex values by
/// their `value` sub-attribute (case-insensitively) when both have one, else by equality.
fn same_value(a: &Value, b: &Value) -> bool {
    let val = |v: &Value| {
        v.as_object()
            .and_then(|o| eval::get_ci(o, "value"))
            .cloned()
    };
    match (val(a), val(b)) {
        (Some(Value::String(x)), Some(Value::String(y))) => x.to_lowercase() == y.to_lowercase(),
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Whether `elem` is named by `item` of a remove `value` list: the same value, or an
/// element whose `value` equals a plain `item`.
fn named_by(elem: &Value, item: &Value) -> bool {
    if item.is_object() {
        return same_value(elem, item);
    }
    elem == item || same_value(elem, &serde_json::json!({ "value": item }))
}

/// Sets `key` in `obj` (null removes it), refusing to change an immutable value.
fn set_sub(obj: &mut Obj, d: &AttrDef, v: &Value, kind: OpKind) -> Result<(), ScimError> {
    canon_key(obj, &d.name);
    let cur = obj.get(&d.name);
    if immutable(d) && present(cur) && (kind == OpKind::Add || cur != Some(v)) {
        return Err(immutable_err(&d.name));
    }
    if v.is_null() {
        obj.remove(&d.name);
    } else {
        obj.insert(d.name.clone(), v.clone());
    }
    Ok(())
}

/// Merges the given sub-attributes into a complex value (RFC 7644 §3.5.2.1, §3.5.2.3:
/// sub-attributes not given are left unchanged). A non-object on either side replaces.
fn merge(elem: &mut Value, given: &Value, attr: &AttrDef, kind: OpKind) -> Result<(), ScimError> {
    let (Value::Object(cur), Value::Object(g)) = (&mut *elem, given) else {
        *elem = given.clone();
        return Ok(());
    };
    for (k, v) in g {
        match attr.sub(k) {
            Some(d) => set_sub(cur, d, v, kind)?,
            None => {
                cur.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(())
}

/// RFC 7643 §2.4: at most one `primary: true`. When an element this operation wrote
/// (`touched`) is primary, the others are set to `primary: false`.
fn fix_primary(attr: &AttrDef, arr: &mut [Value], touched: &[usize]) {
    let Some(d) = attr.sub("primary") else {
        return;
    };
    let is_primary = |e: &Value| {
        e.as_object()
            .and_then(|o| o.get(&d.name))
            .and_then(|v| as_bool(v, Profile::Lenient))
            == Some(true)
    };
    let Some(winner) = touched
        .iter()
        .rev()
        .copied()
        .find(|&i| arr.get(i).is_some_and(is_primary))
    else {
        return;
    };
    for (i, e) in arr.iter_mut().enumerate() {
        if i != winner
            && is_primary(e)
            && let Value::Object(o) = e
        {
            o.insert(d.name.clone(), Value::Bool(false));
        }
    }
}

fn no_target(l: &AttrLoc<'_, '_>) -> ScimError {
    invalid(
        ScimType::NoTarget,
        format!("`{}`: no value matched the filter", l.display()),
    )
}

/// add (RFC 7644 §3.5.2.1) or replace (§3.5.2.3) at `l`. A null value is a remove for
/// replace and nothing for add.
pub(crate) fn write(
    l: &AttrLoc<'_, '_>,
    map: &mut Obj,
    value: &Value,
    kind: OpKind,
    profile: Profile,
) -> Result<(), ScimError> {
    if value.is_null() {
        return match kind {
            OpKind::Replace => remove(l, map, None, profile),
            OpKind::Add | OpKind::Remove => Ok(()),
        };
    }
    let attr = l.attr;
    let name = attr.name.as_str();
    let Some(cont) = container(map, l.owner, true) else {
        return Ok(());
    };
    canon_key(cont, name);
    match (l.filter, l.sub) {
        (None, None) => {
            let given = prep(attr, value);
            let cur = cont.get(name);
            if immutable(attr) && present(cur) && (kind == OpKind::Add || cur != Some(&given)) {
                return Err(immutable_err(name));
            }
            if attr.multi_valued {
                let items = match given {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                if kind == OpKind::Replace {
                    // The client's list replaces the whole attribute, as given.
                    cont.insert(name.to_owned(), Value::Array(items));
                } else {
                    let mut arr = take_array(cont, name);
                    let mut touched = Vec::new();
                    for item in items.into_iter().filter(|i| !i.is_null()) {
                        match arr.iter().position(|e| same_value(e, &item)) {
                            Some(i) => {
                                if let Some(e) = arr.get_mut(i) {
                                    merge(e, &item, attr, kind)?;
                                }
                                touched.push(i);
                            }
                            None => {
                                arr.push(item);
                                touched.push(arr.len() - 1);
                            }
                        }
                    }
                    fix_primary(attr, &mut arr, &touched);
                    put(cont, attr, arr);
                }
            } else if let (true, Some(cur)) = (attr.is_complex(), cont.get_mut(name)) {
                merge(cur, &given, attr, kind)?;
            } else {
                cont.insert(name.to_owned(), given);
            }
        }
        (None, Some(s)) => {
            if immutable(attr) && present(cont.get(name)) {
                return Err(immutable_err(name));
            }
            let mut arr = take_array(cont, name);
            if (arr.is_empty() || !attr.multi_valued) && arr.first().is_none_or(|e| !e.is_object())
            {
                arr = vec![Value::Object(Obj::new())];
            }
            let mut touched = Vec::new();
            for (i, e) in arr.iter_mut().enumerate() {
                if let Value::Object(o) = e {
                    set_sub(o, s, value, kind)?;
                    touched.push(i);
                }
            }
            fix_primary(attr, &mut arr, &touched);
            put(cont, attr, arr);
        }
        (Some(f), sub) => {
            let mut arr = take_array(cont, name);
            let touched = write_filtered(l, f, &mut arr, sub, value, kind, profile)?;
            fix_primary(attr, &mut arr, &touched);
            put(cont, attr, arr);
        }
    }
    tidy(cont, name);
    Ok(())
}

/// add/replace at `attr[filter]` or `attr[filter].sub`: every matching element is updated.
fn write_filtered(
    l: &AttrLoc<'_, '_>,
    f: &ValFilter,
    arr: &mut Vec<Value>,
    sub: Option<&AttrDef>,
    value: &Value,
    kind: OpKind,
    profile: Profile,
) -> Result<Vec<usize>, ScimError> {
    let attr = l.attr;
    let matched: Vec<usize> = (0..arr.len())
        .filter(|&i| {
            arr.get(i)
                .is_some_and(|e| eval::matches(f, e, attr, profile))
        })
        .collect();
    if matched.is_empty() {
        // Outside strict: Entra ID sends `replace emails[type eq "work"].value` for a user
        // without a work email; the element the filter describes is created.
        if profile.is_strict() || (!attr.multi_valued && !arr.is_empty()) {
            return Err(no_target(l));
        }
        let Some(mut elem) = eval::equalities(f, attr) else {
            return Err(no_target(l));
        };
        match (sub, prep_elem(attr, value)) {
            (Some(s), _) => {
                elem.insert(s.name.clone(), value.clone());
            }
            (None, Value::Object(g)) => elem.extend(g),
            (None, _) => return Err(no_target(l)),
        }
        arr.push(prep_elem(attr, &Value::Object(elem)));
        return Ok(vec![arr.len() - 1]);
    }
    if immutable(attr) {
        return Err(immutable_err(&attr.name));
    }
    let given = prep_elem(attr, value);
    for &i in &matched {
        let Some(e) = arr.get_mut(i) else { continue };
        match (sub, &mut *e) {
            (Some(s), Value::Object(o)) => set_sub(o, s, value, kind)?,
            (Some(_), _) => {}
            (None, _) if attr.is_complex() => merge(e, &given, attr, kind)?,
            (None, _) => *e = given.clone(),
        }
    }
    Ok(matched)
}

/// remove (RFC 7644 §3.5.2.2) at `l`. Outside strict, `value` lists the elements of a
/// multi-valued attribute to remove (Microsoft Entra ID).
pub(crate) fn remove(
    l: &AttrLoc<'_, '_>,
    map: &mut Obj,
    value: Option<&Value>,
    profile: Profile,
) -> Result<(), ScimError> {
    let attr = l.attr;
    let name = attr.name.as_str();
    let Some(cont) = container(map, l.owner, false) else {
        return Ok(());
    };
    canon_key(cont, name);
    let value = value.filter(|v| !v.is_null() && !profile.is_strict());
    match (l.filter, l.sub) {
        (None, None) => match value {
            Some(v) if attr.multi_valued => {
                let items: &[Value] = match v {
                    Value::Array(a) => a,
                    other => std::slice::from_ref(other),
                };
                let mut arr = take_array(cont, name);
                let before = arr.len();
                arr.retain(|e| !items.iter().any(|it| named_by(e, it)));
                if immutable(attr) && arr.len() != before {
                    return Err(immutable_err(name));
                }
                put(cont, attr, arr);
            }
            _ => {
                if immutable(attr) && present(cont.get(name)) {
                    return Err(immutable_err(name));
                }
                cont.remove(name);
            }
        },
        (None, Some(s)) => {
            let mut arr = take_array(cont, name);
            for e in arr.iter_mut() {
                if let Value::Object(o) = e {
                    remove_sub(attr, o, s)?;
                }
            }
            put(cont, attr, arr);
        }
        (Some(f), sub) => {
            let mut arr = take_array(cont, name);
            let is_match = |e: &Value| eval::matches(f, e, attr, profile);
            match sub {
                None => {
                    let before = arr.len();
                    arr.retain(|e| !is_match(e));
                    if immutable(attr) && arr.len() != before {
                        return Err(immutable_err(name));
                    }
                }
                Some(s) => {
                    for e in arr.iter_mut() {
                        if is_match(e)
                            && let Value::Object(o) = e
                        {
                            remove_sub(attr, o, s)?;
                        }
                    }
                }
            }
            put(cont, attr, arr);
        }
    }
    tidy(cont, name);
    Ok(())
}

fn remove_sub(attr: &AttrDef, o: &mut Obj, s: &AttrDef) -> Result<(), ScimError> {
    canon_key(o, &s.name);
    if (immutable(attr) || immutable(s)) && present(o.get(&s.name)) {
        return Err(immutable_err(&s.name));
    }
    if s.required && present(o.get(&s.name)) {
        return Err(required_err(&format!("{}.{}", attr.name, s.name)));
    }
    o.remove(&s.name);
    Ok(())
}

/// remove with an extension URN as path: the whole extension object goes.
pub(crate) fn remove_extension(ext: &Schema, map: &mut Obj) -> Result<(), ScimError> {
    canon_key(map, &ext.id);
    if let Some(Value::Object(o)) = map.get(&ext.id) {
        for a in &ext.attributes {
            if read_only(a) && present(eval::get_ci(o, &a.name)) {
                return Err(invalid(
                    ScimType::Mutability,
                    format!("`{}` is readOnly", a.name),
                ));
            }
            if immutable(a) && present(eval::get_ci(o, &a.name)) {
                return Err(immutable_err(&a.name));
            }
            if a.required && present(eval::get_ci(o, &a.name)) {
                return Err(required_err(&a.name));
            }
        }
    }
    map.remove(&ext.id);
    Ok(())
}
