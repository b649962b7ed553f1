//! Schema definitions (RFC 7643 §7) and attribute resolution.
//!
//! Attribute characteristics drive everything else: validation of input (type, mutability,
//! required), what is returned (returned), how values compare (caseExact, type) and which
//! attributes a filter may name. Core schemas come from RFC 7643 §8.7.1 (see
//! `schemas/README.md`); tenant extension schemas use the same representation.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, LazyLock};

/// RFC 7643 §2.3 data types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// RFC 7643 §7 `mutability`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Mutability {
    ReadOnly,
    #[default]
    ReadWrite,
    Immutable,
    WriteOnly,
}

/// RFC 7643 §7 `returned`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Returned {
    Always,
    Never,
    #[default]
    Default,
    Request,
}

/// RFC 7643 §7 `uniqueness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Uniqueness {
    #[default]
    None,
    Server,
    Global,
}

/// One attribute definition (RFC 7643 §7 "attributes" / "subAttributes").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttrDef {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: AttrType,
    #[serde(default)]
    pub multi_valued: bool,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub canonical_values: Vec<String>,
    #[serde(default)]
    pub case_exact: bool,
    #[serde(default)]
    pub mutability: Mutability,
    #[serde(default)]
    pub returned: Returned,
    #[serde(default)]
    pub uniqueness: Uniqueness,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reference_types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sub_attributes: Vec<AttrDef>,
    /// idhub extension, never serialised: the attribute is computed by the server (e.g.
    /// `groups`, `meta`), so input for it is ignored.
    #[serde(skip)]
    pub computed: bool,
}

impl AttrDef {
    /// A sub-attribute by name, compared case-insensitively (RFC 7643 §2.1).
    pub fn sub(&self, name: &str) -> Option<&AttrDef> {
        self.sub_attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn is_complex(&self) -> bool {
        self.ty == AttrType::Complex
    }

    fn simple(name: &str, ty: AttrType) -> Self {
        Self {
            name: name.to_owned(),
            ty,
            multi_valued: false,
            description: String::new(),
            required: false,
            canonical_values: Vec::new(),
            case_exact: false,
            mutability: Mutability::ReadWrite,
            returned: Returned::Default,
            uniqueness: Uniqueness::None,
            reference_types: Vec::new(),
            sub_attributes: Vec::new(),
            computed: false,
        }
    }
}

/// A schema (RFC 7643 §7): a URN id and its attributes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub attributes: Vec<AttrDef>,
}

impl Schema {
    /// A top-level attribute by name, case-insensitively.
    pub fn attr(&self, name: &str) -> Option<&AttrDef> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// The schema's representation for `/Schemas` (RFC 7643 §7, §8.7.1), with `meta`.
    pub fn to_json(&self, base_url: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["schemas"] = serde_json::json!([crate::urn::SCHEMA]);
        v["meta"] = serde_json::json!({
            "resourceType": "Schema",
            "location": format!("{base_url}/Schemas/{}", self.id),
        });
        v
    }
}

/// The attributes common to every resource (RFC 7643 §3.1): `id`, `externalId`, `meta`.
pub static COMMON: LazyLock<Vec<AttrDef>> = LazyLock::new(|| {
    let mut id = AttrDef::simple("id", AttrType::String);
    id.case_exact = true;
    id.mutability = Mutability::ReadOnly;
    id.returned = Returned::Always;
    id.uniqueness = Uniqueness::Server;
    id.computed = true;
    let mut external_id = AttrDef::simple("externalId", AttrType::String);
    external_id.case_exact = true;
    let meta_sub = |name: &str, ty: AttrType| {
        let mut a = AttrDef::simple(name, ty);
        a.mutability = Mutability::ReadOnly;
        a.case_exact = true;
        a.computed = true;
        a
    };
    let mut meta = AttrDef::simple("meta", AttrType::Complex);
    meta.mutability = Mutability::ReadOnly;
    meta.computed = true;
    meta.sub_attributes = vec![
        meta_sub("resourceType", AttrType::String),
        meta_sub("created", AttrType::DateTime),
        meta_sub("lastModified", AttrType::DateTime),
        meta_sub("location", AttrType::Reference),
        meta_sub("version", AttrType::String),
    ];
    vec![id, external_id, meta]
});

fn load(json: &str, computed: &[&str]) -> Arc<Schema> {
    let mut s: Schema = match serde_json::from_str(json) {
        Ok(s) => s,
        // The embedded files are tested below; an empty schema is the only safe fallback.
        Err(_) => Schema {
            id: String::new(),
            name: String::new(),
            description: String::new(),
            attributes: Vec::new(),
        },
    };
    for a in &mut s.attributes {
        if computed.iter().any(|c| a.name == *c) {
            a.computed = true;
            for sub in &mut a.sub_attributes {
                sub.computed = true;
            }
        }
    }
    Arc::new(s)
}

/// RFC 7643 §4.1 User. `groups` is computed from memberships.
pub static USER: LazyLock<Arc<Schema>> =
    LazyLock::new(|| load(include_str!("../schemas/user.json"), &["groups"]));
/// RFC 7643 §4.2 Group.
pub static GROUP: LazyLock<Arc<Schema>> =
    LazyLock::new(|| load(include_str!("../schemas/group.json"), &[]));
/// RFC 7643 §4.3 Enterprise User extension.
pub static ENTERPRISE_USER: LazyLock<Arc<Schema>> =
    LazyLock::new(|| load(include_str!("../schemas/enterprise_user.json"), &[]));

/// An extension schema attached to a resource type.
#[derive(Clone, Debug)]
pub struct Extension {
    pub schema: Arc<Schema>,
    pub required: bool,
}

/// A resource type (RFC 7643 §6) with its core schema and extensions: what input is
/// validated against and what filters resolve against.
#[derive(Clone, Debug)]
pub struct ResourceSchema {
    /// `User` or `Group`.
    pub name: String,
    /// `/Users` or `/Groups`.
    pub endpoint: String,
    pub core: Arc<Schema>,
    pub extensions: Vec<Extension>,
}

/// Where a resolved attribute lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner<'a> {
    /// `id`, `externalId`, `meta` (RFC 7643 §3.1).
    Common,
    /// The core schema (stored at the top level of a resource).
    Core,
    /// An extension schema (stored under its URN key).
    Extension(&'a Schema),
}

/// An attribute path resolved against a resource schema: canonical names and definitions.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    pub owner: Owner<'a>,
    pub attr: &'a AttrDef,
    pub sub: Option<&'a AttrDef>,
}

impl Resolved<'_> {
    /// The definition that holds the value: the sub-attribute when there is one.
    pub fn leaf(&self) -> &AttrDef {
        self.sub.unwrap_or(self.attr)
    }

    /// The extension URN when the attribute belongs to an extension.
    pub fn extension_urn(&self) -> Option<&str> {
        match self.owner {
            Owner::Extension(s) => Some(&s.id),
            _ => None,
        }
    }
}

impl ResourceSchema {
    pub fn user() -> Self {
        Self {
            name: "User".into(),
            endpoint: "/Users".into(),
            core: USER.clone(),
            extensions: vec![Extension {
                schema: ENTERPRISE_USER.clone(),
                required: false,
            }],
        }
    }

    pub fn group() -> Self {
        Self {
            name: "Group".into(),
            endpoint: "/Groups".into(),
            core: GROUP.clone(),
            extensions: Vec::new(),
        }
    }

    /// The extension with this URN (case-insensitive).
    pub fn extension(&self, urn: &str) -> Option<&Extension> {
        self.extensions
            .iter()
            .find(|e| e.schema.id.eq_ignore_ascii_case(urn))
    }

    /// Whether `urn` is the core schema or one of the extensions.
    pub fn knows_schema(&self, urn: &str) -> bool {
        self.core.id.eq_ignore_ascii_case(urn) || self.extension(urn).is_some()
    }

    /// Resolves `[uri:]name[.sub]`, case-insensitively. Without a URI, common and core
    /// attributes are searched; with the core URI, the core schema; with an extension URI,
    /// that extension. `None` for anything unknown (an unknown sub-attribute, or a
    /// sub-attribute of a simple attribute).
    pub fn resolve(
        &self,
        uri: Option<&str>,
        name: &str,
        sub: Option<&str>,
    ) -> Option<Resolved<'_>> {
        let (owner, attr) = match uri {
            None => {
                if let Some(a) = COMMON.iter().find(|a| a.name.eq_ignore_ascii_case(name)) {
                    (Owner::Common, a)
                } else {
                    (Owner::Core, self.core.attr(name)?)
                }
            }
            Some(u) if self.core.id.eq_ignore_ascii_case(u) => {
                if let Some(a) = COMMON.iter().find(|a| a.name.eq_ignore_ascii_case(name)) {
                    (Owner::Common, a)
                } else {
                    (Owner::Core, self.core.attr(name)?)
                }
            }
            Some(u) => {
                let ext = self.extension(u)?;
                (Owner::Extension(&ext.schema), ext.schema.attr(name)?)
            }
        };
        let sub = match sub {
            None => None,
            Some(s) => Some(attr.sub(s)?),
        };
        Some(Resolved { owner, attr, sub })
    }

    /// The `schemas` list of a resource with these extensions present.
    pub fn schema_urns(&self) -> Vec<String> {
        let mut v = vec![self.core.id.clone()];
        v.extend(self.extensions.iter().map(|e| e.schema.id.clone()));
        v
    }

    /// The `/ResourceTypes` representation (RFC 7643 §6).
    pub fn resource_type_json(&self, base_url: &str) -> serde_json::Value {
        serde_json::json!({
            "schemas": [crate::urn::RESOURCE_TYPE],
            "id": self.name,
            "name": self.name,
            "endpoint": self.endpoint,
            "description": format!("{} resources", self.name),
            "schema": self.core.id,
            "schemaExtensions": self.extensions.iter().map(|e| serde_json::json!({
                "schema": e.schema.id,
                "required": e.required,
            })).collect::<Vec<_>>(),
            "meta": {
                "resourceType": "ResourceType",
                "location": format!("{base_url}/ResourceTypes/{}", self.name),
            },
        })
    }
}

/// Why a tenant's extension schema was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("invalid schema JSON: {0}")]
    Json(String),
    #[error("schema id must be a URN of letters, digits and ':._-' starting with urn:")]
    Urn,
    #[error("`{0}` is a reserved schema id")]
    Reserved(String),
    #[error("invalid attribute name `{0}`")]
    AttrName(String),
    #[error("attribute `{0}` is defined twice")]
    Duplicate(String),
    #[error("attribute `{0}`: {1}")]
    Attr(String, String),
}

/// RFC 7643 §2.1 ATTRNAME: ALPHA *(nameChar), nameChar = "-" / "_" / DIGIT / ALPHA; `$ref`
/// is the one reserved exception.
pub fn valid_attr_name(name: &str) -> bool {
    if name == "$ref" {
        return true;
    }
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && name.len() <= 64
}

/// A schema URN as idhub accepts it: `urn:` and then letters, digits and `:._-`. The narrow
/// alphabet lets URNs appear in JSON paths without quoting issues.
pub fn valid_urn(urn: &str) -> bool {
    urn.len() <= 200
        && urn.to_ascii_lowercase().starts_with("urn:")
        && urn.len() > 4
        && urn
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-'))
}

/// Parses and checks a tenant extension schema (RFC 7643 §7 representation).
pub fn parse_extension(json: &serde_json::Value) -> Result<Schema, SchemaError> {
    let schema: Schema =
        serde_json::from_value(json.clone()).map_err(|e| SchemaError::Json(e.to_string()))?;
    if !valid_urn(&schema.id) {
        return Err(SchemaError::Urn);
    }
    let reserved = [
        crate::urn::USER,
        crate::urn::GROUP,
        crate::urn::ENTERPRISE_USER,
        crate::urn::SCHEMA,
        crate::urn::RESOURCE_TYPE,
        crate::urn::SERVICE_PROVIDER_CONFIG,
    ];
    if reserved.iter().any(|r| r.eq_ignore_ascii_case(&schema.id))
        || schema
            .id
            .to_ascii_lowercase()
            .starts_with("urn:ietf:params:scim:")
    {
        return Err(SchemaError::Reserved(schema.id));
    }
    check_attrs(&schema.attributes, 0)?;
    Ok(schema)
}

fn check_attrs(attrs: &[AttrDef], depth: usize) -> Result<(), SchemaError> {
    let mut seen: Vec<String> = Vec::new();
    for a in attrs {
        if !valid_attr_name(&a.name) || a.name == "$ref" && depth == 0 {
            return Err(SchemaError::AttrName(a.name.clone()));
        }
        let lower = a.name.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(SchemaError::Duplicate(a.name.clone()));
        }
        seen.push(lower);
        match (a.ty, depth) {
            (AttrType::Complex, 0) => {
                if a.sub_attributes.is_empty() {
                    return Err(SchemaError::Attr(
                        a.name.clone(),
                        "a complex attribute needs subAttributes".into(),
                    ));
                }
                check_attrs(&a.sub_attributes, 1)?;
            }
            (AttrType::Complex, _) => {
                return Err(SchemaError::Attr(
                    a.name.clone(),
                    "complex attributes cannot nest (RFC 7643 §2.3.8)".into(),
                ));
            }
            _ if !a.sub_attributes.is_empty() => {
                return Err(SchemaError::Attr(
                    a.name.clone(),
                    "only complex attributes have subAttributes".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schemas_load() {
        assert_eq!(USER.id, crate::urn::USER);
        assert!(USER.attributes.len() > 20);
        assert_eq!(GROUP.id, crate::urn::GROUP);
        assert_eq!(ENTERPRISE_USER.id, crate::urn::ENTERPRISE_USER);
        assert!(USER.attr("groups").unwrap().computed);
        assert_eq!(USER.attr("password").unwrap().returned, Returned::Never);
        assert!(GROUP.attr("members").unwrap().sub("display").is_some());
    }

    #[test]
    fn resolution_is_case_insensitive_and_urn_aware() {
        let u = ResourceSchema::user();
        let r = u.resolve(None, "USERNAME", None).unwrap();
        assert_eq!(r.attr.name, "userName");
        assert_eq!(r.owner, Owner::Core);
        let r = u.resolve(None, "emails", Some("VALUE")).unwrap();
        assert_eq!(r.leaf().name, "value");
        let r = u
            .resolve(Some(crate::urn::ENTERPRISE_USER), "manager", Some("value"))
            .unwrap();
        assert_eq!(r.extension_urn(), Some(crate::urn::ENTERPRISE_USER));
        let r = u
            .resolve(
                Some("urn:ietf:params:scim:schemas:core:2.0:user"),
                "name",
                Some("familyName"),
            )
            .unwrap();
        assert_eq!(r.leaf().name, "familyName");
        assert_eq!(
            u.resolve(None, "meta", Some("lastModified")).unwrap().owner,
            Owner::Common
        );
        assert!(u.resolve(None, "nosuch", None).is_none());
        assert!(u.resolve(None, "userName", Some("x")).is_none());
        assert!(u.resolve(Some("urn:x:y"), "userName", None).is_none());
    }

    #[test]
    fn extension_schemas_are_checked() {
        let ok = serde_json::json!({
            "id": "urn:acme:params:scim:schemas:extension:badge:2.0:User",
            "name": "Badge",
            "attributes": [
                {"name": "badgeNumber", "type": "integer"},
                {"name": "site", "type": "complex", "subAttributes": [{"name": "code", "type": "string"}]}
            ]
        });
        let s = parse_extension(&ok).unwrap();
        assert_eq!(s.attributes[0].mutability, Mutability::ReadWrite);
        let mut bad = ok.clone();
        bad["id"] = "not-a-urn".into();
        assert_eq!(parse_extension(&bad), Err(SchemaError::Urn));
        let mut bad = ok.clone();
        bad["id"] = crate::urn::ENTERPRISE_USER.into();
        assert!(matches!(
            parse_extension(&bad),
            Err(SchemaError::Reserved(_))
        ));
        let mut bad = ok.clone();
        bad["attributes"][0]["name"] = "1abc".into();
        assert!(matches!(
            parse_extension(&bad),
            Err(SchemaError::AttrName(_))
        ));
        let mut bad = ok.clone();
        bad["attributes"][1]["name"] = "BADGENUMBER".into();
        assert!(matches!(
            parse_extension(&bad),
            Err(SchemaError::Duplicate(_))
        ));
        let mut bad = ok;
        bad["attributes"][0]["type"] = "float".into();
        assert!(matches!(parse_extension(&bad), Err(SchemaError::Json(_))));
    }
}
