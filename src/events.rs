//! Event types: the public names of change-log entries (`user.created`, `group.updated`, …),
//! shared by the pull events API and webhooks.

/// Resource types and operations that appear in the change log, as (type, operation) and
/// their public name.
pub const CATALOGUE: [(&str, &str, &str); 22] = [
    ("User", "create", "user.created"),
    ("User", "update", "user.updated"),
    ("User", "delete", "user.deleted"),
    ("Group", "create", "group.created"),
    ("Group", "update", "group.updated"),
    ("Group", "delete", "group.deleted"),
    ("Membership", "create", "membership.added"),
    ("Membership", "delete", "membership.removed"),
    ("Role", "create", "role.created"),
    ("Role", "update", "role.updated"),
    ("Role", "delete", "role.deleted"),
    ("Tenant", "create", "tenant.created"),
    ("Tenant", "update", "tenant.updated"),
    ("Schema", "create", "schema.created"),
    ("Schema", "update", "schema.updated"),
    ("Schema", "delete", "schema.deleted"),
    ("SamlConnection", "create", "sso.connection.created"),
    ("SamlConnection", "update", "sso.connection.updated"),
    ("SamlConnection", "delete", "sso.connection.deleted"),
    ("SsoLogin", "succeed", "sso.login.succeeded"),
    ("SsoLogin", "fail", "sso.login.failed"),
    ("Certificate", "expiring", "connection.certificate.expiring"),
];

/// The public name of a change-log entry.
pub fn event_type(resource_type: &str, operation: &str) -> String {
    CATALOGUE
        .iter()
        .find(|(r, o, _)| *r == resource_type && *o == operation)
        .map(|(_, _, n)| (*n).to_owned())
        .unwrap_or_else(|| format!("{}.{operation}", resource_type.to_ascii_lowercase()))
}

/// The (type, operation) pairs a pattern names: an exact name, `group.*`, or `*`. `None` for
/// a pattern that names nothing.
pub fn expand(pattern: &str) -> Option<Vec<(&'static str, &'static str)>> {
    let found: Vec<(&'static str, &'static str)> = CATALOGUE
        .iter()
        .filter(|(_, _, n)| {
            pattern == "*"
                || *n == pattern
                || pattern.strip_suffix(".*").is_some_and(|prefix| {
                    n.strip_prefix(prefix).is_some_and(|r| r.starts_with('.'))
                })
        })
        .map(|(r, o, _)| (*r, *o))
        .collect();
    (!found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_patterns() {
        assert_eq!(event_type("User", "create"), "user.created");
        assert_eq!(expand("user.deleted"), Some(vec![("User", "delete")]));
        assert_eq!(expand("group.*").map(|v| v.len()), Some(3));
        assert_eq!(
            expand("membership.*"),
            Some(vec![("Membership", "create"), ("Membership", "delete")])
        );
        assert_eq!(event_type("Membership", "delete"), "membership.removed");
        assert_eq!(expand("*").map(|v| v.len()), Some(CATALOGUE.len()));
        assert_eq!(expand("user.exploded"), None);
        assert_eq!(expand("nothing.*"), None);
        assert_eq!(
            expand("sso.login.*"),
            Some(vec![("SsoLogin", "succeed"), ("SsoLogin", "fail")])
        );
        assert_eq!(expand("sso.*").map(|v| v.len()), Some(5));
        assert_eq!(expand("sso.log.*"), None);
    }
}
