//! Endpoint catalogs: method + exact path → permission class. Anything not
//! listed is `endpoint_unknown` and refused. A `{}` segment matches one path
//! segment (ids in the path); nothing else is a pattern.
//!
//! Each exchange module lists the endpoints bots use. Behind them stands the
//! fund-movers table (`catalog/fund-movers.tsv`, made by
//! `tools/fund_movers.py` from ccxt's endpoint list and reviewed like code):
//! every endpoint whose name says it moves funds, manages keys or
//! sub-accounts, borrows or mints a token, with the pessimistic class its
//! name gives it. So no fund mover is ever unknown, nor `read` by accident.

use crate::{Class, Method};
use std::collections::HashMap;
use std::sync::OnceLock;

/// The fund-movers table, compiled in.
const FUND_MOVERS: &str = include_str!("../catalog/fund-movers.tsv");

/// One catalogued endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    /// Method.
    pub method: Method,
    /// Exact path; `{}` matches one segment.
    pub path: &'static str,
    /// Permission class.
    pub class: Class,
}

/// Shorthand for catalog tables.
pub const fn ep(method: Method, path: &'static str, class: Class) -> Endpoint {
    Endpoint { method, path, class }
}

fn matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains("{}") {
        return pattern == path;
    }
    let (mut p, mut q) = (pattern.split('/'), path.split('/'));
    loop {
        match (p.next(), q.next()) {
            (None, None) => return true,
            (Some("{}"), Some(seg)) if !seg.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

/// Looks a request up; exact paths before patterns.
pub fn lookup(table: &[Endpoint], method: Method, path: &str) -> Option<Class> {
    table
        .iter()
        .find(|e| e.method == method && e.path == path)
        .or_else(|| table.iter().find(|e| e.method == method && matches(e.path, path)))
        .map(|e| e.class)
}

/// The table's rows by exchange (lines that do not parse are left out; a
/// test makes sure there are none).
fn fund_movers() -> &'static HashMap<&'static str, Vec<Endpoint>> {
    static TABLE: OnceLock<HashMap<&'static str, Vec<Endpoint>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table: HashMap<&'static str, Vec<Endpoint>> = HashMap::new();
        for (kind, e) in FUND_MOVERS.lines().filter_map(parse_row) {
            table.entry(kind).or_default().push(e);
        }
        table
    })
}

fn parse_row(line: &'static str) -> Option<(&'static str, Endpoint)> {
    if line.starts_with('#') || line.trim().is_empty() {
        return None;
    }
    let mut cols = line.split('\t');
    let (kind, method, path, class) = (cols.next()?, cols.next()?, cols.next()?, cols.next()?);
    let method = Method::parse(method).ok()?;
    let class = Class::from_name(class.trim())?;
    Some((kind, Endpoint { method, path, class }))
}

/// The class the fund-movers table gives an endpoint of exchange `kind`.
pub fn fund_mover(kind: &str, method: Method, path: &str) -> Option<Class> {
    lookup(fund_movers().get(kind)?, method, path)
}

/// Every row of the fund-movers table of exchange `kind`.
pub fn fund_movers_of(kind: &str) -> &'static [Endpoint] {
    fund_movers().get(kind).map(Vec::as_slice).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_one_segment_patterns() {
        let t = [
            ep(Method::Get, "/a/b", Class::Read),
            ep(Method::Get, "/a/{}/c", Class::Trade),
            ep(Method::Get, "/a/x/c", Class::Admin),
        ];
        assert_eq!(lookup(&t, Method::Get, "/a/b"), Some(Class::Read));
        assert_eq!(lookup(&t, Method::Post, "/a/b"), None);
        assert_eq!(lookup(&t, Method::Get, "/a/b/"), None);
        assert_eq!(lookup(&t, Method::Get, "/a/123/c"), Some(Class::Trade));
        assert_eq!(lookup(&t, Method::Get, "/a/x/c"), Some(Class::Admin), "exact first");
        assert_eq!(lookup(&t, Method::Get, "/a/1/2/c"), None);
        assert_eq!(lookup(&t, Method::Get, "/A/b"), None);
    }

    #[test]
    fn every_row_of_the_fund_movers_table_reads_and_none_is_harmless() {
        for line in FUND_MOVERS.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let (_, e) = parse_row(line).unwrap_or_else(|| panic!("row does not read: {line}"));
            assert!(
                matches!(e.class, Class::Withdraw | Class::Transfer | Class::Borrow | Class::Admin),
                "a fund mover classed {:?}: {line}",
                e.class
            );
        }
        assert!(fund_movers_of("binance").len() > 100);
    }
}
