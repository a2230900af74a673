//! Order guards' readings for KuCoin, Bitget, Gate, Deribit and Coinbase:
//! the bodies ccxt 4.5.90 sends (see each case) and the exchanges' own
//! documented fields, read into orders; and what cannot be read strictly,
//! refused. Units matter most: a market buy sized in the quote currency
//! (Bitget, Gate, KuCoin `funds`, Coinbase `quote_size`), Deribit's inverse
//! instruments counted in US dollars, Gate's futures in contracts.

#![allow(clippy::unwrap_used)]

use keyward_exchanges::orders::Side;
use keyward_exchanges::{CanonicalRequest, by_kind};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn post(path: &str, body: Value) -> CanonicalRequest {
    CanonicalRequest::parse("POST", path, None, Some("application/json"), body.to_string().as_bytes()).unwrap()
}

fn get(path: &str, query: &str) -> CanonicalRequest {
    CanonicalRequest::parse("GET", path, Some(query), None, b"").unwrap()
}

fn d(s: &str) -> Option<Decimal> {
    Some(s.parse().unwrap())
}

/// (symbol, side, qty, quote_qty, price) of each order read.
type Read = (String, Option<Side>, Option<Decimal>, Option<Decimal>, Option<Decimal>);

fn read(kind: &str, req: &CanonicalRequest) -> Vec<Read> {
    let orders = by_kind(kind).unwrap().orders(req).unwrap_or_else(|e| panic!("{kind} {}: {}", req.path, e.0));
    orders.into_iter().map(|o| (o.symbol, o.side, o.qty, o.quote_qty, o.price)).collect()
}

fn refused(kind: &str, req: &CanonicalRequest) -> String {
    match by_kind(kind).unwrap().orders(req) {
        Err(e) => e.0,
        Ok(o) => panic!("{kind} {} was read: {o:?}", req.path),
    }
}

fn o(symbol: &str, side: Option<Side>, qty: Option<Decimal>, quote: Option<Decimal>, price: Option<Decimal>) -> Read {
    (symbol.to_string(), side, qty, quote, price)
}

const BUY: Option<Side> = Some(Side::Buy);
const SELL: Option<Side> = Some(Side::Sell);

#[test]
fn kucoin_reads_spot_hf_margin_batches_and_amendments() {
    let k = "kucoin";
    let limit = json!({"clientOid":"a","side":"buy","symbol":"BTC-USDT","type":"limit","size":"0.01","price":"50000"});
    for path in ["/api/v1/orders", "/api/v1/hf/orders", "/api/v1/hf/orders/sync", "/api/v3/hf/margin/order"] {
        assert_eq!(read(k, &post(path, limit.clone())), [o("BTC-USDT", BUY, d("0.01"), None, d("50000"))], "{path}");
    }
    // A market buy by funds is in the quote currency; by size in the base.
    let funds = json!({"clientOid":"b","side":"buy","symbol":"BTC-USDT","type":"market","funds":"100"});
    assert_eq!(read(k, &post("/api/v1/hf/orders", funds)), [o("BTC-USDT", BUY, None, d("100"), None)]);
    let size = json!({"clientOid":"c","side":"buy","symbol":"BTC-USDT","type":"market","size":"0.002"});
    assert_eq!(read(k, &post("/api/v1/hf/orders", size)), [o("BTC-USDT", BUY, d("0.002"), None, None)]);
    // A stop order is also an order at its stop price.
    let stop = json!({"clientOid":"d","side":"sell","symbol":"BTC-USDT","type":"limit","size":"0.01","price":"44000","stop":"loss","stopPrice":"45000"});
    assert_eq!(read(k, &post("/api/v1/orders", stop)).len(), 2);
    // Classic batch: the top-level symbol; an item naming another is refused.
    let batch = json!({"symbol":"BTC-USDT","orderList":[
        {"clientOid":"1","side":"buy","symbol":"BTC-USDT","type":"limit","size":"0.01","price":"50000"},
        {"clientOid":"2","side":"sell","type":"limit","size":"0.02","price":"60000"}]});
    assert_eq!(read(k, &post("/api/v1/orders/multi", batch)).len(), 2);
    let mixed = json!({"symbol":"BTC-USDT","orderList":[
        {"clientOid":"1","side":"buy","symbol":"ETH-USDT","type":"limit","size":"1","price":"3000"}]});
    assert!(refused(k, &post("/api/v1/orders/multi", mixed)).contains("ETH-USDT"));
    // HF batch: each item's symbol.
    let hf = json!({"orderList":[
        {"side":"buy","symbol":"BTC-USDT","type":"limit","size":"0.01","price":"50000"},
        {"side":"buy","symbol":"ETH-USDT","type":"limit","size":"1","price":"3000"}]});
    let symbols: Vec<String> = read(k, &post("/api/v1/hf/orders/multi", hf)).into_iter().map(|r| r.0).collect();
    assert_eq!(symbols, ["BTC-USDT", "ETH-USDT"]);
    let alter = json!({"symbol":"BTC-USDT","orderId":"123","newSize":"0.02","newPrice":"51000"});
    assert_eq!(read(k, &post("/api/v1/hf/orders/alter", alter)), [o("BTC-USDT", None, d("0.02"), None, d("51000"))]);

    for (why, body) in [
        ("both sizes", json!({"side":"buy","symbol":"BTC-USDT","type":"market","size":"1","funds":"100"})),
        ("no size", json!({"side":"buy","symbol":"BTC-USDT","type":"limit","price":"1"})),
        ("market with a price", json!({"side":"buy","symbol":"BTC-USDT","type":"market","size":"1","price":"1"})),
        ("limit without one", json!({"side":"buy","symbol":"BTC-USDT","type":"limit","size":"1"})),
        ("unknown type", json!({"side":"buy","symbol":"BTC-USDT","type":"stop","size":"1"})),
        ("no side", json!({"symbol":"BTC-USDT","type":"limit","size":"1","price":"1"})),
        // ccxt passes these objects through; keyward does not read them.
        (
            "nested",
            json!({"side":"buy","symbol":"BTC-USDT","type":"limit","size":"1","price":"1","stopLoss":{"triggerPrice":1}}),
        ),
        ("a sign", json!({"side":"buy","symbol":"BTC-USDT","type":"limit","size":"-1","price":"1"})),
    ] {
        assert!(by_kind(k).unwrap().orders(&post("/api/v1/hf/orders", body)).is_err(), "{why}");
    }
    let t = by_kind(k).unwrap().ticker("/api/v1/hf/orders", "BTC-USDT", &get("/x", "")).unwrap();
    assert_eq!((t.path.as_str(), t.query_string()), ("/api/v1/market/orderbook/level1", "symbol=BTC-USDT".into()));
    let answer = br#"{"code":"200000","data":{"time":1,"sequence":"1","price":"67269","size":"0.1"}}"#;
    assert_eq!(by_kind(k).unwrap().parse_ticker(answer), d("67269"));
}

#[test]
fn bitget_reads_quote_market_buys_batches_hedge_closes_and_amendments() {
    let b = "bitget";
    let spot = "/api/v2/spot/trade/place-order";
    let limit =
        json!({"symbol":"BTCUSDT","orderType":"limit","price":"50000","force":"GTC","side":"buy","size":"0.01"});
    assert_eq!(read(b, &post(spot, limit)), [o("BTCUSDT", BUY, d("0.01"), None, d("50000"))]);
    // A spot market buy's size is the quote amount; a market sell's the base.
    let buy = json!({"symbol":"BTCUSDT","orderType":"market","force":"GTC","side":"buy","size":"100"});
    assert_eq!(read(b, &post(spot, buy)), [o("BTCUSDT", BUY, None, d("100"), None)]);
    let sell = json!({"symbol":"BTCUSDT","orderType":"market","force":"GTC","side":"sell","size":"0.01"});
    assert_eq!(read(b, &post(spot, sell)), [o("BTCUSDT", SELL, d("0.01"), None, None)]);
    // Take-profit and stop-loss close the order: the other side, its size.
    let tpsl = json!({"symbol":"BTCUSDT","orderType":"limit","price":"50000","side":"buy","size":"0.01",
                      "presetTakeProfitPrice":"60000","presetStopLossPrice":"45000"});
    let r = read(b, &post(spot, tpsl));
    assert_eq!(
        &r[1..],
        [o("BTCUSDT", SELL, d("0.01"), None, d("60000")), o("BTCUSDT", SELL, d("0.01"), None, d("45000"))]
    );

    // A batch trades its top-level symbol unless batchMode is multiple.
    let batch = |mode: Option<&str>, item: &str| {
        let mut body = json!({"symbol":"BTCUSDT","orderList":[
            {"symbol":item,"orderType":"limit","price":"50000","force":"GTC","side":"buy","size":"0.01"}]});
        if let Some(m) = mode {
            body["batchMode"] = json!(m);
        }
        post("/api/v2/spot/trade/batch-orders", body)
    };
    assert_eq!(read(b, &batch(None, "BTCUSDT"))[0].0, "BTCUSDT");
    assert!(refused(b, &batch(None, "ETHUSDT")).contains("ETHUSDT"));
    assert_eq!(read(b, &batch(Some("multiple"), "ETHUSDT"))[0].0, "ETHUSDT");
    refused(b, &batch(Some("other"), "BTCUSDT"));

    // Futures: base sizes; in hedge mode `close` trades against `side` (ccxt's "Close").
    let mix = "/api/v2/mix/order/place-order";
    let close = json!({"symbol":"BTCUSDT","orderType":"market","force":"GTC","marginCoin":"USDT","size":"0.01",
                       "productType":"USDT-FUTURES","marginMode":"crossed","tradeSide":"Close","side":"buy"});
    assert_eq!(read(b, &post(mix, close)), [o("BTCUSDT", SELL, d("0.01"), None, None)]);
    let batch = json!({"symbol":"BTCUSDT","productType":"USDT-FUTURES","marginCoin":"USDT","marginMode":"crossed","orderList":[
        {"symbol":"BTCUSDT","orderType":"limit","price":"50000","size":"1","side":"buy"},
        {"orderType":"limit","price":"60000","size":"1","side":"sell","presetStopLossPrice":"65000"}]});
    assert_eq!(read(b, &post("/api/v2/mix/order/batch-place-order", batch)).len(), 3);
    let modify = json!({"orderId":"123","symbol":"BTCUSDT","productType":"USDT-FUTURES","newSize":"2","newPrice":"51000",
                        "newClientOid":"x","newPresetStopLossPrice":"0"});
    assert_eq!(
        read(b, &post("/api/v2/mix/order/modify-order", modify)),
        [o("BTCUSDT", None, d("2"), None, d("51000"))],
        "a 0 deletes the stop-loss: no price to hold"
    );
    let replace = json!({"orderId":"123","size":"0.02","orderType":"limit","price":"51000","symbol":"BTCUSDT"});
    assert_eq!(read(b, &post("/api/v2/spot/trade/cancel-replace-order", replace))[0].2, d("0.02"));
    let lev = post(
        "/api/v2/mix/account/set-leverage",
        json!({"symbol":"BTCUSDT","productType":"USDT-FUTURES","leverage":"5"}),
    );
    assert!(by_kind(b).unwrap().orders(&lev).unwrap()[0].symbol_only);

    refused(b, &post(spot, json!({"symbol":"BTCUSDT","orderType":"market","side":"buy","size":"1","price":"1"})));
    refused(b, &post(spot, json!({"symbol":"BTCUSDT","orderType":"limit","side":"buy","size":"1"})));
    refused(
        b,
        &post(
            mix,
            json!({"symbol":"BTCUSDT","orderType":"limit","price":"1","side":"buy","size":"1","tradeSide":"flip"}),
        ),
    );

    // The reference price: spot's ticker, or the futures product's.
    let ex = by_kind(b).unwrap();
    let t = ex.ticker(mix, "BTCUSDT", &post(mix, json!({"productType":"USDT-FUTURES"}))).unwrap();
    assert_eq!(
        (t.path.as_str(), t.query_string()),
        ("/api/v2/mix/market/ticker", "symbol=BTCUSDT&productType=USDT-FUTURES".into())
    );
    let t = ex.ticker(spot, "BTCUSDT", &post(spot, json!({}))).unwrap();
    assert_eq!(t.path, "/api/v2/spot/market/tickers");
    assert_eq!(ex.parse_ticker(br#"{"code":"00000","data":[{"symbol":"BTCUSDT","lastPr":"34413.1"}]}"#), d("34413.1"));
}

#[test]
fn gate_reads_spot_units_and_futures_signs() {
    let g = "gate";
    let spot = "/api/v4/spot/orders";
    let limit = json!({"currency_pair":"BTC_USDT","type":"limit","account":"spot","side":"buy","amount":"0.01","price":"50000"});
    assert_eq!(read(g, &post(spot, limit)), [o("BTC_USDT", BUY, d("0.01"), None, d("50000"))]);
    let buy = json!({"currency_pair":"BTC_USDT","type":"market","account":"spot","side":"buy","amount":"100","time_in_force":"ioc"});
    assert_eq!(read(g, &post(spot, buy)), [o("BTC_USDT", BUY, None, d("100"), None)]);
    let sell = json!({"currency_pair":"BTC_USDT","type":"market","side":"sell","amount":"0.01","time_in_force":"ioc"});
    assert_eq!(read(g, &post(spot, sell)), [o("BTC_USDT", SELL, d("0.01"), None, None)]);
    let batch = json!([
        {"currency_pair":"BTC_USDT","type":"limit","side":"buy","amount":"0.01","price":"50000","text":"t-1"},
        {"currency_pair":"ETH_USDT","side":"sell","amount":"1","price":"3000","text":"t-2"}]);
    assert_eq!(read(g, &post("/api/v4/spot/batch_orders", batch)).len(), 2);
    // ccxt passes stop-loss objects through; keyward does not read them.
    refused(
        g,
        &post(
            spot,
            json!({"currency_pair":"BTC_USDT","side":"buy","amount":"1","price":"1","stopLoss":{"triggerPrice":1}}),
        ),
    );
    refused(g, &post(spot, json!({"currency_pair":"BTC_USDT","type":"market","side":"buy","amount":"1","price":"1"})));

    // Futures: contracts (no quantity guards can check), the sign is the side, price 0 at market.
    let fut = "/api/v4/futures/usdt/orders";
    assert_eq!(
        read(g, &post(fut, json!({"contract":"BTC_USDT","size":100,"price":"50000"}))),
        [o("BTC_USDT", BUY, None, None, d("50000"))]
    );
    assert_eq!(
        read(g, &post(fut, json!({"contract":"BTC_USDT","size":-1,"price":"0","reduce_only":true,"tif":"ioc"}))),
        [o("BTC_USDT", SELL, None, None, None)]
    );
    let close = by_kind(g)
        .unwrap()
        .orders(&post(fut, json!({"contract":"BTC_USDT","size":0,"price":"0","tif":"ioc","close":true})))
        .unwrap();
    assert!(close[0].symbol_only);
    refused(g, &post(fut, json!({"contract":"BTC_USDT","size":0,"price":"1"})));
    refused(g, &post(fut, json!({"contract":"BTC_USDT","size":"--1","price":"1"})));
    assert!(
        refused(
            g,
            &CanonicalRequest::parse(
                "PUT",
                "/api/v4/futures/usdt/orders/123",
                None,
                Some("application/json"),
                br#"{"size":200,"price":"51000"}"#
            )
            .unwrap()
        )
        .contains("no contract")
    );
    let lev = post("/api/v4/futures/usdt/positions/BTC_USDT/leverage", json!({}));
    assert_eq!(by_kind(g).unwrap().orders(&lev).unwrap()[0].symbol, "BTC_USDT");

    let ex = by_kind(g).unwrap();
    let t = ex.ticker(fut, "BTC_USDT", &post(fut, json!({}))).unwrap();
    assert_eq!((t.path.as_str(), t.query_string()), ("/api/v4/futures/usdt/tickers", "contract=BTC_USDT".into()));
    assert_eq!(ex.ticker(spot, "BTC_USDT", &post(spot, json!({}))).unwrap().path, "/api/v4/spot/tickers");
    assert_eq!(ex.parse_ticker(br#"[{"currency_pair":"BTC_USDT","last":"48600.5"}]"#), d("48600.5"));
}

#[test]
fn deribit_reads_units_by_instrument_and_the_side_from_the_path() {
    let r = "deribit";
    // Linear and spot: the base coin. Inverse: US dollars.
    assert_eq!(
        read(r, &get("/api/v2/private/buy", "instrument_name=BTC_USDC&amount=0.01&type=limit&price=50000")),
        [o("BTC_USDC", BUY, d("0.01"), None, d("50000"))]
    );
    assert_eq!(
        read(r, &get("/api/v2/private/buy", "instrument_name=BTC_USDC-PERPETUAL&amount=0.01&type=limit&price=50000"))
            [0]
        .2,
        d("0.01")
    );
    assert_eq!(
        read(r, &get("/api/v2/private/sell", "instrument_name=BTC-PERPETUAL&amount=500&type=market")),
        [o("BTC-PERPETUAL", SELL, None, d("500"), None)]
    );
    // A stop order is also an order at its trigger price.
    let stop = read(
        r,
        &get(
            "/api/v2/private/sell",
            "instrument_name=BTC-PERPETUAL&amount=100&type=stop_market&trigger_price=45000&trigger=last_price&reduce_only=true",
        ),
    );
    assert_eq!(stop[1], o("BTC-PERPETUAL", SELL, None, d("100"), d("45000")));
    // Contracts are not converted: no quantity guards can check.
    assert_eq!(
        read(r, &get("/api/v2/private/buy", "instrument_name=BTC-PERPETUAL&contracts=10&type=market"))[0].3,
        None
    );
    let close = by_kind(r)
        .unwrap()
        .orders(&get("/api/v2/private/close_position", "instrument_name=BTC-PERPETUAL&type=market"))
        .unwrap();
    assert!(close[0].symbol_only);

    for q in [
        "instrument_name=BTC-27DEC24-50000-C&amount=1&type=limit&price=0.05", // an option
        "instrument_name=BTC-PERPETUAL&amount=10&type=market&price=1",        // market with a price
        "instrument_name=BTC-PERPETUAL&amount=10&type=limit",                 // limit without one
        "instrument_name=BTC-PERPETUAL&amount=10&type=stop_market",           // no trigger
        "instrument_name=BTC-PERPETUAL&type=limit&price=1",                   // no size
        "instrument_name=BTC-PERPETUAL&amount=10&type=limit&price=1&otoco_config=x",
        "instrument_name=BTC-PERPETUAL&amount=10&type=iceberg&price=1",
    ] {
        refused(r, &get("/api/v2/private/buy", q));
    }
    assert!(refused(r, &get("/api/v2/private/edit", "order_id=1&amount=2&price=3")).contains("no instrument"));
    let ex = by_kind(r).unwrap();
    assert_eq!(ex.parse_ticker(br#"{"jsonrpc":"2.0","result":{"last_price":8044.5,"mark_price":8040}}"#), d("8044.5"));
    assert_eq!(
        ex.ticker("/api/v2/private/buy", "BTC-PERPETUAL", &get("/x", "")).unwrap().path,
        "/api/v2/public/ticker"
    );
}

#[test]
fn coinbase_reads_each_order_configuration() {
    let c = "coinbase";
    let create = |config: Value| {
        post(
            "/api/v3/brokerage/orders",
            json!({"client_order_id":"a","product_id":"BTC-USD","side":"BUY","order_configuration":config}),
        )
    };
    assert_eq!(
        read(c, &create(json!({"limit_limit_gtc":{"base_size":"0.01","limit_price":"50000","post_only":false}}))),
        [o("BTC-USD", BUY, d("0.01"), None, d("50000"))]
    );
    assert_eq!(
        read(c, &create(json!({"market_market_ioc":{"quote_size":"100"}}))),
        [o("BTC-USD", BUY, None, d("100"), None)]
    );
    let stop = read(
        c,
        &create(
            json!({"stop_limit_stop_limit_gtc":{"base_size":"0.01","limit_price":"50000","stop_price":"49000","stop_direction":"STOP_DIRECTION_STOP_DOWN"}}),
        ),
    );
    assert_eq!(stop[1], o("BTC-USD", BUY, d("0.01"), None, d("49000")));
    let scaled = read(
        c,
        &create(json!({"scaled_limit_gtc":{"base_size":"0.03","min_price":"49000","max_price":"51000","num_orders":2,
            "orders":[{"base_size":"0.01","limit_price":"49000"},{"base_size":"0.02","limit_price":"51000"}]}})),
    );
    assert_eq!(scaled.len(), 4, "two rungs and the ladder's bounds");
    // An attached bracket closes the order: the other side, its size.
    let mut body = json!({"client_order_id":"a","product_id":"BTC-USD","side":"BUY",
        "order_configuration":{"limit_limit_gtc":{"base_size":"0.01","limit_price":"50000"}},
        "attached_order_configuration":{"trigger_bracket_gtc":{"limit_price":"60000","stop_trigger_price":"45000"}}});
    let r = read(c, &post("/api/v3/brokerage/orders", body.clone()));
    assert_eq!(
        &r[1..],
        [o("BTC-USD", SELL, d("0.01"), None, d("60000")), o("BTC-USD", SELL, d("0.01"), None, d("45000"))]
    );
    let preview = read(
        c,
        &post(
            "/api/v3/brokerage/orders/preview",
            json!({"product_id":"BTC-USD","side":"SELL",
        "order_configuration":{"market_market_ioc":{"base_size":"0.5"}}}),
        ),
    );
    assert_eq!(preview, [o("BTC-USD", SELL, d("0.5"), None, None)]);

    for config in [
        json!({"limit_limit_gtc":{"base_size":"1","quote_size":"1","limit_price":"1"}}),
        json!({"limit_limit_gtc":{"base_size":"1"}}),
        json!({"market_market_ioc":{"base_size":"1","limit_price":"1"}}),
        json!({"limit_limit_gtc":{"base_size":"1","limit_price":"1","Base_Size":"100"}}),
        json!({"limit_limit_gtc":{"base_size":"1","limit_price":"1"},"market_market_ioc":{"base_size":"1"}}),
        json!({"iceberg":{"base_size":"1"}}),
        json!({"stop_limit_stop_limit_gtc":{"base_size":"1","limit_price":"1"}}),
    ] {
        refused(c, &create(config));
    }
    // ccxt passes stopLoss objects through; keyward does not read them.
    body["stopLoss"] = json!({"triggerPrice": 45000});
    refused(c, &post("/api/v3/brokerage/orders", body));
    assert!(
        refused(c, &post("/api/v3/brokerage/orders/edit", json!({"order_id":"1","size":"2","price":"3"})))
            .contains("no product")
    );
    let close = by_kind(c)
        .unwrap()
        .orders(&post(
            "/api/v3/brokerage/orders/close_position",
            json!({"client_order_id":"x","product_id":"BTC-PERP-INTX","size":"1"}),
        ))
        .unwrap();
    assert!(close[0].symbol_only);
    let ex = by_kind(c).unwrap();
    assert_eq!(
        ex.ticker("/api/v3/brokerage/orders", "BTC-USD", &get("/x", "")).unwrap().path,
        "/api/v3/brokerage/market/products/BTC-USD"
    );
    assert_eq!(ex.parse_ticker(br#"{"product_id":"BTC-USD","price":"140.21"}"#), d("140.21"));
}

#[test]
fn every_trade_endpoint_of_the_five_is_read_or_refused_by_name() {
    // A trade endpoint whose orders keyward does not read says which, never panics or guesses.
    for kind in ["kucoin", "bitget", "gate", "deribit", "coinbase"] {
        let ex = by_kind(kind).unwrap();
        for e in ex.catalog().iter().filter(|e| e.class == keyward_exchanges::Class::Trade) {
            let path = e.path.replace("{}", "x");
            let req = if e.method == keyward_exchanges::Method::Get {
                get(&path, "")
            } else {
                CanonicalRequest::parse(e.method.as_str(), &path, None, Some("application/json"), b"{}").unwrap()
            };
            if let Err(err) = ex.orders(&req) {
                assert!(!err.0.is_empty(), "{kind} {path}");
            }
        }
    }
}

/// The order an amendment without a symbol amends, looked up: its request,
/// and the amendment read with the order's symbol, side and units.
fn amend(kind: &str, req: &CanonicalRequest, answer: Value) -> (String, Vec<Read>) {
    let l = by_kind(kind).unwrap().order_lookup(req).unwrap_or_else(|| panic!("{kind}: no lookup"));
    let target = format!("{} {}?{}", l.request.method.as_str(), l.request.path, l.request.query_string());
    let read = (l.read)(req, &answer)
        .map(|o| o.into_iter().map(|o| (o.symbol, o.side, o.qty, o.quote_qty, o.price)).collect());
    (target, read.unwrap_or_else(|e| panic!("{kind}: {}", e.0)))
}

#[test]
fn amendments_without_a_symbol_read_the_order_they_amend() {
    let edit = get("/api/v2/private/edit", "order_id=ETH-123&amount=2&price=3100");
    let (target, read) =
        amend("deribit", &edit, json!({"result":{"instrument_name":"ETH_USDC-PERPETUAL","direction":"sell"}}));
    assert_eq!(target, "GET /api/v2/private/get_order_state?order_id=ETH-123");
    assert_eq!(read, [o("ETH_USDC-PERPETUAL", SELL, d("2"), None, d("3100"))]);

    let edit = post("/api/v3/brokerage/orders/edit", json!({"order_id":"abc-1","size":"0.02","price":"51000"}));
    let order = json!({"order":{"product_id":"BTC-USD","side":"BUY",
        "order_configuration":{"limit_limit_gtc":{"base_size":"0.01","limit_price":"50000"}}}});
    let (target, read) = amend("coinbase", &edit, order);
    assert_eq!(target, "GET /api/v3/brokerage/orders/historical/abc-1?");
    let slash = post("/api/v3/brokerage/orders/edit", json!({"order_id":"../../accounts","size":"1","price":"1"}));
    assert!(by_kind("coinbase").unwrap().order_lookup(&slash).is_none(), "an id is one path segment, or no lookup");
    assert_eq!(read, [o("BTC-USD", BUY, d("0.02"), None, d("51000"))]);
    let quoted = json!({"order":{"product_id":"BTC-USD","side":"BUY","order_configuration":{"limit_limit_gtc":{"quote_size":"100","limit_price":"1"}}}});
    let l = by_kind("coinbase").unwrap().order_lookup(&edit).unwrap();
    assert!((l.read)(&edit, &quoted).is_err(), "an edit's size of a quote-sized order is not documented");

    let put = CanonicalRequest::parse(
        "PUT",
        "/api/v4/futures/usdt/orders/123",
        None,
        Some("application/json"),
        br#"{"size":-200,"price":"51000"}"#,
    )
    .unwrap();
    let (target, read) = amend("gate", &put, json!({"id":123,"contract":"BTC_USDT","size":-100,"price":"50000"}));
    assert_eq!(target, "GET /api/v4/futures/usdt/orders/123?");
    assert_eq!(read, [o("BTC_USDT", SELL, None, None, d("51000"))]);

    // A request that is not such an amendment has no lookup.
    assert!(by_kind("deribit").unwrap().order_lookup(&get("/api/v2/private/buy", "order_id=1")).is_none());
    assert!(by_kind("gate").unwrap().order_lookup(&post("/api/v4/futures/usdt/orders", json!({}))).is_none());
}
