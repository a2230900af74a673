//! Reading the fields that can make an order borrow. Parse strictly,
//! classify pessimistically: every field that names a borrowing switch
//! (exactly, or but for case, spaces, `_`, `-` and control characters,
//! anywhere in the query, the form or the JSON body, batch and nested
//! orders included) must hold one of the exchange's documented no-borrow
//! values, or the request borrows. Another spelling, another type (`true`
//! for `1`, `"1"` for `1`, `1.0`, `01`) or an unknown value borrows.

use crate::{Body, CanonicalRequest};
use serde_json::Value;

/// A field name for comparison: lower case, without whitespace, control
/// characters, `_` or `-`; a form name's last bracket part (`orders[0][leverage]` → `leverage`).
pub fn loose_name(name: &str) -> String {
    loose_chars(name).collect()
}

/// A form name's last bracket part (`orders[0][leverage]` → `leverage`), or the name.
fn last_part(name: &str) -> &str {
    match (name.ends_with(']'), name.rfind('[')) {
        (true, Some(i)) => &name[i + 1..name.len() - 1],
        _ => name,
    }
}

/// The characters of [`loose_name`], without building it.
fn loose_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    last_part(name)
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
}

/// [`loosely_named`] for ASCII: the same bytes kept (ASCII whitespace is a
/// space or a control character) and lowered, without Unicode tables.
fn loosely_named_ascii(name: &str, want: &str) -> bool {
    let mut want = want.bytes();
    for b in last_part(name).bytes() {
        if b == b' ' || b.is_ascii_control() || b == b'_' || b == b'-' {
            continue;
        }
        if want.next() != Some(b.to_ascii_lowercase()) {
            return false;
        }
    }
    want.next().is_none()
}

/// True when `name` reads as `want` (a [`loose_name`] already); no allocation,
/// since every field of every request is compared.
pub fn loosely_named(name: &str, want: &str) -> bool {
    if name.is_ascii() && want.is_ascii() {
        return loosely_named_ascii(name, want);
    }
    loose_chars(name).eq(want.chars())
}

/// Every value of a field named like `field`, anywhere in the request
/// (query and form values as JSON strings).
pub fn values(req: &CanonicalRequest, field: &str) -> Vec<Value> {
    let want = loose_name(field);
    let mut out: Vec<Value> =
        req.query.iter().filter(|(k, _)| loosely_named(k, &want)).map(|(_, v)| Value::String(v.clone())).collect();
    match &req.body {
        Body::Form(pairs) => {
            out.extend(pairs.iter().filter(|(k, _)| loosely_named(k, &want)).map(|(_, v)| Value::String(v.clone())))
        }
        Body::Json(v) => walk(v, &want, &mut out),
        Body::Empty => {}
    }
    out
}

fn walk(v: &Value, want: &str, out: &mut Vec<Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if loosely_named(k, want) {
                    out.push(x.clone());
                }
                walk(x, want, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| walk(x, want, out)),
        // A form value or JSON string that is itself JSON (Kraken, Binance batches).
        Value::String(s) if s.starts_with('[') || s.starts_with('{') => {
            if let Ok(inner) = serde_json::from_str::<Value>(s) {
                walk(&inner, want, out);
            }
        }
        _ => {}
    }
}

/// True when some field named like `field` holds a value `no_borrow` does not accept.
pub fn any(req: &CanonicalRequest, field: &str, no_borrow: &dyn Fn(&Value) -> bool) -> bool {
    values(req, field).iter().any(|v| !no_borrow(v))
}

/// The JSON number or string `text` exactly (`0` is not `0.0`, `"0"` is not `"00"`).
pub fn is_exactly(v: &Value, text: &str) -> bool {
    match v {
        Value::Number(n) => n.to_string() == text,
        Value::String(s) => s == text,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(body: &str) -> CanonicalRequest {
        CanonicalRequest::parse("POST", "/x", None, Some("application/json"), body.as_bytes()).unwrap()
    }

    #[test]
    fn every_spelling_and_place_is_found() {
        let r =
            json(r#"{"isLeverage":0,"IsLeverage":1,"request":[{"is_leverage ":"1"}],"x":{"isleverage\u0000":true}}"#);
        let found: Vec<String> = values(&r, "isLeverage").iter().map(Value::to_string).collect();
        assert_eq!(found, ["0", "1", "\"1\"", "true"]);
        let form = CanonicalRequest::parse(
            "POST",
            "/x",
            Some("Leverage=none"),
            Some("application/x-www-form-urlencoded"),
            b"leverage_=5",
        )
        .unwrap();
        assert_eq!(values(&form, "leverage").len(), 2);
        assert_eq!(loose_name("orders[0][Leverage ]"), "leverage");
        let nested = json(r#"{"orders":"[{\"leverage\":\"2\"}]"}"#);
        assert_eq!(values(&nested, "leverage"), [Value::String("2".into())]);
    }

    #[test]
    fn only_the_exact_documented_value_does_not_borrow() {
        let zero = |v: &Value| is_exactly(v, "0");
        for ok in [r#"{"isLeverage":0}"#, r#"{"isLeverage":"0"}"#, r#"{}"#] {
            assert!(!any(&json(ok), "isLeverage", &zero), "{ok}");
        }
        for bad in ["1", "\"1\"", "true", "\"true\"", "1.0", "\"01\"", "2", "1e0", "0.0", "null", "false", "[0]"] {
            let body = format!(r#"{{"isLeverage":{bad}}}"#);
            assert!(any(&json(&body), "isLeverage", &zero), "{bad}");
        }
    }

    #[test]
    fn the_ascii_comparison_agrees_with_the_unicode_one() {
        let names = [
            "isLeverage",
            "IS_LEVERAGE",
            "is-leverage",
            " isLeverage\t",
            "is\u{7f}Leverage",
            "is\u{0}leverage",
            "isLeverag",
            "isLeveragee",
            "orders[0][Leverage ]",
            "orders[0][leverage",
            "[]",
            "",
            "_-_",
            "leverage]",
            "a[b]c]",
            "İsLeverage",
            "isLeverage\u{85}",
            "ısleverage",
            "is\u{a0}leverage",
        ];
        for want in ["isleverage", "leverage", "", "sideeffecttype", "ßx"] {
            for name in names {
                let unicode = loose_chars(name).eq(want.chars());
                assert_eq!(loosely_named(name, want), unicode, "{name:?} against {want:?}");
                if name.is_ascii() && want.is_ascii() {
                    assert_eq!(loosely_named_ascii(name, want), unicode, "{name:?} against {want:?}");
                }
            }
        }
        assert!(loosely_named("orders[0][Is_Leverage ]", "isleverage"));
    }
}
