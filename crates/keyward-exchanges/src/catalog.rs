//! Endpoint catalogs: method + exact path → permission class. Anything not
//! listed is `endpoint_unknown` and refused. A `{}` segment matches one path
//! segment (ids in the path); nothing else is a pattern.

use crate::{Class, Method};

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
}
