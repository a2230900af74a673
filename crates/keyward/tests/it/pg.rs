//! PostgreSQL for the tests: a fresh database on the server `./test.sh`
//! starts (`KEYWARD_TEST_DATABASE_URL`), or a private server a test can
//! stop and restart (the fault tests).
//!
//! With `KEYWARD_TEST_BACKEND=postgres` every server the harness starts
//! keeps its data in PostgreSQL (one database per data directory), so the
//! whole integration suite runs against it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The admin URL of the shared test server, if there is one; panics when
/// `KEYWARD_REQUIRE_POSTGRES=1` and there is none (CI).
pub fn admin_url() -> Option<String> {
    match std::env::var("KEYWARD_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("KEYWARD_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "KEYWARD_REQUIRE_POSTGRES=1 but KEYWARD_TEST_DATABASE_URL is not set (run ./test.sh)"
            );
            eprintln!("skipped: no PostgreSQL (KEYWARD_TEST_DATABASE_URL unset; ./test.sh starts one)");
            None
        }
    }
}

/// True when the suite runs with its data in PostgreSQL.
pub fn backend_is_postgres() -> bool {
    std::env::var("KEYWARD_TEST_BACKEND").as_deref() == Ok("postgres")
}

/// True (and says so) when the suite runs against PostgreSQL: for a test
/// that reads or edits the SQLite file itself (tampering, what is on disk).
pub fn sqlite_only() -> bool {
    let pg = backend_is_postgres();
    if pg {
        eprintln!("skipped under KEYWARD_TEST_BACKEND=postgres: this test reads or edits the SQLite file");
    }
    pg
}

/// `url` with its database replaced by `db`.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) =
        base.rsplit_once('/').filter(|(s, _)| s.contains("://") && !s.ends_with('/')).unwrap_or((base, ""));
    match query {
        Some(q) => format!("{server}/{db}?{q}"),
        None => format!("{server}/{db}"),
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qAtc", sql]).output().expect("psql");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A new, empty database on the shared server; its URL.
pub fn fresh_database() -> Option<String> {
    let admin = admin_url()?;
    Some(create_on(&admin))
}

fn create_on(admin: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let ms = keyward_core::clock::Clock::now_ms(&keyward_core::clock::SystemClock);
    let db = format!("kw_it_{}_{}_{ms}", std::process::id(), N.fetch_add(1, Ordering::SeqCst));
    psql(admin, &format!("CREATE DATABASE {db}"));
    with_database(admin, &db)
}

/// The database of a data directory when the suite runs against
/// PostgreSQL: made on first use, the same one for every restart.
pub fn database_for(data_dir: &Path) -> Option<String> {
    if !backend_is_postgres() {
        return None;
    }
    let marker = data_dir.with_extension("pg-url");
    if let Ok(url) = std::fs::read_to_string(&marker) {
        return Some(url);
    }
    let url = fresh_database().expect("KEYWARD_TEST_BACKEND=postgres needs KEYWARD_TEST_DATABASE_URL");
    std::fs::write(&marker, &url).unwrap();
    Some(url)
}

/// The directory of PostgreSQL's server programs (initdb, pg_ctl).
fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("KEYWARD_TEST_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("pg_ctl").exists()).collect())
        .unwrap_or_default();
    found.sort();
    found.pop().expect("PostgreSQL's server programs (apt-get install postgresql)")
}

/// A private PostgreSQL server on a free loopback port, stopped when dropped.
pub struct PgServer {
    dir: tempfile::TempDir,
    pub port: u16,
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root
/// (the server refuses to run as root).
fn pg(program: &str, args: &[&str]) -> std::process::Output {
    let path = bin_dir().join(program);
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

impl PgServer {
    /// initdb and start.
    pub fn start() -> PgServer {
        let dir = tempfile::Builder::new().prefix("keyward-pg-").tempdir_in("/tmp").unwrap();
        if is_root() {
            assert!(
                Command::new("chown").args(["postgres", &dir.path().display().to_string()]).status().unwrap().success()
            );
        }
        let data = dir.path().join("data").display().to_string();
        let out = pg("initdb", &["-D", &data, "-A", "trust", "-U", "keyward", "--no-sync"]);
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let s = PgServer { dir, port: restart_safe_port() };
        s.up();
        s
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    /// Starts the server (again).
    pub fn up(&self) {
        let opts = format!("-p {} -k {} -c listen_addresses=127.0.0.1", self.port, self.dir.path().display());
        let log = self.dir.path().join("log").display().to_string();
        let out = pg("pg_ctl", &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "-t", "30", "start"]);
        assert!(out.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Stops it at once (`-m immediate`: like a crash; uncommitted work is lost).
    /// Its port stays its own meanwhile (see [`restart_safe_port`]).
    pub fn down(&self) {
        let out = pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A new database on this server; its URL.
    pub fn database(&self) -> String {
        create_on(&format!("postgres://keyward@127.0.0.1:{}/postgres", self.port))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free port below the kernel's ephemeral range (32768 and up), for a
/// server that stops and starts again on it: a port from the ephemeral
/// range (`bind` to port 0) can be handed to another test's server or an
/// outbound connection while this one is down, and the restart then fails
/// with "address already in use".
fn restart_safe_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let seed = std::collections::hash_map::RandomState::new().build_hasher().finish();
    (0..12_000u64)
        .map(|i| 20_000 + (seed.wrapping_add(i * 7_919) % 12_000) as u16)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free port between 20000 and 32000")
}
