//! The wire, through the real binary: a raw `#` in a request line is
//! refused wherever it appears (one request or pipelined, behind bodies
//! that look like requests), and slow, idle or too many connections cannot
//! starve the server of descriptors.

use crate::harness::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with Binance, OKX and Bybit accounts on the fake exchange, and
/// a key that may read and trade on each.
fn rig(dir: &std::path::Path) -> (Server, FakeExchange, String) {
    let fake = FakeExchange::start(&json!({
        "binance": {"key": "BK", "secret": "bs"},
        "okx": {"key": "OK", "secret": "os", "passphrase": "op"},
        "bybit": {"key": "YK", "secret": "ys"},
    }));
    let s = start(dir, &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, f) in [
        ("bin", "binance", json!({"api_key": "BK", "api_secret": "bs"})),
        ("okx", "okx", json!({"api_key": "OK", "api_secret": "os", "passphrase": "op"})),
        ("by", "bybit", json!({"api_key": "YK", "api_secret": "ys"})),
    ] {
        exchange_account(&s, name, kind, f, &fake.url);
    }
    let scopes: Vec<String> =
        ["bin", "okx", "by"].iter().flat_map(|a| [format!("account:{a}:trade"), format!("account:{a}:read")]).collect();
    let key = create_key(&s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.1"]})).1;
    (s, fake, key)
}

fn host_port(s: &Server) -> String {
    s.addr.trim_start_matches("http://").to_string()
}

/// Writes `bytes` on one connection and returns the status of every answer.
fn pipelined(s: &Server, bytes: &[u8]) -> Vec<(u16, String)> {
    let mut c = TcpStream::connect(host_port(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut answers = Vec::new();
    for part in text.split("HTTP/1.1 ").skip(1) {
        let status = part.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        let code = part
            .find("\r\n\r\n")
            .and_then(|at| serde_json::from_str::<Value>(part[at + 4..].trim_end()).ok())
            .map(|v| v["error"]["code"].as_str().unwrap_or("").to_string())
            .unwrap_or_default();
        answers.push((status, code));
    }
    answers
}

#[test]
fn a_raw_hash_in_the_request_line_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fake, key) = rig(dir.path());
    let order = "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01";
    // The review's request: what follows `#` would have been dropped and a bare order sent.
    for (account, header, path) in [
        ("bin", "X-MBX-APIKEY", "/api/v3/order#/../../sapi/v1/capital/withdraw/apply?coin=BTC&amount=1&address=x"),
        ("bin", "X-MBX-APIKEY", "/api/v3/order?symbol=BTCUSDT#&coin=BTC"),
        ("okx", "OK-ACCESS-KEY", "/api/v5/trade/order#/../../asset/withdrawal"),
        ("by", "X-BAPI-API-KEY", "/v5/order/create#/../../asset/withdraw/create"),
    ] {
        let head = format!(
            "POST /proxy/{account}{path} HTTP/1.1\r\nHost: x\r\n{header}: {key}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            order.len()
        );
        assert_error(&s.raw(&head, order.as_bytes()), 400, "request_not_canonical");
    }
    for target in ["/proxy/bin/api/v3/account?timestamp=1#x", "/proxy/bin/api/v3/account#", "/v1/sys/health#x"] {
        let head = format!("GET {target} HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\nConnection: close\r\n\r\n");
        assert_error(&s.raw(&head, b""), 400, "request_not_canonical");
    }
    // Percent-encoded, it is an ordinary character of a value.
    let head = format!(
        "GET /proxy/bin/api/v3/allOrders?symbol=BTCUSDT&note=a%23b HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(s.raw(&head, b"").0, 200, "%23 is not a fragment");
    // The sign API holds a query to the same rule.
    let signed = s.http(
        "POST",
        "/v1/sign/bin",
        Some(&key),
        Some(&json!({"method": "POST", "path": "/api/v3/order", "query": "symbol=BTCUSDT#&coin=BTC"})),
    );
    assert_error(&signed, 400, "request_not_canonical");
    let posts: Vec<Value> = fake.log().into_iter().filter(|l| l["method"] == "POST").collect();
    assert!(posts.is_empty(), "nothing was ordered: {posts:?}");
}

#[test]
fn pipelined_requests_are_each_held_to_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (s, fake, key) = rig(dir.path());
    // Bodies that look like request lines with `#` are bodies; the request
    // lines after them are read as request lines.
    let looks_like = "GET /v1/sys/health#x HTTP/1.1\r\nHost: x\r\n\r\n";
    let chunked = format!("{:x};ext=1\r\n{looks_like}\r\n0\r\nTrailer: GET /a#b HTTP/1.1\r\n\r\n", looks_like.len());
    let stream = format!(
        "GET /proxy/bin/api/v3/exchangeInfo HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: {key}\r\n\r\n\
         POST /v1/sys/health HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{looks_like}\
         POST /v1/sys/health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}\
         \r\nGET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /proxy/bin/api/v3/order#/../../sapi/v1/capital/withdraw/apply HTTP/1.1\r\nHost: x\r\n\
         X-MBX-APIKEY: {key}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 9\r\n\r\nsymbol=AB\
         GET /v1/sys/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        looks_like.len()
    );
    let answers = pipelined(&s, stream.as_bytes());
    let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    assert_eq!(statuses.len(), 6, "{answers:?}");
    assert_eq!(statuses[0], 200, "{answers:?}");
    for a in &answers[1..3] {
        assert_ne!(a.1, "request_not_canonical", "a body is not a request line: {answers:?}");
    }
    assert_eq!(statuses[3], 200, "{answers:?}");
    assert_eq!(answers[4], (400, "request_not_canonical".to_string()), "{answers:?}");
    assert_eq!(statuses[5], 200, "{answers:?}");
    assert!(fake.log().iter().all(|l| l["method"] != "POST"), "nothing was ordered");
    // A stream keyward cannot frame as hyper does is closed, not guessed at.
    let answers = pipelined(
        &s,
        b"POST /v1/sys/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!\
          GET /v1/sys/health#x HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert!(answers.iter().all(|a| a.0 != 200), "{answers:?}");
}

/// Opens `n` connections to `to` from `from` (any 127.0.0.0/8 address) and
/// sends each `first` (which may be empty).
async fn open(from: Ipv4Addr, to: SocketAddr, n: usize, first: &[u8]) -> Vec<tokio::net::TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(from.into(), 0)).unwrap();
        let Ok(mut c) = sock.connect(to).await else { continue };
        if !first.is_empty() {
            let _ = c.write_all(first).await;
        }
        out.push(c);
    }
    out
}

/// How many of `conns` the server still holds open: a read that neither
/// ends nor fails within 300 ms (all read at once).
async fn still_open(conns: &mut Vec<tokio::net::TcpStream>) -> usize {
    let mut reads = tokio::task::JoinSet::new();
    for mut c in conns.drain(..) {
        reads.spawn(async move {
            let mut b = [0u8; 256];
            loop {
                match tokio::time::timeout(Duration::from_millis(300), c.read(&mut b)).await {
                    Err(_) => return (c, true),
                    Ok(Ok(0)) | Ok(Err(_)) => return (c, false),
                    Ok(Ok(_)) => continue,
                }
            }
        });
    }
    let mut open = 0;
    while let Some(Ok((c, is_open))) = reads.join_next().await {
        open += usize::from(is_open);
        conns.push(c);
    }
    open
}

fn health(s: &Server) -> u16 {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{}/v1/sys/health", s.addr))
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The server speaks HTTP/1.1 alone (TLS offers only `http/1.1`): a client
/// opening with HTTP/2's preface is closed unanswered, and the next
/// connection is served as before.
#[test]
fn an_http2_preface_is_closed_unanswered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let mut c = TcpStream::connect(host_port(&s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).expect("the connection is closed, not left hanging");
    assert!(out.is_empty(), "answered HTTP/2's preface: {}", String::from_utf8_lossy(&out));
    assert_eq!(health(&s), 200);
}

#[test]
fn slow_and_idle_connections_cannot_starve_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // 256 descriptors: 300 held connections would exhaust them.
    let s = start_limited(
        dir.path(),
        256,
        &[
            "--header-timeout",
            "5s",
            "--idle-timeout",
            "3s",
            "--upstream-timeout",
            "2s",
            "--max-connections-per-ip",
            "50",
        ],
    );
    let to: SocketAddr = host_port(&s).parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let mut attack = rt.block_on(async {
        let mut all = Vec::new();
        for (i, from) in [[127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 4]].into_iter().enumerate() {
            // Nothing at all, or the start of a head that never ends.
            let first: &[u8] = if i == 0 { b"" } else { b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n" };
            all.push(open(from.into(), to, 100, first).await);
        }
        all
    });
    for _ in 0..5 {
        assert_eq!(health(&s), 200, "health answers during the attack");
    }
    // All three addresses at once: one 300 ms read window, well inside the header timeout
    // (5 s, so that a CI machine busy with the other tests still gets here in time).
    let held: Vec<usize> = rt.block_on(async {
        let [a, b, c] = &mut attack[..] else { unreachable!("three addresses") };
        let (a, b, c) = tokio::join!(still_open(a), still_open(b), still_open(c));
        vec![a, b, c]
    });
    assert!(started.elapsed() < Duration::from_millis(4500), "checked before the header timeout");
    for n in &held {
        assert!(*n <= 50 && *n >= 40, "one address holds at most its 50 connections: {held:?}");
    }
    // A head sent one line at a time, never idle, is cut at the header timeout.
    let trickle = rt.block_on(async {
        let mut c = open([127, 0, 0, 5].into(), to, 1, b"GET /v1/sys/health HTTP/1.1\r\n").await.remove(0);
        let t = Instant::now();
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if c.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                break;
            }
            let mut b = [0u8; 64];
            if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), c.read(&mut b)).await {
                break;
            }
        }
        t.elapsed()
    });
    assert!(trickle < Duration::from_secs(8), "a trickled head was cut after {trickle:?}");
    // Idle after one answer: kept for a while, then closed.
    let (early, late) = rt.block_on(async {
        let mut c = open([127, 0, 0, 6].into(), to, 1, b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut b = [0u8; 4096];
        let _ = c[0].read(&mut b).await;
        let early = still_open(&mut c).await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        (early, still_open(&mut c).await)
    });
    assert_eq!((early, late), (1, 0), "an idle connection is closed after --idle-timeout");
    let after: usize = rt.block_on(async {
        let mut n = 0;
        for conns in attack.iter_mut() {
            n += still_open(conns).await;
        }
        n
    });
    assert_eq!(after, 0, "every attacking connection was closed");
    assert_eq!(health(&s), 200);
}

#[test]
fn the_total_cap_and_tls_handshakes_are_bounded_too() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.signing_key.serialize_pem()).unwrap();
    let s = start(
        dir.path(),
        &[
            "--tls-cert",
            cp.to_str().unwrap(),
            "--tls-key",
            kp.to_str().unwrap(),
            "--header-timeout",
            "2s",
            "--max-connections",
            "20",
        ],
    );
    let to: SocketAddr = s.addr.trim_start_matches("https://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (first, over) = rt.block_on(async {
        let mut held = open([127, 0, 0, 2].into(), to, 20, b"").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut over = open([127, 0, 0, 3].into(), to, 1, b"").await;
        (still_open(&mut held).await, still_open(&mut over).await)
    });
    assert_eq!((first, over), (20, 0), "the 21st connection is closed at once");
    // Handshakes that never start are cut at the header timeout; then there is room again.
    std::thread::sleep(Duration::from_millis(2500));
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let port = to.port();
    let h = client.get(format!("https://localhost:{port}/v1/sys/health")).send().unwrap();
    assert_eq!(h.status(), 200);
    // Zero is not a limit.
    for flag in ["--max-connections", "--max-connections-per-ip", "--header-timeout", "--idle-timeout"] {
        let err = start_in(dir.path(), &[flag, "0"]).err().expect("zero refused");
        assert!(err.contains(flag), "{flag}: {err}");
        assert!(!err.contains("secret"), "{flag}: {err}");
    }
    // A proxied request waiting on the exchange is not idle: the idle limit is the longer.
    let err = start_in(dir.path(), &["--idle-timeout", "30s"]).err().expect("refused");
    assert!(err.contains("--upstream-timeout"), "{err}");
}

/// CPU time (user and system, in clock ticks) the process has used.
fn cpu_ticks(pid: u32) -> u64 {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap())
}

/// User and system clock ticks from a process's or thread's `stat` line.
fn stat_ticks(stat: &str) -> u64 {
    // Fields after the command name (which may hold spaces) start at state.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// `n` health checks back to back on one connection: close enough
/// together that the serving thread starts polling between them.
fn burst(s: &Server, n: usize) {
    let mut c = TcpStream::connect(host_port(s)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    for _ in 0..n {
        c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: k\r\n\r\n").unwrap();
        let got = c.read(&mut buf).unwrap();
        assert!(buf[..got].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..got]));
    }
}

/// Serving threads poll their connections before sleeping only while
/// requests come close together: once the load stops, the server goes
/// back to sleeping (a server that kept polling would burn a core), and
/// `--http-poll-us 0` turns polling off (and with it the thread keeping
/// another CPU awake, which `--http-keep-awake false` turns off alone).
#[test]
fn a_server_polls_only_while_requests_come_close_together() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    burst(&s, 3000);
    // The window halves at every sleep longer than it (the idle tick is
    // 500 ms): gone within seconds.
    std::thread::sleep(Duration::from_secs(4));
    let before = cpu_ticks(s.pid());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(s.pid()) - before;
    assert!(used < 40, "an idle server used {used} ticks of CPU in 2 s (a polling thread uses ~200)");
    // The thread that keeps another CPU awake while requests come close
    // together is there, asleep (serving threads, so SQLite; and a machine
    // with more than one CPU).
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    let expected = cpus > 1 && !crate::pg::backend_is_postgres();
    assert_eq!(thread_names(s.pid()).iter().any(|n| n == "keyward-awake"), expected);
    // Still serving after its sleep.
    assert_eq!(health(&s), 200);
    burst(&s, 10);

    let dir = tempfile::tempdir().unwrap();
    let off = start(dir.path(), &["--http-poll-us", "0"]);
    burst(&off, 500);
    assert_eq!(health(&off), 200);
    assert!(!thread_names(off.pid()).iter().any(|n| n == "keyward-awake"), "no polling, no CPU kept awake");

    let dir = tempfile::tempdir().unwrap();
    let alone = start(dir.path(), &["--http-keep-awake", "false"]);
    burst(&alone, 500);
    assert!(!thread_names(alone.pid()).iter().any(|n| n == "keyward-awake"), "polling, but no other CPU kept awake");
}

/// The names of a process's threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

/// CPU time (user and system, in clock ticks) of each serving thread.
fn serving_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| {
            let t = t.ok()?.path();
            let name = std::fs::read_to_string(t.join("comm")).ok()?.trim().to_string();
            let stat = std::fs::read_to_string(t.join("stat")).ok()?;
            name.starts_with("keyward-http-").then(|| (name, stat_ticks(&stat)))
        })
        .collect();
    out.sort();
    out
}

/// Connections opened at once are spread over the serving threads: the
/// thread that happens to be awake and accepting does not keep them all
/// (with wrk's 32 connections on two threads it kept all 32 in half the
/// runs, and the server had one CPU's worth of threads serving).
#[test]
fn connections_opened_at_once_are_spread_over_the_serving_threads() {
    if crate::pg::backend_is_postgres() {
        return; // Serving threads are SQLite's (PostgreSQL serves from the shared runtime).
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--http-threads", "2"]);
    // The threads start just after the server says it listens.
    let started = Instant::now();
    while serving_ticks(s.pid()).len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "threads: {:?}", thread_names(s.pid()));
        std::thread::sleep(Duration::from_millis(10));
    }
    let conns: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(host_port(&s)).unwrap()).collect();
    let before = serving_ticks(s.pid());
    std::thread::scope(|scope| {
        for mut c in conns {
            scope.spawn(move || {
                c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = [0u8; 4096];
                for _ in 0..400 {
                    c.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: k\r\n\r\n").unwrap();
                    let got = c.read(&mut buf).unwrap();
                    assert!(buf[..got].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..got]));
                }
            });
        }
    });
    let after = serving_ticks(s.pid());
    for ((name, t0), (_, t1)) in before.iter().zip(&after) {
        assert!(t1 > t0, "{name} served nothing of 12,800 requests on 32 connections: {before:?} → {after:?}");
    }
}
