//! The CLI's HTTP client: `KEYWARD_ADDR` (default `http://127.0.0.1:8300`)
//! and `KEYWARD_TOKEN`. The token is read from the environment or a file,
//! never from argv, and never printed.

use anyhow::{Context, Result, anyhow};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// An error answer from the server, shown as `code: message`.
#[derive(Debug)]
pub struct ApiFailure {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable code.
    pub code: String,
    /// Message.
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (HTTP {})", self.code, self.message, self.status.as_u16())
    }
}

impl std::error::Error for ApiFailure {}

/// Connection settings shared by every command that talks to a server.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Server address.
    #[arg(long, env = "KEYWARD_ADDR", default_value = "http://127.0.0.1:8300", global = true)]
    pub addr: String,
    /// PEM file of a CA to trust for the server's TLS certificate.
    #[arg(long, env = "KEYWARD_CACERT", global = true)]
    pub ca_cert: Option<PathBuf>,
    /// File holding the access key (instead of the KEYWARD_TOKEN variable).
    #[arg(long, env = "KEYWARD_TOKEN_FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

/// A client bound to one server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("token", &"[redacted]").finish()
    }
}

impl Client {
    /// Builds a client from the connection settings and the environment.
    pub fn new(conn: &Connection) -> Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60));
        if let Some(ca) = &conn.ca_cert {
            let pem = std::fs::read(ca).with_context(|| format!("reading CA certificate {}", ca.display()))?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let token = match (&conn.token_file, std::env::var("KEYWARD_TOKEN")) {
            (Some(f), _) => Some(Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("reading token file {}", f.display()))?
                    .trim()
                    .to_string(),
            )),
            (None, Ok(t)) if !t.trim().is_empty() => Some(Zeroizing::new(t.trim().to_string())),
            _ => None,
        };
        Ok(Self { http: builder.build()?, base: conn.addr.trim_end_matches('/').to_string(), token })
    }

    /// Sends a request; returns the JSON answer or the server's error.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.send(method, path, body, true).await
    }

    /// Like [`Client::call`], for routes that take no key (health, unseal).
    pub async fn call_anonymous(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        self.send(method, path, body, false).await
    }

    async fn send(&self, method: Method, path: &str, body: Option<&Value>, auth: bool) -> Result<Value> {
        let mut req = self.request(method, path, auth)?;
        if let Some(b) = body {
            req = req.json(b);
        }
        let bytes = self.answer(req).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Sends raw bytes (a backup file) and returns the raw answer, with a
    /// long timeout: a backup or restore of a large database takes time.
    pub async fn call_bytes(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<bytes::Bytes> {
        let mut req = self.request(method, path, true)?.timeout(std::time::Duration::from_secs(3600));
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/octet-stream").body(b);
        }
        self.answer(req).await
    }

    /// GETs `path` into `out` as it arrives (an audit archive can be large),
    /// with a progress line on a terminal; the answer's headers, the bytes
    /// written and their SHA-256 (hex).
    pub async fn download(
        &self,
        path: &str,
        out: &mut std::fs::File,
    ) -> Result<(reqwest::header::HeaderMap, u64, String)> {
        use std::io::Write;
        let req = self.request(Method::GET, path, true)?.timeout(std::time::Duration::from_secs(24 * 3600));
        let mut resp = req.send().await.map_err(|e| anyhow!("cannot reach keyward at {}: {e}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let value: Value = serde_json::from_slice(&resp.bytes().await.unwrap_or_default()).unwrap_or(Value::Null);
            let code = value["error"]["code"].as_str().unwrap_or("http_error").to_string();
            let message = value["error"]["message"].as_str().unwrap_or("the server gave no explanation").to_string();
            return Err(ApiFailure { status, code, message }.into());
        }
        let headers = resp.headers().clone();
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {bytes} ({bytes_per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut n = 0u64;
        while let Some(chunk) = resp.chunk().await.context("reading the answer")? {
            out.write_all(&chunk).context("writing the file")?;
            digest.update(&chunk);
            n += chunk.len() as u64;
            bar.set_position(n);
        }
        bar.finish_and_clear();
        let hex: String = digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok((headers, n, hex))
    }

    fn request(&self, method: Method, path: &str, auth: bool) -> Result<reqwest::RequestBuilder> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if auth {
            let token = self
                .token
                .as_ref()
                .ok_or_else(|| anyhow!("no access key: set KEYWARD_TOKEN (or KEYWARD_TOKEN_FILE) to a kw_ key"))?;
            req = req.bearer_auth(token.as_str());
        }
        Ok(req)
    }

    /// The answer's bytes, or the server's error as an [`ApiFailure`].
    async fn answer(&self, req: reqwest::RequestBuilder) -> Result<bytes::Bytes> {
        let resp = req.send().await.map_err(|e| {
            anyhow!("cannot reach keyward at {}: {e} (is the server running? set KEYWARD_ADDR)", self.base)
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await.context("reading the answer")?;
        if status.is_success() {
            return Ok(bytes);
        }
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let code = value["error"]["code"].as_str().unwrap_or("http_error").to_string();
        let message = value["error"]["message"].as_str().unwrap_or("the server gave no explanation").to_string();
        Err(ApiFailure { status, code, message }.into())
    }
}

/// Percent-encodes a validated secret path for a URL (only `/` and the
/// path alphabet remain; both need no escaping, so this is a check).
pub fn secret_url(path: &str) -> Result<String> {
    keyward_core::secret_path::SecretPath::parse(path).map_err(|e| anyhow!("invalid_path: {e}"))?;
    Ok(format!("/v1/secrets/{path}"))
}
