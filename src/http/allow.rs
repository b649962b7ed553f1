//! The `Allow` header of a 405 (RFC 9110 §15.5.6): which methods a route does support.

use std::collections::HashMap;
use std::sync::LazyLock;

/// SCIM routes (see `http::scim::routes`).
const SCIM: &[(&str, &str)] = &[
    ("/scim/v2/Users", "GET, POST"),
    ("/scim/v2/Users/.search", "POST"),
    ("/scim/v2/Users/:id", "GET, PUT, PATCH, DELETE"),
    ("/scim/v2/Groups", "GET, POST"),
    ("/scim/v2/Groups/.search", "POST"),
    ("/scim/v2/Groups/:id", "GET, PUT, PATCH, DELETE"),
    ("/scim/v2/.search", "POST"),
    ("/scim/v2/Bulk", "POST"),
    ("/scim/v2/ServiceProviderConfig", "GET"),
    ("/scim/v2/ResourceTypes", "GET"),
    ("/scim/v2/ResourceTypes/:name", "GET"),
    ("/scim/v2/Schemas", "GET"),
    ("/scim/v2/Schemas/:urn", "GET"),
    ("/metrics", "GET"),
    ("/openapi.json", "GET"),
    ("/openapi.yaml", "GET"),
];

/// Route pattern → allowed methods: the SCIM table above plus every REST operation of the
/// OpenAPI document (its `{param}` paths in poem's `:param` form).
static TABLE: LazyLock<HashMap<String, String>> = LazyLock::new(|| {
    let mut t: HashMap<String, String> = SCIM
        .iter()
        .map(|(p, m)| ((*p).to_owned(), (*m).to_owned()))
        .collect();
    let spec: serde_json::Value =
        serde_json::from_str(&crate::api::service().spec()).unwrap_or_default();
    if let Some(paths) = spec["paths"].as_object() {
        for (path, ops) in paths {
            let pattern = path.replace('{', ":").replace('}', "");
            let methods: Vec<String> = ops
                .as_object()
                .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                .unwrap_or_default();
            t.insert(pattern, methods.join(", "));
        }
    }
    t
});

/// The methods a route pattern supports, when known.
pub fn allowed(pattern: &str) -> Option<&'static str> {
    TABLE.get(pattern).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes() {
        assert_eq!(allowed("/scim/v2/Users"), Some("GET, POST"));
        assert_eq!(allowed("/health"), Some("GET"));
        assert!(
            allowed("/api/v1/tenants/:slug")
                .is_some_and(|m| m.contains("PATCH") && m.contains("GET"))
        );
        assert_eq!(allowed("/nope"), None);
    }
}
