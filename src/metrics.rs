//! Prometheus metrics: HTTP traffic, cache effectiveness and database pool state.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// All collectors of one server instance, registered in their own registry (never the
/// process-global one, so several instances in one test process do not collide).
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub cache_lookups: IntCounterVec,
    pub db_pool: IntGaugeVec,
    pub sqlite_reads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "idhub_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "idhub_http_request_duration_seconds",
                "HTTP request latency by route, method and status",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ]),
            &["route", "method", "status"],
        )?;
        let cache_lookups = IntCounterVec::new(
            Opts::new(
                "idhub_cache_lookups_total",
                "Cache lookups by cache and result (hit|miss)",
            ),
            &["cache", "result"],
        )?;
        let db_pool = IntGaugeVec::new(
            Opts::new(
                "idhub_db_pool_connections",
                "Database pool connections by state (open|idle|in_use|max)",
            ),
            &["state"],
        )?;
        let sqlite_reads = IntCounterVec::new(
            Opts::new(
                "idhub_sqlite_reads_total",
                "SQLite point reads by outcome: served on the request thread, or handed to the connection pool (over_budget|failed)",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(sqlite_reads.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(cache_lookups.clone()))?;
        registry.register(Box::new(db_pool.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            cache_lookups,
            db_pool,
            sqlite_reads,
        })
    }

    /// Records one finished HTTP request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(seconds);
    }

    /// Publishes the pool's current state.
    pub fn set_pool(&self, open: u32, idle: usize, max: u32) {
        let open_i = i64::from(open);
        let idle_i = i64::try_from(idle).unwrap_or(i64::MAX);
        self.db_pool.with_label_values(&["open"]).set(open_i);
        self.db_pool.with_label_values(&["idle"]).set(idle_i);
        self.db_pool
            .with_label_values(&["in_use"])
            .set((open_i - idle_i).max(0));
        self.db_pool.with_label_values(&["max"]).set(i64::from(max));
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
