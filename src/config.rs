//! Configuration: built-in defaults, then an optional `idhub.toml`, then `IDHUB_*` environment
//! variables, then command-line flags (later wins).
//!
//! Every key is flat (`database_url`, `listen`, …) and its environment variable is
//! `IDHUB_` + the key in upper case. An unknown key or an invalid value is a [`ConfigError`]
//! that names the key and where the value came from; `main` exits with status 2 on it.
//! Secrets are wrapped in [`Secret`] so no `Debug`, log line or `config check` shows them.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// How a request's `Host` picks its tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TenancyMode {
    /// Hostnames of tenants are honoured; any other host falls back to the default tenant.
    Single,
    /// Every tenant-facing request must come through a registered hostname (else 404).
    Multi,
}

/// The validated configuration of one idhub process.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub public_url: String,
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub database_acquire_timeout: Duration,
    pub log_format: LogFormat,
    pub log_level: String,
    pub tenancy_mode: TenancyMode,
    pub default_tenant: String,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    pub shutdown_grace: Duration,
    pub cache_max_entries: u64,
    pub cache_ttl: Duration,
    pub cache_budget_bytes: u64,
    pub admin_username: String,
    pub admin_password: Option<Secret>,
    pub access_token_ttl: Duration,
    pub session_ttl: Duration,
    pub lockout_threshold: u32,
    pub lockout_duration: Duration,
    pub auth_rate_per_ip: u32,
    pub auth_rate_per_account: u32,
    /// Key sealing secrets at rest (TOTP); `None` means: use or create `secret_key_file`.
    pub secret_key: Option<Secret>,
    pub secret_key_file: PathBuf,
    /// Webhook targets may resolve to loopback or private addresses (off: SSRF protection).
    pub webhook_allow_private: bool,
    pub webhook_poll: Duration,
    pub webhook_timeout: Duration,
    /// IdP metadata URLs may resolve to loopback or private addresses (off: SSRF protection).
    pub saml_allow_private_metadata: bool,
    /// How often a connection's metadata URL is fetched again.
    pub saml_metadata_refresh: Duration,
    /// How long an AuthnRequest waits for its response.
    pub saml_request_ttl: Duration,
    /// Fault injection: how long this node sits on other nodes' invalidations.
    pub cluster_apply_delay: Duration,
    /// Fault injection: how long this node holds its own outgoing invalidations.
    pub cluster_notify_delay: Duration,
    /// Requests per minute per client IP address to the SAML and OAuth endpoints.
    pub sso_rate_per_ip: u32,
}

/// Where a value came from, for error messages and `config check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(String),
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Env(v) => write!(f, "environment variable {v}"),
            Self::Flag(v) => write!(f, "flag {v}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid value for `{key}` (from {origin}): {reason}")]
    Invalid {
        key: &'static str,
        origin: Source,
        reason: String,
    },
    #[error("unknown configuration key `{key}` in {file}")]
    UnknownKey { key: String, file: String },
    #[error("cannot read config file {file}: {reason}")]
    File { file: String, reason: String },
}

struct KeyDef {
    key: &'static str,
    default: &'static str,
    secret: bool,
    help: &'static str,
}

const KEYS: &[KeyDef] = &[
    KeyDef {
        key: "listen",
        default: "127.0.0.1:8080",
        secret: false,
        help: "address and port to listen on",
    },
    KeyDef {
        key: "public_url",
        default: "",
        secret: false,
        help: "external base URL (default: http://<listen>)",
    },
    KeyDef {
        key: "database_url",
        default: "sqlite://data/idhub.db",
        secret: true,
        help: "sqlite://PATH or postgres://USER:PASS@HOST/DB",
    },
    KeyDef {
        key: "database_max_connections",
        default: "16",
        secret: false,
        help: "connection pool size",
    },
    KeyDef {
        key: "database_acquire_timeout_secs",
        default: "10",
        secret: false,
        help: "how long a request waits for a connection",
    },
    KeyDef {
        key: "log_format",
        default: "text",
        secret: false,
        help: "text | json",
    },
    KeyDef {
        key: "log_level",
        default: "info",
        secret: false,
        help: "tracing filter, e.g. info or idhub=debug",
    },
    KeyDef {
        key: "tenancy_mode",
        default: "single",
        secret: false,
        help: "single | multi (unknown Host → 404)",
    },
    KeyDef {
        key: "default_tenant",
        default: "default",
        secret: false,
        help: "slug of the tenant created at first start",
    },
    KeyDef {
        key: "request_timeout_secs",
        default: "30",
        secret: false,
        help: "per-request time limit",
    },
    KeyDef {
        key: "body_limit_bytes",
        default: "1048576",
        secret: false,
        help: "largest accepted request body",
    },
    KeyDef {
        key: "shutdown_grace_secs",
        default: "30",
        secret: false,
        help: "time in-flight requests get on SIGTERM/SIGINT",
    },
    KeyDef {
        key: "cache_max_entries",
        default: "100000",
        secret: false,
        help: "entries per resource cache",
    },
    KeyDef {
        key: "cache_ttl_secs",
        default: "300",
        secret: false,
        help: "cache time-to-live",
    },
    KeyDef {
        key: "cache_budget_mib",
        default: "32",
        secret: false,
        help: "memory budget of the user and group caches",
    },
    KeyDef {
        key: "admin_username",
        default: "admin",
        secret: false,
        help: "bootstrap administrator's user name",
    },
    KeyDef {
        key: "admin_password",
        default: "",
        secret: true,
        help: "bootstrap administrator's password (random if unset)",
    },
    KeyDef {
        key: "secret_key",
        default: "",
        secret: true,
        help: "32-byte base64 key sealing MFA secrets (else secret_key_file is used)",
    },
    KeyDef {
        key: "secret_key_file",
        default: "data/secret.key",
        secret: false,
        help: "file holding the sealing key, created on first start when missing",
    },
    KeyDef {
        key: "webhook_allow_private",
        default: "false",
        secret: false,
        help: "allow webhook URLs on loopback/private addresses (true|false)",
    },
    KeyDef {
        key: "webhook_poll_ms",
        default: "1000",
        secret: false,
        help: "how often each node looks for webhook work",
    },
    KeyDef {
        key: "webhook_timeout_secs",
        default: "10",
        secret: false,
        help: "time limit of one webhook delivery attempt",
    },
    KeyDef {
        key: "saml_allow_private_metadata",
        default: "false",
        secret: false,
        help: "allow IdP metadata URLs on loopback/private addresses (true|false)",
    },
    KeyDef {
        key: "saml_metadata_refresh_secs",
        default: "86400",
        secret: false,
        help: "how often IdP metadata URLs are fetched again",
    },
    KeyDef {
        key: "saml_request_ttl_secs",
        default: "600",
        secret: false,
        help: "how long an SP-initiated SAML login may take",
    },
    KeyDef {
        key: "cluster_apply_delay_ms",
        default: "0",
        secret: false,
        help: "fault injection (tests): delay before this node applies and acknowledges other nodes' cache invalidations",
    },
    KeyDef {
        key: "cluster_notify_delay_ms",
        default: "0",
        secret: false,
        help: "fault injection (tests): delay before this node sends each batch of its own cache invalidations",
    },
    KeyDef {
        key: "sso_rate_per_ip",
        default: "600",
        secret: false,
        help: "SAML/OAuth endpoint requests per minute per client IP (429 past it)",
    },
    KeyDef {
        key: "access_token_ttl_secs",
        default: "900",
        secret: false,
        help: "lifetime of REST access tokens (JWT), 60-86400",
    },
    KeyDef {
        key: "session_ttl_secs",
        default: "1209600",
        secret: false,
        help: "lifetime of a sign-in session (its refresh tokens)",
    },
    KeyDef {
        key: "lockout_threshold",
        default: "5",
        secret: false,
        help: "failed logins that lock an account",
    },
    KeyDef {
        key: "lockout_secs",
        default: "900",
        secret: false,
        help: "how long a locked account stays locked",
    },
    KeyDef {
        key: "auth_rate_per_ip",
        default: "60",
        secret: false,
        help: "auth requests per minute from one IP address",
    },
    KeyDef {
        key: "auth_rate_per_account",
        default: "20",
        secret: false,
        help: "login attempts per minute for one account",
    },
];

/// Raw values by key with their source, before typing.
#[derive(Clone, Debug)]
pub struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// Defaults, then the file (if any), then the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut values = BTreeMap::new();
        for k in KEYS {
            values.insert(k.key, (k.default.to_owned(), Source::Default));
        }
        let mut layers = Self { values };
        let explicit = file.is_some();
        let path = file
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("idhub.toml"));
        if path.exists() {
            layers.apply_file(&path)?;
        } else if explicit {
            return Err(ConfigError::File {
                file: path.display().to_string(),
                reason: "no such file".into(),
            });
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("IDHUB_") else {
                continue;
            };
            let lower = rest.to_ascii_lowercase();
            if let Some(k) = KEYS.iter().find(|k| k.key == lower) {
                layers.values.insert(k.key, (value, Source::Env(name)));
            }
        }
        Ok(layers)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            file: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::File {
            file: path.display().to_string(),
            reason: e.message().to_owned(),
        })?;
        for (key, value) in table {
            let Some(k) = KEYS.iter().find(|k| k.key == key) else {
                return Err(ConfigError::UnknownKey {
                    key,
                    file: path.display().to_string(),
                });
            };
            let s = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(ConfigError::Invalid {
                        key: k.key,
                        origin: Source::File(path.to_path_buf()),
                        reason: format!("expected a string or number, found {}", other.type_str()),
                    });
                }
            };
            self.values
                .insert(k.key, (s, Source::File(path.to_path_buf())));
        }
        Ok(())
    }

    /// Overrides a key from a command-line flag.
    pub fn set_flag(&mut self, key: &'static str, flag: &str, value: impl Into<String>) {
        self.values
            .insert(key, (value.into(), Source::Flag(flag.to_owned())));
    }

    fn raw(&self, key: &'static str) -> (&str, &Source) {
        self.values
            .get(key)
            .map(|(v, s)| (v.as_str(), s))
            .unwrap_or(("", &Source::Default))
    }

    fn parse<T: std::str::FromStr>(&self, key: &'static str, what: &str) -> Result<T, ConfigError> {
        let (v, source) = self.raw(key);
        v.trim().parse::<T>().map_err(|_| ConfigError::Invalid {
            key,
            origin: source.clone(),
            reason: format!("expected {what}, got {v:?}"),
        })
    }

    fn positive(&self, key: &'static str) -> Result<u64, ConfigError> {
        let n: u64 = self.parse(key, "a positive whole number")?;
        if n == 0 {
            let (_, source) = self.raw(key);
            return Err(ConfigError::Invalid {
                key,
                origin: source.clone(),
                reason: "must be greater than 0".into(),
            });
        }
        Ok(n)
    }

    fn invalid(&self, key: &'static str, reason: impl Into<String>) -> ConfigError {
        let (_, source) = self.raw(key);
        ConfigError::Invalid {
            key,
            origin: source.clone(),
            reason: reason.into(),
        }
    }

    /// Types and checks every value.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let listen: SocketAddr = self.parse("listen", "an address like 127.0.0.1:8080")?;
        let public_url = match self.raw("public_url").0.trim() {
            "" => format!("http://{listen}"),
            u if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            _ => return Err(self.invalid("public_url", "must start with http:// or https://")),
        };
        let database_url = self.raw("database_url").0.trim().to_owned();
        if crate::store::dialect::Backend::from_url(&database_url).is_none() {
            return Err(self.invalid(
                "database_url",
                "must start with sqlite:// or postgres:// (the value is not shown: it may hold a password)",
            ));
        }
        let log_format = match self.raw("log_format").0.trim() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(self.invalid(
                    "log_format",
                    format!("expected text or json, got {other:?}"),
                ));
            }
        };
        let log_level = self.raw("log_level").0.trim().to_owned();
        if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
            return Err(self.invalid("log_level", format!("not a valid filter: {log_level:?}")));
        }
        let tenancy_mode = match self.raw("tenancy_mode").0.trim() {
            "single" => TenancyMode::Single,
            "multi" => TenancyMode::Multi,
            other => {
                return Err(self.invalid(
                    "tenancy_mode",
                    format!("expected single or multi, got {other:?}"),
                ));
            }
        };
        let default_tenant = self.raw("default_tenant").0.trim().to_owned();
        if crate::model::Slug::parse(&default_tenant).is_err() {
            return Err(self.invalid("default_tenant", "must be a slug: a-z, 0-9 and '-'"));
        }
        let max_conn = self.positive("database_max_connections")?;
        let admin_username = self.raw("admin_username").0.trim().to_owned();
        if admin_username.is_empty() || admin_username.len() > 200 {
            return Err(self.invalid("admin_username", "must be 1-200 characters"));
        }
        let admin_password = match self.raw("admin_password").0 {
            "" => None,
            p if p.chars().count() < 12 => {
                return Err(self.invalid(
                    "admin_password",
                    "must be at least 12 characters (the value is not shown)",
                ));
            }
            p => Some(Secret::new(p)),
        };
        Ok(Config {
            listen,
            public_url,
            database_url: Secret::new(database_url),
            database_max_connections: u32::try_from(max_conn)
                .map_err(|_| self.invalid("database_max_connections", "too large"))?,
            database_acquire_timeout: Duration::from_secs(
                self.positive("database_acquire_timeout_secs")?,
            ),
            log_format,
            log_level,
            tenancy_mode,
            default_tenant,
            request_timeout: Duration::from_secs(self.positive("request_timeout_secs")?),
            body_limit_bytes: usize::try_from(self.positive("body_limit_bytes")?)
                .map_err(|_| self.invalid("body_limit_bytes", "too large"))?,
            shutdown_grace: Duration::from_secs(
                self.parse("shutdown_grace_secs", "a whole number of seconds")?,
            ),
            cache_max_entries: self.positive("cache_max_entries")?,
            cache_ttl: Duration::from_secs(self.positive("cache_ttl_secs")?),
            cache_budget_bytes: self
                .positive("cache_budget_mib")?
                .saturating_mul(1024 * 1024),
            admin_username,
            admin_password,
            access_token_ttl: {
                let secs = self.positive("access_token_ttl_secs")?;
                if !(60..=86_400).contains(&secs) {
                    return Err(self.invalid("access_token_ttl_secs", "must be 60-86400"));
                }
                Duration::from_secs(secs)
            },
            session_ttl: Duration::from_secs(self.positive("session_ttl_secs")?),
            lockout_threshold: u32::try_from(self.positive("lockout_threshold")?)
                .map_err(|_| self.invalid("lockout_threshold", "too large"))?,
            lockout_duration: Duration::from_secs(self.positive("lockout_secs")?),
            auth_rate_per_ip: u32::try_from(self.positive("auth_rate_per_ip")?)
                .map_err(|_| self.invalid("auth_rate_per_ip", "too large"))?,
            auth_rate_per_account: u32::try_from(self.positive("auth_rate_per_account")?)
                .map_err(|_| self.invalid("auth_rate_per_account", "too large"))?,
            secret_key: match self.raw("secret_key").0.trim() {
                "" => None,
                k => {
                    use base64::Engine;
                    let ok = base64::engine::general_purpose::STANDARD
                        .decode(k)
                        .is_ok_and(|b| b.len() == 32);
                    if !ok {
                        return Err(self.invalid(
                            "secret_key",
                            "must be 32 bytes, base64-encoded (the value is not shown)",
                        ));
                    }
                    Some(Secret::new(k))
                }
            },
            secret_key_file: PathBuf::from(self.raw("secret_key_file").0.trim()),
            webhook_allow_private: self.parse("webhook_allow_private", "true or false")?,
            webhook_poll: Duration::from_millis(self.positive("webhook_poll_ms")?),
            webhook_timeout: Duration::from_secs(self.positive("webhook_timeout_secs")?),
            saml_allow_private_metadata: self
                .parse("saml_allow_private_metadata", "true or false")?,
            saml_metadata_refresh: Duration::from_secs(
                self.positive("saml_metadata_refresh_secs")?,
            ),
            saml_request_ttl: Duration::from_secs(self.positive("saml_request_ttl_secs")?),
            cluster_apply_delay: Duration::from_millis(
                self.parse("cluster_apply_delay_ms", "a whole number of milliseconds")?,
            ),
            cluster_notify_delay: Duration::from_millis(
                self.parse("cluster_notify_delay_ms", "a whole number of milliseconds")?,
            ),
            sso_rate_per_ip: u32::try_from(self.positive("sso_rate_per_ip")?)
                .map_err(|_| self.invalid("sso_rate_per_ip", "too large"))?,
        })
    }

    /// One line per key: value (secrets redacted) and source. For `idhub config check`.
    pub fn describe(&self) -> Vec<String> {
        KEYS.iter()
            .map(|k| {
                let (v, source) = self.raw(k.key);
                let shown = if k.secret {
                    redact(k.key, v)
                } else if v.is_empty() {
                    "(unset)".to_owned()
                } else {
                    v.to_owned()
                };
                format!("{:<30} {:<40} # {} [{}]", k.key, shown, k.help, source)
            })
            .collect()
    }
}

/// A secret shown without its secret part: database URLs keep scheme, user and host.
pub fn redact(key: &str, value: &str) -> String {
    if value.is_empty() {
        return "(unset)".to_owned();
    }
    if key == "database_url" {
        return redact_url(value);
    }
    "<redacted>".to_owned()
}

/// `postgres://user:pass@host/db` → `postgres://user:<redacted>@host/db`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redacted>".to_owned();
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{user}:<redacted>@{host}")
            } else {
                format!("{user}@{host}")
            }
        }
        None => authority.to_owned(),
    };
    let path = path.split('?').next().unwrap_or_default();
    if rest.contains('/') {
        format!("{scheme}://{authority}/{path}")
    } else {
        format!("{scheme}://{authority}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_sqlite_and_loopback() {
        let c = Layers::load(None, env(&[])).unwrap().resolve().unwrap();
        assert_eq!(c.database_url.expose(), "sqlite://data/idhub.db");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn file_then_env_then_flag() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("idhub.toml");
        std::fs::write(&f, "listen = \"127.0.0.1:1000\"\ncache_ttl_secs = 5\n").unwrap();
        let mut l = Layers::load(Some(&f), env(&[("IDHUB_LISTEN", "127.0.0.1:2000")])).unwrap();
        assert_eq!(l.resolve().unwrap().listen.port(), 2000);
        assert_eq!(l.resolve().unwrap().cache_ttl.as_secs(), 5);
        l.set_flag("listen", "--listen", "127.0.0.1:3000");
        assert_eq!(l.resolve().unwrap().listen.port(), 3000);
    }

    #[test]
    fn invalid_value_names_key_and_source() {
        let l = Layers::load(None, env(&[("IDHUB_DATABASE_MAX_CONNECTIONS", "many")])).unwrap();
        let e = l.resolve().unwrap_err().to_string();
        assert!(e.contains("`database_max_connections`"), "{e}");
        assert!(e.contains("IDHUB_DATABASE_MAX_CONNECTIONS"), "{e}");
    }

    #[test]
    fn unknown_file_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("idhub.toml");
        std::fs::write(&f, "lisen = \"x\"\n").unwrap();
        let e = Layers::load(Some(&f), env(&[])).unwrap_err().to_string();
        assert!(e.contains("`lisen`"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        let l = Layers::load(
            None,
            env(&[
                (
                    "IDHUB_DATABASE_URL",
                    "postgres://app:hunter2hunter2@db:5432/idhub?sslmode=require",
                ),
                ("IDHUB_ADMIN_PASSWORD", "correct-horse-battery"),
            ]),
        )
        .unwrap();
        let text = l.describe().join("\n");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("correct-horse"), "{text}");
        assert!(
            text.contains("postgres://app:<redacted>@db:5432/idhub"),
            "{text}"
        );
        let c = l.resolve().unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{c:?}").contains("correct-horse"));
    }

    #[test]
    fn bad_database_scheme_does_not_echo_value() {
        let l = Layers::load(
            None,
            env(&[("IDHUB_DATABASE_URL", "mysql://u:topsecret@h/db")]),
        )
        .unwrap();
        let e = l.resolve().unwrap_err().to_string();
        assert!(
            e.contains("`database_url`") && !e.contains("topsecret"),
            "{e}"
        );
    }
}
