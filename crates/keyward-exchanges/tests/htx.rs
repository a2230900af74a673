//! HTX's signer against the official Go SDK's known answers
//! (HuobiRDCenter/huobi_Golang, internal/requestbuilder/*_test.go; HTX's own
//! docs example publishes no secret), the host in the signed text, and the
//! readings guards and withdrawal controls rely on. ccxt's output is in
//! tests/ccxt_vectors.rs.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::orders::Side;
use keyward_exchanges::{CanonicalRequest, Class, Credentials, Exchange, SignContext, Sweep, htx::Htx};
use serde_json::{Value, json};

fn creds(key: &str, secret: &str) -> Credentials {
    Credentials::from_fields(|f| match f {
        "api_key" => Some(key.to_string()),
        "api_secret" => Some(secret.to_string()),
        _ => None,
    })
    .unwrap()
}

fn at(ms: i64) -> SignContext {
    SignContext { timestamp_ms: ms, nonce: 0, recv_window_ms: 0 }
}

fn get(path: &str, query: &str) -> CanonicalRequest {
    CanonicalRequest::parse("GET", path, Some(query), None, b"").unwrap()
}

fn post(path: &str, body: Value) -> CanonicalRequest {
    CanonicalRequest::parse("POST", path, None, Some("application/json"), body.to_string().as_bytes()).unwrap()
}

/// HuobiRDCenter/huobi_Golang internal/requestbuilder/privateurlbuilder_test.go
/// (2019-11-21T10:00:00Z, key "access", secret "secret", host api.huobi.pro).
#[test]
fn the_official_sdks_known_answers() {
    let c = creds("access", "secret");
    let out = Htx.sign(&get("/v1/account/accounts", ""), &c, &at(1_574_330_400_000)).unwrap();
    assert_eq!(
        out.target(),
        "/v1/account/accounts?AccessKeyId=access&SignatureMethod=HmacSHA256&SignatureVersion=2\
         &Timestamp=2019-11-21T10%3A00%3A00&Signature=rWnLcMt3XBAsmXoNHtTQVpvMbH%2FcE1PXFwQAGeYwt3s%3D"
    );
    // The request's own parameters are sorted in with the auth ones, whatever their order.
    let out = Htx.sign(&get("/v1/account/history", "currency=btc&account-id=123"), &c, &at(1_574_330_400_999)).unwrap();
    assert_eq!(
        out.target(),
        "/v1/account/history?AccessKeyId=access&SignatureMethod=HmacSHA256&SignatureVersion=2\
         &Timestamp=2019-11-21T10%3A00%3A00&account-id=123&currency=btc\
         &Signature=SGZYJ9Ub%2FhFerEBbSWsCxl8Djk%2BLRBgEZOB4fLc4T9Q%3D",
        "the timestamp is truncated to the second"
    );
    assert!(out.headers.is_empty() && out.body.is_none());
}

#[test]
fn the_host_is_signed() {
    let (c, r) = (creds("k", "s"), get("/v1/account/accounts", ""));
    let ctx = at(1_700_000_000_123);
    let default = Htx.sign(&r, &c, &ctx).unwrap();
    assert_eq!(Htx.sign_for("api.huobi.pro", &r, &c, &ctx).unwrap().query, default.query);
    assert_eq!(Htx.sign_for("API.HUOBI.PRO", &r, &c, &ctx).unwrap().query, default.query, "lower-cased");
    let local = Htx.sign_for("127.0.0.1", &r, &c, &ctx).unwrap();
    // research/htx/known_answers.py, "info for the fake exchange".
    assert!(local.query.ends_with("&Signature=7NrCal58bSZzStU3IDTrBvPLsZ1IlMWgsQqmMKjai1A%3D"), "{}", local.query);
}

#[test]
fn what_htx_would_not_read_as_signed_is_refused() {
    let (c, ctx) = (creds("k", "s"), at(0));
    let query_on_post = CanonicalRequest::parse(
        "POST",
        "/v1/order/orders/place",
        Some("symbol=btcusdt"),
        Some("application/json"),
        br#"{"amount":"1"}"#,
    )
    .unwrap();
    assert!(Htx.sign(&query_on_post, &c, &ctx).is_err(), "HTX reads a POST's body, not its query");
    let form = CanonicalRequest::parse(
        "POST",
        "/v1/order/orders/place",
        None,
        Some("application/x-www-form-urlencoded"),
        b"a=1",
    )
    .unwrap();
    assert!(Htx.sign(&form, &c, &ctx).is_err());
    assert!(Htx.sign(&CanonicalRequest::parse("DELETE", "/v1/x", None, None, b"").unwrap(), &c, &ctx).is_err());
    assert!(Htx.sign(&get("/v1/account/accounts", "Timestamp=2020-01-01T00%3A00%3A00"), &c, &ctx).is_err());
    // A POST without parameters carries `{}` (as ccxt sends it); its body is never signed.
    let empty = CanonicalRequest::parse("POST", "/v1/dw/withdraw-virtual/1/cancel", None, None, b"").unwrap();
    let out = Htx.sign(&empty, &c, &ctx).unwrap();
    assert_eq!(out.body, Some(("application/json".to_string(), b"{}".to_vec())));
    let a = Htx.sign(&post("/v1/order/orders/place", json!({"amount": "1"})), &c, &ctx).unwrap();
    let b = Htx.sign(&post("/v1/order/orders/place", json!({"amount": "1000"})), &c, &ctx).unwrap();
    assert_eq!(a.query, b.query, "the body is not signed: hence signature_binds_request is false");
    assert!(!Htx.signature_binds_request());
}

#[test]
fn orders_as_guards_read_them() {
    let place = |o: Value| Htx.orders(&post("/v1/order/orders/place", o));
    let limit = place(json!({"account-id":"1","symbol":"btcusdt","type":"buy-limit","amount":"0.5","price":"50000",
                             "client-order-id":"a1"}))
    .unwrap();
    assert_eq!((limit[0].qty, limit[0].price), (Some("0.5".parse().unwrap()), Some("50000".parse().unwrap())));
    assert_eq!((limit[0].side, limit[0].client_order_id.as_deref()), (Some(Side::Buy), Some("a1")));
    let buy = place(json!({"symbol":"btcusdt","type":"buy-market","amount":"25"})).unwrap();
    assert_eq!((buy[0].qty, buy[0].quote_qty), (None, Some("25".parse().unwrap())), "a market buy spends quote");
    let sell = place(json!({"symbol":"btcusdt","type":"sell-market","amount":"0.1"})).unwrap();
    assert_eq!((sell[0].qty, sell[0].quote_qty), (Some("0.1".parse().unwrap()), None));
    let stop = place(json!({"symbol":"btcusdt","type":"sell-stop-limit","amount":"1","price":"49000",
                            "stop-price":"49500","operator":"lte"}))
    .unwrap();
    assert_eq!(stop.len(), 2, "the trigger is a price of its own");
    for bad in [
        json!({"symbol":"btcusdt","type":"sell-market","amount":"1","price":"1"}),
        json!({"symbol":"btcusdt","type":"buy-limit","amount":"1"}),
        json!({"symbol":"btcusdt","type":"buy-limit-grid","amount":"1","price":"1"}),
        json!({"symbol":"btcusdt","type":"BUY-limit","amount":"1","price":"1"}),
        json!({"symbol":"btcusdt","type":"buy-limit","amount":"1e3","price":"1"}),
        json!({"type":"buy-limit","amount":"1","price":"1"}),
    ] {
        assert!(place(bad.clone()).is_err(), "{bad}");
    }
    assert!(place(json!([{"symbol":"btcusdt","type":"buy-limit","amount":"1","price":"1"}])).is_err(), "a list");
    let batch = Htx
        .orders(&post(
            "/v1/order/batch-orders",
            json!([{"symbol":"btcusdt","type":"sell-limit","amount":"0.001","price":"60000"},
                   {"symbol":"ethusdt","type":"buy-market","amount":"25"}]),
        ))
        .unwrap();
    assert_eq!(batch.iter().map(|o| o.symbol.as_str()).collect::<Vec<_>>(), ["btcusdt", "ethusdt"]);
    let algo = |o: Value| Htx.orders(&post("/v2/algo-orders", o));
    let a = algo(json!({"accountId":1,"symbol":"btcusdt","orderSide":"buy","orderType":"market","orderValue":"100",
                        "stopPrice":"51000","clientOrderId":"c"}))
    .unwrap();
    assert_eq!((a[0].quote_qty, a.len()), (Some("100".parse().unwrap()), 2));
    assert!(algo(json!({"symbol":"btcusdt","orderSide":"buy","orderType":"market","orderSize":"1"})).is_err());
}

#[test]
fn classes_that_depend_on_parameters() {
    let classify = |r: &CanonicalRequest| Htx.classify(r).unwrap();
    assert_eq!(classify(&get("/v1/query/deposit-withdraw", "type=deposit&currency=usdt")), Class::Read);
    assert_eq!(classify(&get("/v1/query/deposit-withdraw", "type=withdraw")), Class::Withdraw);
    let order = |source: Value| post("/v1/order/orders/place", json!({"symbol":"btcusdt","source":source}));
    assert_eq!(classify(&order(json!("spot-api"))), Class::Trade);
    assert_eq!(classify(&order(json!("super-margin-api"))), Class::Trade);
    assert_eq!(classify(&order(json!("auto-borrow"))), Class::Borrow, "an unknown source borrows");
    assert_eq!(classify(&order(json!(1))), Class::Borrow);
    assert_eq!(classify(&post("/v1/order/auto/place", json!({}))), Class::Borrow);
    assert_eq!(classify(&get("/v2/user/api-key", "")), Class::Admin);
    assert_eq!(classify(&get("/v1/account/accounts/123", "")), Class::Admin, "a sub-user's accounts");
    assert_eq!(classify(&get("/v1/account/accounts/123/balance", "")), Class::Read);
}

#[test]
fn withdrawals_read_strictly() {
    let w = |body: Value| Htx.withdrawal(&post("/v1/dw/withdraw/api/create", body));
    let plain =
        w(json!({"address":"0xde70","amount":"0.05","currency":"eth","fee":"0.01","chain":"eth"})).unwrap().unwrap();
    assert_eq!((plain.asset.as_str(), plain.amount.to_string()), ("ETH", "0.06".to_string()), "the fee leaves too");
    assert_eq!((plain.address.as_str(), plain.network.as_deref()), ("0xde70", Some("eth")));
    let uid = w(json!({"address":"UID:1234567","amount":"1","currency":"usdt","fee":"0","chain":"t397342",
                       "addr-tag":"1234567"}))
    .unwrap()
    .unwrap();
    assert_eq!((uid.address.as_str(), uid.network.as_deref(), uid.memo), ("1234567", Some("uid"), None));
    let bch = w(json!({"address":"bitcoincash:qp3w","amount":"1","currency":"bch","fee":"0.0001"})).unwrap().unwrap();
    assert_eq!(bch.address, "bitcoincash:qp3w");
    for bad in [
        json!({"address":"UID:1","amount":"1","currency":"usdt","fee":"0","addr-tag":"2"}),
        json!({"address":"x","amount":"1","currency":"usdt","fee":"-1"}),
        json!({"address":"x","amount":"1","currency":"usdt","to":"y"}),
        json!({"address":"x","amount":"1e2","currency":"usdt"}),
    ] {
        assert!(w(bad.clone()).is_err(), "{bad}");
    }
    assert_eq!(Htx.withdrawal(&post("/v1/dw/withdraw-virtual/1000/cancel", json!({}))).unwrap(), None);
    assert_eq!(Htx.withdrawal(&get("/v2/account/withdraw/quota", "currency=btc")).unwrap(), None);
}

/// HTX-DOCS21 "API key query" example (the key is the account's).
#[test]
fn key_information_after_the_uid() {
    let call = Htx.key_info(&creds("4ba5cdf2-4a92c5da-718ba144-dbuqg6hkte", "s")).unwrap();
    let first = call.first.as_ref().unwrap();
    assert_eq!(first.request.path, "/v2/user/uid");
    assert_eq!(
        (first.params)(&json!({"code":200,"data":63628520})).unwrap(),
        [("uid".to_string(), "63628520".to_string())]
    );
    assert!((first.params)(&json!({"code":200,"data":"x"})).is_err());
    let answer = json!({"code":200,"message":"success","data":[{"accessKey":"4ba5cdf2-4a92c5da-718ba144-dbuqg6hkte",
        "status":"normal","note":"62924133","permission":"readOnly,trade","ipAddresses":"1.1.1.1,1.1.1.2",
        "validDays":-1,"createTime":1591348751000_i64,"updateTime":1591348751000_i64}]});
    let info = (call.parse)(&answer, "4ba5cdf2-4a92c5da-718ba144-dbuqg6hkte").unwrap();
    assert_eq!((info.withdraw, info.trade, info.ip_restricted), (Some(false), Some(true), Some(true)));
    assert_eq!(info.ips, ["1.1.1.1", "1.1.1.2"]);
    assert!((call.parse)(&answer, "another-key").is_err());
    assert!(call.answer.accepted(200, br#"{"code":200,"data":[]}"#).is_ok());
    assert!(call.answer.accepted(200, br#"{"status":"ok","data":[]}"#).is_ok());
    assert!(
        call.answer.accepted(200, br#"{"status":"error","err-code":"api-signature-not-valid","err-msg":"x"}"#).is_err()
    );
    assert!(call.answer.accepted(200, br#"{"code":1003,"message":"invalid signature"}"#).is_err());
}

#[test]
fn cancel_all_calls_again_while_orders_remain() {
    let plan = Htx.cancel_all();
    let Sweep::Listed { then, .. } = &plan[1] else { panic!("the second step is the repeated cancellation") };
    let more: &[u8] = br#"{"status":"ok","data":{"success-count":100,"failed-count":0,"next-id":5454600}}"#;
    assert_eq!(then(more).unwrap().len(), 1);
    let done: &[u8] = br#"{"status":"ok","data":{"success-count":2,"failed-count":0,"next-id":-1}}"#;
    assert!(then(done).unwrap().is_empty());
    let stuck: &[u8] = br#"{"status":"ok","data":{"success-count":0,"failed-count":3,"next-id":77}}"#;
    assert!(then(stuck).unwrap().is_empty(), "nothing cancelled: no loop");
    let Sweep::Listed { then, .. } = &plan[2] else { panic!() };
    let algos: Vec<Value> = (0..120).map(|i| json!({"clientOrderId": format!("c{i}")})).collect();
    assert_eq!(then(json!({"code":200,"data":algos}).to_string().as_bytes()).unwrap().len(), 3, "50 a call");
    let armed = (Htx.dead_man().unwrap().arm)(60);
    let Sweep::Call(r) = &armed[0] else { panic!() };
    assert_eq!(r.body_text(), r#"{"timeout":60}"#);
}

#[test]
fn the_ticker_reads_numbers_in_either_form() {
    assert_eq!(
        Htx.parse_ticker(br#"{"status":"ok","tick":{"close":9146.86,"vol":2.3822168242201668E8}}"#),
        Some("9146.86".parse().unwrap())
    );
    assert_eq!(Htx.parse_ticker(br#"{"status":"ok","tick":{"close":8.21E-6}}"#), Some("0.00000821".parse().unwrap()));
    assert_eq!(Htx.parse_ticker(br#"{"status":"ok","tick":{"close":0}}"#), None);
}
