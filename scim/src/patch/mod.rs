//! PATCH (RFC 7644 §3.5.2): parsing a `PatchOp` message and applying it to a resource
//! document.
//!
//! [`parse`] checks the message shape (§3.5.2: `schemas`, `Operations`, `op`, `path`,
//! `value`). [`apply`] resolves each path against a [`ResourceSchema`] and edits the
//! canonical resource document in place: core attributes at the top level under their
//! canonical names, extension attributes under the extension URN key, unassigned attributes
//! absent. Group `members` are never written to the document: operations on them are
//! accumulated into a [`MemberDelta`] for the membership table.
//!
//! Rules applied in every profile: unknown attributes are 400 `invalidPath`; readOnly,
//! computed, `id` and `meta` targets are 400 `mutability`, and so is removing a required
//! attribute (§3.5.2) or changing an immutable one; readOnly sub-attributes inside a given
//! value are dropped, as for POST; `primary: true` written by an operation clears the other
//! elements' `primary` (RFC 7643 §2.4).
//!
//! Accepted deviations outside [`Profile::Strict`] (each is marked where it is handled):
//! - missing `schemas`, case-insensitive `Operations`/`op`/`path`/`value` keys and op names
//!   (`"Replace"`, sent by Microsoft Entra ID);
//! - path-less values whose keys are paths (`"name.givenName"`,
//!   `"emails[type eq \"work\"].value"`, `"urn:…:enterprise:2.0:User:department"`: Entra ID);
//! - `id` and `schemas` keys in a path-less value are ignored (Okta group push sends `id`);
//! - a filtered `add`/`replace` that matches nothing appends an element built from the
//!   filter's equalities (Entra ID: `replace emails[type eq "work"].value` for a user
//!   without a work email);
//! - `remove` with a `value` list removes the listed elements (Entra ID group members);
//! - `"True"`/`"False"` strings compare equal to booleans in value filters (Entra ID).

mod eval;
mod members;
mod ops;
mod path;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_idp;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_rfc;

use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use crate::schema::{Owner, ResourceSchema};
use scim_v2::filter::{AttrPath, PatchPath};
use serde_json::{Map, Value};

use members::Members;
use path::{AttrLoc, Loc};

/// The most operations one PATCH request may carry (answered with 400 `tooMany`).
pub const MAX_OPERATIONS: usize = 1000;

/// RFC 7644 §3.5.2 `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Add,
    Replace,
    Remove,
}

/// One PATCH operation (RFC 7644 §3.5.2). A JSON `null` value is treated as absent.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchOp {
    pub op: OpKind,
    pub path: Option<PatchPath>,
    pub value: Option<Value>,
}

/// A parsed `urn:ietf:params:scim:api:messages:2.0:PatchOp` message.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchRequest {
    pub ops: Vec<PatchOp>,
}

/// The resource type a PATCH applies to: `members` is special only on groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    User,
    Group,
}

/// A group member named by a PATCH (RFC 7643 §4.2 `members`: `value` and `type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRef {
    pub value: String,
    pub ty: Option<String>,
}

/// The membership change a PATCH makes to a group, in set semantics.
///
/// When `replace` is `Some`, the membership becomes exactly that list (and `add`/`remove`
/// are empty); otherwise `add` members are added (already a member: no change) and `remove`
/// ids removed (not a member: no change). No id is in both `add` and `remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberDelta {
    pub replace: Option<Vec<MemberRef>>,
    pub add: Vec<MemberRef>,
    pub remove: Vec<String>,
}

impl MemberDelta {
    /// Whether the PATCH leaves the membership unchanged.
    pub fn is_empty(&self) -> bool {
        self.replace.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

pub(crate) fn invalid(scim_type: ScimType, detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(scim_type, detail)
}

/// Finds `key` in `obj`: exactly, or (outside strict) case-insensitively.
fn field<'v>(obj: &'v Map<String, Value>, key: &str, profile: Profile) -> Option<&'v Value> {
    obj.get(key).or_else(|| {
        if profile.is_strict() {
            None
        } else {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        }
    })
}

/// Parses a PATCH body (RFC 7644 §3.5.2).
pub fn parse(body: &Value, profile: Profile) -> Result<PatchRequest, ScimError> {
    let syntax = |d: &str| invalid(ScimType::InvalidSyntax, d);
    let obj = body
        .as_object()
        .ok_or_else(|| syntax("a PATCH body must be a JSON object"))?;
    let is_patch_op = |v: &Value| {
        v.as_str()
            .is_some_and(|s| crate::urn::same(s, crate::urn::PATCH_OP))
    };
    match field(obj, "schemas", profile) {
        Some(Value::Array(a)) if a.iter().any(is_patch_op) => {}
        // Outside strict a bare string is read as a one-element list.
        Some(v) if !profile.is_strict() && is_patch_op(v) => {}
        None if !profile.is_strict() => {}
        _ => {
            return Err(syntax(
                "`schemas` must contain urn:ietf:params:scim:api:messages:2.0:PatchOp",
            ));
        }
    }
    let ops = match field(obj, "Operations", profile) {
        Some(Value::Array(a)) if !a.is_empty() => a,
        _ => return Err(syntax("`Operations` must be a non-empty array")),
    };
    if ops.len() > MAX_OPERATIONS {
        return Err(invalid(
            ScimType::TooMany,
            format!("a PATCH request may carry at most {MAX_OPERATIONS} operations"),
        ));
    }
    let ops = ops
        .iter()
        .enumerate()
        .map(|(i, op)| parse_op(op, profile).map_err(|e| in_op(i, e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PatchRequest { ops })
}

/// Prefixes an error detail with the operation it belongs to.
fn in_op(i: usize, e: ScimError) -> ScimError {
    ScimError {
        detail: format!("Operations[{i}]: {}", e.detail),
        ..e
    }
}

fn parse_op(op: &Value, profile: Profile) -> Result<PatchOp, ScimError> {
    let obj = op.as_object().ok_or_else(|| {
        invalid(
            ScimType::InvalidSyntax,
            "an operation must be a JSON object",
        )
    })?;
    let name = field(obj, "op", profile)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(ScimType::InvalidSyntax, "`op` must be a string"))?;
    let eq = |want: &str| {
        if profile.is_strict() {
            name == want
        } else {
            // Entra ID sends "Add", "Replace", "Remove".
            name.eq_ignore_ascii_case(want)
        }
    };
    let kind = if eq("add") {
        OpKind::Add
    } else if eq("replace") {
        OpKind::Replace
    } else if eq("remove") {
        OpKind::Remove
    } else {
        return Err(invalid(
            ScimType::InvalidSyntax,
            format!("unknown op `{name}`: expected add, replace or remove"),
        ));
    };
    let path = match field(obj, "path", profile) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() && !profile.is_strict() => None,
        Some(Value::String(s)) => Some(
            crate::fastpath::parse_patch_path(s)
                .map_err(|e| invalid(ScimType::InvalidPath, format!("invalid path `{s}`: {e}")))?,
        ),
        Some(_) => return Err(invalid(ScimType::InvalidPath, "`path` must be a string")),
    };
    let value = match field(obj, "value", profile) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    match kind {
        OpKind::Remove if path.is_none() => {
            return Err(invalid(ScimType::NoTarget, "remove requires a `path`"));
        }
        // RFC 7644 §3.5.2.2 defines no value for remove; only the Entra ID member-list form
        // is accepted, outside strict, rather than silently removing everything.
        OpKind::Remove if value.is_some() && profile.is_strict() => {
            return Err(invalid(ScimType::InvalidValue, "remove takes no `value`"));
        }
        OpKind::Add | OpKind::Replace if value.is_none() => {
            return Err(invalid(
                ScimType::InvalidValue,
                "add and replace require a `value`",
            ));
        }
        OpKind::Add | OpKind::Replace
            if path.is_none() && !value.as_ref().is_some_and(Value::is_object) =>
        {
            return Err(invalid(
                ScimType::InvalidValue,
                "without a `path`, `value` must be an object of attributes",
            ));
        }
        _ => {}
    }
    Ok(PatchOp {
        op: kind,
        path,
        value,
    })
}

/// Applies `req` to `doc` (RFC 7644 §3.5.2), returning the membership change for groups.
///
/// Operations apply in order. On error `doc` is left partly modified: the caller discards it.
pub fn apply(
    schema: &ResourceSchema,
    doc: &mut Value,
    req: &PatchRequest,
    target: Target,
    profile: Profile,
) -> Result<MemberDelta, ScimError> {
    let map = doc.as_object_mut().ok_or_else(|| ScimError {
        status: 500,
        scim_type: None,
        detail: "stored resource is not a JSON object".into(),
    })?;
    let mut cx = Cx {
        schema,
        target,
        profile,
        members: Members::default(),
    };
    for (i, op) in req.ops.iter().enumerate() {
        cx.op(map, op).map_err(|e| in_op(i, e))?;
    }
    sync_schemas(schema, map);
    Ok(cx.members.into_delta())
}

struct Cx<'s> {
    schema: &'s ResourceSchema,
    target: Target,
    profile: Profile,
    members: Members,
}

impl Cx<'_> {
    fn op(&mut self, map: &mut Map<String, Value>, op: &PatchOp) -> Result<(), ScimError> {
        match &op.path {
            Some(p) => {
                let loc = path::resolve(self.schema, p)?;
                self.at(map, op.op, &loc, op.value.as_ref())
            }
            None if op.op == OpKind::Remove => {
                Err(invalid(ScimType::NoTarget, "remove requires a `path`"))
            }
            None => match &op.value {
                Some(Value::Object(obj)) => self.pathless(map, op.op, obj),
                _ => Err(invalid(
                    ScimType::InvalidValue,
                    "without a `path`, `value` must be an object of attributes",
                )),
            },
        }
    }

    /// A path-less add or replace (RFC 7644 §3.5.2.1, §3.5.2.3): each key of the value
    /// object is an attribute of the resource, or an extension URN holding attributes.
    fn pathless(
        &mut self,
        map: &mut Map<String, Value>,
        kind: OpKind,
        obj: &Map<String, Value>,
    ) -> Result<(), ScimError> {
        let strict = self.profile.is_strict();
        for (key, v) in obj {
            // Okta group push sends the resource `id` (and some clients `schemas`) in a
            // path-less replace; outside strict they are ignored.
            if !strict && (key.eq_ignore_ascii_case("id") || key.eq_ignore_ascii_case("schemas")) {
                continue;
            }
            if let Some(ext) = self.schema.extension(key) {
                self.at(map, kind, &Loc::Extension(&ext.schema), Some(v))?;
                continue;
            }
            let path = if strict {
                if !crate::schema::valid_attr_name(key) {
                    return Err(invalid(
                        ScimType::InvalidPath,
                        format!("`{key}` is not an attribute name"),
                    ));
                }
                PatchPath::Attr(AttrPath::with_name(key.as_str()))
            } else {
                crate::fastpath::parse_patch_path(key).map_err(|e| {
                    invalid(
                        ScimType::InvalidPath,
                        format!("invalid attribute key `{key}`: {e}"),
                    )
                })?
            };
            let loc = path::resolve(self.schema, &path)?;
            self.at(map, kind, &loc, Some(v))?;
        }
        Ok(())
    }

    fn at(
        &mut self,
        map: &mut Map<String, Value>,
        kind: OpKind,
        loc: &Loc<'_, '_>,
        value: Option<&Value>,
    ) -> Result<(), ScimError> {
        match loc {
            Loc::Extension(ext) => match kind {
                OpKind::Remove => ops::remove_extension(ext, map),
                OpKind::Replace if value.is_none_or(Value::is_null) => {
                    ops::remove_extension(ext, map)
                }
                OpKind::Add | OpKind::Replace => {
                    let Some(Value::Object(obj)) = value else {
                        return Err(invalid(
                            ScimType::InvalidValue,
                            format!("the value for `{}` must be an object of attributes", ext.id),
                        ));
                    };
                    for (key, v) in obj {
                        let path = PatchPath::Attr(AttrPath {
                            uri: Some(ext.id.clone()),
                            name: key.clone(),
                            sub_attr: None,
                        });
                        let loc = path::resolve(self.schema, &path)?;
                        self.at(map, kind, &loc, Some(v))?;
                    }
                    Ok(())
                }
            },
            Loc::Attr(l) if self.is_members(l) => self.members.apply(kind, l, value, self.profile),
            Loc::Attr(l) => {
                path::check_writable(l)?;
                let before = l.attr.required && ops::has_value(map, l);
                match kind {
                    OpKind::Remove => ops::remove(l, map, value, self.profile)?,
                    OpKind::Add | OpKind::Replace => match value {
                        Some(v) => ops::write(l, map, v, kind, self.profile)?,
                        None => {
                            return Err(invalid(ScimType::InvalidValue, "a `value` is required"));
                        }
                    },
                }
                if before && !ops::has_value(map, l) {
                    return Err(ops::required_err(&l.attr.name));
                }
                Ok(())
            }
        }
    }

    fn is_members(&self, l: &AttrLoc<'_, '_>) -> bool {
        self.target == Target::Group
            && l.owner == Owner::Core
            && l.attr.name.eq_ignore_ascii_case("members")
    }
}

/// Keeps `schemas` in step with the document (RFC 7643 §3): the core URN first, then each
/// extension whose object is present. Empty extension objects are removed.
fn sync_schemas(schema: &ResourceSchema, map: &mut Map<String, Value>) {
    let mut urns = vec![Value::String(schema.core.id.clone())];
    for ext in &schema.extensions {
        let id = &ext.schema.id;
        ops::canon_key(map, id);
        ops::tidy(map, id);
        if map.contains_key(id) {
            urns.push(Value::String(id.clone()));
        }
    }
    map.insert("schemas".into(), Value::Array(urns));
}
