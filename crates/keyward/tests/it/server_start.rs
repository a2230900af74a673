//! How the server starts: embedded default files and modes, loopback-only
//! without TLS, TLS with rustls, dev mode, the unseal key file's rules,
//! process hardening, and no libm in the process.

use crate::harness::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

#[test]
fn embedded_default_creates_data_and_a_key_file_beside_it() {
    if crate::pg::sqlite_only() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert!(s.banner.contains("Shamir"), "warning missing: {}", s.banner);
    assert!(s.admin().starts_with("kw_"));
    let key_file = dir.path().join("keyward-data.unseal.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!s.data.join("keyward-data.unseal.key").exists());
    assert!(s.data.join("keyward.db").exists());
    assert_eq!(std::fs::metadata(&s.data).unwrap().permissions().mode() & 0o777, 0o700);
    // Core dumps are off for the server process.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", s.pid())).unwrap();
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().filter(|w| *w == "0").count() >= 2, "{core}");
    // pow, exp2 and log2 come from keyward-libm: the process loads no libm.
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", s.pid())).unwrap();
    assert!(!maps.contains("/libm.so"), "the server mapped libm:\n{maps}");
}

#[test]
fn key_file_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    s.stop();
    let key_file = dir.path().join("keyward-data.unseal.key");
    // Readable by others: refused.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = start_in(dir.path(), &[]).err().expect("must refuse");
    assert!(err.contains("chmod 600"), "{err}");
    // Moved: refused with a pointer to --unseal-key-file; works when given.
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let moved = dir.path().join("elsewhere.key");
    std::fs::rename(&key_file, &moved).unwrap();
    let err = start_in(dir.path(), &[]).err().expect("must refuse");
    assert!(err.contains("--unseal-key-file"), "{err}");
    let s = start(dir.path(), &["--unseal-key-file", moved.to_str().unwrap()]);
    assert_eq!(s.http("GET", "/v1/sys/health", None, None).1["sealed"], false);
    s.stop();
    // A key file of other data: refused.
    let other = tempfile::tempdir().unwrap();
    start(other.path(), &[]).stop();
    let foreign = other.path().join("keyward-data.unseal.key");
    let err = start_in(dir.path(), &["--unseal-key-file", foreign.to_str().unwrap()]).err().expect("must refuse");
    assert!(err.contains("does not belong"), "{err}");
    // A fresh data directory never overwrites an existing key file.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::write(fresh.path().join("keyward-data.unseal.key"), "x").unwrap();
    let err = start_in(fresh.path(), &[]).err().expect("must refuse");
    assert!(err.contains("refusing to overwrite"), "{err}");
}

#[test]
fn without_tls_only_loopback_unless_insecure_listen() {
    let dir = tempfile::tempdir().unwrap();
    let err = start_in(dir.path(), &["--listen", "0.0.0.0:0"]).err().expect("must refuse");
    assert!(err.contains("without TLS"), "{err}");
    let s = start(dir.path(), &["--listen", "0.0.0.0:0", "--insecure-listen"]);
    assert!(s.addr.starts_with("http://0.0.0.0:"));
    let port = s.addr.rsplit(':').next().unwrap();
    let local = reqwest::blocking::get(format!("http://127.0.0.1:{port}/v1/sys/health")).unwrap();
    assert_eq!(local.status(), 200);
}

#[test]
fn tls_with_rustls() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let (cp, kp) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cp, cert.cert.pem()).unwrap();
    std::fs::write(&kp, cert.signing_key.serialize_pem()).unwrap();
    let s = start(
        dir.path(),
        &["--listen", "0.0.0.0:0", "--tls-cert", cp.to_str().unwrap(), "--tls-key", kp.to_str().unwrap()],
    );
    assert!(s.addr.starts_with("https://"), "{}", s.addr);
    let port = s.addr.rsplit(':').next().unwrap();
    let addr = format!("https://localhost:{port}");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let h: serde_json::Value = client.get(format!("{addr}/v1/sys/health")).send().unwrap().json().unwrap();
    assert_eq!(h["sealed"], false);
    // The CLI with --ca-cert (KEYWARD_CACERT) writes and reads over TLS.
    let mut cmd = std::process::Command::new(BIN);
    let o = cmd
        .args(["secret", "put", "t", "k=v"])
        .env("KEYWARD_ADDR", &addr)
        .env("KEYWARD_CACERT", &cp)
        .env("KEYWARD_TOKEN", s.admin())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Plain HTTP to the TLS port gets nowhere.
    assert!(
        reqwest::blocking::get(format!("http://127.0.0.1:{port}/v1/sys/health"))
            .map(|r| r.status() != 200)
            .unwrap_or(true)
    );
    // Half a TLS configuration is refused.
    let err = start_in(dir.path(), &["--tls-cert", cp.to_str().unwrap()]).err().expect("must refuse");
    assert!(err.contains("tls-key") || err.contains("tls_key"), "{err}");
}

#[test]
fn dev_mode_is_in_memory_and_unsealed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--dev"]);
    assert!(s.banner.contains("DEV MODE"));
    let a = s.admin().to_string();
    assert_eq!(put(&s, &a, "x", json!({"k": "v"})).0, 200);
    assert_eq!(s.http("GET", "/v1/secrets/x", Some(&a), None).1["data"]["k"], "v");
    assert!(!dir.path().join("keyward-data").exists(), "dev mode must not write a data directory");
}
