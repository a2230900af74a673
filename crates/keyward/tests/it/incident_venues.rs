//! Incident response on KuCoin, Gate, Deribit, Coinbase and HTX against
//! the fake exchange (each venue on its own port, its signatures checked
//! independently): `account check` reads each exchange's key information
//! and names the setting to switch off; `freeze --cancel-orders` cancels
//! what a bot left open through each exchange's own cancel-all calls.

use crate::harness::*;
use crate::incident::proxy;
use serde_json::{Value, json};

/// A made-up Coinbase CDP Ed25519 key (base64 of seed and public key).
const COINBASE_SECRET: &str =
    "CygkuJlBFISJLF87Wo5OcOUsw2VOowAu3/MN7+tiCj0QhmJ83wTjjYCF5wnEXr1FBAKdpzhFGQTurXD4sLr2Wg==";
const COINBASE_KEY: &str = "organizations/keyward-e2e/apiKeys/coinbase-real-key";

/// Account, exchange, fields, the setting a broad key is warned about, and
/// an order a bot places (method, target, JSON body).
type Venue = (&'static str, &'static str, Value, &'static str, (&'static str, &'static str, Option<Value>));

fn venues() -> Vec<Venue> {
    vec![
        (
            "kc",
            "kucoin",
            json!({"api_key": "KUCOIN-REAL-KEY", "api_secret": "kucoin-real-secret", "passphrase": "kucoin-pass"}),
            "Withdrawal",
            (
                "POST",
                "kc/api/v1/hf/orders",
                Some(
                    json!({"clientOid": "a", "side": "buy", "symbol": "BTC-USDT", "type": "limit", "size": "0.01", "price": "50000"}),
                ),
            ),
        ),
        (
            "gt",
            "gate",
            json!({"api_key": "GATE-REAL-KEY", "api_secret": "gate-real-secret"}),
            "Withdrawal",
            (
                "POST",
                "gt/api/v4/spot/orders",
                Some(json!({"currency_pair": "BTC_USDT", "side": "buy", "amount": "0.01", "price": "50000"})),
            ),
        ),
        (
            "dr",
            "deribit",
            json!({"api_key": "DERIBIT-REAL-ID", "api_secret": "deribit-real-secret"}),
            "Wallet: read_write",
            ("GET", "dr/api/v2/private/buy?instrument_name=BTC_USDC&amount=0.01&type=limit&price=50000", None),
        ),
        (
            "cb",
            "coinbase",
            json!({"api_key": COINBASE_KEY, "api_secret": COINBASE_SECRET}),
            "Transfer",
            (
                "POST",
                "cb/api/v3/brokerage/orders",
                Some(json!({"client_order_id": "a", "product_id": "BTC-USDT", "side": "BUY",
                    "order_configuration": {"limit_limit_gtc": {"base_size": "0.01", "limit_price": "50000"}}})),
            ),
        ),
        (
            "htx",
            "htx",
            json!({"api_key": "HTX-REAL-KEY", "api_secret": "htx-real-secret"}),
            "Withdraw",
            (
                "POST",
                "htx/v1/order/orders/place",
                Some(
                    json!({"account-id": "1", "symbol": "btcusdt", "type": "buy-limit", "amount": "0.01", "price": "50000"}),
                ),
            ),
        ),
    ]
}

#[test]
fn check_and_freeze_with_cancel_on_every_newer_venue() {
    let fake = FakeExchange::start(&json!({
        "kucoin": {"key": "KUCOIN-REAL-KEY", "secret": "kucoin-real-secret", "passphrase": "kucoin-pass"},
        "gate": {"key": "GATE-REAL-KEY", "secret": "gate-real-secret"},
        "deribit": {"key": "DERIBIT-REAL-ID", "secret": "deribit-real-secret"},
        "coinbase": {"key": COINBASE_KEY, "secret": COINBASE_SECRET},
        "htx": {"key": "HTX-REAL-KEY", "secret": "htx-real-secret"},
    }));
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &["--allow-upstream", "127.0.0.1"]);
    for (name, kind, fields, _, _) in venues() {
        exchange_account(&s, name, kind, fields, &fake.url_for(kind));
    }
    for (name, kind, _, setting, (method, target, body)) in venues() {
        // The fake's key is broad: withdrawals on, any address.
        let (st, report) = s.http("POST", &format!("/v1/accounts/{name}/check"), Some(s.admin()), None);
        assert_eq!(st, 200, "{report}");
        assert_eq!(report["ok"], false, "{kind}: {report}");
        let named = report["findings"].as_array().unwrap().iter().any(|f| f["setting"] == setting);
        assert!(named, "{kind}: no finding names {setting:?}: {report}");

        let scopes = [format!("account:{name}:trade"), format!("account:{name}:read")];
        let (_, bot) =
            create_key(&s, json!({"name": format!("{name}-bot"), "scopes": scopes, "allow_ips": ["127.0.0.1/32"]}));
        let (st, v) = proxy(&s, &bot, method, target, body.as_ref());
        assert!(st == 200 || st == 201, "{kind} order: {st} {v}");
        let open = |fake: &FakeExchange| -> usize {
            let state: Value = reqwest::blocking::get(format!("{}/__state", fake.url)).unwrap().json().unwrap();
            state["open"][kind].as_array().map_or(0, Vec::len)
        };
        assert_eq!(open(&fake), 1, "{kind}: the order is open on the exchange");
        if kind == "coinbase" {
            // ccxt given a dummy secret that is no key signs the legacy way: the key in CB-ACCESS-KEY.
            let r = reqwest::blocking::Client::new()
                .get(format!("{}/proxy/cb/api/v3/brokerage/accounts", s.addr))
                .header("CB-ACCESS-KEY", &bot)
                .header("CB-ACCESS-SIGN", "00")
                .header("CB-ACCESS-TIMESTAMP", "1")
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 200, "{}", r.text().unwrap());
        }

        let (st, v) = s.http(
            "POST",
            &format!("/v1/accounts/{name}/freeze"),
            Some(s.admin()),
            Some(&json!({"cancel_orders": true})),
        );
        assert_eq!((st, v["cancel_failed"].clone()), (200, json!(0)), "{kind}: {v}");
        assert_eq!(open(&fake), 0, "{kind}: orders left after the freeze: {v}");
        assert_error(&proxy(&s, &bot, method, target, body.as_ref()), 401, "key_disabled");
    }
}
