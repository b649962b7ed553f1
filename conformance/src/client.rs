//! A minimal SCIM HTTP client.

use serde_json::Value;

#[derive(Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// A response: status, selected headers, JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub www_authenticate: Option<String>,
    pub body: Value,
}

impl Client {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request. `token: None` sends none (to test authentication).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        with_token: bool,
    ) -> Result<Reply, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if with_token {
            rb = rb.bearer_auth(&self.token);
        }
        if let Some(b) = body {
            rb = rb
                .header("Content-Type", "application/scim+json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let header = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = r.status().as_u16();
        let (etag, location, content_type, www_authenticate) = (
            header("etag"),
            header("location"),
            header("content-type"),
            header("www-authenticate"),
        );
        let text = r
            .text()
            .await
            .map_err(|e| format!("reading body failed: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply {
            status,
            etag,
            location,
            content_type,
            www_authenticate,
            body,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.request("GET", path, None, &[], true).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.request("POST", path, Some(body), &[], true).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.request("PUT", path, Some(body), &[], true).await
    }
    pub async fn patch(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.request("PATCH", path, Some(body), &[], true).await
    }
    pub async fn delete(&self, path: &str) -> Result<Reply, String> {
        self.request("DELETE", path, None, &[], true).await
    }
}

/// Percent-encodes a query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
