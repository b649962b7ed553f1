//! Group `members` (RFC 7643 §4.2) under PATCH: operations are accumulated, in order and
//! with set semantics, into a [`MemberDelta`] instead of being written to the document.

use super::eval::get_ci;
use super::path::AttrLoc;
use super::{MemberDelta, MemberRef, OpKind, invalid};
use crate::error::{ScimError, ScimType};
use crate::profile::Profile;
use scim_v2::filter::{AttrExp, CompValue, CompareOp, ValFilter};
use serde_json::Value;

#[derive(Default)]
pub(crate) struct Members {
    delta: MemberDelta,
}

impl Members {
    pub fn into_delta(self) -> MemberDelta {
        self.delta
    }

    fn add(&mut self, refs: Vec<MemberRef>) {
        for r in refs {
            match &mut self.delta.replace {
                Some(list) => {
                    if !list.iter().any(|m| m.value == r.value) {
                        list.push(r);
                    }
                }
                None => {
                    self.delta.remove.retain(|id| *id != r.value);
                    if !self.delta.add.iter().any(|m| m.value == r.value) {
                        self.delta.add.push(r);
                    }
                }
            }
        }
    }

    fn remove(&mut self, ids: Vec<String>) {
        for id in ids {
            match &mut self.delta.replace {
                Some(list) => list.retain(|m| m.value != id),
                None => {
                    self.delta.add.retain(|m| m.value != id);
                    if !self.delta.remove.contains(&id) {
                        self.delta.remove.push(id);
                    }
                }
            }
        }
    }

    fn replace(&mut self, refs: Vec<MemberRef>) {
        self.delta = MemberDelta {
            replace: Some(Vec::new()),
            add: Vec::new(),
            remove: Vec::new(),
        };
        self.add(refs);
    }

    /// One operation on `members`, `members[value eq "…"]` (remove only) or, outside
    /// strict, `remove members` with a `value` list (Microsoft Entra ID).
    pub fn apply(
        &mut self,
        kind: OpKind,
        loc: &AttrLoc<'_, '_>,
        value: Option<&Value>,
        profile: Profile,
    ) -> Result<(), ScimError> {
        if let Some(f) = loc.filter {
            if kind != OpKind::Remove || loc.sub.is_some() {
                return Err(unsupported_filter());
            }
            let mut ids = Vec::new();
            filter_ids(f, &mut ids)?;
            self.remove(ids);
            return Ok(());
        }
        if loc.sub.is_some() {
            return Err(invalid(
                ScimType::Mutability,
                format!(
                    "`{}`: member sub-attributes are immutable; add or remove whole members",
                    loc.display()
                ),
            ));
        }
        match (kind, value) {
            (OpKind::Add, Some(v)) => self.add(refs(v)?),
            // Adding nothing changes nothing.
            (OpKind::Add, None) => {}
            (OpKind::Replace, Some(v)) => self.replace(refs(v)?),
            (OpKind::Replace, None) => self.replace(Vec::new()),
            (OpKind::Remove, Some(v)) if !v.is_null() && !profile.is_strict() => {
                self.remove(refs(v)?.into_iter().map(|r| r.value).collect());
            }
            (OpKind::Remove, _) => self.replace(Vec::new()),
        }
        Ok(())
    }
}

fn unsupported_filter() -> ScimError {
    invalid(
        ScimType::InvalidFilter,
        "only `value eq` filters (joined by `or`) are supported on members, with remove",
    )
}

/// The ids of `value eq "a" or value eq "b"`.
fn filter_ids(f: &ValFilter, out: &mut Vec<String>) -> Result<(), ScimError> {
    match f {
        ValFilter::Attr(AttrExp::Comparison(p, CompareOp::Eq, CompValue::Str(id)))
            if p.uri.is_none() && p.sub_attr.is_none() && p.name.eq_ignore_ascii_case("value") =>
        {
            out.push(id.clone());
            Ok(())
        }
        ValFilter::Or(items) => items.iter().try_for_each(|i| filter_ids(i, out)),
        _ => Err(unsupported_filter()),
    }
}

/// Member objects (`{"value": id, "type": "User"}`); a single object counts as a list of
/// one. `$ref` and `display` are ignored: the server derives them.
fn refs(v: &Value) -> Result<Vec<MemberRef>, ScimError> {
    let items: &[Value] = match v {
        Value::Array(a) => a,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    items
        .iter()
        .map(|item| {
            let obj = item.as_object().ok_or_else(|| {
                invalid(
                    ScimType::InvalidValue,
                    "a member must be an object with a `value`",
                )
            })?;
            let value = match get_ci(obj, "value") {
                Some(Value::String(s)) if !s.is_empty() => s.clone(),
                _ => {
                    return Err(invalid(
                        ScimType::InvalidValue,
                        "a member needs a non-empty string `value` (the member id)",
                    ));
                }
            };
            let ty = match get_ci(obj, "type") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => {
                    return Err(invalid(
                        ScimType::InvalidValue,
                        "member `type` must be a string",
                    ));
                }
            };
            Ok(MemberRef { value, ty })
        })
        .collect()
}
