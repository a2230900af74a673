//! Starts the real `keyward` binary on a free loopback port and talks to it
//! over HTTP and through its CLI.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_keyward");

/// A running server.
pub struct Server {
    child: Child,
    pub addr: String,
    pub admin: Option<String>,
    pub data: PathBuf,
    pub log: PathBuf,
    pub banner: String,
}

/// Result of starting: the banner up to the listening line, or the process output on failure.
pub fn start_in(dir: &Path, extra: &[&str]) -> Result<Server, String> {
    start_with(dir, extra, None, &[])
}

/// Starts a server with these variables added to (or, with `None`, removed
/// from) its environment.
pub fn start_env(dir: &Path, extra: &[&str], env: &[(&str, Option<&str>)]) -> Server {
    start_with(dir, extra, None, env).unwrap_or_else(|e| panic!("{e}"))
}

/// Starts a server whose soft open-file limit is `nofile` (`ulimit -n`).
pub fn start_limited(dir: &Path, nofile: u32, extra: &[&str]) -> Server {
    start_with(dir, extra, Some(nofile), &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn start_with(dir: &Path, extra: &[&str], nofile: Option<u32>, env: &[(&str, Option<&str>)]) -> Result<Server, String> {
    let data = dir.join("keyward-data");
    let log = dir.join(format!("server-{}.log", std::process::id() as u64 * 1000 + rand_suffix()));
    let mut args: Vec<String> = vec!["server".into()];
    if !extra.contains(&"--listen") {
        args.push("--listen".into());
        args.push("127.0.0.1:0".into());
    }
    if !extra.contains(&"--dev") {
        args.push("--data".into());
        args.push(data.display().to_string());
    }
    if !extra.contains(&"--log") {
        // Per-request lines are debug: tests read them (no secret may appear).
        args.push("--log".into());
        args.push("info,keyward_server=debug".into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let mut cmd = match nofile {
        None => Command::new(BIN),
        Some(n) => {
            let mut c = Command::new("bash");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\""), BIN]);
            c
        }
    };
    if !extra.contains(&"--dev")
        && !env.iter().any(|(k, _)| *k == "KEYWARD_DATABASE_URL")
        && let Some(url) = crate::pg::database_for(&data)
    {
        cmd.env("KEYWARD_DATABASE_URL", url);
    }
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .args(&args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                // Keep draining so the server never blocks on a full pipe.
            }
        }
    });
    let mut banner = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(line) => {
                banner.push_str(&line);
                banner.push('\n');
                if let Some(url) = line.strip_prefix("keyward listening on ") {
                    let admin =
                        banner.lines().find_map(|l| l.trim().strip_prefix("export KEYWARD_TOKEN=").map(str::to_string));
                    return Ok(Server { child, addr: url.trim().to_string(), admin, data, log, banner });
                }
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("server did not start.\nstdout:\n{banner}\nstderr:\n{err}"));
            }
        }
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::SeqCst)
}

/// Starts a server or panics with its output.
pub fn start(dir: &Path, extra: &[&str]) -> Server {
    start_in(dir, extra).unwrap_or_else(|e| panic!("{e}"))
}

impl Server {
    pub fn admin(&self) -> &str {
        self.admin.as_deref().expect("this server printed no bootstrap key")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits.
    pub fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    /// Kills the server with SIGKILL (a crash: nothing runs on the way down).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs the CLI against this server.
    pub fn cli(&self, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
        cli(&self.addr, token, args, stdin)
    }

    /// An HTTP request; returns status and JSON body.
    pub fn http(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let c = reqwest::blocking::Client::new();
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c.request(m, format!("{}{path}", self.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request failed");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Sends raw bytes as one HTTP/1.1 request (for inputs clients would normalise).
    pub fn raw(&self, request_head: &str, body: &[u8]) -> (u16, Value) {
        let hostport = self.addr.trim_start_matches("http://");
        let mut s = TcpStream::connect(hostport).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(request_head.as_bytes()).unwrap();
        // The server may answer (413) and close before the whole body is sent.
        let _ = s.write_all(body);
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the CLI with `KEYWARD_ADDR` and (optionally) `KEYWARD_TOKEN`.
pub fn cli(addr: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>) -> Output {
    cli_env(addr, token, args, stdin, &[])
}

/// Runs the CLI with these variables added to its environment.
pub fn cli_env(addr: &str, token: Option<&str>, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.envs(env.iter().copied());
    cmd.args(args).env("KEYWARD_ADDR", addr).env_remove("KEYWARD_TOKEN").env_remove("KEYWARD_TOKEN_FILE");
    if let Some(t) = token {
        cmd.env("KEYWARD_TOKEN", t);
    }
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts an error answer with this status and code, in the documented shape.
#[track_caller]
pub fn assert_error(got: &(u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "status for {code}: body {}", got.1);
    assert_eq!(got.1["error"]["code"], code, "body {}", got.1);
    assert!(got.1["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "no message: {}", got.1);
}

/// Creates a key with the admin key; returns (id, key).
pub fn create_key(s: &Server, body: Value) -> (String, String) {
    let (st, v) = s.http("POST", "/v1/keys", Some(s.admin()), Some(&body));
    assert_eq!(st, 201, "{v}");
    (v["id"].as_str().unwrap().to_string(), v["key"].as_str().unwrap().to_string())
}

/// Writes the exchange account `exchanges/<name>` of type `kind` with the
/// admin key, its upstream pointed at `base_url` (the fake exchange).
pub fn exchange_account(s: &Server, name: &str, kind: &str, mut fields: Value, base_url: &str) {
    fields["base_url"] = Value::from(base_url);
    let body = serde_json::json!({"data": fields, "type": kind});
    let (st, v) = s.http("PUT", &format!("/v1/secrets/exchanges/{name}"), Some(s.admin()), Some(&body));
    assert_eq!(st, 200, "{v}");
}

/// The Prometheus text of `/metrics`, read with `token`.
pub fn metrics_text(s: &Server, token: &str) -> String {
    reqwest::blocking::Client::new()
        .get(format!("{}/metrics", s.addr))
        .bearer_auth(token)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

pub fn put(s: &Server, token: &str, path: &str, data: Value) -> (u16, Value) {
    s.http("PUT", &format!("/v1/secrets/{path}"), Some(token), Some(&serde_json::json!({ "data": data })))
}

/// Runs `keyward operator init` on `dir`; returns the JSON it printed.
pub fn operator_init(dir: &Path, args: &[&str]) -> Value {
    let data = dir.join("keyward-data");
    let mut all = vec!["operator", "init", "--data", data.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let url = crate::pg::database_for(&data);
    let env: Vec<(&str, &str)> = url.iter().map(|u| ("KEYWARD_DATABASE_URL", u.as_str())).collect();
    let o = cli_env("http://127.0.0.1:1", None, &all, None, &env);
    assert!(o.status.success(), "init failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// An answer with its headers.
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
}

impl Reply {
    pub fn pair(&self) -> (u16, Value) {
        (self.status, self.body.clone())
    }
}

impl Server {
    /// A request from a chosen local address (any of 127.0.0.0/8, or ::1),
    /// with extra headers.
    pub fn http_from(
        &self,
        from: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let local: std::net::IpAddr = from.parse().unwrap();
        let c = reqwest::blocking::Client::builder().local_address(local).build().unwrap();
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = c.request(m, format!("{}{path}", self.addr));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().expect("request failed");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().unwrap_or_default();
        Reply { status, body: serde_json::from_str(&text).unwrap_or(Value::Null), headers }
    }

    /// Sets the server's test clock (the server must run with --test-clock).
    pub fn set_clock(&self, now_ms: i64) {
        let (st, v) =
            self.http("POST", "/v1/sys/test-clock", Some(self.admin()), Some(&serde_json::json!({ "now_ms": now_ms })));
        assert_eq!(st, 200, "{v}");
    }
}

/// RFC 3339 text of `ms` since the epoch.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A free loopback port (bound and released; the caller binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The fake exchange (Python; checks signatures with its own hmac, and
/// self-generated keys' signatures with `cryptography`: run by the test
/// Python, `KEYWARD_TEST_PYTHON`, when set).
pub struct FakeExchange {
    child: Child,
    pub url: String,
    /// Each exchange's own port (its paths collide with others' on the main one).
    ports: std::collections::HashMap<String, u16>,
}

impl FakeExchange {
    pub fn start(creds: &Value) -> FakeExchange {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fake_exchange/fake_exchange.py");
        let python = std::env::var("KEYWARD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
        let mut child = Command::new(python)
            .arg(script)
            .arg(creds.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut line, mut ports) = (String::new(), String::new());
        out.read_line(&mut line).unwrap();
        out.read_line(&mut ports).unwrap();
        let port = line.trim().trim_start_matches("listening on ").to_string();
        let ports = serde_json::from_str(ports.trim().trim_start_matches("ports ")).expect("the fake's ports line");
        FakeExchange { child, url: format!("http://127.0.0.1:{port}"), ports }
    }

    /// The URL of the port that serves only exchange `kind`.
    pub fn url_for(&self, kind: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[kind])
    }

    /// Replaces the credential sets of the exchanges named in `creds` (each
    /// one set or a list: a key registered or deleted on the exchange).
    pub fn set_creds(&self, creds: &Value) {
        let c = reqwest::blocking::Client::new();
        let r = c.post(format!("{}/__creds", self.url)).body(creds.to_string()).send().unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// Sets test controls (`delay_ms`, `weight`, `skew_ms`).
    pub fn control(&self, query: &str) {
        let r = reqwest::blocking::get(format!("{}/__control?{query}", self.url)).unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    /// Every request the fake exchange saw.
    pub fn log(&self) -> Vec<Value> {
        let v: Value = reqwest::blocking::get(format!("{}/__log", self.url)).unwrap().json().unwrap();
        v.as_array().unwrap().clone()
    }
}

impl Drop for FakeExchange {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs SQL statements directly on a keyward database (tamper tests).
pub fn sql<S: AsRef<str>>(db: &Path, statements: &[S]) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        for st in statements {
            sqlx::query(st.as_ref()).execute(&mut c).await.unwrap();
        }
        c.close().await.unwrap();
    });
}
