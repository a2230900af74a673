//! Finding credentials in one file's text: token rules (prefilter, regex,
//! validator), assignments of values to credential names (exchange shapes
//! in their exchange's context, or random-looking values), decoys left out,
//! and an exchange's key, secret and passphrase paired.

use crate::rules::{Part, Rules, TokenRule, Validate};
use aho_corasick::AhoCorasick;
use base64::Engine;
use regex::Regex;
use std::collections::HashSet;
use zeroize::Zeroizing;

/// How far (lines) an exchange's name above a value still names its exchange.
const CONTEXT_LINES: usize = 40;
/// How far (lines) apart an exchange credential's parts are still one credential.
const PAIR_LINES: usize = 15;

/// One credential found.
#[derive(Clone, serde::Serialize)]
pub struct Finding {
    /// The file (or `commit:file` in history).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The rule that found it.
    pub rule: String,
    /// The first 4 characters and an ellipsis.
    pub redacted: String,
    /// The exchange, for exchange credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// Key, secret or passphrase, for exchange credentials.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<Part>,
    /// Lines of the same credential's other parts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paired_with: Vec<usize>,
    /// The commit it was found in (`--git`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The value itself: kept in memory for matching, never written out.
    #[serde(skip)]
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Finding")
            .field("file", &self.file)
            .field("line", &self.line)
            .field("rule", &self.rule)
            .field("redacted", &self.redacted)
            .finish()
    }
}

/// The first 4 characters of a secret, then an ellipsis.
pub fn redact(s: &str) -> String {
    let head: String = s.chars().take(4).collect();
    format!("{head}…")
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|c| f64::from(*c) / n).map(|p| -p * p.log2()).sum()
}

/// How values may be written in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    /// Source code: only quoted literals are values.
    Code,
    /// Configuration: bare values too (`.env`, YAML, INI).
    Config,
    /// A Jupyter notebook: JSON whose strings hold code.
    Notebook,
}

fn syntax_of(path: &str) -> Syntax {
    let name = path.rsplit('/').next().unwrap_or(path).to_lowercase();
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    if ext == "ipynb" {
        return Syntax::Notebook;
    }
    if name.starts_with(".env") || name.ends_with(".env") {
        return Syntax::Config;
    }
    match ext {
        "py" | "js" | "mjs" | "cjs" | "ts" | "tsx" | "jsx" | "rs" | "go" | "java" | "kt" | "rb" | "php" | "cs"
        | "swift" | "scala" | "c" | "cc" | "cpp" | "h" | "hpp" | "lua" | "pl" | "r" | "dart" => Syntax::Code,
        _ => Syntax::Config,
    }
}

/// Lock files: full of hashes, never of credentials.
pub fn is_lock_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "Cargo.lock"
            | "package-lock.json"
            | "npm-shrinkwrap.json"
            | "yarn.lock"
            | "pnpm-lock.yaml"
            | "poetry.lock"
            | "Pipfile.lock"
            | "uv.lock"
            | "go.sum"
            | "composer.lock"
            | "Gemfile.lock"
            | "flake.lock"
            | "packages.lock.json"
    )
}

/// Values that are not credentials: placeholders, lookups, hashes, URLs, paths.
fn is_decoy(value: &str) -> bool {
    let v = value.trim();
    let lower = v.to_lowercase();
    const PLACEHOLDERS: [&str; 26] = [
        "your",
        "xxxx",
        "changeme",
        "change_me",
        "change-me",
        "example",
        "placeholder",
        "dummy",
        "redacted",
        "replace",
        "insert",
        "<",
        ">",
        "{{",
        "}}",
        "****",
        "...",
        "sample",
        "todo",
        "fixme",
        "_here",
        "-here",
        "fake",
        "mock",
        "goes-here",
        "not-a-real",
    ];
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    const LOOKUPS: [&str; 6] = ["process.env", "os.environ", "getenv", "env(", "env::var", "secrets."];
    if lower.starts_with('$') || lower.starts_with("%(") || LOOKUPS.iter().any(|p| lower.contains(p)) {
        return true;
    }
    const PREFIXES: [&str; 10] =
        ["sha1-", "sha256-", "sha384-", "sha512-", "data:", "http://", "https://", "file:", "/", "~/"];
    if PREFIXES.iter().any(|p| lower.starts_with(p)) || lower.starts_with("./") || lower.starts_with("../") {
        return true;
    }
    // An Ethereum-style address (0x + 40 hex) is public; a 64-hex private key is not.
    if lower.len() == 42 && lower.starts_with("0x") && lower[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        return true;
    }
    // One character repeated, or a run of one character class with no variety.
    let distinct: HashSet<char> = v.chars().collect();
    distinct.len() <= 3
}

/// A value in keyward's key or token shape (which the token rules have
/// already judged with their checks).
fn looks_like_keyward(value: &str) -> bool {
    if value.starts_with("kwt_") {
        return true;
    }
    value.split_once('_').is_some_and(|(p, rest)| {
        keyward_core::access_key::valid_prefix(p)
            && rest.len() == keyward_core::access_key::RANDOM_LEN + keyward_core::access_key::CHECKSUM_LEN
            && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Checks a token rule's validator.
fn validated(rule: &TokenRule, value: &str, after: &str) -> bool {
    match rule.validate {
        None => true,
        Some(Validate::KeywardKey) => keyward_core::access_key::check_format(value).is_some(),
        Some(Validate::KeywardToken) => {
            let Some((payload, _mac)) = value.strip_prefix("kwt_").and_then(|b| b.split_once('.')) else {
                return false;
            };
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .ok()
                .and_then(|j| serde_json::from_slice::<serde_json::Value>(&j).ok())
                .is_some_and(|v| v.get("key").is_some() && v.get("exp").is_some())
        }
        Some(Validate::PemBody) => {
            let window: String = after.chars().take(20_000).collect();
            let Some(end) = window.find("-----END") else { return false };
            let body = window[..end].replace("\\n", "\n");
            if body.contains("...") || body.to_lowercase().contains("your") {
                return false;
            }
            let b64: Vec<char> = body.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/').collect();
            // A body of `XXXX…` or `AAAA…` is an example, not a key.
            b64.len() >= 64 && b64.iter().collect::<HashSet<_>>().len() > 8
        }
    }
}

/// The scanner: rules with their prefilter, ready for many files.
#[derive(Debug)]
pub struct Detector {
    rules: Rules,
    /// Every token keyword and exchange alias, for one pass over a file.
    prefilter: AhoCorasick,
    /// What each prefilter pattern stands for.
    owners: Vec<Owner>,
    /// The names' keywords: a line without one has no assignment to look at.
    names: Option<AhoCorasick>,
    assignment: Regex,
    /// The same pattern anchored at the start.
    anchored: Regex,
}

/// What a prefilter pattern stands for.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// A token rule's keyword.
    Token(usize),
    /// An exchange's alias.
    Exchange(usize),
    /// A keyword of credential names.
    Name,
}

/// What the prefilter saw in one file.
struct Seen {
    tokens: HashSet<usize>,
    /// Per line, whether a credential name's keyword occurs on it.
    name_lines: Vec<bool>,
    /// Per line (0-based), the exchanges named on it.
    exchange_lines: Vec<Vec<usize>>,
}

impl Detector {
    /// A detector over `rules`.
    pub fn new(rules: Rules) -> Detector {
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        for (i, t) in rules.tokens.iter().enumerate() {
            for k in &t.keywords {
                patterns.push(k.clone());
                owners.push(Owner::Token(i));
            }
        }
        for (i, x) in rules.exchanges.iter().enumerate() {
            for a in &x.aliases {
                patterns.push(a.clone());
                owners.push(Owner::Exchange(i));
            }
        }
        for k in &rules.name_keywords {
            patterns.push(k.clone());
            owners.push(Owner::Name);
        }
        let prefilter = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .build(&patterns)
            .unwrap_or_else(|_| AhoCorasick::new(Vec::<String>::new()).unwrap_or_else(|_| unreachable!()));
        #[allow(clippy::unwrap_used)] // a constant pattern, covered by every test
        let assignment = Regex::new(
            r#"(?x)
            ["']?(?P<name>[A-Za-z_$][A-Za-z0-9_$.\-]*)["']?
            (?:\s*:\s*&?(?:'static\s+)?[A-Za-z_][\w<>]*)?   # a type annotation (Rust, TS)
            \s*(?P<sep>=>|:=|==|=|:)\s*
            (?:(?P<q>["'`])(?P<qv>[^"'`\r\n]{1,512}?)["'`]
              # a bare value is the rest of the line (config style), not an expression
              |(?P<bv>[^\s"'`,;\#\]\})(]{1,512})\s*(?:[,;]\s*)?(?:(?:\#|//).*)?$)"#,
        )
        .unwrap();
        #[allow(clippy::unwrap_used)] // the same constant pattern, anchored
        let anchored = Regex::new(&format!("^(?:{})", assignment.as_str())).unwrap();
        let names = (!rules.name_keywords.is_empty())
            .then(|| AhoCorasick::builder().ascii_case_insensitive(true).build(&rules.name_keywords).ok())
            .flatten();
        Detector { rules, prefilter, owners, names, assignment, anchored }
    }

    /// The assignments on a line whose name holds one of the names' keywords:
    /// the anchored regex runs only where such a name starts, not at every
    /// `word: word` of a prose file.
    fn assignments<'l>(&self, line: &'l str) -> Vec<regex::Captures<'l>> {
        let Some(names) = &self.names else { return self.assignment.captures_iter(line).collect() };
        let bytes = line.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'$' | b'.' | b'-');
        let mut out = Vec::new();
        let mut covered = 0;
        for m in names.find_iter(line) {
            let mut start = m.start();
            while start > 0 && ident(bytes[start - 1]) {
                start -= 1;
            }
            if start > 0 && matches!(bytes[start - 1], b'"' | b'\'') {
                start -= 1;
            }
            if start < covered {
                continue;
            }
            if let Some(c) = self.anchored.captures(&line[start..]) {
                covered = start + c.get(0).map_or(0, |g| g.end());
                out.push(c);
            }
        }
        out
    }

    /// The rules in use.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn prefilter(&self, text: &str, line_starts: &[usize]) -> Seen {
        let mut seen = Seen {
            tokens: HashSet::new(),
            name_lines: vec![self.rules.name_keywords.is_empty(); line_starts.len()],
            exchange_lines: vec![Vec::new(); line_starts.len()],
        };
        let bytes = text.as_bytes();
        for m in self.prefilter.find_overlapping_iter(text) {
            match self.owners[m.pattern().as_usize()] {
                Owner::Token(t) => {
                    seen.tokens.insert(t);
                }
                Owner::Name => {
                    let line = line_starts.partition_point(|s| *s <= m.start()) - 1;
                    seen.name_lines[line] = true;
                }
                Owner::Exchange(x) => {
                    // A whole word: `gate` in `gateway` is not Gate.
                    let before = m.start().checked_sub(1).map(|i| bytes[i]);
                    let after = bytes.get(m.end()).copied();
                    let word = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric());
                    if word(before) && (word(after) || after == Some(b'_')) {
                        let line = line_starts.partition_point(|s| *s <= m.start()) - 1;
                        if !seen.exchange_lines[line].contains(&x) {
                            seen.exchange_lines[line].push(x);
                        }
                    }
                }
            }
        }
        seen
    }

    /// The exchange a value on `line` belongs to: named in its variable, on a line above, or in the path.
    fn exchange_for(&self, name: &str, line: usize, seen: &Seen, path: &str) -> Option<usize> {
        let lname = name.to_lowercase();
        if let Some(i) = self.rules.exchanges.iter().position(|x| x.aliases.iter().any(|a| lname.contains(a.as_str())))
        {
            return Some(i);
        }
        // The nearest line naming an exchange, above first (`ccxt.binance({` then
        // its keys), then below (keys first, then the client built from them).
        for d in 0..=CONTEXT_LINES {
            for l in [line.checked_sub(d), (d > 0).then_some(line + d)].into_iter().flatten() {
                if let Some(x) = seen.exchange_lines.get(l).and_then(|v| v.first()) {
                    return Some(*x);
                }
            }
        }
        // A whole word of the path (`bots/okx/…`, `kraken_bot.py`), not `gateway/`.
        let lpath = path.to_lowercase();
        let words: Vec<&str> = lpath.split(|c: char| !c.is_ascii_alphanumeric()).collect();
        self.rules.exchanges.iter().position(|x| x.aliases.iter().any(|a| words.contains(&a.as_str())))
    }

    fn part_of(&self, name: &str) -> Option<Part> {
        let last = name.rsplit('.').next().unwrap_or(name).to_lowercase();
        if self.rules.passphrase_name.is_match(&last) {
            Some(Part::Passphrase)
        } else if self.rules.secret_name.is_match(&last) {
            Some(Part::Secret)
        } else if self.rules.key_name.is_match(&last) {
            Some(Part::Key)
        } else {
            None
        }
    }

    /// Every credential in `text`, a file at `path`.
    pub fn scan_text(&self, path: &str, text: &str) -> Vec<Finding> {
        if is_lock_file(path) {
            return Vec::new();
        }
        let syntax = syntax_of(path);
        let mut line_starts = vec![0];
        line_starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i + 1));
        let seen = self.prefilter(text, &line_starts);
        let mut found: Vec<Finding> = Vec::new();
        let mut taken: HashSet<(usize, String)> = HashSet::new();
        let new = |line: usize, rule: String, value: &str, exchange: Option<(String, Part)>| Finding {
            file: path.to_string(),
            line: line + 1,
            rule,
            redacted: redact(value),
            part: exchange.as_ref().map(|e| e.1),
            exchange: exchange.map(|e| e.0),
            paired_with: Vec::new(),
            commit: None,
            secret: Zeroizing::new(value.to_string()),
        };
        // Token rules run once over the whole text.
        for (ri, rule) in self.rules.tokens.iter().enumerate() {
            if !rule.keywords.is_empty() && !seen.tokens.contains(&ri) {
                continue;
            }
            let haystack: std::borrow::Cow<'_, str> =
                if syntax == Syntax::Notebook { text.replace("\\\"", "\" ").into() } else { text.into() };
            for c in rule.regex.captures_iter(&haystack) {
                let Some(m) = c.get(1).or_else(|| c.get(0)) else { continue };
                let i = line_starts.partition_point(|s| *s <= m.start()) - 1;
                if validated(rule, m.as_str(), &haystack[m.end()..]) && taken.insert((i, m.as_str().to_string())) {
                    found.push(new(i, rule.id.clone(), m.as_str(), rule.exchange.clone()));
                }
            }
        }
        for (i, start) in line_starts.iter().enumerate() {
            if !seen.name_lines[i] {
                continue;
            }
            let end = line_starts.get(i + 1).map_or(text.len(), |e| e - 1);
            let raw = &text[*start..end];
            let unescaped;
            let line = if syntax == Syntax::Notebook {
                unescaped = raw.replace("\\\"", "\"");
                unescaped.as_str()
            } else {
                raw
            };
            for c in self.assignments(line) {
                if &c["sep"] == "==" {
                    continue;
                }
                let (value, quoted) = match (c.name("qv"), c.name("bv")) {
                    (Some(v), _) => (v.as_str(), true),
                    (None, Some(v)) => (v.as_str(), false),
                    _ => continue,
                };
                if (!quoted && syntax == Syntax::Code) || is_decoy(value) || taken.contains(&(i, value.to_string())) {
                    continue;
                }
                let name = &c["name"];
                if let Some(f) = self.assignment_finding(name, value, i, &seen, path) {
                    taken.insert((i, value.to_string()));
                    found.push(new(i, f.0, value, f.1));
                }
            }
        }
        self.pair(&mut found, &seen, path);
        found
    }

    /// The rule (and exchange part) a value assigned to `name` is found by, if any.
    fn assignment_finding(
        &self,
        name: &str,
        value: &str,
        line: usize,
        seen: &Seen,
        path: &str,
    ) -> Option<(String, Option<(String, Part)>)> {
        // keyward's formats are checked, not guessed: one that fails its
        // checksum or structure is no keyward credential, and nothing else.
        if looks_like_keyward(value) {
            return None;
        }
        let random_enough = value.len() < 16 || entropy(value) >= 2.5;
        if let (Some(part), Some(x)) = (self.part_of(name), self.exchange_for(name, line, seen, path)) {
            let ex = &self.rules.exchanges[x];
            if ex.shape(part).is_some_and(|re| re.is_match(value)) && random_enough {
                return Some((format!("{}-{}", ex.id, part.as_str()), Some((ex.id.clone(), part))));
            }
        }
        let lname = name.to_lowercase();
        let lvalue = value.to_lowercase();
        // A file name (`x.o`, `key.pem`) or a value that repeats its own name is no secret.
        let file_like = lvalue
            .rsplit_once('.')
            .is_some_and(|(_, ext)| (1..=4).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_lowercase()));
        let last = lname.rsplit('.').next().unwrap_or(&lname);
        if file_like || (last.len() >= 4 && lvalue.contains(last)) {
            return None;
        }
        (self.rules.credential_name.is_match(&lname)
            && value.len() >= self.rules.min_length
            && entropy(value) >= self.rules.min_entropy
            && !value.contains(' '))
        .then(|| (self.rules.generic_id.clone(), None))
    }

    /// Pairs each exchange's parts found close together; a passphrase is
    /// kept only beside a key or secret of its exchange. A private key near
    /// a Coinbase key name is that key's secret.
    fn pair(&self, found: &mut Vec<Finding>, seen: &Seen, path: &str) {
        let near = |a: usize, b: usize| a.abs_diff(b) <= PAIR_LINES;
        let coinbase_keys: Vec<usize> =
            found.iter().filter(|f| f.exchange.as_deref() == Some("coinbase")).map(|f| f.line).collect();
        for f in found.iter_mut().filter(|f| f.rule == "private-key" && f.exchange.is_none()) {
            let in_context =
                self.exchange_for("", f.line - 1, seen, path).is_some_and(|x| self.rules.exchanges[x].id == "coinbase");
            if in_context || coinbase_keys.iter().any(|l| near(*l, f.line)) {
                f.exchange = Some("coinbase".into());
                f.part = Some(Part::Secret);
            }
        }
        let parts: Vec<(usize, String, Part)> =
            found.iter().filter_map(|f| Some((f.line, f.exchange.clone()?, f.part?))).collect();
        for f in found.iter_mut() {
            let (Some(ex), Some(part)) = (&f.exchange, f.part) else { continue };
            f.paired_with = parts
                .iter()
                .filter(|(l, e, p)| e == ex && *p != part && near(*l, f.line))
                .map(|(l, _, _)| *l)
                .collect();
        }
        found.retain(|f| f.part != Some(Part::Passphrase) || !f.paired_with.is_empty());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector() -> Detector {
        Detector::new(Rules::shipped().unwrap())
    }

    #[test]
    fn entropy_and_redaction() {
        assert!(entropy("aaaaaaaa") < 0.1);
        assert!(entropy("Zx8Qp2Lm9Vb4Nc7K") > 3.5);
        assert_eq!(redact("AbCdEfGh"), "AbCd…");
    }

    #[test]
    fn names_that_only_start_with_a_credential_word() {
        let d = detector();
        let text = "TOKEN_ADDRESS = \"0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48\"\ntokenizer_name = \"distilbert-base-uncased\"\nsecret_name = \"prod/AppBeta/MySQL\"\napi_key = \"fake_api_key_for_tests\"\n";
        assert!(d.scan_text("x.py", text).is_empty(), "{:?}", d.scan_text("x.py", text));
        let real = "BOT_TOKEN_2 = \"Zx8Qp2Lm9Vb4Nc7KZx8Qp2Lm9Vb4Nc7K\"\n";
        assert_eq!(d.scan_text("x.py", real).len(), 1);
    }

    #[test]
    fn decoys() {
        for d in [
            "YOUR_API_KEY",
            "xxxxxxxxxxxxxxxx",
            "<your-secret>",
            "changeme",
            "${BINANCE_SECRET}",
            "sha512-abc",
            "data:image/png;base64,iVBOR",
            "https://example.org/a",
        ] {
            assert!(is_decoy(d), "{d}");
        }
        assert!(!is_decoy("Zx8Qp2Lm9Vb4Nc7KZx8Qp2Lm9Vb4Nc7K"));
    }

    #[test]
    fn context_below_path_words_and_pgp_blocks() {
        let d = detector();
        let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
        // The keys first, the client built from them below.
        let f = d.scan_text("bot.py", &format!("API_KEY = '{key}'\n\nex = ccxt.binance({{'apiKey': API_KEY}})\n"));
        assert_eq!(f.iter().map(|f| f.rule.as_str()).collect::<Vec<_>>(), ["binance-key"]);
        // `gateway/` is not Gate; `gate/` is.
        let hex = "9f3c1a7be2d54c8096a1f0e3b7c2d5a4";
        assert!(d.scan_text("gateway/x.env", &format!("API_KEY={hex}\n")).iter().all(|f| f.rule != "gate-key"));
        assert!(d.scan_text("bots/gate/x.env", &format!("API_KEY={hex}\n")).iter().any(|f| f.rule == "gate-key"));
        let body: String = (0..4).map(|i| format!("{}\n", &key[i..i + 60])).collect();
        let pgp = format!("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{body}-----END PGP PRIVATE KEY BLOCK-----\n");
        assert_eq!(d.scan_text("k.asc", &pgp).len(), 1);
        let example = format!("-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n", "X".repeat(128));
        assert!(d.scan_text("doc.md", &example).is_empty(), "an example body is no key");
    }

    #[test]
    fn a_binance_pair_in_python() {
        let key = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A";
        let secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j";
        let text =
            format!("import ccxt\nex = ccxt.binance({{\n    'apiKey': '{key}',\n    'secret': '{secret}',\n}})\n");
        let f = detector().scan_text("bot.py", &text);
        let rules: Vec<&str> = f.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, ["binance-key", "binance-secret"], "{f:?}");
        assert_eq!(f[0].paired_with, vec![4]);
    }
}
