//! SAML ACS validation benchmark (issue "SAML 2.0 SSO", Benchmark).
//!
//! `cargo bench --bench saml` builds 32 connections (each its own IdP key and certificate),
//! one typical ~8.5 KB signed response per connection (RSA-SHA256, signed Response carrying
//! the user's attributes and group memberships), and measures in this process, interleaved:
//!
//! - **ACS validation**: what the ACS runs for each posted `SAMLResponse` before touching the
//!   database — `idhub::sso::login::validate_blocking`: base64 decode (the HTTP-POST
//!   binding's form value), size/DTD/comment checks, the pre-scan against signature wrapping,
//!   xmlsec verification with the connection's certificates and the algorithm allow-list,
//!   reduction to the signed content, parsing, and every condition (issuer, audience,
//!   destination, recipient, time window with skew), for the connection the response arrived
//!   at (round-robin over the 32);
//! - **raw libxmlsec1**: one in-process parse + signature verification of the same XML
//!   documents with the same certificates (`samael`'s `verify_signed_xml`), nothing else.
//!
//! Both run on one thread each round; the ratio is the result (target ≥ 70 %).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use idhub::sso::keys::TenantKeys;
use idhub::sso::{Runtime, SpUrls, sp_urls};
use idhub::store::saml::{AttributeMapping, SamlConnection};
use samael::crypto::{CertificateDer, Crypto, CryptoProvider};
use saml::testidp::{LoginSpec, TestIdp};
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 32;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(3);

struct Case {
    runtime: Runtime,
    urls: SpUrls,
    b64: String,
    xml: String,
    cert: CertificateDer,
}

fn connection(id: &str, idp: &TestIdp) -> SamlConnection {
    SamlConnection {
        id: id.to_owned(),
        name: "bench".into(),
        idp_entity_id: idp.entity_id.clone(),
        sso_url: "https://idp.bench/sso".into(),
        slo_url: None,
        certificates: vec![idp.certificate().base64()],
        metadata_url: None,
        metadata_status: None,
        metadata_error: None,
        metadata_fetched_at: None,
        metadata_next_at: None,
        allow_idp_initiated: true,
        clock_skew_secs: 60,
        required_signing: "either".into(),
        want_encrypted: false,
        name_id_format: None,
        attribute_mapping: AttributeMapping::default(),
        jit: true,
        link_order: vec!["externalId".into(), "userName".into(), "email".into()],
        allow_sha1: false,
        active: true,
        cert_notified: Default::default(),
        version: 1,
        created_at: 0,
        updated_at: 0,
    }
}

/// A response of about 8.5 KB: typical Entra ID / Okta claims plus group memberships.
fn typical_spec(i: usize, urls: &SpUrls, now: i64) -> LoginSpec {
    let mut spec = LoginSpec::new(
        &format!("user{i}@customer{i}.example"),
        &urls.entity_id,
        &urls.acs,
        now,
    );
    spec.sign_assertion = false;
    spec.session_index = Some(format!("_session{i}"));
    spec.attributes = vec![
        ("email".into(), vec![format!("user{i}@customer{i}.example")]),
        ("givenName".into(), vec!["Ada".into()]),
        ("sn".into(), vec!["Lovelace".into()]),
        ("displayName".into(), vec!["Ada Lovelace".into()]),
        (
            "http://schemas.microsoft.com/identity/claims/objectidentifier".into(),
            vec![uuid::Uuid::new_v4().to_string()],
        ),
        (
            "http://schemas.microsoft.com/identity/claims/tenantid".into(),
            vec![uuid::Uuid::new_v4().to_string()],
        ),
        (
            "groups".into(),
            (0..38).map(|_| uuid::Uuid::new_v4().to_string()).collect(),
        ),
    ];
    spec
}

fn build() -> (Vec<Case>, TenantKeys) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sp = saml::SpKeyPair::generate("bench SP", 30).unwrap();
    let keys = TenantKeys {
        pairs: vec![sp],
        rows: Vec::new(),
    };
    let mut cases = Vec::new();
    for i in 0..CONNECTIONS {
        let idp = TestIdp::new(&format!("https://idp{i}.bench/entity"));
        let id = format!("00000000-0000-0000-0000-{i:012}");
        let urls = sp_urls("https://idhub.bench", &id);
        let spec = typical_spec(i, &urls, now);
        let xml = idp.response_xml(&spec);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&xml);
        let runtime = Runtime {
            tenant_id: serde_json::from_str("\"bench\"").unwrap(),
            connection: connection(&id, &idp),
            certificates: vec![idp.certificate().clone()],
        };
        cases.push(Case {
            runtime,
            urls,
            b64,
            xml,
            cert: CertificateDer::from(idp.certificate().der.clone()),
        });
    }
    (cases, keys)
}

fn acs_rate(cases: &[Case], keys: &TenantKeys) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < ROUND {
        let c = &cases[n % cases.len()];
        let login = idhub::sso::login::validate_blocking(&c.runtime, keys, &c.urls, &c.b64)
            .expect("a valid response validates");
        assert!(login.response_signed);
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn raw_rate(cases: &[Case]) -> f64 {
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed() < ROUND {
        let c = &cases[n % cases.len()];
        Crypto::verify_signed_xml(c.xml.as_bytes(), &c.cert, Some("ID")).expect("raw verify");
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let (cases, keys) = build();
    let avg = cases.iter().map(|c| c.xml.len()).sum::<usize>() / cases.len();
    println!(
        "SAML ACS validation: {CONNECTIONS} connections, signed responses of {:.1} KB on average, one thread",
        avg as f64 / 1024.0
    );
    // Warm-up: caches, lazy xmlsec initialisation.
    let _ = acs_rate(&cases[..1], &keys);
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let raw = raw_rate(&cases);
        let acs = acs_rate(&cases, &keys);
        let ratio = acs / raw;
        ratios.push(ratio);
        println!(
            "round {round}: ACS validation {acs:>7.0}/s   raw libxmlsec1 parse+verify {raw:>7.0}/s   ratio {:.0}%",
            ratio * 100.0
        );
    }
    ratios.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "median ratio: {:.0}% of the raw rate (target >= 70%)",
        ratios[ratios.len() / 2] * 100.0
    );
}
