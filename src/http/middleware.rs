//! Cross-cutting request handling: request ids and access logs, metrics, time limits and
//! body-size limits.

use super::error::envelope;
use crate::metrics::Metrics;
use poem::PathPattern;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use std::time::{Duration, Instant};
use tracing::Instrument;

pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request (client-supplied when sane, generated otherwise).
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then(|| s.to_owned())
}

/// Outermost layer: assigns the request id, opens the request's tracing span (so every log
/// line carries the id), logs the outcome, records metrics and echoes `X-Request-Id`.
pub struct Observe {
    pub metrics: Metrics,
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint {
            inner: ep,
            metrics: self.metrics.clone(),
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Metrics,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(sane_request_id)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        req.extensions_mut().insert(RequestId(id.clone()));
        let method = req.method().to_string();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("request", request_id = %id, method = %method, path = %path);
        let started = Instant::now();
        let result = self.inner.call(req).instrument(span.clone()).await;
        let mut resp = match result {
            Ok(r) => r.into_response(),
            Err(e) => {
                let pattern = e.data::<PathPattern>().cloned();
                let mut r = span.in_scope(|| super::error::render(e));
                if let Some(p) = pattern {
                    r.set_data(p);
                }
                r
            }
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(poem::http::header::ALLOW)
        {
            let allow = resp
                .data::<PathPattern>()
                .and_then(|p| super::allow::allowed(&p.0));
            if let Some(v) = allow.and_then(|a| HeaderValue::from_str(a).ok()) {
                resp.headers_mut().insert(poem::http::header::ALLOW, v);
            }
        }
        let status = resp.status().as_u16();
        let route = resp
            .data::<PathPattern>()
            .map(|p| p.0.to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "unmatched".to_owned());
        let elapsed = started.elapsed();
        self.metrics
            .observe_request(&route, &method, status, elapsed.as_secs_f64());
        span.in_scope(|| {
            tracing::info!(status, route = %route, latency_ms = elapsed.as_secs_f64() * 1000.0, "request finished");
        });
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert(REQUEST_ID, v);
        }
        Ok(resp)
    }
}

/// Refuses request bodies over the limit with 413, with or without `Content-Length`.
pub struct BodyLimit(pub usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

pub struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

/// A plain 413: rendered as the REST envelope at the top, or as a SCIM error by the SCIM layer.
fn too_large() -> poem::Error {
    poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE)
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        match declared {
            Some(n) if n > self.limit as u64 => return Err(too_large()),
            Some(_) => {}
            None if req
                .headers()
                .contains_key(poem::http::header::TRANSFER_ENCODING) =>
            {
                // A streamed body: read it up to the limit before the handler sees it.
                let body = req.take_body();
                let limit = self.limit;
                let bytes = body
                    .into_bytes_limit(limit)
                    .await
                    .map_err(|_| too_large())?;
                req.set_body(bytes);
            }
            None => {}
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// Bounds each request's run time; past it the client gets 503 with the envelope.
pub struct TimeLimit(pub Duration);

impl<E: Endpoint> Middleware<E> for TimeLimit {
    type Output = TimeLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        TimeLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

pub struct TimeLimitEndpoint<E> {
    inner: E,
    limit: Duration,
}

impl<E: Endpoint> Endpoint for TimeLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        match tokio::time::timeout(self.limit, self.inner.call(req)).await {
            Ok(r) => r.map(IntoResponse::into_response),
            Err(_) => {
                tracing::warn!(
                    limit_ms = self.limit.as_millis() as u64,
                    "request timed out"
                );
                Err(poem::Error::from_response(envelope(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "request_timeout",
                    "the request took too long and was abandoned",
                    None,
                )))
            }
        }
    }
}
