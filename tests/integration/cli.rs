//! The `idhub` binary as an operator uses it.

use crate::backend_tests;
use crate::harness::{Backend, TestDb};
use crate::store_isolation::open;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_idhub");

pub(crate) fn idhub(dir: &std::path::Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(args)
        .env_remove("IDHUB_DATABASE_URL")
        .env_remove("IDHUB_ADMIN_PASSWORD");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs the binary: its exit code, standard output and standard error.
fn run_cli(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, String, String) {
    let o = idhub(dir, env, args);
    let (out, err) = text(&o);
    (o.status.code(), out, err)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = text(&idhub(dir.path(), &[], &["--help"]));
    for sub in [
        "serve",
        "migrate",
        "tenant",
        "admin",
        "scim-token",
        "sso",
        "config",
        "openapi",
    ] {
        assert!(out.contains(sub), "--help lacks {sub}: {out}");
    }
    let (out, _) = text(&idhub(dir.path(), &[], &["tenant", "--help"]));
    for sub in ["create", "list", "show", "update"] {
        assert!(out.contains(sub), "tenant --help lacks {sub}");
    }
    let (out, _) = text(&idhub(dir.path(), &[], &["scim-token", "--help"]));
    for sub in ["create", "list", "revoke"] {
        assert!(out.contains(sub), "scim-token --help lacks {sub}");
    }
    let o = idhub(dir.path(), &[], &["--version"]);
    assert!(o.status.success());
    assert_eq!(
        text(&o).0.trim(),
        format!("idhub {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn malformed_configuration_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let o = idhub(
        dir.path(),
        &[("IDHUB_DATABASE_MAX_CONNECTIONS", "lots")],
        &["config", "check"],
    );
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("`database_max_connections`")
            && err.contains("IDHUB_DATABASE_MAX_CONNECTIONS"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("idhub.toml"),
        "listen = \"not an address\"\n",
    )
    .unwrap();
    let o = idhub(dir.path(), &[], &["serve"]);
    assert_eq!(o.status.code(), Some(2));
    let (_, err) = text(&o);
    assert!(
        err.contains("`listen`") && err.contains("idhub.toml"),
        "{err}"
    );

    std::fs::write(dir.path().join("idhub.toml"), "listne = \"127.0.0.1:1\"\n").unwrap();
    let o = idhub(dir.path(), &[], &["migrate"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("`listne`"));

    std::fs::write(dir.path().join("idhub.toml"), "this is = = not toml\n").unwrap();
    let o = idhub(dir.path(), &[], &["config", "check"]);
    assert_eq!(o.status.code(), Some(2));

    let o = idhub(
        dir.path(),
        &[],
        &["--config", "/nonexistent/idhub.toml", "config", "check"],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_check_shows_sources_and_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let o = idhub(
        dir.path(),
        &[
            (
                "IDHUB_DATABASE_URL",
                "postgres://app:s3cr3t-pw@db.internal:5432/idhub",
            ),
            ("IDHUB_ADMIN_PASSWORD", "very-secret-admin-pw"),
            (
                "IDHUB_SECRET_KEY",
                "c2VjcmV0LWtleS1zZWNyZXQta2V5LXNlY3JldC1rZXk=",
            ),
        ],
        &["config", "check", "--log-format", "json"],
    );
    assert!(o.status.success());
    let (out, err) = text(&o);
    assert!(
        !out.contains("c2VjcmV0"),
        "the sealing key is a secret: {out}"
    );
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"), "{out}");
    assert!(
        !out.contains("very-secret") && !err.contains("very-secret"),
        "{out}"
    );
    assert!(
        out.contains("postgres://app:<redacted>@db.internal:5432/idhub"),
        "{out}"
    );
    assert!(out.contains("IDHUB_DATABASE_URL"), "{out}");
    assert!(out.contains("--log-format"), "{out}");
    assert!(out.contains("configuration OK"));
}

#[test]
fn unreachable_database_fails_clearly_without_leaking_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        (
            "IDHUB_DATABASE_URL",
            "postgres://postgres:pw-do-not-print@127.0.0.1:1/nothing",
        ),
        ("IDHUB_DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
        ("IDHUB_LISTEN", "127.0.0.1:0"),
    ];
    for args in [&["serve"][..], &["migrate"][..]] {
        let o = idhub(dir.path(), &env, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let (out, err) = text(&o);
        assert!(
            err.contains(
                "cannot open the database at postgres://postgres:<redacted>@127.0.0.1:1/nothing"
            ),
            "{err}"
        );
        assert!(!err.contains("pw-do-not-print") && !out.contains("pw-do-not-print"));
    }
}

#[test]
fn serve_prints_where_to_go_and_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("IDHUB_DATABASE_URL")
        .env_remove("IDHUB_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Sign in");
        banner.push(line);
        if done {
            break;
        }
    }
    let banner = banner.join("\n");
    assert!(
        dir.path().join("data/idhub.db").exists(),
        "SQLite file under ./data/"
    );
    let addr = banner
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        banner.contains("/swagger") && banner.contains("/health/ready"),
        "{banner}"
    );
    let password = banner
        .split("password:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(password.len(), 24);

    // The printed credentials work.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    let auth = base64_basic("admin", &password);
    write!(s, "GET /api/v1/tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");

    // A request in flight when SIGTERM arrives still gets its answer.
    let mut inflight = std::net::TcpStream::connect(&addr).unwrap();
    write!(inflight, "POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nabcd\r\n").unwrap();
    inflight.flush().unwrap();
    // Wait until the server has the request (it answers a probe on another connection).
    let mut probe = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        probe,
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut p = String::new();
    probe.read_to_string(&mut p).unwrap();
    assert!(p.starts_with("HTTP/1.1 200"));
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    write!(inflight, "0\r\n\r\n").unwrap();
    let mut resp = String::new();
    inflight.read_to_string(&mut resp).unwrap();
    assert!(
        resp.starts_with("HTTP/1.1 405"),
        "in-flight request lost: {resp:?}"
    );
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");

    // Second start: the administrator exists, no password is printed again.
    let o = Command::new(BIN)
        .current_dir(dir.path())
        .args(["tenant", "list"])
        .env_remove("IDHUB_DATABASE_URL")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("default"));
}

#[test]
fn json_logs_carry_the_request_id_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env_remove("IDHUB_DATABASE_URL")
        .env("IDHUB_ADMIN_PASSWORD", "json-log-secret-pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("listening on http://")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: log-check-1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.contains("x-request-id: log-check-1"), "{resp}");
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let line = err
        .lines()
        .find(|l| l.contains("log-check-1"))
        .unwrap_or_else(|| panic!("no log line with the request id: {err}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["request_id"], "log-check-1", "{line}");
    assert_eq!(v["fields"]["status"], 200, "{line}");
    assert!(!err.contains("json-log-secret-pw"));
}

fn base64_basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
}

backend_tests!(
    operator_manages_tenants_admins_and_scim_tokens,
    operator_manages_sso_connections_and_sp_keys,
    operator_imports_a_directory_export,
);

/// `idhub import users`: every record is created as POST /Users would create it, or reported
/// with its record number; the chunks are written (and logged) for real, and a re-run creates
/// nothing twice.
async fn operator_imports_a_directory_export(b: Backend) {
    let db = TestDb::new(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("IDHUB_DATABASE_URL", db.url.as_str())];
    let run = |args: &[&str]| run_cli(dir.path(), &env, args);
    let (code, _, err) = run(&[
        "tenant",
        "create",
        "--slug",
        "acme",
        "--display-name",
        "Acme",
    ]);
    assert_eq!(code, Some(0), "{err}");
    // One user already there, as a ListResponse with one resource.
    let first = serde_json::json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": 1, "Resources": [{"schemas": [USER_SCHEMA], "userName": "taken@example.com"}]});
    std::fs::write(dir.path().join("first.json"), first.to_string()).unwrap();
    let (code, out, err) = run(&["import", "users", "--tenant", "acme", "first.json"]);
    assert_eq!(code, Some(0), "{out} {err}");
    assert!(
        out.contains("imported 1 of 1 users into tenant acme"),
        "{out}"
    );

    // 2,500 good records (three chunks) and four bad ones, one resource per line.
    let mut lines: Vec<String> = (0..2500)
        .map(|i| {
            serde_json::json!({"schemas": [USER_SCHEMA], "userName": format!("imp{i:04}@example.com"),
                "externalId": format!("ext-{i}"), "name": {"familyName": format!("Family{i}")},
                "emails": [{"value": format!("imp{i:04}@example.com"), "type": "work", "primary": true}]})
            .to_string()
        })
        .collect();
    lines.insert(
        10,
        r#"{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 5}"#.into(),
    );
    lines.insert(1200, r#"{"userName": "#.into());
    lines.insert(
        2000,
        serde_json::json!({"schemas": [USER_SCHEMA], "userName": "TAKEN@example.com"}).to_string(),
    );
    lines.push(
        serde_json::json!({"schemas": [USER_SCHEMA], "userName": "IMP0007@example.com"})
            .to_string(),
    );
    std::fs::write(dir.path().join("export.ndjson"), lines.join("\n")).unwrap();
    let (code, out, err) = run(&["import", "users", "--tenant", "acme", "export.ndjson"]);
    assert_eq!(code, Some(1), "{out} {err}");
    for line in [
        "imported 2500 of 2504 users into tenant acme",
        "record 11: not created (400",
        "record 1201: not created (400 invalidSyntax): malformed JSON",
        "record 2001: not created (409 uniqueness)",
        "record 2504: not created (409 uniqueness)",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    assert!(err.contains("4 records were not created"), "{err}");

    let store = open(&db).await;
    let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
    let ts = store.tenant(acme.id);
    let all = ts
        .list_users(idhub::model::PageRequest::default(), None)
        .await
        .unwrap();
    assert_eq!(all.total, 2501);
    let u = ts
        .find_user_by_user_name("imp1234@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.external_id.as_deref(), Some("ext-1234"));
    assert_eq!(u.email.as_deref(), Some("imp1234@example.com"));
    assert_eq!(u.attributes["name"]["familyName"], "Family1234");
    assert_eq!(u.version, 1);
    // One change-log entry and one audit record (by the CLI) per created user.
    let creates = ts
        .changes_after(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.resource_type == "User" && c.operation == "create")
        .count();
    assert_eq!(creates, 2501);
    let audit = ts
        .query_audit(
            &idhub::store::AuditQuery {
                action: Some("user.create".into()),
                target_id: Some(u.id.clone()),
                ..Default::default()
            },
            idhub::model::PageRequest::default(),
        )
        .await
        .unwrap();
    assert_eq!(audit.total, 1);
    assert_eq!(audit.items[0].actor_type, "cli");
    store.close().await;

    // Again: nothing is created twice.
    let (code, out, _) = run(&["import", "users", "--tenant", "acme", "export.ndjson"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("imported 0 of 2504 users"), "{out}");
    let (code, _, err) = run(&["import", "users", "--tenant", "nope", "export.ndjson"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no tenant with slug"), "{err}");
    let (code, _, err) = run(&["import", "users", "--tenant", "acme", "missing.json"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("cannot read missing.json"), "{err}");
}

const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

async fn operator_manages_sso_connections_and_sp_keys(b: Backend) {
    let db = TestDb::new(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("IDHUB_DATABASE_URL", db.url.as_str()),
        ("IDHUB_PUBLIC_URL", "https://idhub.example"),
    ];
    let run = |args: &[&str]| run_cli(dir.path(), &env, args);
    let idp = saml::testidp::TestIdp::new("https://idp.cli.example");
    let md = dir.path().join("idp.xml");
    std::fs::write(&md, idp.metadata_xml("https://idp.cli.example/sso", None)).unwrap();
    let md = md.to_str().unwrap();
    let (code, out, err) = run(&[
        "sso",
        "connection",
        "create",
        "--tenant",
        "default",
        "--name",
        "Okta",
        "--metadata-file",
        md,
        "--allow-idp-initiated",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("IdP entity ID:   https://idp.cli.example"),
        "{out}"
    );
    assert!(
        out.contains("SP ACS URL:      https://idhub.example/saml/"),
        "{out}"
    );
    assert!(out.contains("idp-initiated=true"), "{out}");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("id:"))
        .unwrap()
        .trim()
        .to_owned();
    let (code, out, _) = run(&["sso", "connection", "list", "--tenant", "default"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id) && out.contains("Okta"), "{out}");
    // Bad input is a usage error (exit 2) that names the field.
    let (code, _, err) = run(&[
        "sso",
        "connection",
        "create",
        "--tenant",
        "default",
        "--metadata-file",
        md,
        "--entity-id",
        "https://x",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("metadata_xml"), "{err}");
    let (code, _, err) = run(&["sso", "connection", "show", "--tenant", "nope", &id]);
    assert_eq!(code, Some(1), "{err}");
    // SP keys: the first is created on demand; rotation keeps the previous one published.
    let (code, out, err) = run(&["sso", "sp-key", "rotate", "--tenant", "default"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("rotated"));
    let (_, out, _) = run(&["sso", "sp-key", "list", "--tenant", "default"]);
    assert!(out.contains("current") && out.contains("previous"), "{out}");
    let (code, _, _) = run(&["sso", "sp-key", "retire-previous", "--tenant", "default"]);
    assert_eq!(code, Some(0));
    let (_, out, _) = run(&["sso", "sp-key", "list", "--tenant", "default"]);
    assert!(!out.contains("previous"), "{out}");
    let (code, out, _) = run(&["sso", "connection", "logins", "--tenant", "default", &id]);
    assert_eq!(code, Some(0));
    assert!(out.is_empty(), "{out}");
    let (code, out, err) = run(&["sso", "connection", "delete", "--tenant", "default", &id]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("deleted"));
    let (code, _, _) = run(&["sso", "connection", "show", "--tenant", "default", &id]);
    assert_eq!(code, Some(1));
}

async fn operator_manages_tenants_admins_and_scim_tokens(b: Backend) {
    let db = TestDb::new(&b).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("IDHUB_DATABASE_URL", db.url.as_str())];
    let run = |args: &[&str]| run_cli(dir.path(), &env, args);
    let (code, out, _) = run(&["migrate"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("migrations applied"));

    // Signing keys: the first is created on demand, rotation retires it (still verifying).
    let (code, out, err) = run(&["signing-key", "rotate"]);
    assert_eq!(code, Some(0), "{err}");
    let kid = out
        .trim()
        .strip_prefix("new signing key ")
        .unwrap()
        .to_owned();
    let (code, out, _) = run(&["signing-key", "list"]);
    assert_eq!(code, Some(0));
    // One EdDSA key (API tokens) and one RS256 key (the OIDC bridge), each rotated.
    assert_eq!(out.lines().count(), 4, "{out}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains("EdDSA")).collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[0].starts_with(&kid) && lines[0].ends_with("signing"),
        "{out}"
    );
    assert!(lines[1].contains("retired, verifies until"), "{out}");

    let (code, out, err) = run(&[
        "tenant",
        "create",
        "--slug",
        "acme",
        "--display-name",
        "Acme",
        "--hostname",
        "sso.acme.test",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("sso.acme.test"));
    let (code, _, err) = run(&[
        "tenant",
        "create",
        "--slug",
        "acme",
        "--display-name",
        "Again",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already taken"), "{err}");
    let (code, _, err) = run(&[
        "tenant",
        "create",
        "--slug",
        "Not Valid",
        "--display-name",
        "x",
    ]);
    assert_eq!(code, Some(2), "{err}");

    let (code, out, _) = run(&[
        "tenant",
        "update",
        "acme",
        "--display-name",
        "Acme Corp",
        "--scim-profile",
        "entra",
        "--hostname",
        "login.acme.test",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Acme Corp")
            && out.contains("login.acme.test")
            && !out.contains("sso.acme.test"),
        "{out}"
    );
    let (_, out, _) = run(&["tenant", "show", "acme"]);
    assert!(out.contains("\"scim_profile\":\"entra\""), "{out}");
    let (_, out, _) = run(&["tenant", "list"]);
    assert!(out.contains("acme") && out.contains("Acme Corp"));
    let (code, _, err) = run(&["tenant", "show", "nope"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("no tenant"));

    let (code, out, _) = run(&[
        "scim-token",
        "create",
        "--tenant",
        "acme",
        "--name",
        "Okta prod",
        "--expires-in-days",
        "30",
    ]);
    assert_eq!(code, Some(0));
    let secret = out
        .lines()
        .find(|l| l.starts_with("idh_scim_"))
        .unwrap()
        .trim()
        .to_owned();
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("token id: "))
        .unwrap()
        .trim()
        .to_owned();
    let (_, listed, _) = run(&["scim-token", "list", "--tenant", "acme"]);
    assert!(listed.contains("Okta prod") && listed.contains("active") && !listed.contains(&secret));

    let store = open(&db).await;
    let acme = store.tenant_by_slug("acme").await.unwrap().unwrap();
    assert_eq!(
        store
            .authenticate_token(&secret)
            .await
            .unwrap()
            .unwrap()
            .principal
            .tenant_id,
        acme.id
    );

    let (code, out, _) = run(&["scim-token", "revoke", "--tenant", "acme", &id]);
    assert_eq!(code, Some(0), "{out}");
    let (_, listed, _) = run(&["scim-token", "list", "--tenant", "acme"]);
    assert!(listed.contains("revoked"));
    // A fresh store (no cache) sees the revocation.
    let fresh = open(&db).await;
    assert!(fresh.authenticate_token(&secret).await.unwrap().is_none());
    // Revoking through another tenant is refused.
    let (code, _, err) = run(&["scim-token", "revoke", "--tenant", "default", &id]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no token") || err.contains("no tenant"),
        "{err}"
    );

    let o = idhub(
        dir.path(),
        &[
            ("IDHUB_DATABASE_URL", db.url.as_str()),
            ("IDHUB_ADMIN_PASSWORD", "operator-password-2"),
        ],
        &["admin", "create", "--username", "ops", "--tenant", "acme"],
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(!text(&o).0.contains("operator-password-2"));
    let ts = fresh.tenant(acme.id.clone());
    let ops = ts.find_user_by_user_name("ops").await.unwrap().unwrap();
    assert_eq!(ts.user_roles(&ops.id).await.unwrap(), ["admin"]);
    let hash = ts.password_hash(&ops.id).await.unwrap().unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(
        idhub::auth::password::verify("operator-password-2".into(), Some(hash))
            .await
            .unwrap()
    );
    store.close().await;
    fresh.close().await;
}
