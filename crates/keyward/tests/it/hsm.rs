//! The PKCS#11 seal against a real SoftHSM2 token (Debian's `softhsm2`,
//! which `.ci/run` installs): init, unseal at start, restart, each failure
//! leaving the server sealed with its reason, and migration between seals.

use crate::harness::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const LIB: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "246810";
const LABEL: &str = "keyward-root";

/// A SoftHSM2 configuration of the test's own, with one initialised token.
struct SoftHsm {
    conf: String,
    tokens: PathBuf,
    slot: String,
}

impl SoftHsm {
    fn new(dir: &Path) -> SoftHsm {
        assert!(Path::new(LIB).exists(), "SoftHSM2 is not installed: apt-get install softhsm2 (.ci/run installs it)");
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).unwrap();
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!("directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n", tokens.display()),
        )
        .unwrap();
        let conf = conf.display().to_string();
        let o = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "kw", "--so-pin", "13579135", "--pin", PIN])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let slot = out
            .split("reassigned to slot ")
            .nth(1)
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("softhsm2-util: {out} {}", String::from_utf8_lossy(&o.stderr)));
        SoftHsm { conf, tokens, slot }
    }

    /// The server's environment: the token's configuration and its PIN.
    fn env<'a>(&'a self, pin: Option<&'a str>) -> Vec<(&'a str, Option<&'a str>)> {
        vec![("SOFTHSM2_CONF", Some(self.conf.as_str())), ("KEYWARD_HSM_PIN", pin)]
    }

    fn cli_env(&self) -> [(&str, &str); 2] {
        [("SOFTHSM2_CONF", self.conf.as_str()), ("KEYWARD_HSM_PIN", PIN)]
    }

    fn seal_args(&self) -> Vec<String> {
        ["--pkcs11", LIB, "--slot", &self.slot, "--pin-env", "KEYWARD_HSM_PIN", "--key-label", LABEL]
            .map(String::from)
            .to_vec()
    }

    /// `operator init --pkcs11 …` on `data`: the bootstrap admin key.
    fn init(&self, data: &Path) -> String {
        let mut args =
            vec!["operator".to_string(), "init".into(), "--data".into(), data.display().to_string(), "--json".into()];
        args.extend(self.seal_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let url = crate::pg::database_for(data);
        let mut env = self.cli_env().to_vec();
        env.extend(url.iter().map(|u| ("KEYWARD_DATABASE_URL", u.as_str())));
        let o = cli_env("http://127.0.0.1:1", None, &args, None, &env);
        assert!(o.status.success(), "init --pkcs11 failed: {}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["seal_type"], "pkcs11");
        v["admin_key"].as_str().unwrap().to_string()
    }

    /// A copy of the token directory as it is now.
    fn snapshot(&self, to: &Path) {
        copy_dir(&self.tokens, to);
    }

    /// Puts a copy back in place of the token directory.
    fn restore(&self, from: &Path) {
        std::fs::remove_dir_all(&self.tokens).unwrap();
        copy_dir(from, &self.tokens);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    let o = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap();
    assert!(o.success());
}

fn health(s: &Server) -> Value {
    s.http("GET", "/v1/sys/health", None, None).1
}

/// Sealed, with the reason, and nothing served: never half-open.
fn assert_sealed_because(s: &Server, admin: &str, why: &str) {
    let h = health(s);
    assert_eq!(h["sealed"], true, "{h}");
    assert_eq!(h["seal_type"], "pkcs11");
    assert!(h["seal_error"].as_str().is_some_and(|e| e.contains(why)), "want {why:?} in {h}");
    assert_error(&s.http("GET", "/v1/secrets/apps/db", Some(admin), None), 503, "sealed");
    let log = s.log_text();
    for pin in [PIN, "999999", "000000", "111111"] {
        assert!(!log.contains(pin), "a PIN reached the log");
    }
}

#[test]
fn hsm_init_unseals_at_every_start_and_an_operator_seal_needs_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path());
    let data = dir.path().join("keyward-data");
    // A refused init writes nothing: a wrong PIN, a missing library, a missing PIN.
    let mut args = vec!["operator".to_string(), "init".into(), "--data".into(), data.display().to_string()];
    args.extend(hsm.seal_args());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let conf = ("SOFTHSM2_CONF", hsm.conf.as_str());
    let o = cli_env("http://127.0.0.1:1", None, &args, None, &[conf, ("KEYWARD_HSM_PIN", "111111")]);
    assert!(!o.status.success() && stderr(&o).contains("refused the PIN"), "{}", stderr(&o));
    let o = cli_env("http://127.0.0.1:1", None, &args, None, &[conf]);
    assert!(!o.status.success() && stderr(&o).contains("set KEYWARD_HSM_PIN"), "{}", stderr(&o));
    let mut bad_lib = args.clone();
    bad_lib[5] = "/nonexistent/lib.so";
    let o = cli_env("http://127.0.0.1:1", None, &bad_lib, None, &hsm.cli_env());
    assert!(!o.status.success() && stderr(&o).contains("cannot use the PKCS#11 library"), "{}", stderr(&o));
    let admin = hsm.init(&data);
    assert!(!dir.path().join("keyward-data.unseal.key").exists(), "an HSM seal writes no key file");
    if !crate::pg::backend_is_postgres() {
        let db = std::fs::read(data.join("keyward.db")).unwrap();
        assert!(!String::from_utf8_lossy(&db).contains(PIN), "the PIN is stored nowhere");
    }

    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    let h = health(&s);
    assert_eq!((h["sealed"].clone(), h["seal_type"].clone()), (json!(false), json!("pkcs11")), "{h}");
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "hunter2"})).0, 200);
    let st = s.http("GET", "/v1/sys/status", Some(&admin), None).1;
    assert_eq!(st["hsm"]["key_label"], LABEL, "{st}");
    assert_eq!(st["hsm"]["pin_env"], "KEYWARD_HSM_PIN");

    // Sealed by an operator: nobody anonymous makes the HSM unseal it again.
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true}))), 409, "invalid_state");
    // A wrong PIN in the request: refused by the token, still sealed.
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"pin": "000000"}))), 503, "hsm_unavailable");
    assert_eq!(health(&s)["sealed"], true);
    // The PIN from the operator's environment.
    let o = cli_env(&s.addr, None, &["operator", "unseal", "--pin-env", "KEYWARD_HSM_PIN"], None, &hsm.cli_env());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "hunter2");
    s.stop();

    // A restart unseals by itself, with nothing but the data and the token.
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_eq!(health(&s)["sealed"], false);
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "hunter2");
    let o = s.cli(Some(&admin), &["operator", "status"], None);
    assert!(stdout(&o).contains("pkcs11"), "{}", stdout(&o));

    // Guessing the PIN through the anonymous endpoint: three refusals, then
    // no PIN is tried at all (not even the right one) until a restart, so
    // nobody on the network can lock the token.
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    for guess in ["000000", "111111", "999999"] {
        let got = s.http("POST", "/v1/sys/unseal", None, Some(&json!({"pin": guess})));
        assert_error(&got, 503, "hsm_unavailable");
    }
    let got = s.http("POST", "/v1/sys/unseal", None, Some(&json!({"pin": PIN})));
    assert_error(&got, 409, "invalid_state");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("until keyward restarts"), "{}", got.1);
    assert_eq!(health(&s)["sealed"], true);
    s.stop();
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_eq!(health(&s)["sealed"], false, "a restart unseals with the configured PIN");
}

#[test]
fn each_hsm_failure_leaves_the_server_sealed_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path());
    let empty = dir.path().join("tokens-before-init");
    hsm.snapshot(&empty);
    let admin = hsm.init(&dir.path().join("keyward-data"));
    let with_key = dir.path().join("tokens-with-key");
    hsm.snapshot(&with_key);

    // The library is chosen by whoever starts keyward, never read from the data.
    let s = start_env(dir.path(), &[], &hsm.env(Some(PIN)));
    assert_sealed_because(&s, &admin, "start keyward with --pkcs11-lib");
    s.stop();

    // A missing library.
    let s = start_env(dir.path(), &["--pkcs11-lib", "/nonexistent/libnope.so"], &hsm.env(Some(PIN)));
    assert_sealed_because(&s, &admin, "cannot use the PKCS#11 library /nonexistent/libnope.so");
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true}))), 503, "hsm_unavailable");
    assert_eq!(health(&s)["sealed"], true);
    s.stop();

    // No PIN in the environment.
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(None));
    assert_sealed_because(&s, &admin, "set KEYWARD_HSM_PIN");
    s.stop();

    // A wrong PIN: and it is not tried again by an anonymous retry.
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some("999999")));
    assert_sealed_because(&s, &admin, "refused the PIN");
    let retry = s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true})));
    assert_error(&retry, 503, "hsm_unavailable");
    assert!(retry.1["error"]["message"].as_str().unwrap().contains("refused the PIN"), "{}", retry.1);
    s.stop();

    // The wrapping key deleted from the token.
    hsm.restore(&empty);
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_sealed_because(&s, &admin, "no AES key labelled \"keyward-root\"");
    // A stranger's wrong PIN is refused, and does not stop the server's own retries.
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"pin": "000000"}))), 503, "hsm_unavailable");
    let retry = s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true})));
    assert!(retry.1["error"]["message"].as_str().unwrap().contains("no AES key labelled"), "{}", retry.1);
    s.stop();

    // Another key under the same label (another data's): it does not open this root key.
    let other = tempfile::tempdir().unwrap();
    hsm.init(&other.path().join("keyward-data"));
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_sealed_because(&s, &admin, "is not the key this data was sealed with");
    s.stop();

    // The token is gone at start: sealed; back again, an anonymous retry
    // (the PIN from the server's own environment) unseals it.
    hsm.restore(&with_key);
    let away = dir.path().join("tokens-away");
    std::fs::rename(&hsm.tokens, &away).unwrap();
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_sealed_because(&s, &admin, "the HSM failed while trying to");
    assert_error(&s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true}))), 503, "hsm_unavailable");
    std::fs::rename(&away, &hsm.tokens).unwrap();
    let back = s.http("POST", "/v1/sys/unseal", None, Some(&json!({"hsm": true})));
    assert_eq!((back.0, back.1["sealed"].clone()), (200, json!(false)), "{}", back.1);
    s.stop();

    // The token goes away while the server runs: sealed, it cannot come back
    // until the token does, and then it does without a restart.
    let s = start_env(dir.path(), &["--pkcs11-lib", LIB], &hsm.env(Some(PIN)));
    assert_eq!(health(&s)["sealed"], false, "{}", s.log_text());
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "still-here"})).0, 200);
    assert_eq!(s.cli(Some(&admin), &["operator", "seal"], None).status.code(), Some(0));
    std::fs::rename(&hsm.tokens, &away).unwrap();
    let o = cli_env(&s.addr, None, &["operator", "unseal", "--pin-env", "KEYWARD_HSM_PIN"], None, &hsm.cli_env());
    assert!(!o.status.success() && stderr(&o).contains("hsm_unavailable"), "{}", stderr(&o));
    assert_sealed_because(&s, &admin, "the HSM failed while trying to");
    std::fs::rename(&away, &hsm.tokens).unwrap();
    let o = cli_env(&s.addr, None, &["operator", "unseal", "--pin-env", "KEYWARD_HSM_PIN"], None, &hsm.cli_env());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "still-here");
    assert!(health(&s).get("seal_error").is_none());
}

fn migrate(s: &Server, admin: &str, hsm: &SoftHsm, args: &[&str]) -> std::process::Output {
    migrate_stdin(s, admin, hsm, args, None)
}

fn migrate_stdin(s: &Server, admin: &str, hsm: &SoftHsm, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let mut all = vec!["operator", "migrate-seal"];
    all.extend_from_slice(args);
    cli_env(&s.addr, Some(admin), &all, stdin, &hsm.cli_env())
}

#[test]
fn migrate_seal_from_the_key_file_to_the_hsm_and_back_without_downtime() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::new(dir.path());
    let key_file = dir.path().join("keyward-data.unseal.key");
    let lib_flag = ["--pkcs11-lib", LIB];
    let s = start_env(dir.path(), &lib_flag, &hsm.env(Some(PIN)));
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "moved"})).0, 200);
    assert!(key_file.exists());
    let seal = hsm.seal_args();
    let mut to_hsm: Vec<&str> = vec!["--to", "pkcs11"];
    to_hsm.extend(seal.iter().map(String::as_str));

    // sys:admin alone is not enough: the caller proves it can unseal today.
    let bare = s.http(
        "POST",
        "/v1/sys/migrate-seal",
        Some(&admin),
        Some(&json!({"to": "shamir", "shares": 2, "threshold": 2})),
    );
    assert_error(&bare, 400, "invalid_request");
    assert!(bare.1["error"]["message"].as_str().unwrap().contains("needs proof"), "{}", bare.1);
    let foreign = tempfile::tempdir().unwrap();
    let other = start(foreign.path(), &[]);
    other.stop();
    let foreign_key = foreign.path().join("keyward-data.unseal.key");
    let o = migrate(
        &s,
        &admin,
        &hsm,
        &["--to", "shamir", "--shares", "2", "--threshold", "2", "--from-key-file", foreign_key.to_str().unwrap()],
    );
    assert!(stderr(&o).contains("unseal_key_mismatch"), "{}", stderr(&o));
    assert_eq!(health(&s)["seal_type"], "keyfile");
    // With write access to the database too: the foreign data's seal record
    // written over ours makes the foreign key file "fit" the record, but
    // not the root key in force.
    let db = dir.path().join("keyward-data/keyward.db");
    let foreign_db = foreign.path().join("keyward-data/keyward.db");
    let ours: String = {
        let o = Command::new("python3")
            .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"select value from meta where name='seal'\").fetchone()[0])"])
            .arg(&db)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap().trim().to_string()
    };
    sql(
        &db,
        &[
            format!("ATTACH DATABASE '{}' AS f", foreign_db.display()),
            "UPDATE meta SET value = (SELECT value FROM f.meta WHERE name = 'seal') WHERE name = 'seal'".into(),
        ],
    );
    let o = migrate(
        &s,
        &admin,
        &hsm,
        &["--to", "shamir", "--shares", "2", "--threshold", "2", "--from-key-file", foreign_key.to_str().unwrap()],
    );
    assert!(stderr(&o).contains("no longer names the root key in force"), "{}", stderr(&o));
    sql(&db, &[format!("UPDATE meta SET value = '{}' WHERE name = 'seal'", ours.replace('\'', "''"))]);

    // Only the library the server was started with is loaded.
    let mut other_lib = to_hsm.clone();
    other_lib[3] = "/bin/true";
    let o = migrate(&s, &admin, &hsm, &other_lib);
    assert!(stderr(&o).contains("loads only the PKCS#11 library it was started with"), "{}", stderr(&o));
    // The PIN must be in the server's environment, where every start reads it.
    let mut no_pin = to_hsm.clone();
    no_pin[7] = "KEYWARD_NO_SUCH_PIN";
    let o = migrate(&s, &admin, &hsm, &no_pin);
    assert!(stderr(&o).contains("hsm_unavailable") && stderr(&o).contains("KEYWARD_NO_SUCH_PIN"), "{}", stderr(&o));
    assert!(key_file.exists(), "a refused migration changes nothing");
    assert_eq!(health(&s)["seal_type"], "keyfile");

    let o = migrate(&s, &admin, &hsm, &to_hsm);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("removed the old unseal key file"), "{}", stdout(&o));
    assert!(!key_file.exists(), "the old key file still opens the data: it is removed");
    assert_eq!(health(&s)["seal_type"], "pkcs11");
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "moved");
    s.stop();

    let s = start_env(dir.path(), &["--pkcs11-lib", LIB, "--test-clock"], &hsm.env(Some(PIN)));
    assert_eq!(health(&s)["sealed"], false, "{}", s.log_text());
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "moved");

    // No audit, no migration: the first request after the audit fails is
    // admitted, prepares the key file, cannot record its decision, and
    // takes the key file away again.
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&admin), Some(&json!({"audit_fail": true}))).0, 200);
    let body = json!({"to": "keyfile", "current": {"pin": PIN}});
    assert_error(&s.http("POST", "/v1/sys/migrate-seal", Some(&admin), Some(&body)), 503, "audit_unavailable");
    assert!(!key_file.exists(), "a migration the audit did not record left a key file");
    assert_eq!(s.http("POST", "/v1/sys/test-fault", Some(&admin), Some(&json!({"audit_fail": false}))).0, 200);
    assert_eq!(health(&s)["seal_type"], "pkcs11");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).0 != 200 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // The token's PIN is the proof of an HSM seal: a wrong one moves nothing.
    let o = cli_env(
        &s.addr,
        Some(&admin),
        &["operator", "migrate-seal", "--to", "keyfile", "--from-pin-env", "WRONG_PIN"],
        None,
        &[("SOFTHSM2_CONF", hsm.conf.as_str()), ("WRONG_PIN", "000000")],
    );
    assert!(stderr(&o).contains("refused the PIN"), "{}", stderr(&o));
    assert!(!key_file.exists());

    // And back to a key file.
    let o = migrate(&s, &admin, &hsm, &["--to", "keyfile", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    s.stop();
    let s = start_env(dir.path(), &[], &hsm.env(None));
    assert_eq!(health(&s)["seal_type"], "keyfile");
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "moved");

    // To Shamir shares: the next start is sealed until a threshold of them.
    let o = migrate(&s, &admin, &hsm, &["--to", "shamir", "--shares", "3", "--threshold", "2", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let shares: Vec<String> = out["shares"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    assert_eq!(shares.len(), 3);
    // Kept until the shares are safe: a lost answer locks nobody out.
    assert_eq!(out["kept_key_file"], key_file.display().to_string());
    assert!(key_file.exists());
    let audit = stdout(&s.cli(Some(&admin), &["audit", "export"], None));
    let mut migrated: Vec<String> = audit
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| e["detail"].clone())
        .filter(|d| d["change"] == "seal_migrated")
        .map(|d| d["to"]["type"].as_str().unwrap_or_default().to_string())
        .collect();
    migrated.dedup();
    assert_eq!(migrated, ["pkcs11", "keyfile", "shamir"], "each migration is on the audit log: {audit}");
    assert!(!audit.contains(&shares[0]), "a share reached the audit log");
    s.stop();
    let s = start_env(dir.path(), &[], &hsm.env(None));
    assert_eq!(health(&s)["sealed"], true);
    let o = s.cli(None, &["operator", "unseal"], Some(&format!("{}\n{}\n", shares[0], shares[2])));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&admin), None).1["data"]["password"], "moved");
    // The custodians have their shares: the operator destroys the kept file.
    std::fs::remove_file(&key_file).unwrap();
    // Away from shares: a threshold of them is the proof.
    let o = migrate_stdin(&s, &admin, &hsm, &["--to", "keyfile"], Some(&format!("{}\n", shares[1])));
    assert!(stderr(&o).contains("2 of the current shares"), "{}", stderr(&o));
    let o = migrate_stdin(&s, &admin, &hsm, &["--to", "keyfile"], Some(&format!("{}\n{}\n", shares[1], shares[2])));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(key_file.exists());
    let o = s.cli(Some(&admin), &["audit", "verify"], None);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_dev_server_has_no_seal_to_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--dev"]);
    let body = json!({"to": "keyfile", "current": {"key": "kwu1-whatever"}});
    let got = s.http("POST", "/v1/sys/migrate-seal", Some(s.admin()), Some(&body));
    assert_error(&got, 409, "invalid_state");
    let body = json!({"to": "shamir", "shares": 2, "threshold": 2});
    assert_error(&s.http("POST", "/v1/sys/migrate-seal", Some(s.admin()), Some(&body)), 400, "invalid_request");
}
