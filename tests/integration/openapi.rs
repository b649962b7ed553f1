//! The committed OpenAPI document must match what the code generates.

#[test]
fn committed_spec_matches_code() {
    let generated = idhub::api::service().spec();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(path, format!("{generated}\n")).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test --test integration openapi` (or `idhub openapi > docs/openapi.json`) and commit it"
    );
}
