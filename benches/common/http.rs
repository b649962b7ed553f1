//! A lean HTTP/1.1 load client: one keep-alive connection per task, requests written as
//! ready-made bytes, responses parsed with `httparse` (hyper's own parser) and their bodies
//! read to the end and dropped.
//!
//! The load generator shares the machine's 2 cores with the server, so every microsecond it
//! spends per request is taken from the server under test. A general-purpose client
//! (`reqwest`: URL parsing, a connection pool behind a lock, header maps, a task hop to the
//! connection) spends about as much per request as the server does on a cached read; this
//! one does what `wrk` does — write, read, count. Only responses with a `Content-Length`
//! are understood (every idhub response has one); anything else counts as an error.

#![allow(dead_code)]

use super::{Rate, SECONDS};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection to `addr` (`host:port`), reopened after any failure.
pub struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    pub fn new(addr: &str) -> Self {
        Self {
            addr: addr.to_owned(),
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Sends one complete request and returns the response's status once its whole body has
    /// arrived; `None` (and a fresh connection next time) on any failure.
    pub async fn send(&mut self, request: &[u8]) -> Option<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).await.ok()?;
            s.set_nodelay(true).ok()?;
            self.stream = Some(s);
        }
        let status = self.round_trip(request).await;
        if status.is_none() {
            self.stream = None;
        }
        status
    }

    async fn round_trip(&mut self, request: &[u8]) -> Option<u16> {
        let stream = self.stream.as_mut()?;
        stream.write_all(request).await.ok()?;
        self.buf.clear();
        let (status, total) = loop {
            if stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf).ok()? {
                httparse::Status::Partial => continue,
                httparse::Status::Complete(head) => {
                    let length = response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .and_then(|v| v.trim().parse::<usize>().ok())?;
                    break (response.code?, head + length);
                }
            }
        };
        while self.buf.len() < total {
            if stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
        Some(status)
    }
}

/// `GET {path}` with a bearer token, as bytes ready to write.
pub fn get(host: &str, path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

/// `POST {path}` of a SCIM JSON body with a bearer token, as bytes ready to write.
pub fn post(host: &str, path: &str, token: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/scim+json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Like [`super::load`], over [`Conn`]s: `concurrency` tasks, each with its own connection to
/// `addr`, send `request(i)` for `SECONDS` and count the responses whose status `ok` accepts.
pub async fn load<R>(concurrency: usize, addr: &str, request: R, ok: fn(u16) -> bool) -> Rate
where
    R: Fn(usize) -> Vec<u8> + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let counter = Arc::new(AtomicUsize::new(0));
    let duration = Duration::from_secs(SECONDS);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let request = request.clone();
        let counter = counter.clone();
        let mut conn = Conn::new(addr);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let bytes = request(i);
                let t = Instant::now();
                match conn.send(&bytes).await {
                    Some(status) if ok(status) => lat.push(t.elapsed().as_micros() as u32),
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    super::gather(tasks, started).await
}
