//! `keyward scan` through the binary: exit codes, the three formats, and
//! only the redacted form of a secret in any output.

use crate::harness::*;
use serde_json::Value;

fn scan(args: &[&str]) -> std::process::Output {
    let mut all = vec!["scan"];
    all.extend_from_slice(args);
    cli("http://127.0.0.1:1", None, &all, None)
}

#[test]
fn exit_codes_formats_and_redaction() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::write(clean.join("a.py"), "api_key = os.environ['API_KEY']\n").unwrap();
    let o = scan(&[clean.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    let dirty = dir.path().join("dirty");
    std::fs::create_dir_all(&dirty).unwrap();
    let secret = "Zx8Qp2Lm9Vb4Nc7KZx8Qp2Lm9Vb4Nc7K";
    std::fs::write(dirty.join("bot.py"), format!("\nwebhook_secret = \"{secret}\"\n")).unwrap();
    let p = dirty.to_str().unwrap();

    let o = scan(&[p]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("bot.py:2: generic-credential Zx8Q…"), "{}", stdout(&o));

    let o = scan(&[p, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f = &v[0];
    assert!(f["file"].as_str().unwrap().ends_with("bot.py"));
    assert_eq!(
        (f["line"].as_u64(), f["rule"].as_str(), f["redacted"].as_str()),
        (Some(2), Some("generic-credential"), Some("Zx8Q…"))
    );

    let o = scan(&[p, "--format", "sarif"]);
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let res = &v["runs"][0]["results"][0];
    assert_eq!(res["ruleId"], "generic-credential");
    assert_eq!(res["locations"][0]["physicalLocation"]["region"]["startLine"], 2);
    let rules = v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "generic-credential"));

    for fmt in ["text", "json", "sarif"] {
        let o = scan(&[p, "--format", fmt]);
        assert!(!stdout(&o).contains(secret) && !stderr(&o).contains(secret), "{fmt} showed the secret");
    }

    // Errors: 2.
    assert_eq!(scan(&["/nonexistent/path"]).status.code(), Some(2));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[token]]\nid = 'x'\ndescription = 'x'\nregex = '('\n").unwrap();
    let o = scan(&[p, "--rules", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("rule x: bad regex"), "{}", stderr(&o));
    // A rule of one's own.
    std::fs::write(dirty.join("acme.cfg"), "note: acme_0123456789abcdefghij\n").unwrap();
    let mine = dir.path().join("mine.toml");
    std::fs::write(&mine, "[[token]]\nid = 'acme-token'\ndescription = 'ACME'\nkeywords = ['acme_']\nregex = '\\b(acme_[a-z0-9]{20})\\b'\n").unwrap();
    let o = scan(&[p, "--rules", mine.to_str().unwrap()]);
    assert!(stdout(&o).contains("acme.cfg:1: acme-token acme…"), "{}", stdout(&o));
}

fn git(repo: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn history_staged_changes_hook_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    assert!(git(repo, &["init", "-q", "-b", "main"]).status.success());
    let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    std::fs::write(
        repo.join("bot.py"),
        format!("import ccxt\nx = ccxt.binance({{\n  'apiKey': '{key}',\n  'secret': '{secret}',\n}})\n"),
    )
    .unwrap();
    assert!(git(repo, &["add", "bot.py"]).status.success());
    assert!(git(repo, &["commit", "-q", "--no-verify", "-m", "add bot"]).status.success());
    std::fs::write(
        repo.join("bot.py"),
        "import ccxt, os\nx = ccxt.binance({'apiKey': os.environ['K'], 'secret': os.environ['S']})\n",
    )
    .unwrap();
    assert!(git(repo, &["commit", "-q", "--no-verify", "-am", "keys out"]).status.success());
    let first = String::from_utf8(git(repo, &["rev-list", "--max-parents=0", "HEAD"]).stdout).unwrap();

    let p = repo.to_str().unwrap();
    assert_eq!(scan(&[p]).status.code(), Some(0), "the files hold no key any more");
    let o = scan(&["--git", p, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rules: Vec<&str> = v.as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["binance-key", "binance-secret"], "{v}");
    assert_eq!(v[0]["commit"], first.trim());
    assert_eq!((v[0]["line"].as_u64(), v[1]["line"].as_u64()), (Some(3), Some(4)));

    // The hook: a staged key refuses the commit.
    let o = scan(&["--install-hook", p]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(repo.join("alerts.toml"), "webhook_token = \"Zx8Qp2Lm9Vb4Nc7KZx8Qp2Lm9Vb4Nc7K\"\n").unwrap();
    assert!(git(repo, &["add", "alerts.toml"]).status.success());
    assert_eq!(scan(&["--staged", p]).status.code(), Some(1));
    let commit = git(repo, &["commit", "-q", "-m", "alerts"]);
    assert!(!commit.status.success(), "the hook let a credential through");
    let said = format!("{}{}", String::from_utf8_lossy(&commit.stdout), String::from_utf8_lossy(&commit.stderr));
    assert!(said.contains("generic-credential"), "{said}");
    // Another tool's hook is not replaced.
    std::fs::write(repo.join(".git/hooks/pre-commit"), "#!/bin/sh\nexit 0\n").unwrap();
    let o = scan(&["--install-hook", p]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is not keyward's"), "{}", stderr(&o));

    // A baseline: what was accepted once is not reported again.
    let base = dir.path().join("baseline.json");
    let o = scan(&["--git", p, "--format", "json"]);
    std::fs::write(&base, &o.stdout).unwrap();
    assert_eq!(scan(&["--git", p, "--baseline", base.to_str().unwrap()]).status.code(), Some(0));
}

#[test]
fn sarif_validates_against_the_official_schema() {
    let schema = std::env::var("KEYWARD_TEST_SARIF_SCHEMA").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/sarif-2.1.0-rtm.5.json").to_string()
    });
    assert!(std::path::Path::new(&schema).exists(), "no SARIF schema at {schema}: run ./test.sh once");
    let py = std::env::var("KEYWARD_TEST_PYTHON")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-test/bin/python").to_string());
    let dir = tempfile::tempdir().unwrap();
    let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
    std::fs::write(
        dir.path().join("bot.py"),
        format!("import ccxt\nx = ccxt.binance({{'apiKey': '{key}',\n 'secret': '{secret}'}})\n"),
    )
    .unwrap();
    for (name, body) in [("empty", None), ("findings", Some(dir.path()))] {
        let empty = tempfile::tempdir().unwrap();
        let target = body.unwrap_or(empty.path());
        let o = scan(&[target.to_str().unwrap(), "--format", "sarif"]);
        let out = dir.path().join(format!("{name}.sarif"));
        std::fs::write(&out, &o.stdout).unwrap();
        let check = std::process::Command::new(&py)
            .args(["-c", "import json, sys, jsonschema; jsonschema.Draft4Validator(json.load(open(sys.argv[1]))).validate(json.load(open(sys.argv[2])))"])
            .arg(&schema)
            .arg(&out)
            .output()
            .unwrap();
        assert!(check.status.success(), "{name}: {}", String::from_utf8_lossy(&check.stderr));
    }
}

#[test]
fn findings_matched_with_the_server_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    let (bot_id, bot) =
        create_key(&s, serde_json::json!({"name": "grid-bot", "owner": "desk-a", "scopes": ["secret:read:apps/*"]}));
    let api_key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
    exchange_account(
        &s,
        "binance-main",
        "binance",
        serde_json::json!({"api_key": api_key, "api_secret": "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"}),
        "https://api.binance.com",
    );
    let repo = dir.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(
        repo.join("bot.py"),
        format!("KEYWARD_TOKEN = \"{bot}\"\nimport ccxt\nx = ccxt.binance({{'apiKey': '{api_key}'}})\n"),
    )
    .unwrap();
    let p = repo.to_str().unwrap();

    let o = s.cli(Some(&admin), &["scan", p, "--server", "--format", "json"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let by_rule = |r: &str| {
        v.as_array().unwrap().iter().find(|f| f["rule"] == r).cloned().unwrap_or_else(|| panic!("no {r} in {v}"))
    };
    let k = by_rule("keyward-access-key");
    assert_eq!(
        (k["match"]["key_id"].as_str(), k["match"]["owner"].as_str(), k["match"]["state"].as_str()),
        (Some(bot_id.as_str()), Some("desk-a"), Some("active"))
    );
    let x = by_rule("binance-key");
    assert_eq!(x["match"]["account"], "binance-main");
    assert!(!o.stdout.windows(bot.len()).any(|w| w == bot.as_bytes()), "the key itself is printed");
    assert_eq!(s.http("GET", "/v1/secrets/apps/x", Some(&bot), None).0, 404, "matching alone changes nothing");

    // A found key never travels in the clear over a network.
    let o = cli("http://192.0.2.1:8300", Some(&admin), &["scan", p, "--server"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("only allowed to loopback"), "{}", stderr(&o));
    assert!(stdout(&o).contains("keyward-access-key"), "the findings are still printed");
    // Without keys:admin the server refuses to match.
    let o = s.cli(Some(&bot), &["scan", p, "--server"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("scope_missing"), "{}", stderr(&o));

    // --respond: the leaked key is compromised at once; the account's rotation is spelled out.
    let o = s.cli(Some(&admin), &["scan", p, "--server", "--respond"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains(&format!("this is keyward key {bot_id} (grid-bot, owner desk-a), compromised")),
        "{}",
        stdout(&o)
    );
    assert!(stderr(&o).contains("keyward secret rotate exchanges/binance-main"), "{}", stderr(&o));
    assert_error(&s.http("GET", "/v1/secrets/apps/x", Some(&bot), None), 401, "key_compromised");
    let audit = stdout(&s.cli(Some(&admin), &["audit", "export"], None));
    assert!(audit.contains("scan_match"), "the match is on the audit log");
    assert!(!audit.contains(&bot), "the key reached the audit log");
}
