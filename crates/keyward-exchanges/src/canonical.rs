//! Canonical requests: the one form of a request that keyward classifies,
//! guards, signs and sends.
//!
//! Anything that could be read two ways is refused (`request_not_canonical`):
//! dot segments, percent-escapes in the path (encoded slashes or dots),
//! backslashes, empty segments, trailing slashes, non-ASCII in the path,
//! methods other than upper-case GET/POST/PUT/DELETE, method-override
//! parameters, duplicate parameters (within or across query and body),
//! percent-encoded or odd parameter names, JSON with duplicate keys. What is
//! sent upstream is [`CanonicalRequest`]'s own encoding of what was parsed,
//! never the client's raw bytes.

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The four methods exchanges' REST APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
}

impl Method {
    /// Parses an upper-case method name; anything else is not canonical.
    pub fn parse(s: &str) -> Result<Self, NotCanonical> {
        match s {
            "GET" => Ok(Method::Get),
            "POST" => Ok(Method::Post),
            "PUT" => Ok(Method::Put),
            "DELETE" => Ok(Method::Delete),
            _ => Err(NotCanonical(format!("method {s:?}: only upper-case GET, POST, PUT and DELETE"))),
        }
    }

    /// The upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// Why a request is not canonical. The message names the offending part,
/// never a parameter value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request not canonical: {0}")]
pub struct NotCanonical(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, NotCanonical> {
    Err(NotCanonical(why.into()))
}

/// A request body.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded` pairs, in order.
    Form(Vec<(String, String)>),
    /// A JSON object or array (key order kept).
    Json(Value),
}

/// A request in keyward's one canonical form.
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalRequest {
    /// Method.
    pub method: Method,
    /// Path: `/`-separated, no empty or dot segments, ASCII, no escapes.
    pub path: String,
    /// Query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// Body.
    pub body: Body,
}

/// Parameter names that override the method on some servers.
const METHOD_OVERRIDES: &[&str] = &["_method", "method_override", "x-http-method-override", "_http_method"];

/// Headers that override the method on some servers (the proxy refuses them).
pub const METHOD_OVERRIDE_HEADERS: &[&str] = &["x-http-method-override", "x-http-method", "x-method-override"];

fn path_char_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~' | b':' | b'@' | b'!' | b'$' | b'+' | b',' | b'=')
}

/// Checks a path.
pub fn check_path(path: &str) -> Result<(), NotCanonical> {
    if !path.starts_with('/') {
        return refuse("the path must start with /");
    }
    if path.len() > 1024 {
        return refuse("the path is over 1024 bytes");
    }
    if path.contains('\\') {
        return refuse("backslash in the path");
    }
    if path.contains('%') {
        return refuse("percent-escape in the path (encoded slashes or dots are not accepted)");
    }
    if !path.is_ascii() {
        return refuse("non-ASCII character in the path");
    }
    if path == "/" {
        return refuse("empty path");
    }
    for seg in path[1..].split('/') {
        if seg.is_empty() {
            return refuse("empty path segment (doubled or trailing /)");
        }
        if seg == "." || seg == ".." {
            return refuse("dot segment in the path");
        }
        if !seg.bytes().all(path_char_ok) {
            return refuse("character not allowed in the path");
        }
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), NotCanonical> {
    if name.is_empty() {
        return refuse("empty parameter name");
    }
    if name.contains('%') {
        return refuse("percent-encoded parameter name");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')) {
        return refuse(format!("parameter name {name:?} has characters outside A-Z a-z 0-9 _ - . [ ]"));
    }
    if is_method_override(name) {
        return refuse(format!("method-override parameter {name:?}"));
    }
    Ok(())
}

fn is_method_override(name: &str) -> bool {
    METHOD_OVERRIDES.iter().any(|m| m.eq_ignore_ascii_case(name))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes a form/query value: `%XX` escapes and `+` as space; invalid
/// escapes and invalid UTF-8 are not canonical.
fn decode_value(s: &str) -> Result<String, NotCanonical> {
    let b = s.as_bytes();
    if memchr::memchr2(b'%', b'+', b).is_none() {
        return Ok(s.to_string());
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(h), Some(l)) = (b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c)))
                else {
                    return refuse("invalid percent-escape in a parameter value");
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).or_else(|_| refuse("a parameter value is not valid UTF-8"))
}

/// Parses `a=1&b=2` strictly.
pub fn parse_pairs(s: &str) -> Result<Vec<(String, String)>, NotCanonical> {
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for part in s.split('&') {
        if part.is_empty() {
            return refuse("empty parameter (doubled or trailing &)");
        }
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        check_name(name)?;
        out.push((name.to_string(), decode_value(value)?));
    }
    Ok(out)
}

/// A request target: the path, then `?query` when there is one.
pub fn request_target(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_string() } else { format!("{path}?{query}") }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    encode_component_into(&mut out, s);
    out
}

/// [`encode_component`], appended to `out`.
pub fn encode_component_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(s.len());
    // Runs of unreserved characters go in whole; each other byte as %XX.
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            continue;
        }
        // A non-empty run is ASCII, so both its ends are character boundaries.
        if i > run {
            out.push_str(&s[run..i]);
        }
        out.push('%');
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
        run = i + 1;
    }
    if run < s.len() {
        out.push_str(&s[run..]);
    }
}

/// Encodes pairs as `a=1&b=2` with [`encode_component`].
pub fn encode_pairs(pairs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component_into(&mut out, k);
        out.push('=');
        encode_component_into(&mut out, v);
    }
    out
}

/// JSON that refuses duplicate keys at any depth.
struct StrictJson(Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> DeserializeSeed<'de> for StrictVisitor {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element_seed(StrictVisitor)? {
            v.push(x);
        }
        Ok(Value::Array(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        // With serde_json's arbitrary_precision, a number arrives as a one-entry
        // map under a private key, its text as the value: keep the text exactly.
        let mut out = Map::new();
        let mut first = true;
        while let Some(k) = map.next_key::<String>()? {
            if first && k == "$serde_json::private::Number" {
                let text: String = map.next_value()?;
                let n: serde_json::Number = text.parse().map_err(de::Error::custom)?;
                return Ok(Value::Number(n));
            }
            first = false;
            let v = map.next_value_seed(StrictVisitor)?;
            if out.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format_args!("duplicate key {k:?}")));
            }
        }
        Ok(Value::Object(out))
    }
}

/// Parses a JSON body: an object or array, no duplicate keys at any depth.
pub fn parse_json(bytes: &[u8]) -> Result<Value, NotCanonical> {
    let v: StrictJson = serde_json::from_slice(bytes).map_err(|e| {
        let m = e.to_string();
        NotCanonical(if m.contains("duplicate key") {
            "JSON with a duplicate key".into()
        } else {
            "malformed JSON body".into()
        })
    })?;
    match v.0 {
        Value::Object(_) | Value::Array(_) => Ok(v.0),
        _ => refuse("a JSON body must be an object or an array"),
    }
}

impl CanonicalRequest {
    /// Parses a request from its parts. `content_type` is the media type
    /// without parameters (`application/json`), if any.
    pub fn parse(
        method: &str,
        path: &str,
        query: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Result<Self, NotCanonical> {
        let method = Method::parse(method)?;
        check_path(path)?;
        let query = query.unwrap_or("");
        if query.contains('#') {
            // A URL ends at `#`: what follows would be signed but never sent.
            return refuse("a raw '#' in the query: percent-encode it as %23");
        }
        let query = parse_pairs(query)?;
        let body = if body.is_empty() {
            Body::Empty
        } else {
            if method == Method::Get {
                return refuse("a GET request with a body");
            }
            match content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()).as_deref() {
                Some("application/json") => Body::Json(parse_json(body)?),
                Some("application/x-www-form-urlencoded") => Body::Form(parse_pairs(
                    std::str::from_utf8(body).or_else(|_| refuse("a form body that is not UTF-8"))?,
                )?),
                Some(other) => return refuse(format!("content type {other:?}: only JSON or a form")),
                None => return refuse("a body without a content type"),
            }
        };
        let req = Self { method, path: path.to_string(), query, body };
        req.check_duplicates()?;
        Ok(req)
    }

    fn check_duplicates(&self) -> Result<(), NotCanonical> {
        // Sorted names, not a hash set: as fast for the few parameters of
        // an order, no hashing of names a client chose, and n log n for a
        // body of a million.
        let form = match &self.body {
            Body::Form(p) => p.as_slice(),
            _ => &[],
        };
        let mut names: Vec<&str> = self.query.iter().chain(form).map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return refuse(format!("parameter {:?} given twice", twice[0]));
        }
        if let Body::Json(Value::Object(m)) = &self.body {
            for k in m.keys() {
                if names.binary_search(&k.as_str()).is_ok() {
                    return refuse(format!("parameter {k:?} in both the query and the body"));
                }
                if is_method_override(k) {
                    return refuse(format!("method-override parameter {k:?}"));
                }
            }
        }
        Ok(())
    }

    /// The value of a parameter from the query, a form body or a top-level JSON field.
    pub fn param(&self, name: &str) -> Option<String> {
        if let Some((_, v)) = self.query.iter().find(|(k, _)| k == name) {
            return Some(v.clone());
        }
        match &self.body {
            Body::Form(p) => p.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            Body::Json(Value::Object(m)) => m.get(name).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            _ => None,
        }
    }

    /// Removes parameters by name (auth and signature parameters a client sent).
    pub fn remove_params(&mut self, names: &[&str]) {
        self.query.retain(|(k, _)| !names.contains(&k.as_str()));
        match &mut self.body {
            Body::Form(p) => p.retain(|(k, _)| !names.contains(&k.as_str())),
            Body::Json(Value::Object(m)) => m.retain(|k, _| !names.contains(&k.as_str())),
            _ => {}
        }
    }

    /// The encoded query string (no `?`), empty if none.
    pub fn query_string(&self) -> String {
        encode_pairs(&self.query)
    }

    /// The body as sent: content type and bytes.
    pub fn body_bytes(&self) -> Option<(&'static str, Vec<u8>)> {
        match &self.body {
            Body::Empty => None,
            Body::Form(p) => Some(("application/x-www-form-urlencoded", encode_pairs(p).into_bytes())),
            Body::Json(v) => Some(("application/json", serde_json::to_vec(v).unwrap_or_default())),
        }
    }

    /// The body text (empty if none), as signers that cover the body need it.
    pub fn body_text(&self) -> String {
        self.body_bytes().map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(method: &str, target: &str) -> Result<CanonicalRequest, NotCanonical> {
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        CanonicalRequest::parse(method, path, query, None, b"")
    }

    #[test]
    fn ordinary_requests_parse_and_reencode() {
        let r = parse("GET", "/api/v3/order?symbol=BTCUSDT&orderId=12").unwrap();
        assert_eq!(r.query_string(), "symbol=BTCUSDT&orderId=12");
        let r = parse("GET", "/api/v3/ticker?symbols=%5B%22A%22%5D&q=a+b").unwrap();
        assert_eq!(r.query[0].1, "[\"A\"]");
        assert_eq!(r.query[1].1, "a b");
        assert_eq!(r.query_string(), "symbols=%5B%22A%22%5D&q=a%20b");
        let r = CanonicalRequest::parse(
            "POST",
            "/api/v5/trade/order",
            None,
            Some("application/json; charset=utf-8"),
            br#"{"instId":"BTC-USDT","sz":"1","px":0.10}"#,
        )
        .unwrap();
        assert_eq!(r.body_text(), r#"{"instId":"BTC-USDT","sz":"1","px":0.10}"#, "key order and number text kept");
        assert_eq!(r.param("sz").as_deref(), Some("1"));
    }

    #[test]
    fn every_trick_is_refused() {
        for (m, t) in [
            ("GET", "/api/v3/account/../../sapi/v1/capital/withdraw/apply"),
            ("GET", "/api/v3/./account"),
            ("GET", "/api/v3/%2e%2e/x"),
            ("GET", "/api/v3%2Faccount"),
            ("GET", "/api\\v3\\account"),
            ("GET", "/api//v3/account"),
            ("GET", "/api/v3/account/"),
            ("GET", "/api/v3/accoünt"),
            ("GET", "api/v3/account"),
            ("GET", "/"),
            ("get", "/api/v3/account"),
            ("PATCH", "/api/v3/account"),
            ("HEAD", "/api/v3/account"),
            ("POST", "/api/v3/order?_method=DELETE"),
            ("GET", "/api/v3/order?symbol=A&symbol=B"),
            ("GET", "/api/v3/order?sym%62ol=A"),
            ("GET", "/api/v3/order?a=1&&b=2"),
            ("GET", "/api/v3/order?a=1&"),
            ("GET", "/api/v3/order?a=%zz"),
            ("GET", "/api/v3/order?a=%FF"),
            ("GET", "/api/v3/order?a%20b=1"),
            ("GET", "/api/v3/order?=1"),
            ("GET", "/api/v3/account#/../../sapi/v1/capital/withdraw/apply"),
            ("GET", "/api/v3/account?timestamp=1#x"),
            ("POST", "/api/v3/order?symbol=A#&coin=BTC"),
        ] {
            assert!(parse(m, t).is_err(), "{m} {t} accepted");
        }
    }

    #[test]
    fn bodies_are_checked() {
        let form = Some("application/x-www-form-urlencoded");
        let json = Some("application/json");
        // Duplicates across query and body.
        assert!(CanonicalRequest::parse("POST", "/a/b", Some("symbol=A"), form, b"symbol=B").is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", Some("symbol=A"), json, br#"{"symbol":"B"}"#).is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, form, b"x=1&x=2").is_err());
        // Duplicate JSON keys, at the top and nested.
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, br#"{"a":1,"a":2}"#).is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, br#"[{"sz":"1","sz":"100"}]"#).is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, br#"{"_method":"DELETE"}"#).is_err());
        // Bodies need a known content type; GET takes none; JSON must be an object or array.
        assert!(CanonicalRequest::parse("POST", "/a/b", None, None, b"x=1").is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, Some("text/plain"), b"x=1").is_err());
        assert!(CanonicalRequest::parse("GET", "/a/b", None, form, b"x=1").is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, b"5").is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, b"{").is_err());
        assert!(CanonicalRequest::parse("POST", "/a/b", None, json, br#"[{"a":1},{"a":2}]"#).is_ok());
    }

    #[test]
    fn params_can_be_removed() {
        let mut r = CanonicalRequest::parse(
            "POST",
            "/api/v3/order",
            Some("signature=abc&symbol=X"),
            Some("application/x-www-form-urlencoded"),
            b"timestamp=1&quantity=2",
        )
        .unwrap();
        r.remove_params(&["signature", "timestamp"]);
        assert_eq!(r.query_string(), "symbol=X");
        assert_eq!(r.body_text(), "quantity=2");
    }

    #[test]
    fn components_encode_byte_by_byte_as_rfc_3986_says() {
        // The reference: every byte but the unreserved ones as %XX.
        let reference = |s: &str| -> String {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect()
        };
        for s in ["", "a", "%", "BTC-USDT_1.0~x", "a b&c=d", "é", "aé", "éa", "€1+2", "日本/x", "a\u{0}b", "🦀🦀", "x%"]
        {
            assert_eq!(encode_component(s), reference(s), "{s:?}");
            let mut appended = String::from("k=");
            encode_component_into(&mut appended, s);
            assert_eq!(appended, format!("k={}", reference(s)));
        }
        // Decoding gives back what was encoded, plain values as they are.
        for s in ["plain", "a b", "é€", "x+y%z"] {
            assert_eq!(decode_value(&encode_component(s)).unwrap(), s);
        }
        assert_eq!(decode_value("a+b%2Bc").unwrap(), "a b+c");
    }

    #[test]
    fn a_duplicate_is_named_whatever_the_order() {
        let form = Some("application/x-www-form-urlencoded");
        let json = Some("application/json");
        let why = |r: Result<CanonicalRequest, NotCanonical>| r.err().map(|e| e.0).unwrap_or_default();
        assert_eq!(why(parse("GET", "/a/b?z=1&y=2&z=3")), "parameter \"z\" given twice");
        assert_eq!(
            why(CanonicalRequest::parse("POST", "/a/b", Some("b=1"), form, b"a=1&b=2")),
            "parameter \"b\" given twice"
        );
        assert_eq!(
            why(CanonicalRequest::parse("POST", "/a/b", Some("a=1&c=2"), json, br#"{"b":1,"c":2}"#)),
            "parameter \"c\" in both the query and the body"
        );
        assert!(parse("GET", "/a/b?b=1&a=2&c=3").is_ok());
    }
}
