//! The rules as data: the shipped `rules.toml`, extended or overridden by a
//! user's file, compiled once.

use regex::Regex;
use serde::Deserialize;

/// The rules keyward ships.
pub const SHIPPED: &str = include_str!("../rules.toml");

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// Not TOML of the expected shape.
    #[error("rules: {0}")]
    Parse(String),
    /// A regex that does not compile.
    #[error("rule {id}: bad regex: {err}")]
    Regex {
        /// The rule.
        id: String,
        /// The compiler's message.
        err: String,
    },
    /// A validator keyward does not have.
    #[error("rule {id}: unknown validate {name:?} (keyward_key, keyward_token, pem_body)")]
    Validator {
        /// The rule.
        id: String,
        /// The name given.
        name: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRules {
    names: Option<NamesSpec>,
    generic: Option<GenericSpec>,
    #[serde(default)]
    token: Vec<TokenSpec>,
    #[serde(default)]
    exchange: Vec<ExchangeSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamesSpec {
    #[serde(default)]
    keywords: Vec<String>,
    key: String,
    secret: String,
    passphrase: String,
    credential: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericSpec {
    id: String,
    description: String,
    min_length: usize,
    min_entropy: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenSpec {
    id: String,
    description: String,
    #[serde(default)]
    keywords: Vec<String>,
    regex: String,
    validate: Option<String>,
    exchange: Option<String>,
    part: Option<Part>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExchangeSpec {
    id: String,
    aliases: Vec<String>,
    key: String,
    secret: String,
    passphrase: Option<String>,
}

/// Which part of an exchange credential a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The API key (its public id).
    Key,
    /// The secret.
    Secret,
    /// The passphrase some exchanges add.
    Passphrase,
}

impl Part {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Key => "key",
            Part::Secret => "secret",
            Part::Passphrase => "passphrase",
        }
    }
}

/// A check a token must also pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validate {
    /// keyward's key format with its CRC-32 checksum.
    KeywardKey,
    /// A keyward short-lived token: JSON claims with a key and an expiry.
    KeywardToken,
    /// A PEM header followed by a base64 body.
    PemBody,
}

/// A compiled token rule.
#[derive(Debug, Clone)]
pub struct TokenRule {
    /// Rule id.
    pub id: String,
    /// What it finds.
    pub description: String,
    /// Literals that must occur (lower case); empty: always run.
    pub keywords: Vec<String>,
    /// The pattern; group 1 is the secret.
    pub regex: Regex,
    /// The extra check.
    pub validate: Option<Validate>,
    /// The exchange it belongs to, if any.
    pub exchange: Option<(String, Part)>,
}

/// A compiled exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Exchange id (`binance`).
    pub id: String,
    /// Names it goes by in code (lower case).
    pub aliases: Vec<String>,
    /// Key shape.
    pub key: Regex,
    /// Secret shape.
    pub secret: Regex,
    /// Passphrase shape, for exchanges that have one.
    pub passphrase: Option<Regex>,
}

impl Exchange {
    /// The shape of `part`, if the exchange has that part.
    pub fn shape(&self, part: Part) -> Option<&Regex> {
        match part {
            Part::Key => Some(&self.key),
            Part::Secret => Some(&self.secret),
            Part::Passphrase => self.passphrase.as_ref(),
        }
    }
}

/// Every rule, compiled.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Names of key fields.
    pub key_name: Regex,
    /// Names of secret fields.
    pub secret_name: Regex,
    /// Names of passphrase fields.
    pub passphrase_name: Regex,
    /// Credential-like names.
    pub credential_name: Regex,
    /// Literals a line must hold for its assignments to be looked at (empty: every line).
    pub name_keywords: Vec<String>,
    /// The generic rule's id.
    pub generic_id: String,
    /// The generic rule's description.
    pub generic_description: String,
    /// Shortest generic value.
    pub min_length: usize,
    /// Least entropy (bits per character) of a generic value.
    pub min_entropy: f64,
    /// Token rules.
    pub tokens: Vec<TokenRule>,
    /// Exchanges.
    pub exchanges: Vec<Exchange>,
}

fn compile(id: &str, re: &str) -> Result<Regex, RuleError> {
    Regex::new(re).map_err(|e| RuleError::Regex { id: id.to_string(), err: e.to_string() })
}

fn parse(text: &str) -> Result<FileRules, RuleError> {
    toml::from_str(text).map_err(|e| RuleError::Parse(e.to_string()))
}

impl Rules {
    /// The shipped rules.
    pub fn shipped() -> Result<Rules, RuleError> {
        Rules::with_extra(None)
    }

    /// The shipped rules with `extra` (a rules file's text) added; an entry
    /// with a shipped id replaces it, `[names]` and `[generic]` replace theirs.
    pub fn with_extra(extra: Option<&str>) -> Result<Rules, RuleError> {
        let mut base = parse(SHIPPED)?;
        if let Some(text) = extra {
            let more = parse(text)?;
            if more.names.is_some() {
                base.names = more.names;
            }
            if more.generic.is_some() {
                base.generic = more.generic;
            }
            for t in more.token {
                base.token.retain(|b| b.id != t.id);
                base.token.push(t);
            }
            for x in more.exchange {
                base.exchange.retain(|b| b.id != x.id);
                base.exchange.push(x);
            }
        }
        let names = base.names.ok_or_else(|| RuleError::Parse("no [names] table".into()))?;
        let generic = base.generic.ok_or_else(|| RuleError::Parse("no [generic] table".into()))?;
        let mut tokens = Vec::new();
        for t in base.token {
            let validate = match t.validate.as_deref() {
                None => None,
                Some("keyward_key") => Some(Validate::KeywardKey),
                Some("keyward_token") => Some(Validate::KeywardToken),
                Some("pem_body") => Some(Validate::PemBody),
                Some(other) => return Err(RuleError::Validator { id: t.id, name: other.into() }),
            };
            tokens.push(TokenRule {
                regex: compile(&t.id, &t.regex)?,
                keywords: t.keywords.iter().map(|k| k.to_lowercase()).collect(),
                exchange: t.exchange.zip(t.part),
                id: t.id,
                description: t.description,
                validate,
            });
        }
        let mut exchanges = Vec::new();
        for x in base.exchange {
            exchanges.push(Exchange {
                key: compile(&x.id, &x.key)?,
                secret: compile(&x.id, &x.secret)?,
                passphrase: x.passphrase.as_deref().map(|p| compile(&x.id, p)).transpose()?,
                aliases: x.aliases.iter().map(|a| a.to_lowercase()).collect(),
                id: x.id,
            });
        }
        Ok(Rules {
            key_name: compile("names.key", &names.key)?,
            secret_name: compile("names.secret", &names.secret)?,
            passphrase_name: compile("names.passphrase", &names.passphrase)?,
            credential_name: compile("names.credential", &names.credential)?,
            name_keywords: names.keywords.iter().map(|k| k.to_lowercase()).collect(),
            generic_id: generic.id,
            generic_description: generic.description,
            min_length: generic.min_length,
            min_entropy: generic.min_entropy,
            tokens,
            exchanges,
        })
    }

    /// Every rule id with its description (for SARIF and `--help`).
    pub fn catalogue(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.tokens.iter().map(|t| (t.id.clone(), t.description.clone())).collect();
        for x in &self.exchanges {
            for part in [Part::Key, Part::Secret, Part::Passphrase] {
                if x.shape(part).is_some() {
                    out.push((format!("{}-{}", x.id, part.as_str()), format!("{} API {}", x.id, part.as_str())));
                }
            }
        }
        out.push((self.generic_id.clone(), self.generic_description.clone()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_rules_compile() {
        let r = Rules::shipped().unwrap();
        assert!(r.exchanges.len() >= 9);
        assert!(r.tokens.iter().any(|t| t.id == "keyward-access-key"));
    }

    #[test]
    fn a_user_file_adds_and_replaces() {
        let extra = r#"
[[token]]
id = "private-key"
description = "mine"
regex = '(MINE-[0-9]{4})'

[[token]]
id = "acme-token"
description = "ACME"
keywords = ["acme_"]
regex = '\b(acme_[a-z0-9]{20})\b'
"#;
        let r = Rules::with_extra(Some(extra)).unwrap();
        assert_eq!(r.tokens.iter().filter(|t| t.id == "private-key").count(), 1);
        assert_eq!(r.tokens.iter().find(|t| t.id == "private-key").unwrap().description, "mine");
        assert!(r.tokens.iter().any(|t| t.id == "acme-token"));
        let bad = Rules::with_extra(Some("[[token]]\nid='x'\ndescription='x'\nregex='('\n")).unwrap_err();
        assert!(bad.to_string().contains("rule x: bad regex"), "{bad}");
    }
}
