//! Fixtures: a store of each backend on fresh data, and the records the
//! tests write.
//!
//! PostgreSQL runs when `KEYWARD_TEST_DATABASE_URL` names an admin database
//! (`postgres://keyward@127.0.0.1:54329/postgres`): each test gets its own
//! database `kw_test_<random>`, dropped after (even when the test fails).
//! Without it the PostgreSQL half is skipped with a note, unless
//! `KEYWARD_REQUIRE_POSTGRES=1` (CI), which makes it fail.

use keyward_core::audit::{AuditEntry, genesis};
use keyward_store::{
    KeyRecord, LedgerHead, LedgerPart, LedgerWrite, NewVersion, PgStore, SealKind, SealRecord, SqliteStore, Stage,
    Store,
};
use sqlx::{Connection, Executor, PgConnection};
use std::sync::Arc;

/// Expands each test body `module::name(&Fixture)` into `name::sqlite` and
/// `name::postgres`.
macro_rules! both {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let f = crate::support::Fixture::sqlite().await;
                crate::$module::$name(&f).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(f) = crate::support::Fixture::postgres().await {
                    crate::$module::$name(&f).await;
                }
            }
        }
    )*};
}

/// Expands each test body into `name::postgres` alone (what only a shared
/// backend does).
macro_rules! postgres_only {
    ($($module:ident :: $name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn postgres() {
                if let Some(f) = crate::support::Fixture::postgres().await {
                    crate::$module::$name(&f).await;
                }
            }
        }
    )*};
}

pub(crate) use {both, postgres_only};

/// A store on fresh data, and where that data lives.
pub struct Fixture {
    store: Arc<dyn Store>,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(TestDb),
}

impl Fixture {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("k.db")).await.unwrap();
        Fixture { store: Arc::new(store), place: Place::Sqlite(dir) }
    }

    /// `None` when PostgreSQL is not configured (and not required).
    pub async fn postgres() -> Option<Self> {
        let db = TestDb::create().await?;
        let store = PgStore::connect(&db.url).await.unwrap();
        Some(Fixture { store: Arc::new(store), place: Place::Postgres(db) })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    pub fn shared(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.place, Place::Postgres(_))
    }

    /// A second store on the same data (another node, or the same file
    /// opened again).
    pub async fn open_another(&self) -> Arc<dyn Store> {
        match &self.place {
            Place::Sqlite(dir) => Arc::new(SqliteStore::open(&dir.path().join("k.db")).await.unwrap()),
            Place::Postgres(db) => Arc::new(PgStore::connect(&db.url).await.unwrap()),
        }
    }

    /// Ends every listener connection on this test's database (as a
    /// network cut or a server restart would); returns how many.
    pub async fn cut_listeners(&self) -> i64 {
        self.backends("count(pg_terminate_backend(pid))", "query ILIKE 'LISTEN%'").await
    }

    /// How many connections listen on this test's database.
    pub async fn listeners(&self) -> i64 {
        self.backends("count(*)", "query ILIKE 'LISTEN%'").await
    }

    /// How many connections this test's database has (listening or not).
    pub async fn connections(&self) -> i64 {
        self.backends("count(*)", "TRUE").await
    }

    /// `what` over the connections to this test's database that match `filter`.
    async fn backends(&self, what: &str, filter: &str) -> i64 {
        let Place::Postgres(db) = &self.place else { panic!("only PostgreSQL has connections") };
        let mut admin = PgConnection::connect(&db.admin).await.unwrap();
        let n: i64 =
            sqlx::query_scalar(&format!("SELECT {what} FROM pg_stat_activity WHERE datname = $1 AND {filter}"))
                .bind(&db.name)
                .fetch_one(&mut admin)
                .await
                .unwrap();
        admin.close().await.unwrap();
        n
    }

    /// One number asked of this test's database itself, on a connection of its own.
    pub async fn ask(&self, sql: &str) -> i64 {
        let Place::Postgres(db) = &self.place else { panic!("only PostgreSQL is asked") };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        n
    }

    /// One column of text asked of this test's database itself.
    pub async fn ask_all(&self, sql: &str) -> Vec<String> {
        let Place::Postgres(db) = &self.place else { panic!("only PostgreSQL is asked") };
        let mut conn = PgConnection::connect(&db.url).await.unwrap();
        let out: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        out
    }

    /// Another database of this test's, created empty (not migrated).
    pub async fn empty_database(&self) -> TestDb {
        TestDb::create().await.unwrap()
    }
}

/// A database of its own for one test, dropped with it.
pub struct TestDb {
    admin: String,
    name: String,
    /// Where it is.
    pub url: String,
}

impl TestDb {
    async fn create() -> Option<TestDb> {
        let Ok(admin) = std::env::var("KEYWARD_TEST_DATABASE_URL") else {
            if std::env::var("KEYWARD_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                panic!("KEYWARD_REQUIRE_POSTGRES=1 but KEYWARD_TEST_DATABASE_URL is not set");
            }
            println!("KEYWARD_TEST_DATABASE_URL is not set: the PostgreSQL half of this test was skipped");
            return None;
        };
        let id = keyward_core::random::bytes::<8>().unwrap();
        let name = format!("kw_test_{}", keyward_core::keyring::hex_encode(&id));
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        conn.execute(format!("CREATE DATABASE {name}").as_str()).await.unwrap();
        conn.close().await.unwrap();
        let url = with_database(&admin, &name);
        Some(TestDb { admin, name, url })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // On a thread of its own: Drop cannot await, and the test's runtime
        // may be unwinding.
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin).await {
                    let _ = conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str()).await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// `url` with its database replaced by `db` (query parameters kept).
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let end = base[authority..].find('/').map_or(base.len(), |i| authority + i);
    format!("{}/{db}{query}", &base[..end])
}

pub fn seal() -> SealRecord {
    SealRecord { kind: SealKind::Keyfile, check: "00".repeat(32), created_ms: 1, active_term: 1, retired_terms: vec![] }
}

pub fn key(id: &str) -> KeyRecord {
    KeyRecord {
        id: id.into(),
        // One hash per id (hashes are unique too).
        hash: id.bytes().chain(std::iter::repeat(0)).take(32.max(id.len())).collect(),
        name: "n".into(),
        owner: None,
        namespace: "keyward".into(),
        policy: "{}".into(),
        state: "active".into(),
        created_ms: 5,
        mac: vec![1; 32],
        uses_remaining: None,
        last_used_ms: None,
        last_used_ip: None,
    }
}

pub fn head(rev: u64) -> LedgerHead {
    LedgerHead {
        rev,
        count: rev * 10,
        mac: vec![7; 32],
        parts: vec![LedgerPart { index: 0, bytes: vec![rev as u8; 40] }],
    }
}

/// A ledger write from `from` to `from + 1` (the store checks only the revision).
pub fn step(from: u64) -> LedgerWrite {
    LedgerWrite { expected_rev: Some(from), head: head(from + 1), ..LedgerWrite::default() }
}

/// The first ledger write, with the bootstrap key.
pub fn boot() -> LedgerWrite {
    LedgerWrite { expected_rev: None, head: head(1), insert_keys: vec![key("key_boot")], ..Default::default() }
}

pub fn version(path: &str, v: u64, expected: u64) -> NewVersion {
    NewVersion {
        path: path.into(),
        version: v,
        expected_latest: expected,
        stage: Stage::Current,
        kind: None,
        rotation_period_s: None,
        created_ms: 10 * v as i64,
        ciphertext: vec![v as u8; 8],
    }
}

pub fn pending(path: &str, v: u64, expected: u64, replaces: Option<u64>) -> NewVersion {
    NewVersion { stage: Stage::Pending { replaces }, ..version(path, v, expected) }
}

/// `n` audit entries chained onto `after` (`None`: the start of the chain).
pub fn audit_batch(after: Option<(u64, Vec<u8>)>, n: usize, tag: &str) -> Vec<AuditEntry> {
    let (mut seq, mut hash) = after.unwrap_or_else(|| (0, genesis()));
    (0..n)
        .map(|i| {
            let mut e = AuditEntry {
                time_ms: 1_000 + seq as i64,
                request_id: format!("req-{tag}-{i}"),
                key_id: if i % 3 == 0 { "key_a".into() } else { "key_b".into() },
                ip: "127.0.0.1".into(),
                action: "secret.read".into(),
                target: if i % 2 == 0 { format!("acct_{tag}/x") } else { format!("acct%{tag}/y") },
                class: "read".into(),
                decision: if i % 4 == 0 { "deny".into() } else { "allow".into() },
                code: "ok".into(),
                detail: "{}".into(),
                ..Default::default()
            };
            e.chain_after(seq, &hash);
            (seq, hash) = (e.seq, e.hash.clone());
            e
        })
        .collect()
}
