//! Role-based access control: the fixed permission catalogue and the built-in roles.
//!
//! Permissions are a closed set (an enum), so an endpoint cannot ask for a permission that does
//! not exist and a role cannot grant one. Roles are tenant-scoped sets of permissions: the
//! built-in `admin`, `viewer` and (operators only, in the default tenant) `superadmin` live
//! here; custom roles are stored per tenant. A user's permissions are the union over the roles
//! assigned to the user and to every group the user belongs to (directly or through nesting).

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One permission of the catalogue. The wire name is the dotted form (`users.read`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "users.read")]
    UsersRead,
    #[serde(rename = "users.write")]
    UsersWrite,
    #[serde(rename = "groups.read")]
    GroupsRead,
    #[serde(rename = "groups.write")]
    GroupsWrite,
    #[serde(rename = "roles.manage")]
    RolesManage,
    #[serde(rename = "scim_tokens.manage")]
    ScimTokensManage,
    #[serde(rename = "sso.manage")]
    SsoManage,
    #[serde(rename = "apps.manage")]
    AppsManage,
    #[serde(rename = "audit.read")]
    AuditRead,
    #[serde(rename = "events.read")]
    EventsRead,
    #[serde(rename = "webhooks.manage")]
    WebhooksManage,
    #[serde(rename = "settings.manage")]
    SettingsManage,
    #[serde(rename = "sessions.manage")]
    SessionsManage,
    /// Operator-only: manage every tenant.
    #[serde(rename = "tenants.manage")]
    TenantsManage,
}

impl Permission {
    /// Every permission, in catalogue order.
    pub const ALL: [Permission; 14] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::GroupsRead,
        Self::GroupsWrite,
        Self::RolesManage,
        Self::ScimTokensManage,
        Self::SsoManage,
        Self::AppsManage,
        Self::AuditRead,
        Self::EventsRead,
        Self::WebhooksManage,
        Self::SettingsManage,
        Self::SessionsManage,
        Self::TenantsManage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users.read",
            Self::UsersWrite => "users.write",
            Self::GroupsRead => "groups.read",
            Self::GroupsWrite => "groups.write",
            Self::RolesManage => "roles.manage",
            Self::ScimTokensManage => "scim_tokens.manage",
            Self::SsoManage => "sso.manage",
            Self::AppsManage => "apps.manage",
            Self::AuditRead => "audit.read",
            Self::EventsRead => "events.read",
            Self::WebhooksManage => "webhooks.manage",
            Self::SettingsManage => "settings.manage",
            Self::SessionsManage => "sessions.manage",
            Self::TenantsManage => "tenants.manage",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn description(self) -> &'static str {
        match self {
            Self::UsersRead => "Read users",
            Self::UsersWrite => "Create, change, disable and delete users; set passwords",
            Self::GroupsRead => "Read groups and their members",
            Self::GroupsWrite => "Create, change and delete groups; change members",
            Self::RolesManage => "Create roles and assign roles to users and groups",
            Self::ScimTokensManage => "Issue and revoke SCIM tokens; manage SCIM schemas",
            Self::SsoManage => "Manage SAML connections",
            Self::AppsManage => "Manage OAuth applications",
            Self::AuditRead => "Read the audit log and the dashboard",
            Self::EventsRead => "Read the change events",
            Self::WebhooksManage => "Manage webhooks and their deliveries",
            Self::SettingsManage => "Change the tenant's settings",
            Self::SessionsManage => "List and revoke other users' sessions",
            Self::TenantsManage => "Operators: manage every tenant",
        }
    }

    /// Only operators (the default tenant's superadmins) hold this permission.
    pub fn operator_only(self) -> bool {
        matches!(self, Self::TenantsManage)
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions.
pub type PermSet = BTreeSet<Permission>;

pub const ROLE_ADMIN: &str = "admin";
pub const ROLE_VIEWER: &str = "viewer";
pub const ROLE_SUPERADMIN: &str = "superadmin";

/// The built-in roles: name, description.
pub const BUILTIN_ROLES: [(&str, &str); 3] = [
    (ROLE_ADMIN, "Every permission within the tenant"),
    (ROLE_VIEWER, "Read users, groups, the audit log and events"),
    (
        ROLE_SUPERADMIN,
        "Operators (default tenant only): every permission on every tenant",
    ),
];

pub fn is_builtin(role: &str) -> bool {
    BUILTIN_ROLES.iter().any(|(n, _)| *n == role)
}

/// The permissions of a built-in role, or `None` for a custom role name. `superadmin` grants
/// everything only in the default tenant (`in_default_tenant`); elsewhere it grants nothing.
pub fn builtin_permissions(role: &str, in_default_tenant: bool) -> Option<PermSet> {
    match role {
        ROLE_ADMIN => Some(
            Permission::ALL
                .into_iter()
                .filter(|p| !p.operator_only())
                .collect(),
        ),
        ROLE_VIEWER => Some(
            [
                Permission::UsersRead,
                Permission::GroupsRead,
                Permission::AuditRead,
                Permission::EventsRead,
            ]
            .into_iter()
            .collect(),
        ),
        ROLE_SUPERADMIN if in_default_tenant => Some(Permission::ALL.into_iter().collect()),
        ROLE_SUPERADMIN => Some(PermSet::new()),
        _ => None,
    }
}

/// Role names: 1-64 of a-z, 0-9, '-', '_' and '.', starting with a letter.
pub fn valid_role_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_lowercase())
        && s.len() <= 64
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serde_agrees() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_value(p).unwrap(),
                serde_json::Value::String(p.as_str().into())
            );
        }
        assert_eq!(Permission::parse("users.delete"), None);
    }

    #[test]
    fn builtin_roles() {
        let admin = builtin_permissions(ROLE_ADMIN, false).unwrap();
        assert!(admin.contains(&Permission::UsersWrite));
        assert!(!admin.contains(&Permission::TenantsManage));
        let viewer = builtin_permissions(ROLE_VIEWER, false).unwrap();
        assert!(viewer.contains(&Permission::UsersRead));
        assert!(!viewer.contains(&Permission::UsersWrite));
        assert!(
            builtin_permissions(ROLE_SUPERADMIN, true)
                .unwrap()
                .contains(&Permission::TenantsManage)
        );
        assert!(
            builtin_permissions(ROLE_SUPERADMIN, false)
                .unwrap()
                .is_empty()
        );
        assert_eq!(builtin_permissions("helpdesk", true), None);
    }

    #[test]
    fn role_names() {
        assert!(valid_role_name("helpdesk"));
        assert!(valid_role_name("it.admins-2"));
        assert!(!valid_role_name(""));
        assert!(!valid_role_name("Helpdesk"));
        assert!(!valid_role_name("1st"));
        assert!(!valid_role_name(&"a".repeat(65)));
    }
}
