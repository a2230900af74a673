//! Scopes: what an access key may do. Default deny; a request needs one
//! matching scope.
//!
//! Globs use `*` for any run of characters, `/` included
//! (`secret:read:apps/*` covers `apps/a/b`). No other character is special.

use crate::CoreError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Permission class of an exchange endpoint, plus `export` (raw secret fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// Market data, exchange info, server time.
    Public,
    /// Balances, orders, fills: reading the account.
    Read,
    /// Placing and amending orders (includes `Cancel`).
    Trade,
    /// Cancelling orders.
    Cancel,
    /// Loans, margin borrowing, auto-borrow.
    Borrow,
    /// Internal, universal and sub-account transfers.
    Transfer,
    /// Withdrawals.
    Withdraw,
    /// API-key management, address whitelists, session-token minting; may sign anything.
    Admin,
    /// Reading the account's raw secret fields.
    Export,
}

impl Class {
    /// Every class, in order.
    pub const ALL: [Class; 9] = [
        Class::Public,
        Class::Read,
        Class::Trade,
        Class::Cancel,
        Class::Borrow,
        Class::Transfer,
        Class::Withdraw,
        Class::Admin,
        Class::Export,
    ];

    /// The lower-case name used in scopes, the API and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Public => "public",
            Class::Read => "read",
            Class::Trade => "trade",
            Class::Cancel => "cancel",
            Class::Borrow => "borrow",
            Class::Transfer => "transfer",
            Class::Withdraw => "withdraw",
            Class::Admin => "admin",
            Class::Export => "export",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// True when holding `self` grants `other` (`trade` includes `cancel`).
    pub fn grants(self, other: Class) -> bool {
        self == other || (self == Class::Trade && other == Class::Cancel)
    }

    /// The classes that move funds out, change the account or reveal its
    /// secrets: `withdraw`, `transfer`, `admin` and `export`. Their audit
    /// entry is durable before anything is done, and every use alerts. The
    /// one definition of that list.
    pub fn is_sensitive(self) -> bool {
        matches!(self, Class::Withdraw | Class::Transfer | Class::Admin | Class::Export)
    }

    /// The class named `s` (`trade`), as the API and the audit trail write it.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::parse(s)
    }
}

/// The class part of an `account:` scope: one class or `*` (all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClassSel {
    /// Every class.
    Any,
    /// One class.
    One(Class),
}

impl ClassSel {
    fn grants(self, c: Class) -> bool {
        match self {
            ClassSel::Any => true,
            ClassSel::One(mine) => mine.grants(c),
        }
    }

    fn covers(self, other: ClassSel) -> bool {
        match (self, other) {
            (ClassSel::Any, _) => true,
            (ClassSel::One(_), ClassSel::Any) => false,
            (ClassSel::One(a), ClassSel::One(b)) => a.grants(b),
        }
    }
}

/// One scope of an access key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `secret:read:<glob>`
    SecretRead(String),
    /// `secret:write:<glob>`
    SecretWrite(String),
    /// `account:<glob>:<class>`
    Account(String, ClassSel),
    /// `key:admin`: manage keys whose scopes are a subset of the holder's.
    KeyAdmin,
    /// `key:verify:<namespace glob>`
    KeyVerify(String),
    /// `audit:read`
    AuditRead,
    /// `sys:metrics`
    SysMetrics,
    /// `sys:admin`
    SysAdmin,
    /// `approve`: approve or reject changes that need M of N approvals
    /// (withdraw, transfer, export or admin grants, withdrawal addresses and
    /// caps, upstreams, unfreezing). Never covered by any other scope: only
    /// `sys:admin` may hand it out, and only while approvals are not in force.
    Approve,
}

/// What a request needs; matched against a key's scopes.
#[derive(Debug, Clone, Copy)]
pub enum Need<'a> {
    /// Read the secret at this path.
    SecretRead(&'a str),
    /// Write the secret at this path.
    SecretWrite(&'a str),
    /// Use this account for this class.
    Account(&'a str, Class),
    /// Manage keys.
    KeyAdmin,
    /// Verify keys of this namespace.
    KeyVerify(&'a str),
    /// Read the audit log.
    AuditRead,
    /// Scrape metrics.
    SysMetrics,
    /// Operate the server.
    SysAdmin,
    /// Approve a change waiting for approvals.
    Approve,
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when every text matched by `narrow` is matched by `wide`. Sound and
/// conservative: a `*` in `narrow` must be absorbed by a `*` in `wide`.
pub fn glob_covers(wide: &str, narrow: &str) -> bool {
    fn go(w: &[u8], n: &[u8]) -> bool {
        match (w.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&w[1..], n) || (!n.is_empty() && go(w, &n[1..])),
            (Some(a), Some(b)) if a == b && *b != b'*' => go(&w[1..], &n[1..]),
            _ => false,
        }
    }
    go(wide.as_bytes(), narrow.as_bytes())
}

fn check_glob(scope: &str, g: &str) -> Result<(), CoreError> {
    let ok =
        !g.is_empty() && g.len() <= 512 && g.chars().all(|c| c.is_ascii_alphanumeric() || "._-@+=,~/*".contains(c));
    if ok {
        Ok(())
    } else {
        Err(CoreError::InvalidScope {
            scope: scope.to_string(),
            reason: "the pattern may use letters, digits, . _ - @ + = , ~ / and * (any run of characters)",
        })
    }
}

impl Scope {
    /// True when this scope grants `need`.
    pub fn grants(&self, need: Need<'_>) -> bool {
        match (self, need) {
            (Scope::SecretRead(g), Need::SecretRead(p)) => glob_match(g, p),
            (Scope::SecretWrite(g), Need::SecretWrite(p)) => glob_match(g, p),
            (Scope::Account(g, sel), Need::Account(a, c)) => glob_match(g, a) && sel.grants(c),
            (Scope::KeyAdmin, Need::KeyAdmin)
            | (Scope::AuditRead, Need::AuditRead)
            | (Scope::SysMetrics, Need::SysMetrics)
            | (Scope::SysAdmin, Need::SysAdmin)
            | (Scope::Approve, Need::Approve) => true,
            (Scope::KeyVerify(g), Need::KeyVerify(ns)) => glob_match(g, ns),
            _ => false,
        }
    }

    /// True when holding `self` grants everything `other` grants (the rule for
    /// minting keys: a key may only hand out what it holds).
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::SecretRead(a), Scope::SecretRead(b))
            | (Scope::SecretWrite(a), Scope::SecretWrite(b))
            | (Scope::KeyVerify(a), Scope::KeyVerify(b)) => glob_covers(a, b),
            (Scope::Account(a, ca), Scope::Account(b, cb)) => glob_covers(a, b) && ca.covers(*cb),
            (a, b) => a == b,
        }
    }

    /// True when this scope lets a key move funds out of an account, change
    /// it or read its secrets (`withdraw`, `transfer`, `admin`, `export`,
    /// or `*` on some account): granting it needs approvals where they are
    /// in force.
    pub fn is_sensitive_grant(&self) -> bool {
        match self {
            Scope::Account(_, ClassSel::Any) => true,
            Scope::Account(_, ClassSel::One(c)) => c.is_sensitive(),
            Scope::Approve => true,
            _ => false,
        }
    }

    /// Scopes of the bootstrap admin key: every scope there is but
    /// `approve` (approvers are people's own keys, never the admin key).
    pub fn all() -> Vec<Scope> {
        vec![
            Scope::SysAdmin,
            Scope::KeyAdmin,
            Scope::SecretRead("*".into()),
            Scope::SecretWrite("*".into()),
            Scope::Account("*".into(), ClassSel::Any),
            Scope::KeyVerify("*".into()),
            Scope::AuditRead,
            Scope::SysMetrics,
        ]
    }
}

/// True when some scope in `held` grants `need`.
pub fn any_grants(held: &[Scope], need: Need<'_>) -> bool {
    held.iter().any(|s| s.grants(need))
}

/// True when every scope in `wanted` is covered by some scope in `held`.
pub fn all_covered(held: &[Scope], wanted: &[Scope]) -> bool {
    wanted.iter().all(|w| held.iter().any(|h| h.covers(w)))
}

impl FromStr for Scope {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, CoreError> {
        let bad = |reason| CoreError::InvalidScope { scope: s.to_string(), reason };
        let parts: Vec<&str> = s.splitn(3, ':').collect();
        let scope = match parts.as_slice() {
            ["secret", "read", g] => {
                check_glob(s, g)?;
                Scope::SecretRead(g.to_string())
            }
            ["secret", "write", g] => {
                check_glob(s, g)?;
                Scope::SecretWrite(g.to_string())
            }
            ["secret", ..] => {
                return Err(bad("secret scopes are secret:read:<glob> or secret:write:<glob>"));
            }
            ["account", rest @ ..] => {
                let rest = rest.join(":");
                let (g, class) =
                    rest.rsplit_once(':').ok_or_else(|| bad("account scopes are account:<glob>:<class>"))?;
                check_glob(s, g)?;
                let sel = if class == "*" {
                    ClassSel::Any
                } else {
                    ClassSel::One(Class::parse(class).ok_or_else(|| {
                        bad("the class must be public, read, trade, cancel, borrow, transfer, withdraw, admin, export or *")
                    })?)
                };
                Scope::Account(g.to_string(), sel)
            }
            ["key", "admin"] => Scope::KeyAdmin,
            ["key", "verify", ns] => {
                check_glob(s, ns)?;
                Scope::KeyVerify(ns.to_string())
            }
            ["audit", "read"] => Scope::AuditRead,
            ["sys", "metrics"] => Scope::SysMetrics,
            ["sys", "admin"] => Scope::SysAdmin,
            ["approve"] => Scope::Approve,
            _ => return Err(bad("unknown scope")),
        };
        Ok(scope)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::SecretRead(g) => write!(f, "secret:read:{g}"),
            Scope::SecretWrite(g) => write!(f, "secret:write:{g}"),
            Scope::Account(g, ClassSel::Any) => write!(f, "account:{g}:*"),
            Scope::Account(g, ClassSel::One(c)) => write!(f, "account:{g}:{}", c.as_str()),
            Scope::KeyAdmin => f.write_str("key:admin"),
            Scope::KeyVerify(ns) => write!(f, "key:verify:{ns}"),
            Scope::AuditRead => f.write_str("audit:read"),
            Scope::SysMetrics => f.write_str("sys:metrics"),
            Scope::SysAdmin => f.write_str("sys:admin"),
            Scope::Approve => f.write_str("approve"),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(s: &str) -> Scope {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "secret:read:apps/*",
            "secret:write:*",
            "account:binance-*:trade",
            "account:okx-main:*",
            "key:admin",
            "key:verify:shop-api",
            "audit:read",
            "sys:metrics",
            "sys:admin",
            "approve",
        ] {
            assert_eq!(sc(s).to_string(), s);
        }
    }

    #[test]
    fn malformed_scopes_explain_the_form() {
        for s in
            ["", "secret", "secret:read:", "secret:peek:x", "account:x", "account:x:fly", "sys:root", "secret:read:a b"]
        {
            let e = s.parse::<Scope>().unwrap_err().to_string();
            assert!(e.contains("accepted forms"), "{s}: {e}");
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything/at/all"));
        assert!(glob_match("apps/*", "apps/a/b"));
        assert!(!glob_match("apps/*", "appsx"));
        assert!(glob_match("a*c", "abbbc"));
        assert!(!glob_match("a*c", "abbbd"));
        assert!(glob_match("apps/alerts/webhook", "apps/alerts/webhook"));
        assert!(!glob_match("apps/alerts/webhook", "apps/alerts/webhook2"));
    }

    #[test]
    fn covering() {
        assert!(glob_covers("*", "apps/*"));
        assert!(glob_covers("apps/*", "apps/x/*"));
        assert!(glob_covers("apps/*", "apps/x"));
        assert!(!glob_covers("apps/x", "apps/*"));
        assert!(!glob_covers("apps/*", "*"));
        assert!(!glob_covers("apps/*", "ap*"));
        assert!(sc("account:*:trade").covers(&sc("account:b:cancel")));
        assert!(!sc("account:*:cancel").covers(&sc("account:b:trade")));
        assert!(!sc("account:*:trade").covers(&sc("account:b:*")));
        assert!(!sc("key:admin").covers(&sc("sys:admin")));
        assert!(!sc("sys:admin").covers(&sc("approve")), "only approve covers approve");
        assert!(!all_covered(&Scope::all(), &[sc("approve")]), "the bootstrap admin is no approver");
        assert!(all_covered(&Scope::all(), &[sc("secret:read:x"), sc("sys:admin")]));
        assert!(!all_covered(&[sc("key:admin"), sc("secret:read:apps/*")], &[sc("secret:read:*")]));
    }

    #[test]
    fn sensitive_classes() {
        let sensitive: Vec<_> = Class::ALL.into_iter().filter(|c| c.is_sensitive()).map(Class::as_str).collect();
        assert_eq!(sensitive, ["transfer", "withdraw", "admin", "export"]);
        assert_eq!(Class::from_name("withdraw"), Some(Class::Withdraw));
        assert_eq!(Class::from_name("Withdraw"), None);
    }

    #[test]
    fn grants() {
        let held = [sc("secret:read:apps/alerts/*"), sc("account:bin-*:trade")];
        assert!(any_grants(&held, Need::SecretRead("apps/alerts/webhook")));
        assert!(!any_grants(&held, Need::SecretWrite("apps/alerts/webhook")));
        assert!(!any_grants(&held, Need::SecretRead("apps/db")));
        assert!(any_grants(&held, Need::Account("bin-main", Class::Cancel)));
        assert!(!any_grants(&held, Need::Account("bin-main", Class::Withdraw)));
    }
}
