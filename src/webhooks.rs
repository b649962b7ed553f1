//! Webhook delivery: a background loop on every node turns committed change-log entries into
//! deliveries and sends due ones, signed, with retries. It runs beside request handling and
//! never inside a write: a slow or failing receiver delays only its own deliveries.
//!
//! ## Verifying a delivery (receivers)
//! Each POST carries `Idhub-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
//! HMAC-SHA256 over `"<t>.<raw body>"` keyed with the webhook's secret (`whsec_…`). Recompute
//! it over the raw body, compare in constant time, and refuse a `t` more than five minutes
//! old (replay). `Idhub-Event-Id` is unique per event: deduplicate on it (a delivery may be
//! retried after a timeout that actually succeeded).

use crate::app::AppState;
use crate::model::{Change, TenantId, rfc3339};
use crate::store::{AttemptOutcome, DueDelivery, EventCursor};
use aws_lc_rs::hmac;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node owns a claimed delivery before another may retry it.
const LEASE_MICROS: i64 = 120 * 1_000_000;
/// Concurrent sends per node.
const MAX_IN_FLIGHT: usize = 16;

/// The `Idhub-Signature` header value for `body` at `t`.
pub fn signature(secret: &str, t: u64, body: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

/// The JSON body of an event delivery.
pub fn payload(tenant: &TenantId, cursor: &EventCursor, c: &Change) -> String {
    let data = match (c.resource_type.as_str(), c.resource_id.split_once('/')) {
        ("Membership", Some((group, member))) => serde_json::json!({
            "resource_type": "Membership",
            "group_id": group,
            "member_id": member,
            "group_version": c.resource_version,
        }),
        _ => serde_json::json!({
            "resource_type": c.resource_type,
            "id": c.resource_id,
            "version": c.resource_version,
        }),
    };
    serde_json::json!({
        "id": cursor.encode(),
        "type": crate::events::event_type(&c.resource_type, &c.operation),
        "tenant_id": tenant.as_str(),
        "occurred_at": rfc3339(c.occurred_at),
        "data": data,
    })
    .to_string()
}

/// Whether an address is one a webhook must not reach unless private targets are allowed.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) // CGNAT
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

/// Checks a webhook URL: http(s), a host, no credentials, and (unless allowed) no private
/// or loopback target, by literal address or by what the name resolves to now.
pub async fn check_target(url: &str, allow_private: bool) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "not a valid URL".to_owned())?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("the URL must use https (or http)".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| "the URL needs a host".to_owned())?;
    if allow_private {
        return Ok(());
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host, port)),
        )
        .await
        .map_err(|_| "the host name does not resolve in time".to_owned())?
        .map_err(|_| "the host name does not resolve".to_owned())?
        .map(|a| a.ip())
        .collect(),
    };
    if addrs.is_empty() || addrs.into_iter().any(is_private) {
        return Err(
            "the URL points at a private or loopback address (see webhook_allow_private)".into(),
        );
    }
    Ok(())
}

/// Starts the delivery loop of this node; it stops when `state`'s store closes.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder()
            .timeout(state.config.webhook_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("idhub-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks disabled: cannot build an HTTP client");
                return;
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
        let mut tick = tokio::time::interval(state.config.webhook_poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if state.store.is_closed() {
                return;
            }
            if let Err(e) = state.store.enqueue_webhook_events(500, &payload).await {
                tracing::warn!(error = %e, "webhooks: cannot enqueue events");
                continue;
            }
            let free = permits.available_permits();
            if free == 0 {
                continue;
            }
            let due = match state
                .store
                .claim_deliveries(u32::try_from(free).unwrap_or(16), LEASE_MICROS)
                .await
            {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "webhooks: cannot claim deliveries");
                    continue;
                }
            };
            for d in due {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(async move {
                    let outcome = send(&state, &client, &d).await;
                    if let Err(e) = state.store.record_attempt(&d, &outcome).await {
                        // The lease runs out and another attempt follows: at least once.
                        tracing::warn!(error = %e, delivery = %d.id, "webhooks: cannot record an attempt");
                    }
                    drop(permit);
                });
            }
        }
    })
}

async fn send(state: &AppState, client: &reqwest::Client, d: &DueDelivery) -> AttemptOutcome {
    let started = Instant::now();
    let elapsed = |s: Instant| i64::try_from(s.elapsed().as_millis()).unwrap_or(i64::MAX);
    let fail = |error: String, status: Option<i64>| AttemptOutcome {
        status_code: status,
        error: Some(error),
        duration_ms: elapsed(started),
        succeeded: false,
    };
    let secret = match state
        .sealer
        .open(&format!("webhook:{}", d.webhook_id), &d.sealed_secret)
    {
        Ok(s) => String::from_utf8_lossy(&s).into_owned(),
        Err(e) => return fail(format!("webhook secret unreadable: {e}"), None),
    };
    if let Err(e) = check_target(&d.url, state.config.webhook_allow_private).await {
        return fail(e, None);
    }
    let t = u64::try_from(crate::model::now_micros() / 1_000_000).unwrap_or(0);
    let r = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("idhub-signature", signature(&secret, t, &d.payload))
        .header("idhub-event-id", &d.event_id)
        .header("idhub-event-type", &d.event_type)
        .header("idhub-delivery-id", &d.id)
        .body(d.payload.clone())
        .send()
        .await;
    match r {
        Ok(resp) => {
            let status = i64::from(resp.status().as_u16());
            if resp.status().is_success() {
                AttemptOutcome {
                    status_code: Some(status),
                    error: None,
                    duration_ms: elapsed(started),
                    succeeded: true,
                }
            } else {
                fail(format!("receiver answered {status}"), Some(status))
            }
        }
        Err(e) if e.is_timeout() => fail("timed out".into(), None),
        Err(e) if e.is_connect() => fail("cannot connect".into(), None),
        Err(_) => fail("request failed".into(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: HMAC-SHA256("whsec_test", "1700000000.{}").
        let s = signature("whsec_test", 1_700_000_000, "{}");
        assert!(s.starts_with("t=1700000000,v1="));
        assert_eq!(s.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(s, signature("whsec_other", 1_700_000_000, "{}"));
        assert_ne!(s, signature("whsec_test", 1_700_000_001, "{}"));
    }

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "100.64.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn targets() {
        assert!(check_target("ftp://example.com/x", true).await.is_err());
        assert!(
            check_target("https://user:pw@example.com/x", true)
                .await
                .is_err()
        );
        assert!(check_target("http://127.0.0.1:9/x", false).await.is_err());
        assert!(check_target("http://[::1]:9/x", false).await.is_err());
        assert!(check_target("http://127.0.0.1:9/x", true).await.is_ok());
    }
}
