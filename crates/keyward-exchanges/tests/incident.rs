//! Incident response, per exchange: withdrawals read strictly from the
//! requests ccxt and the exchanges' docs send, the key-information answers
//! the exchanges document (their own examples), and the cancel-all plans.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::keyinfo::KeyInfo;
use keyward_exchanges::{CanonicalRequest, Class, Credentials, Sweep, by_kind, registry};
use serde_json::json;

fn req(method: &str, path: &str, query: Option<&str>, json: Option<serde_json::Value>) -> CanonicalRequest {
    let body = json.map(|j| j.to_string()).unwrap_or_default();
    let ctype = (!body.is_empty()).then_some("application/json");
    CanonicalRequest::parse(method, path, query, ctype, body.as_bytes()).unwrap()
}

fn form(path: &str, body: &str) -> CanonicalRequest {
    CanonicalRequest::parse("POST", path, None, Some("application/x-www-form-urlencoded"), body.as_bytes()).unwrap()
}

/// (asset, amount, address, network, memo)
fn read(kind: &str, r: &CanonicalRequest) -> (String, String, String, Option<String>, Option<String>) {
    let w = by_kind(kind).unwrap().withdrawal(r).unwrap_or_else(|e| panic!("{kind} {}: {e}", r.path)).unwrap();
    (w.asset, w.amount.to_string(), w.address, w.network, w.memo)
}

fn s(x: &str) -> Option<String> {
    Some(x.to_string())
}

#[test]
fn every_exchange_reads_its_withdrawals_as_ccxt_and_the_docs_send_them() {
    let cases = [
        (
            "binance",
            req(
                "POST",
                "/sapi/v1/capital/withdraw/apply",
                Some("coin=BTC&address=bc1qcold&amount=0.5&network=BTC"),
                None,
            ),
            ("BTC", "0.5", "bc1qcold", s("BTC"), None),
        ),
        (
            "bybit",
            req(
                "POST",
                "/v5/asset/withdraw/create",
                None,
                Some(
                    json!({"coin":"USDT","chain":"ETH","address":"0xabc","tag":"7","amount":"10","timestamp":1,"accountType":"UTA"}),
                ),
            ),
            ("USDT", "10", "0xabc", s("ETH"), s("7")),
        ),
        (
            "okx",
            req(
                "POST",
                "/api/v5/asset/withdrawal",
                None,
                Some(json!({"ccy":"XRP","toAddr":"rAddr:123","dest":"4","amt":"5","chain":"XRP-Ripple"})),
            ),
            ("XRP", "5", "rAddr", s("XRP-Ripple"), s("123")),
        ),
        (
            "kraken",
            form("/0/private/Withdraw", "asset=XBT&key=cold-wallet&amount=0.25&address=bc1qcold"),
            ("XBT", "0.25", "cold-wallet", None, None),
        ),
        (
            "kucoin",
            req(
                "POST",
                "/api/v3/withdrawals",
                None,
                Some(json!({"currency":"USDT","toAddress":"TKF","withdrawType":"ADDRESS","amount":3,"chain":"trx"})),
            ),
            ("USDT", "3", "TKF", s("trx"), None),
        ),
        (
            "kucoin",
            req("POST", "/api/v1/withdrawals", None, Some(json!({"currency":"BTC","address":"bc1q","amount":"1"}))),
            ("BTC", "1", "bc1q", None, None),
        ),
        (
            "bitget",
            req(
                "POST",
                "/api/v2/spot/wallet/withdrawal",
                None,
                Some(json!({"coin":"USDT","transferType":"on_chain","address":"TXYZ","chain":"trc20","size":"12.5"})),
            ),
            ("USDT", "12.5", "TXYZ", s("trc20"), None),
        ),
        (
            "gate",
            req(
                "POST",
                "/api/v4/withdrawals",
                None,
                Some(json!({"currency":"EOS","address":"gateaddr","amount":"2","memo":"m1","chain":"EOS"})),
            ),
            ("EOS", "2", "gateaddr", s("EOS"), s("m1")),
        ),
        (
            "gate",
            req(
                "POST",
                "/api/v4/withdrawals/push",
                None,
                Some(json!({"receive_uid":12345,"currency":"USDT","amount":"1"})),
            ),
            ("USDT", "1", "12345", s("UID"), None),
        ),
        (
            "deribit",
            req("GET", "/api/v2/private/withdraw", Some("currency=BTC&address=2NBqq&amount=0.5"), None),
            ("BTC", "0.5", "2NBqq", None, None),
        ),
        (
            "coinbase",
            req(
                "POST",
                "/v2/accounts/abc/transactions",
                None,
                Some(json!({"type":"send","to":"0xdef","amount":"0.1","currency":"ETH","network":"base"})),
            ),
            ("ETH", "0.1", "0xdef", s("base"), None),
        ),
    ];
    for (kind, r, (asset, amount, address, network, memo)) in cases {
        assert_eq!(
            read(kind, &r),
            (asset.to_string(), amount.to_string(), address.to_string(), network, memo),
            "{kind} {}",
            r.path
        );
    }
}

#[test]
fn transfers_to_other_users_name_their_kind_of_destination() {
    let bybit_uid = req(
        "POST",
        "/v5/asset/withdraw/create",
        None,
        Some(json!({"coin":"USDT","address":"123456","amount":"1","timestamp":1,"accountType":"FUND","forceChain":2})),
    );
    assert_eq!(read("bybit", &bybit_uid).3, s("UID"));
    let okx_internal = req(
        "POST",
        "/api/v5/asset/withdrawal",
        None,
        Some(json!({"ccy":"USDT","toAddr":"1380000","areaCode":"86","dest":"3","amt":"1"})),
    );
    assert_eq!(read("okx", &okx_internal).2, "86-1380000");
    assert_eq!(read("okx", &okx_internal).3, s("internal"));
    let kucoin_uid = req(
        "POST",
        "/api/v3/withdrawals",
        None,
        Some(json!({"currency":"USDT","toAddress":"9988","withdrawType":"UID","amount":"1"})),
    );
    assert_eq!(read("kucoin", &kucoin_uid).3, s("uid"));
    let bitget_inner = req(
        "POST",
        "/api/v2/spot/wallet/withdrawal",
        None,
        Some(
            json!({"coin":"USDT","transferType":"internal_transfer","innerToType":"email","address":"a@b.c","size":"1"}),
        ),
    );
    assert_eq!(read("bitget", &bitget_inner).3, s("internal-email"));
}

#[test]
fn what_cannot_be_read_strictly_is_refused() {
    let refused = [
        (
            "binance",
            req("POST", "/sapi/v1/capital/withdraw/apply", Some("coin=BTC&address=x&amount=1&name=mine"), None),
        ),
        ("binance", req("POST", "/sapi/v1/capital/withdraw/apply", Some("coin=BTC&address=x&amount=1e2"), None)),
        ("binance", req("POST", "/sapi/v1/giftcard/createCode", Some("token=BTC&amount=1"), None)),
        (
            "bybit",
            req(
                "POST",
                "/v5/asset/withdraw/create",
                None,
                Some(
                    json!({"coin":"USDT","address":"x","amount":"1","timestamp":1,"accountType":"UTA","forceChain":9}),
                ),
            ),
        ),
        (
            "okx",
            req("POST", "/api/v5/asset/withdrawal", None, Some(json!({"ccy":"BTC","toAddr":"x","amt":"1","dest":"2"}))),
        ),
        ("okx", req("POST", "/api/v5/asset/withdrawal-lightning", None, Some(json!({"ccy":"BTC","invoice":"lnbc1"})))),
        ("kraken", form("/0/private/Withdraw", "asset=XBT&key=k&amount=1&aclass=tokenized_asset")),
        (
            "kucoin",
            req("POST", "/api/v3/withdrawals", None, Some(json!({"currency":"USDT","toAddress":"x","amount":"1"}))),
        ),
        (
            "bitget",
            req("POST", "/api/v2/spot/wallet/withdrawal", None, Some(json!({"coin":"USDT","address":"x","size":"1"}))),
        ),
        (
            "gate",
            req(
                "POST",
                "/api/v4/withdrawals",
                None,
                Some(json!({"currency":"USDT","address":"x","amount":"1","to":"y"})),
            ),
        ),
        ("deribit", req("GET", "/api/v2/private/add_to_address_book", Some("currency=BTC&address=x"), None)),
        (
            "coinbase",
            req(
                "POST",
                "/v2/accounts/a/transactions",
                None,
                Some(json!({"type":"request","to":"x","amount":"1","currency":"BTC"})),
            ),
        ),
    ];
    for (kind, r) in refused {
        assert!(by_kind(kind).unwrap().withdrawal(&r).is_err(), "{kind} {} was read", r.path);
    }
}

#[test]
fn every_withdraw_class_endpoint_is_read_or_refused_never_guessed() {
    // A withdraw-class call with nothing in it: either it moves nothing
    // (history, quotas, cancellations) or reading it fails.
    let mut movers = 0;
    for ex in registry() {
        for e in ex.catalog().iter().filter(|e| e.class == Class::Withdraw) {
            let path = e.path.replace("{}", "x1");
            let r = CanonicalRequest::parse(e.method.as_str(), &path, None, None, b"").unwrap();
            match ex.withdrawal(&r) {
                Ok(None) => {}
                Ok(Some(w)) => panic!("{} {path}: an empty request read as {w:?}", ex.kind()),
                Err(_) => movers += 1,
            }
        }
    }
    assert!(movers >= 15, "only {movers} withdraw endpoints are fund movers");
}

fn parse(kind: &str, answer: serde_json::Value, api_key: &str) -> KeyInfo {
    let call = by_kind(kind).unwrap().key_info(&creds(api_key)).unwrap_or_else(|| panic!("{kind}: no key info"));
    (call.parse)(&answer, api_key).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn creds(key: &str) -> Credentials {
    Credentials::from_fields(|f| match f {
        "api_key" => Some(key.to_string()),
        "api_secret" => Some("c2VjcmV0".to_string()),
        "passphrase" => Some("p".to_string()),
        _ => None,
    })
    .unwrap()
}

/// The exchanges' own documented examples (see each module for the source).
#[test]
fn key_information_reads_each_exchanges_documented_answer() {
    let binance = parse(
        "binance",
        json!({"ipRestrict":false,"createTime":1698645219000_i64,"enableInternalTransfer":false,"enableFutures":false,
               "enablePortfolioMarginTrading":true,"enableVanillaOptions":false,"permitsUniversalTransfer":false,
               "enableReading":true,"enableSpotAndMarginTrading":false,"enableWithdrawals":false,"enableMargin":false}),
        "k",
    );
    assert_eq!(
        (binance.withdraw, binance.transfer, binance.margin, binance.ip_restricted),
        (Some(false), Some(false), Some(false), Some(false))
    );

    let bybit = parse(
        "bybit",
        json!({"retCode":0,"retMsg":"","result":{"id":"2208369","readOnly":1,"permissions":{
            "ContractTrade":["Order","Position"],"Spot":["SpotTrade"],"Wallet":["AccountTransfer","SubMemberTransfer"],
            "Options":[],"Derivatives":["DerivativesTrade"]},"ips":["18.181.170.164","13.212.45.47"],"deadlineDay":-2,
            "expiredAt":"1970-01-01T00:00:00Z"}}),
        "k",
    );
    assert_eq!((bybit.withdraw, bybit.transfer, bybit.trade), (Some(false), Some(true), Some(false)));
    assert_eq!(bybit.ips, ["18.181.170.164", "13.212.45.47"]);
    assert_eq!(bybit.expires_ms, None, "the 1970 sentinel is no expiry");
    let unbound =
        parse("bybit", json!({"result":{"readOnly":0,"permissions":{"Wallet":["Withdraw"]},"ips":["*"]}}), "k");
    assert_eq!((unbound.withdraw, unbound.ip_restricted), (Some(true), Some(false)));

    let okx = parse(
        "okx",
        json!({"code":"0","data":[{"perm":"read_only,withdraw,trade","ip":"","label":"v5 test"}],"msg":""}),
        "k",
    );
    assert_eq!((okx.withdraw, okx.trade, okx.ip_restricted), (Some(true), Some(true), Some(false)));
    let bound =
        parse("okx", json!({"code":"0","data":[{"perm":"read_only,trade","ip":"117.37.203.58,117.37.203.57"}]}), "k");
    assert_eq!(bound.ips, ["117.37.203.58", "117.37.203.57"]);

    let kraken = parse(
        "kraken",
        json!({"error":[],"result":{"apiKeyName":"my-api-key","permissions":["query-funds","withdraw-funds","query-open-trades","modify-trades"],
               "validUntil":"0","ipAllowlist":[]}}),
        "k",
    );
    assert_eq!(
        (kraken.withdraw, kraken.trade, kraken.ip_restricted, kraken.expires_ms),
        (Some(true), Some(true), Some(false), None)
    );

    let kucoin = parse(
        "kucoin",
        json!({"code":"200000","data":{"remark":"account1","apiKey":"6705","apiVersion":3,
               "permission":"General,Futures,Spot,Earn,InnerTransfer,Transfer,Margin","ipWhitelist":"203.**.154,103.**.34"}}),
        "k",
    );
    assert_eq!((kucoin.withdraw, kucoin.transfer, kucoin.ip_restricted), (Some(true), Some(true), Some(true)));
    assert!(kucoin.ips.is_empty(), "masked addresses are not compared");

    let bitget = parse(
        "bitget",
        json!({"code":"00000","data":{"userId":"1","ips":"127.0.0.1","authorities":["stor","stow","wtow","wwow"]}}),
        "k",
    );
    assert_eq!((bitget.withdraw, bitget.transfer, bitget.trade), (Some(true), Some(true), Some(true)));
    assert_eq!(bitget.ips, ["127.0.0.1"]);

    let gate = parse("gate", json!({"user_id":10406147,"ip_whitelist":[],"currency_pairs":[],"key":{"mode":1}}), "k");
    assert_eq!((gate.withdraw, gate.ip_restricted), (None, Some(false)));

    let deribit = parse(
        "deribit",
        json!({"jsonrpc":"2.0","result":[
            {"max_scope":"account:read block_trade:read trade:read_write wallet:read","client_id":"TiA4AyLPq3","enabled":false},
            {"max_scope":"account:read_write trade:read_write wallet:read_write","client_id":"aD-KFx-H","enabled":true}]}),
        "aD-KFx-H",
    );
    assert_eq!((deribit.withdraw, deribit.trade), (Some(true), Some(true)));
    let other = parse(
        "deribit",
        json!({"result":[{"max_scope":"account:read trade:read_write wallet:read","client_id":"TiA4AyLPq3"}]}),
        "TiA4AyLPq3",
    );
    assert_eq!(other.withdraw, Some(false));

    let coinbase = parse(
        "coinbase",
        json!({"can_view":true,"can_trade":true,"can_transfer":false,"portfolio_uuid":"8bfc20d7"}),
        "k",
    );
    assert_eq!((coinbase.withdraw, coinbase.trade, coinbase.ip_restricted), (Some(false), Some(true), None));
}

#[test]
fn cancel_all_plans_list_then_cancel_where_a_symbol_is_needed() {
    let binance = by_kind("binance").unwrap().cancel_all();
    let Sweep::PerSymbol { list, path, field, market, call } = &binance[0] else {
        panic!("binance spot is per symbol")
    };
    assert_eq!((list.path.as_str(), *market), ("/api/v3/openOrders", "/api/"));
    let symbols = keyward_exchanges::sweep::distinct(
        br#"[{"symbol":"BTCUSDT","orderId":1},{"symbol":"ETHUSDT"},{"symbol":"BTCUSDT"}]"#,
        path,
        field,
    )
    .unwrap();
    assert_eq!(symbols, ["BTCUSDT", "ETHUSDT"]);
    let c = call("BTCUSDT");
    assert_eq!(
        (c.method.as_str(), c.path.as_str(), c.param("symbol").unwrap()),
        ("DELETE", "/api/v3/openOrders", "BTCUSDT".into())
    );

    let okx = by_kind("okx").unwrap().cancel_all();
    let Sweep::Listed { then, .. } = &okx[0] else { panic!() };
    let orders: Vec<_> = (0..45).map(|i| json!({"instId":"BTC-USDT","ordId":i.to_string()})).collect();
    let calls = then(json!({"code":"0","data":orders}).to_string().as_bytes()).unwrap();
    assert_eq!(calls.len(), 3, "20 a batch");
    assert_eq!(calls[0].path, "/api/v5/trade/cancel-batch-orders");

    let coinbase = by_kind("coinbase").unwrap().cancel_all();
    let Sweep::Listed { then, .. } = &coinbase[0] else { panic!() };
    let calls = then(br#"{"orders":[{"order_id":"a"},{"order_id":"b"}],"has_next":false}"#).unwrap();
    assert_eq!(calls[0].param("order_ids").unwrap(), r#"["a","b"]"#);

    for ex in registry() {
        assert!(!ex.cancel_all().is_empty(), "{} cancels nothing", ex.kind());
        assert!(ex.key_info(&creds("k")).is_some(), "{} has no key information call", ex.kind());
    }
}

#[test]
fn dead_man_timers_where_a_rest_call_arms_one() {
    let with: Vec<_> = registry().iter().filter(|e| e.dead_man().is_some()).map(|e| e.kind()).collect();
    assert_eq!(with, ["binance", "gate", "htx", "kraken", "kucoin", "okx"]);
    let okx = by_kind("okx").unwrap().dead_man().unwrap();
    let Sweep::Call(r) = &(okx.arm)(60)[0] else { panic!() };
    assert_eq!((r.path.as_str(), r.param("timeOut").unwrap()), ("/api/v5/trade/cancel-all-after", "60".to_string()));
    let Sweep::Call(off) = &(by_kind("kucoin").unwrap().dead_man().unwrap().arm)(0)[0] else { panic!() };
    assert_eq!(off.param("timeout").unwrap(), "-1", "KuCoin disarms with -1");
    let Sweep::PerSymbol { call, market, .. } = &(by_kind("binance").unwrap().dead_man().unwrap().arm)(30)[0] else {
        panic!()
    };
    assert_eq!((call("BTCUSDT").param("countdownTime").unwrap(), *market), ("30000".to_string(), "/fapi/"));
    // Every dead-man call is a catalogued cancel (a bot may make it too).
    for ex in registry() {
        if let Some(d) = ex.dead_man() {
            for step in (d.arm)(d.min_s) {
                if let Sweep::Call(r) = step {
                    assert_eq!(ex.classify(&r), Some(Class::Cancel), "{} {}", ex.kind(), r.path);
                }
            }
        }
    }
}
