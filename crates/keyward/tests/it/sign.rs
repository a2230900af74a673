//! Exchange accounts and the sign API through the real server. Signatures
//! are checked with Python's hmac/hashlib, an implementation independent
//! of ours.

use crate::harness::*;
use serde_json::{Value, json};
use std::process::Command;

const KRAKEN_SECRET: &str = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg==";

/// Runs a Python expression over `args` (sys.argv[1:]) and returns what it prints.
fn py(code: &str, args: &[&str]) -> String {
    let o = Command::new("python3").arg("-c").arg(code).args(args).output().expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn account(s: &Server, name: &str, kind: &str, fields: Value) -> (u16, Value) {
    s.http(
        "PUT",
        &format!("/v1/secrets/exchanges/{name}"),
        Some(s.admin()),
        Some(&json!({"data": fields, "type": kind})),
    )
}

fn sign(s: &Server, key: &str, acct: &str, body: Value) -> (u16, Value) {
    s.http("POST", &format!("/v1/sign/{acct}"), Some(key), Some(&body))
}

fn bot(s: &Server, scopes: &[&str]) -> String {
    create_key(s, json!({"name": "bot", "scopes": scopes, "allow_ips": ["127.0.0.0/8"]})).1
}

#[test]
fn accounts_are_validated_and_their_secrets_withheld() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "K", "api_secret": "S"})).0, 200);
    let cases = [
        ("binance", json!({"api_secret": "S"}), "api_key"),
        ("okx", json!({"api_key": "K", "api_secret": "S"}), "passphrase"),
        ("kraken", json!({"api_key": "K", "api_secret": "not base64!"}), "api_secret"),
        ("kucoin", json!({"api_key": "K", "api_secret": "S", "passphrase": "p", "key_version": "9"}), "key_version"),
        (
            "binance",
            json!({"api_key": "K", "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "private_key",
        ),
        ("nasdaq", json!({"api_key": "K", "api_secret": "S"}), "unknown exchange type"),
    ];
    for (kind, fields, named) in cases {
        let got = account(&s, "x", kind, fields);
        assert_error(&got, 400, "account_invalid");
        assert!(got.1["error"]["message"].as_str().unwrap().contains(named), "{}", got.1);
    }
    let got = s.http("PUT", "/v1/secrets/exchanges/untyped", Some(s.admin()), Some(&json!({"data": {"api_key": "K"}})));
    assert_error(&got, 400, "account_invalid");
    // Upstreams: the exchange's own hosts and testnets over https, nothing else.
    for bad in [
        "http://api.binance.com",
        "https://evil.example",
        "https://127.0.0.1",
        "https://api.binance.com/x",
        "https://u:p@api.binance.com",
    ] {
        let got = account(&s, "b2", "binance", json!({"api_key": "K", "api_secret": "S", "base_url": bad}));
        assert_error(&got, 400, "upstream_not_allowed");
    }
    let urls = r#"{"/api": "https://testnet.binance.vision", "/fapi": "https://testnet.binancefuture.com"}"#;
    assert_eq!(account(&s, "b3", "binance", json!({"api_key": "K", "api_secret": "S", "base_urls": urls})).0, 200);
    let got = account(
        &s,
        "b4",
        "binance",
        json!({"api_key": "K", "api_secret": "S", "base_urls": r#"{"/api": "https://evil.example"}"#}),
    );
    assert_error(&got, 400, "upstream_not_allowed");

    // Reading: secret:read shows the account without its secret fields; export shows them.
    let (_, reader) = create_key(&s, json!({"name": "r", "scopes": ["secret:read:exchanges/*"]}));
    let (st, v) = s.http("GET", "/v1/secrets/exchanges/bin", Some(&reader), None);
    assert_eq!(st, 200);
    assert_eq!(v["data"], json!({"api_key": "K"}));
    assert_eq!(v["metadata"]["withheld_fields"], json!(["api_secret"]));
    assert_error(
        &s.http("GET", "/v1/secrets/exchanges/bin?field=api_secret", Some(&reader), None),
        403,
        "scope_missing",
    );
    let o = s.cli(Some(&reader), &["secret", "get", "exchanges/bin", "--json"], None);
    assert!(!stdout(&o).contains("\"S\""), "{}", stdout(&o));
    let exporter = bot(&s, &["account:bin:export"]);
    assert_eq!(s.http("GET", "/v1/secrets/exchanges/bin", Some(&exporter), None).1["data"]["api_secret"], "S");
    assert_eq!(s.http("GET", "/v1/secrets/exchanges/bin", Some(s.admin()), None).1["data"]["api_secret"], "S");
    assert_error(&s.http("GET", "/v1/secrets/exchanges/b3", Some(&exporter), None), 403, "scope_missing");

    // Changing an account needs account:<name>:admin on top of secret:write.
    let (_, writer) = create_key(&s, json!({"name": "w", "scopes": ["secret:write:exchanges/*"]}));
    let got = s.http(
        "PUT",
        "/v1/secrets/exchanges/bin",
        Some(&writer),
        Some(&json!({"data": {"api_key": "K2", "api_secret": "S2"}})),
    );
    assert_error(&got, 403, "scope_missing");
    assert_error(&s.http("DELETE", "/v1/secrets/exchanges/bin", Some(&writer), None), 403, "scope_missing");
    let (_, acct_admin) = create_key(
        &s,
        json!({"name": "aa", "scopes": ["secret:write:exchanges/*", "account:bin:admin"], "allow_ips": ["127.0.0.1"]}),
    );
    let got = s.http(
        "PUT",
        "/v1/secrets/exchanges/bin",
        Some(&acct_admin),
        Some(&json!({"data": {"api_key": "K2", "api_secret": "S2"}})),
    );
    assert_eq!(got.0, 200, "{}", got.1);
    // The CLI's documented form, secret from stdin.
    let o = s.cli(
        Some(s.admin()),
        &["secret", "put", "exchanges/okx-main", "--type", "okx", "api_key=K", "api_secret=-", "passphrase=p"],
        Some("SECRET"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn sign_api_classes_and_independent_verification() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "kr", "kraken", json!({"api_key": "KRKEY", "api_secret": KRAKEN_SECRET})).0, 200);
    let trader = bot(&s, &["account:kr:trade", "account:kr:read"]);

    let (st, v) = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "body": "ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["url"], "https://api.kraken.com/0/private/AddOrder");
    assert_eq!(v["class"], "trade");
    assert_eq!(v["headers"]["API-Key"], "KRKEY");
    let body = v["body"].as_str().unwrap();
    assert!(
        body.starts_with("nonce=") && body.ends_with("&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25")
    );
    let nonce = body.split('&').next().unwrap().trim_start_matches("nonce=");
    let expected = py(
        "import sys,hmac,hashlib,base64; s,p,n,b=sys.argv[1:]; \
         print(base64.b64encode(hmac.new(base64.b64decode(s), p.encode()+hashlib.sha256((n+b).encode()).digest(), hashlib.sha512).digest()).decode())",
        &[KRAKEN_SECRET, "/0/private/AddOrder", nonce, body],
    );
    assert_eq!(v["headers"]["API-Sign"], expected);

    // Nonces increase.
    let (st, v2) = sign(&s, &trader, "kr", json!({"method": "POST", "path": "/0/private/Balance"}));
    assert_eq!(st, 200, "{v2}");
    let n2: u64 = v2["body"].as_str().unwrap().trim_start_matches("nonce=").parse().unwrap();
    assert!(n2 > nonce.parse::<u64>().unwrap());
    assert_eq!(v2["class"], "read");

    // Public: no credentials at all.
    let (_, p) = sign(&s, &trader, "kr", json!({"method": "GET", "path": "/0/public/Ticker", "query": "pair=XBTUSD"}));
    assert_eq!((p["class"].as_str(), p["headers"].as_object().unwrap().len()), (Some("public"), 0));

    // Classes the key lacks, unknown endpoints, session tokens.
    for (path, code) in [
        ("/0/private/Withdraw", "scope_missing"),
        ("/0/private/WalletTransfer", "scope_missing"),
        ("/0/private/GetWebSocketsToken", "scope_missing"),
        ("/0/private/SomethingNew", "endpoint_unknown"),
    ] {
        let got = sign(&s, &trader, "kr", json!({"method": "POST", "path": path}));
        assert_error(&got, 403, code);
    }
    // Leverage makes an order a loan.
    let got = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "body": "pair=XBTUSD&type=buy&volume=1&leverage=5"}),
    );
    assert_error(&got, 403, "scope_missing");
    // No scope on the account at all: nothing else is revealed.
    let other = bot(&s, &["account:elsewhere:trade"]);
    assert_error(
        &sign(&s, &other, "kr", json!({"method": "POST", "path": "/0/private/Balance"})),
        403,
        "scope_missing",
    );
    assert_error(&sign(&s, &other, "nonexistent", json!({"method": "POST", "path": "/x"})), 403, "scope_missing");
    // Overrides need a test clock.
    let got = sign(&s, &trader, "kr", json!({"method": "POST", "path": "/0/private/Balance", "nonce": 5}));
    assert_error(&got, 400, "invalid_request");
    // The CLI.
    let o = s.cli(Some(&trader), &["sign", "kr", "POST", "/0/private/Balance"], None);
    assert!(o.status.success() && stdout(&o).contains("API-Sign: "), "{}", stderr(&o));
}

#[test]
fn signatures_that_do_not_bind_the_path_need_admin() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "BK", "api_secret": "BSECRET"})).0, 200);
    assert_eq!(account(&s, "by", "bybit", json!({"api_key": "YK", "api_secret": "YSECRET"})).0, 200);
    let trader = bot(&s, &["account:bin:trade", "account:by:trade"]);
    for (acct, path, body) in [
        ("bin", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"),
        (
            "by",
            "/v5/order/create",
            r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01"}"#,
        ),
    ] {
        let got = sign(&s, &trader, acct, json!({"method": "POST", "path": path, "body": body}));
        assert_error(&got, 403, "scope_missing");
        assert!(got.1["error"]["message"].as_str().unwrap().contains("replayed"), "{}", got.1);
    }
    // Public endpoints need no admin.
    assert_eq!(sign(&s, &trader, "bin", json!({"method": "GET", "path": "/api/v3/exchangeInfo"})).0, 200);

    let admin = bot(&s, &["account:bin:admin", "account:bin:trade", "account:by:admin", "account:by:trade"]);
    let (st, v) = sign(
        &s,
        &admin,
        "bin",
        json!({"method": "POST", "path": "/api/v3/order", "query": "signature=forged&timestamp=1", "body": "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.01"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["headers"]["X-MBX-APIKEY"], "BK");
    let body = v["body"].as_str().unwrap();
    assert!(
        !body.contains("forged") && body.matches("timestamp=").count() == 1,
        "client auth params are dropped: {body}"
    );
    let (payload, sig) = body.rsplit_once("&signature=").unwrap();
    assert!(payload.contains("recvWindow=5000"));
    let expected = py(
        "import sys,hmac,hashlib; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &["BSECRET", payload],
    );
    assert_eq!(sig, expected);

    let (st, v) = sign(
        &s,
        &admin,
        "by",
        json!({"method": "POST", "path": "/v5/order/create", "body": r#"{"category":"spot","symbol":"BTCUSDT","side":"Buy","orderType":"Market","qty":"0.01"}"#}),
    );
    assert_eq!(st, 200, "{v}");
    let hd = &v["headers"];
    let text = format!(
        "{}{}{}{}",
        hd["X-BAPI-TIMESTAMP"].as_str().unwrap(),
        "YK",
        hd["X-BAPI-RECV-WINDOW"].as_str().unwrap(),
        v["body"].as_str().unwrap()
    );
    let expected = py(
        "import sys,hmac,hashlib; print(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).hexdigest())",
        &["YSECRET", &text],
    );
    assert_eq!(hd["X-BAPI-SIGN"], expected);
}

#[test]
fn non_canonical_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    assert_eq!(account(&s, "bin", "binance", json!({"api_key": "BK", "api_secret": "S"})).0, 200);
    let admin = bot(&s, &["account:bin:*"]);
    let cases = [
        json!({"method": "GET", "path": "/api/v3/account/../../sapi/v1/capital/withdraw/apply"}),
        json!({"method": "GET", "path": "/api/v3/%61ccount"}),
        json!({"method": "GET", "path": "/api/v3//account"}),
        json!({"method": "GET", "path": "/api/v3/account/"}),
        json!({"method": "GET", "path": "/api\\v3\\account"}),
        json!({"method": "get", "path": "/api/v3/account"}),
        json!({"method": "POST", "path": "/api/v3/order", "query": "_method=DELETE"}),
        json!({"method": "POST", "path": "/api/v3/order", "query": "quantity=1", "body": "quantity=100"}),
        json!({"method": "GET", "path": "/api/v3/order", "query": "symbol=A&symbol=B"}),
        json!({"method": "GET", "path": "/api/v3/order", "query": "sym%62ol=A"}),
    ];
    for body in cases {
        let got = sign(&s, &admin, "bin", body.clone());
        assert_error(&got, 400, "request_not_canonical");
    }
}

#[test]
fn test_clock_overrides_reproduce_the_documented_kraken_signature() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    assert_eq!(account(&s, "kr", "kraken", json!({"api_key": "K", "api_secret": KRAKEN_SECRET})).0, 200);
    let trader = bot(&s, &["account:kr:trade"]);
    let (st, v) = sign(
        &s,
        &trader,
        "kr",
        json!({"method": "POST", "path": "/0/private/AddOrder", "nonce": 1616492376594u64,
        "body": "ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["headers"]["API-Sign"],
        "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="
    );

    // OKX with a fixed timestamp, checked by Python.
    assert_eq!(account(&s, "ok", "okx", json!({"api_key": "OK", "api_secret": "OSECRET", "passphrase": "pp"})).0, 200);
    let okb = bot(&s, &["account:ok:read"]);
    let (st, v) = sign(
        &s,
        &okb,
        "ok",
        json!({"method": "GET", "path": "/api/v5/account/balance", "query": "ccy=BTC", "timestamp_ms": 1607418537715i64}),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["headers"]["OK-ACCESS-TIMESTAMP"], "2020-12-08T09:08:57.715Z");
    let expected = py(
        "import sys,hmac,hashlib,base64; print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).digest()).decode())",
        &["OSECRET", "2020-12-08T09:08:57.715ZGET/api/v5/account/balance?ccy=BTC"],
    );
    assert_eq!(v["headers"]["OK-ACCESS-SIGN"], expected);
    assert_eq!(v["headers"]["OK-ACCESS-PASSPHRASE"], "pp");
}

#[test]
fn bitget_gate_and_deribit_signatures_checked_by_python() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    let t = 1_700_000_000_123i64;
    assert_eq!(
        account(&s, "bg", "bitget", json!({"api_key": "BG", "api_secret": "bgsecret", "passphrase": "bgp"})).0,
        200
    );
    assert_eq!(account(&s, "gt", "gate", json!({"api_key": "GT", "api_secret": "gtsecret"})).0, 200);
    assert_eq!(account(&s, "dr", "deribit", json!({"api_key": "DRID", "api_secret": "drsecret"})).0, 200);
    let k = bot(&s, &["account:bg:trade", "account:gt:trade", "account:dr:trade", "account:dr:read"]);

    let body = r#"{"symbol":"BTCUSDT","side":"buy","orderType":"limit","force":"gtc","price":"50000","size":"0.01"}"#;
    let (st, v) = sign(
        &s,
        &k,
        "bg",
        json!({"method": "POST", "path": "/api/v2/spot/trade/place-order", "body": body, "timestamp_ms": t}),
    );
    assert_eq!(st, 200, "{v}");
    let want = py(
        "import sys,hmac,hashlib,base64; print(base64.b64encode(hmac.new(b'bgsecret', sys.argv[1].encode(), hashlib.sha256).digest()).decode())",
        &[&format!("{t}POST/api/v2/spot/trade/place-order{body}")],
    );
    assert_eq!(
        (v["headers"]["ACCESS-SIGN"].as_str(), v["headers"]["ACCESS-PASSPHRASE"].as_str()),
        (Some(want.as_str()), Some("bgp"))
    );

    let body = r#"{"currency_pair":"BTC_USDT","side":"buy","amount":"0.01","price":"50000"}"#;
    let (st, v) = sign(
        &s,
        &k,
        "gt",
        json!({"method": "POST", "path": "/api/v4/spot/orders", "query": "account=spot", "body": body, "timestamp_ms": t}),
    );
    assert_eq!(st, 200, "{v}");
    let want = py(
        "import sys,hmac,hashlib; b=sys.argv[1].encode(); s='POST\\n/api/v4/spot/orders\\naccount=spot\\n'+hashlib.sha512(b).hexdigest()+'\\n'+sys.argv[2]; \
         print(hmac.new(b'gtsecret', s.encode(), hashlib.sha512).hexdigest())",
        &[body, &(t / 1000).to_string()],
    );
    assert_eq!(v["headers"]["SIGN"], want);
    assert_eq!(v["headers"]["Timestamp"], (t / 1000).to_string());

    let (st, v) = sign(
        &s,
        &k,
        "dr",
        json!({"method": "GET", "path": "/api/v2/private/buy", "query": "instrument_name=BTC-PERPETUAL&amount=10&type=market", "timestamp_ms": t, "nonce": 42}),
    );
    assert_eq!(st, 200, "{v}");
    let want = py(
        "import sys,hmac,hashlib; s=sys.argv[1]+'\\n42\\nGET\\n/api/v2/private/buy?instrument_name=BTC-PERPETUAL&amount=10&type=market\\n\\n'; \
         print(hmac.new(b'drsecret', s.encode(), hashlib.sha256).hexdigest())",
        &[&t.to_string()],
    );
    assert_eq!(v["headers"]["Authorization"], format!("deri-hmac-sha256 id=DRID,ts={t},sig={want},nonce=42"));
    // Deribit's session-token endpoint is admin.
    assert_error(
        &sign(
            &s,
            &k,
            "dr",
            json!({"method": "GET", "path": "/api/v2/public/auth", "query": "grant_type=client_credentials"}),
        ),
        403,
        "scope_missing",
    );
}

#[test]
fn coinbase_jwts_verify_with_the_public_key_and_carry_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--test-clock"]);
    // Keys made by Python's cryptography: an EC P-256 key (SEC1 PEM, as Coinbase
    // hands them out) and an Ed25519 key (base64 of seed and public key).
    let keys = py(
        "from cryptography.hazmat.primitives.asymmetric import ec, ed25519; from cryptography.hazmat.primitives import serialization as s; import base64,json\n\
ek=ec.generate_private_key(ec.SECP256R1()); edk=ed25519.Ed25519PrivateKey.generate()\n\
raw=edk.private_bytes(s.Encoding.Raw,s.PrivateFormat.Raw,s.NoEncryption())+edk.public_key().public_bytes(s.Encoding.Raw,s.PublicFormat.Raw)\n\
print(json.dumps({'ec': ek.private_bytes(s.Encoding.PEM,s.PrivateFormat.TraditionalOpenSSL,s.NoEncryption()).decode(), 'ed': base64.b64encode(raw).decode()}))",
        &[],
    );
    let keys: Value = serde_json::from_str(&keys).unwrap();
    let name = "organizations/org-1/apiKeys/key-1";
    assert_eq!(account(&s, "cbec", "coinbase", json!({"api_key": name, "private_key": keys["ec"]})).0, 200);
    assert_eq!(account(&s, "cbed", "coinbase", json!({"api_key": name, "api_secret": keys["ed"]})).0, 200);
    // ccxt's `secret` form of an EC key: the PEM itself, in api_secret.
    assert_eq!(account(&s, "cbes", "coinbase", json!({"api_key": name, "api_secret": keys["ec"]})).0, 200);
    let (st, bad) = account(&s, "cbx", "coinbase", json!({"api_key": name, "api_secret": "bm90IGEga2V5"}));
    assert_eq!((st, bad["error"]["code"].as_str()), (400, Some("account_invalid")));
    let trader = bot(&s, &["account:cbec:trade", "account:cbed:trade"]);
    let admin = bot(&s, &["account:cbec:*", "account:cbed:*", "account:cbes:*"]);
    let order = r#"{"client_order_id":"c1","product_id":"BTC-USD","side":"BUY","order_configuration":{"market_market_ioc":{"quote_size":"10"}}}"#;
    // The JWT does not cover the body: without admin the sign API refuses.
    assert_error(
        &sign(&s, &trader, "cbec", json!({"method": "POST", "path": "/api/v3/brokerage/orders", "body": order})),
        403,
        "scope_missing",
    );
    // The claims of Coinbase's CDP SDK and ccxt: EdDSA keys are CDP keys
    // (`cdp`, audience `cdp_service`, `uris`), EC keys cloud keys.
    for (acct, alg, iss, aud) in [
        ("cbec", "ES256", "coinbase-cloud", "retail_rest_api_proxy"),
        ("cbes", "ES256", "coinbase-cloud", "retail_rest_api_proxy"),
        ("cbed", "EdDSA", "cdp", "cdp_service"),
    ] {
        let (st, v) = sign(
            &s,
            &admin,
            acct,
            json!({"method": "POST", "path": "/api/v3/brokerage/orders", "body": order, "timestamp_ms": 1_700_000_000_000i64}),
        );
        assert_eq!(st, 200, "{v}");
        let jwt = v["headers"]["Authorization"].as_str().unwrap().trim_start_matches("Bearer ").to_string();
        let verdict = py(VERIFY_JWT, &[&jwt, &keys.to_string()]);
        let verdict: Value = serde_json::from_str(&verdict).unwrap();
        assert_eq!(verdict["alg"], alg);
        assert_eq!((&verdict["kid"], &verdict["sub"]), (&json!(name), &json!(name)));
        assert_eq!((&verdict["iss"], &verdict["aud"]), (&json!(iss), &json!(aud)));
        assert_eq!(verdict["uri"], "POST api.coinbase.com/api/v3/brokerage/orders");
        assert_eq!((&verdict["life"], &verdict["nbf"]), (&json!(120), &json!(1_700_000_000)));
    }
}

/// Verifies a Coinbase JWT with Python's cryptography and prints its claims.
const VERIFY_JWT: &str = r#"
import sys, json, base64
from cryptography.hazmat.primitives import serialization as s, hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils, ed25519
jwt, keys = sys.argv[1], json.loads(sys.argv[2])
h, p, sig = jwt.split('.')
d = lambda x: base64.urlsafe_b64decode(x + '=' * (-len(x) % 4))
hdr, claims, sig = json.loads(d(h)), json.loads(d(p)), d(sig)
msg = (h + '.' + p).encode()
if hdr['alg'] == 'ES256':
    pub = s.load_pem_private_key(keys['ec'].encode(), None).public_key()
    der = utils.encode_dss_signature(int.from_bytes(sig[:32], 'big'), int.from_bytes(sig[32:], 'big'))
    pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))
else:
    ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(keys['ed'])[32:]).verify(sig, msg)
print(json.dumps({'alg': hdr['alg'], 'kid': hdr['kid'], 'sub': claims['sub'], 'iss': claims['iss'],
                  'uri': claims.get('uri') or claims['uris'][0], 'aud': claims['aud'][0],
                  'life': claims['exp'] - claims['nbf'], 'nbf': claims['nbf']}))
"#;

/// Makes an Ed25519 and an RSA key (PKCS#8 PEM) with Python's cryptography.
const MAKE_KEYS: &str = r#"
import json
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives import serialization as s
pem = lambda k: k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode()
print(json.dumps({"ed": pem(ed25519.Ed25519PrivateKey.generate()),
                  "rsa": pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))}))
"#;

/// Verifies a base64 signature over a message with a PEM key's public half.
const VERIFY_SIG: &str = r#"
import sys, base64
from cryptography.hazmat.primitives import serialization as s, hashes
from cryptography.hazmat.primitives.asymmetric import padding, ed25519
key = s.load_pem_private_key(sys.argv[1].encode(), None).public_key()
sig, msg = base64.b64decode(sys.argv[2]), sys.argv[3].encode()
if isinstance(key, ed25519.Ed25519PublicKey):
    key.verify(sig, msg)
else:
    key.verify(sig, msg, padding.PKCS1v15(), hashes.SHA256())
print("ok")
"#;

#[test]
fn binance_ed25519_and_rsa_and_bybit_rsa_keys() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let keys: Value = serde_json::from_str(&py(MAKE_KEYS, &[])).unwrap();
    assert_eq!(account(&s, "bed", "binance", json!({"api_key": "K1", "private_key": keys["ed"]})).0, 200);
    assert_eq!(account(&s, "brsa", "binance", json!({"api_key": "K2", "private_key": keys["rsa"]})).0, 200);
    assert_eq!(account(&s, "byrsa", "bybit", json!({"api_key": "K3", "private_key": keys["rsa"]})).0, 200);
    let admin = bot(&s, &["account:bed:*", "account:brsa:*", "account:byrsa:*"]);
    for (acct, pem) in [("bed", &keys["ed"]), ("brsa", &keys["rsa"])] {
        let (st, v) = sign(
            &s,
            &admin,
            acct,
            json!({"method": "GET", "path": "/api/v3/account", "query": "omitZeroBalances=true"}),
        );
        assert_eq!(st, 200, "{v}");
        let url = v["url"].as_str().unwrap();
        let (payload, sig) = url.split_once('?').unwrap().1.rsplit_once("&signature=").unwrap();
        let sig = py("import sys, urllib.parse; print(urllib.parse.unquote(sys.argv[1]))", &[sig]);
        assert_eq!(py(VERIFY_SIG, &[pem.as_str().unwrap(), &sig, payload]), "ok", "{acct}");
    }
    let body =
        r#"{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit","qty":"0.01","price":"50000"}"#;
    let (st, v) = sign(&s, &admin, "byrsa", json!({"method": "POST", "path": "/v5/order/create", "body": body}));
    assert_eq!(st, 200, "{v}");
    let h = &v["headers"];
    let text =
        format!("{}K3{}{body}", h["X-BAPI-TIMESTAMP"].as_str().unwrap(), h["X-BAPI-RECV-WINDOW"].as_str().unwrap());
    assert_eq!(py(VERIFY_SIG, &[keys["rsa"].as_str().unwrap(), h["X-BAPI-SIGN"].as_str().unwrap(), &text]), "ok");
    // A key type the exchange does not take is refused when the account is stored.
    let got = account(&s, "bad", "bybit", json!({"api_key": "K", "private_key": keys["ed"]}));
    assert_error(&got, 400, "account_invalid");
    assert!(got.1["error"]["message"].as_str().unwrap().contains("private_key"));
}
