//! Resolving a PATCH path (RFC 7644 §3.5.2 `PATH = attrPath / valuePath [subAttr]`) against
//! a resource schema, and the mutability rules that apply to the target (RFC 7643 §7).

use super::{eval, invalid};
use crate::error::{ScimError, ScimType};
use crate::schema::{AttrDef, Mutability, Owner, ResourceSchema, Schema};
use scim_v2::filter::{PatchPath, ValFilter};

/// Where an operation applies.
pub(crate) enum Loc<'s, 'p> {
    /// The whole extension object: the path is an extension URN.
    Extension(&'s Schema),
    /// An attribute, possibly narrowed by a value filter and/or a sub-attribute.
    Attr(AttrLoc<'s, 'p>),
}

/// `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`, with canonical definitions.
pub(crate) struct AttrLoc<'s, 'p> {
    pub owner: Owner<'s>,
    pub attr: &'s AttrDef,
    pub filter: Option<&'p ValFilter>,
    pub sub: Option<&'s AttrDef>,
}

impl AttrLoc<'_, '_> {
    /// The path as the client should recognise it, for error details.
    pub fn display(&self) -> String {
        let mut s = self.attr.name.clone();
        if self.filter.is_some() {
            s.push_str("[…]");
        }
        if let Some(sub) = self.sub {
            s.push('.');
            s.push_str(&sub.name);
        }
        s
    }
}

fn unknown(path: &PatchPath) -> ScimError {
    invalid(
        ScimType::InvalidPath,
        format!("`{path}` does not name an attribute of this resource"),
    )
}

/// Resolves `path` case-insensitively (RFC 7643 §2.1). Unknown attributes are 400
/// `invalidPath`; an unknown sub-attribute in a value filter is 400 `invalidFilter`.
pub(crate) fn resolve<'s, 'p>(
    schema: &'s ResourceSchema,
    path: &'p PatchPath,
) -> Result<Loc<'s, 'p>, ScimError> {
    match path {
        PatchPath::Attr(ap) => {
            // `urn:…:enterprise:2.0:User` parses as URI `urn:…:enterprise:2.0`, name `User`.
            if let (Some(uri), None) = (&ap.uri, &ap.sub_attr)
                && let Some(ext) = schema.extension(&format!("{uri}:{}", ap.name))
            {
                return Ok(Loc::Extension(&ext.schema));
            }
            let r = schema
                .resolve(ap.uri.as_deref(), &ap.name, ap.sub_attr.as_deref())
                .ok_or_else(|| unknown(path))?;
            Ok(Loc::Attr(AttrLoc {
                owner: r.owner,
                attr: r.attr,
                filter: None,
                sub: r.sub,
            }))
        }
        PatchPath::Value(vp) => {
            if vp.attr.sub_attr.is_some() {
                return Err(invalid(
                    ScimType::InvalidPath,
                    format!(
                        "`{path}`: a value filter applies to an attribute, not a sub-attribute"
                    ),
                ));
            }
            let r = schema
                .resolve(vp.attr.uri.as_deref(), &vp.attr.name, None)
                .ok_or_else(|| unknown(path))?;
            if !r.attr.multi_valued && !r.attr.is_complex() {
                return Err(invalid(
                    ScimType::InvalidPath,
                    format!(
                        "`{}` is a simple single-valued attribute: it has no values to filter",
                        r.attr.name
                    ),
                ));
            }
            let sub = match &vp.sub_attr {
                None => None,
                Some(s) => Some(r.attr.sub(s).ok_or_else(|| unknown(path))?),
            };
            eval::check(&vp.filter, r.attr)?;
            Ok(Loc::Attr(AttrLoc {
                owner: r.owner,
                attr: r.attr,
                filter: Some(&vp.filter),
                sub,
            }))
        }
    }
}

fn read_only(d: &AttrDef) -> bool {
    d.computed || d.mutability == Mutability::ReadOnly
}

/// RFC 7644 §3.5.2: modifying a readOnly attribute (or `id`, `meta`, a computed attribute
/// such as User `groups`) is 400 `mutability`.
pub(crate) fn check_writable(l: &AttrLoc<'_, '_>) -> Result<(), ScimError> {
    if read_only(l.attr) || l.sub.is_some_and(read_only) {
        return Err(invalid(
            ScimType::Mutability,
            format!("`{}` is readOnly", l.display()),
        ));
    }
    Ok(())
}

/// Whether writes to this definition are restricted by `immutable` (RFC 7643 §7).
pub(crate) fn immutable(d: &AttrDef) -> bool {
    d.mutability == Mutability::Immutable
}

pub(crate) fn immutable_err(name: &str) -> ScimError {
    invalid(
        ScimType::Mutability,
        format!("`{name}` is immutable and already has a value"),
    )
}
