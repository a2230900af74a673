//! Freqtrade (from PyPI, unchanged) trading in live mode through keyward's
//! proxy by configuration only (tests/freqtrade/config.json): it loads
//! markets, reads its balance, places an entry by itself and one forced
//! through its REST API, and both are cancelled; a withdrawal with the same
//! key and Freqtrade's own ccxt settings is refused and never reaches the
//! fake exchange, which checks every signature with Python's hmac. The
//! trading key is Freqtrade's `exchange.key`; a public-only key is the bearer
//! ccxt's public calls need (Freqtrade logs ccxt_config, so that is the key
//! its logs show). tests/freqtrade/drive.py drives Freqtrade's REST API and
//! makes the checks. `./test.sh` installs Freqtrade into .venv-freqtrade
//! and sets KEYWARD_TEST_FREQTRADE.

use crate::harness::*;
use serde_json::{Value, json};
use std::process::{Command, Stdio};

/// The virtual environment Freqtrade is installed in.
fn freqtrade_venv() -> std::path::PathBuf {
    let venv = std::env::var("KEYWARD_TEST_FREQTRADE")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../.venv-freqtrade").to_string());
    let venv = std::path::PathBuf::from(venv);
    assert!(
        venv.join("bin/freqtrade").exists(),
        "no Freqtrade in {}: run the tests with ./test.sh (it installs Freqtrade from PyPI there)",
        venv.display()
    );
    venv
}

#[test]
fn freqtrade_trades_live_through_the_proxy_by_configuration_only() {
    let venv = freqtrade_venv();
    let fake = FakeExchange::start(&json!({"binance": {"key": "BINANCE-REAL-KEY", "secret": "binance-real-secret"}}));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    let fields = json!({"api_key": "BINANCE-REAL-KEY", "api_secret": "binance-real-secret", "base_url": fake.url_for("binance")});
    let (st, v) =
        s.http("PUT", "/v1/secrets/exchanges/bin", Some(s.admin()), Some(&json!({"data": fields, "type": "binance"})));
    assert_eq!(st, 200, "{v}");
    let ip = json!(["127.0.0.1/32"]);
    let bot = create_key(
        &s,
        json!({"name": "freqtrade", "scopes": ["account:bin:trade", "account:bin:read"], "allow_ips": ip}),
    )
    .1;
    let bearer =
        create_key(&s, json!({"name": "freqtrade-public", "scopes": ["account:bin:public"], "allow_ips": ip})).1;

    // Freqtrade's configuration: the template with the proxy and a free port,
    // and a second file with the keys (kept out of the shared one).
    let work = dir.path().join("freqtrade");
    std::fs::create_dir_all(&work).unwrap();
    let api_port = free_port();
    let template = include_str!("../../../../tests/freqtrade/config.json");
    let config = template
        .replace("KEYWARD_PROXY", &format!("{}/proxy/bin", s.addr))
        .replace("FREQTRADE_API_PORT", &api_port.to_string());
    let (base, keys) = (work.join("config.json"), work.join("keys.json"));
    std::fs::write(&base, config).unwrap();
    let keys_config =
        json!({"exchange": {"key": bot, "ccxt_config": {"headers": {"Authorization": format!("Bearer {bearer}")}}}});
    std::fs::write(&keys, keys_config.to_string()).unwrap();
    let strategies = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/freqtrade");

    let ft = venv.join("bin/freqtrade");
    let userdir = work.join("user_data");
    let made = Command::new(&ft).arg("create-userdir").arg("--userdir").arg(&userdir).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let mut trade = Command::new(&ft)
        .args(["trade", "--strategy", "KeywardProbe", "--strategy-path", strategies])
        .arg("--config")
        .arg(&base)
        .arg("--config")
        .arg(&keys)
        .arg("--userdir")
        .arg(&userdir)
        .arg("--db-url")
        .arg(format!("sqlite:///{}", work.join("trades.sqlite").display()))
        .arg("--logfile")
        .arg(work.join("freqtrade.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let drive = Command::new(venv.join("bin/python"))
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/freqtrade/drive.py"))
        .env("FT_URL", format!("http://127.0.0.1:{api_port}"))
        .env("FT_PID", trade.id().to_string())
        .env("BOT_KEY", &bot)
        .env("BEARER_KEY", &bearer)
        .env("FAKE_URL", fake.url_for("binance"))
        .env("WORK", &work)
        .env("CONFIGS", format!("{}:{}", base.display(), keys.display()))
        .env("KW", BIN)
        .env("KEYWARD_ADDR", &s.addr)
        .env("KEYWARD_TOKEN", s.admin())
        .output()
        .unwrap();
    let _ = trade.kill();
    let _ = trade.wait();
    let out = String::from_utf8_lossy(&drive.stdout);
    let log = std::fs::read_to_string(work.join("freqtrade.log")).unwrap_or_default();
    let tail: String = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    assert!(
        drive.status.success(),
        "{out}\n{}\n-- the end of Freqtrade's log:\n{tail}",
        String::from_utf8_lossy(&drive.stderr)
    );

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(work.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failed"], json!([]), "{out}");
    for check in [
        "strategy entry placed a limit order that rests (NEW)",
        "forceenter opened a trade",
        "Freqtrade reports the exchange balance (USDT 10000, BTC 1.5)",
        "the trading key is in no Freqtrade log or API answer",
        "every signed request arrived with a valid signature (answered 200)",
        "signed with the real key (X-MBX-APIKEY), never the keyward key",
        "2 x POST /api/v3/order reached the exchange",
        "2 x DELETE /api/v3/order reached the exchange",
        "no order left open on the exchange",
        "keyward refused nothing Freqtrade asked for (no endpoint_unknown)",
        "keyward refused the withdrawal: HTTP 403 scope_missing",
        "the audit log has the refusal (withdraw class, scope_missing)",
        "the withdrawal never reached the exchange",
    ] {
        assert_eq!(summary["checks"][check], true, "{check}\n{out}");
    }
}
