//! A generated corpus of trading-bot files: every kind of credential
//! planted in several syntaxes (fresh values from a seed), and look-alike
//! decoys that must not be reported.

#![allow(clippy::unwrap_used)]

use keyward_scan::{Detector, Rules, ScanOptions, scan_paths};
use std::path::Path;

/// xorshift64*: reproducible values per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn from(&mut self, alphabet: &str, n: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        (0..n).map(|_| a[(self.next() % a.len() as u64) as usize]).collect()
    }
    fn alnum(&mut self, n: usize) -> String {
        self.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n)
    }
    fn hex(&mut self, n: usize) -> String {
        self.from("0123456789abcdef", n)
    }
    fn b64(&mut self, n: usize) -> String {
        self.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", n)
    }
    fn uuid(&mut self) -> String {
        format!("{}-{}-{}-{}-{}", self.hex(8), self.hex(4), self.hex(4), self.hex(4), self.hex(12))
    }
}

/// A planted credential: file, line, the rule that must find it.
struct Plant {
    file: &'static str,
    line: usize,
    rule: String,
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1).unwrap_or_else(|| panic!("{needle} not in text"))
}

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn corpus(dir: &Path, seed: u64) -> Vec<Plant> {
    let mut r = Rng(seed | 1);
    let mut plants = Vec::new();
    let mut plant = |file: &'static str, text: &str, needle: &str, rule: &str| {
        plants.push(Plant { file, line: line_of(text, needle), rule: rule.into() });
    };

    // ccxt in Python: Binance and OKX (with its passphrase as ccxt's `password`).
    let (bk, bs) = (r.alnum(64), r.alnum(64));
    let (ok, os, op) = (r.uuid(), r.hex(32).to_uppercase(), format!("Pp-{}", r.alnum(10)));
    let py = format!(
        "import ccxt\n\nbinance = ccxt.binance({{\n    'apiKey': '{bk}',\n    'secret': '{bs}',\n}})\n\nokx = ccxt.okx({{\n    \"apiKey\": \"{ok}\",\n    \"secret\": \"{os}\",\n    \"password\": \"{op}\",\n}})\n"
    );
    write(dir, "bots/grid.py", &py);
    plant("bots/grid.py", &py, &bk, "binance-key");
    plant("bots/grid.py", &py, &bs, "binance-secret");
    plant("bots/grid.py", &py, &ok, "okx-key");
    plant("bots/grid.py", &py, &os, "okx-secret");
    plant("bots/grid.py", &py, &op, "okx-passphrase");

    // Freqtrade's config.json: Bybit.
    let (yk, ys) = (r.alnum(18), r.alnum(36));
    let ft = format!(
        "{{\n  \"max_open_trades\": 3,\n  \"exchange\": {{\n    \"name\": \"bybit\",\n    \"key\": \"{yk}\",\n    \"secret\": \"{ys}\",\n    \"ccxt_config\": {{}}\n  }}\n}}\n"
    );
    write(dir, "freqtrade/config.json", &ft);
    plant("freqtrade/config.json", &ft, &yk, "bybit-key");
    plant("freqtrade/config.json", &ft, &ys, "bybit-secret");

    // .env: Kraken, KuCoin (with passphrase), Bitget, Gate.
    let (kk, ks) = (r.b64(56), format!("{}==", r.b64(86)));
    let (ck, cs, cp) = (r.hex(24), r.uuid(), r.alnum(12));
    let (gk, gs, gp) = (format!("bg_{}", r.hex(32)), r.hex(64), r.alnum(14));
    let (tk, ts) = (r.hex(32), r.hex(64));
    let env = format!(
        "KRAKEN_API_KEY={kk}\nKRAKEN_API_SECRET={ks}\n\nKUCOIN_API_KEY={ck}\nKUCOIN_API_SECRET={cs}\nKUCOIN_API_PASSPHRASE={cp}\n\nBITGET_API_KEY={gk}\nBITGET_SECRET_KEY={gs}\nBITGET_PASSPHRASE={gp}\n\nGATEIO_API_KEY={tk}\nGATEIO_API_SECRET={ts}\n"
    );
    write(dir, ".env", &env);
    for (needle, rule) in [
        (&kk, "kraken-key"),
        (&ks, "kraken-secret"),
        (&ck, "kucoin-key"),
        (&cs, "kucoin-secret"),
        (&cp, "kucoin-passphrase"),
        (&gk, "bitget-key"),
        (&gs, "bitget-secret"),
        (&gp, "bitget-passphrase"),
        (&tk, "gate-key"),
        (&ts, "gate-secret"),
    ] {
        plant(".env", &env, needle, rule);
    }

    // YAML: Deribit.
    let (dk, ds) = (r.alnum(8), format!("{}_{}", r.alnum(21), r.alnum(21)));
    let yaml = format!("exchange:\n  id: deribit\n  client_id: {dk}\n  client_secret: {ds}\n  testnet: false\n");
    write(dir, "deploy/deribit.yaml", &yaml);
    plant("deploy/deribit.yaml", &yaml, &dk, "deribit-key");
    plant("deploy/deribit.yaml", &yaml, &ds, "deribit-secret");

    // Coinbase CDP key file: key name and EC private key (JSON, escaped newlines).
    let name = format!("organizations/{}/apiKeys/{}", r.uuid(), r.uuid());
    let pem_body: Vec<String> = (0..3).map(|_| r.b64(64)).collect();
    let cdp = format!(
        "{{\n  \"name\": \"{name}\",\n  \"privateKey\": \"-----BEGIN EC PRIVATE KEY-----\\n{}\\n-----END EC PRIVATE KEY-----\\n\"\n}}\n",
        pem_body.join("\\n")
    );
    write(dir, "keys/cdp_api_key.json", &cdp);
    plant("keys/cdp_api_key.json", &cdp, &name, "coinbase-cdp-key-name");
    plant("keys/cdp_api_key.json", &cdp, "BEGIN EC PRIVATE KEY", "private-key");

    // A PEM RSA key on its own, in a plain file.
    let rsa = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----\n",
        (0..5).map(|_| r.b64(64)).collect::<Vec<_>>().join("\n")
    );
    write(dir, "certs/bot.key", &rsa);
    plant("certs/bot.key", &rsa, "BEGIN RSA PRIVATE KEY", "private-key");

    // keyward's own key and token, in TypeScript and Go.
    let kw = keyward_core::access_key::AccessKeySecret::generate("kw").unwrap();
    let claims = format!("{{\"key\":\"key_{}\",\"scopes\":[\"secret:read:*\"],\"exp\":1900000000000}}", r.alnum(16));
    use base64::Engine;
    let tok = format!(
        "kwt_{}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims),
        r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", 43)
    );
    let ts_src = format!("export const client = new Keyward({{ token: \"{}\" }});\n", kw.expose());
    write(dir, "web/client.ts", &ts_src);
    plant("web/client.ts", &ts_src, kw.expose(), "keyward-access-key");
    let go = format!("package main\n\n// the deploy token\nvar t = \"{tok}\"\n");
    write(dir, "cmd/deploy/main.go", &go);
    plant("cmd/deploy/main.go", &go, &tok, "keyward-token");

    // Random-looking values under credential names: Rust, TOML, a notebook.
    let (w1, w2, w3) = (r.alnum(32), r.alnum(40), r.alnum(28));
    let rs = format!("const WEBHOOK_TOKEN: &str = \"{w1}\";\n");
    write(dir, "src/alerts.rs", &rs);
    plant("src/alerts.rs", &rs, &w1, "generic-credential");
    let toml = format!("[telegram]\nbot_token = \"{w2}\"\n");
    write(dir, "settings.toml", &toml);
    plant("settings.toml", &toml, &w2, "generic-credential");
    let nb = format!(
        "{{\"cells\": [{{\"cell_type\": \"code\", \"source\": [\"import requests\\n\", \"auth_token = \\\"{w3}\\\"\\n\"]}}]}}\n"
    );
    write(dir, "research/explore.ipynb", &nb);
    plant("research/explore.ipynb", &nb, &w3, "generic-credential");
    plants
}

/// Look-alikes that must not be reported.
fn decoys(dir: &Path, seed: u64) {
    let mut r = Rng(seed.rotate_left(17) | 1);
    let wrong_sum = format!("kw_{}", r.alnum(49));
    let files = [
        (
            "decoy/placeholders.py",
            format!(
                "import ccxt, os\nex = ccxt.binance({{'apiKey': 'YOUR_API_KEY', 'secret': '<your-secret>'}})\npassword = 'changeme'\napi_secret = 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'\nkey = os.environ['BINANCE_API_KEY']\nsecret = os.getenv('BINANCE_SECRET')\ntoken = '{wrong_sum}'\n"
            ),
        ),
        (
            "decoy/env.js",
            "const key = process.env.BINANCE_API_KEY;\nconst secret = `${process.env.SECRET}`;\n".to_string(),
        ),
        (
            "decoy/config.yaml",
            "exchange:\n  name: binance\n  key: ${BINANCE_KEY}\n  secret: ${BINANCE_SECRET}\n".to_string(),
        ),
        (
            "decoy/package-lock.json",
            format!(
                "{{\"packages\": {{\"node_modules/x\": {{\"integrity\": \"sha512-{}==\", \"resolved\": \"https://r/x.tgz\"}}}}}}\n",
                r.b64(86)
            ),
        ),
        (
            "decoy/page.html",
            format!(
                "<script src=\"x.js\" integrity=\"sha384-{}\"></script>\n<img src=\"data:image/png;base64,{}\">\n",
                r.b64(64),
                r.b64(120)
            ),
        ),
        (
            "decoy/meta.py",
            format!(
                "commit = '{}'\nrequest_id = '{}'\norder_id = '{}'\nchecksum = '{}'\n",
                r.hex(40),
                r.uuid(),
                r.uuid(),
                r.hex(64)
            ),
        ),
        (
            "decoy/README.md",
            "Put your key in the file:\n\n    -----BEGIN PRIVATE KEY-----\n    ...\n    -----END PRIVATE KEY-----\n"
                .to_string(),
        ),
    ];
    for (name, text) in files {
        write(dir, name, &text);
    }
}

#[test]
fn every_planted_credential_is_found_and_no_decoy_is_reported() {
    for seed in [7_u64, 1_234_567, 0xdead_beef] {
        let dir = tempfile::tempdir().unwrap();
        let plants = corpus(dir.path(), seed);
        decoys(dir.path(), seed);
        let detector = Detector::new(Rules::shipped().unwrap());
        let report = scan_paths(&detector, &[dir.path().to_path_buf()], &ScanOptions::default());
        let root = format!("{}/", dir.path().display());
        let got: Vec<(String, usize, String)> = report
            .findings
            .iter()
            .map(|f| (f.file.strip_prefix(&root).unwrap_or(&f.file).to_string(), f.line, f.rule.clone()))
            .collect();
        for p in &plants {
            assert!(
                got.iter().any(|(f, l, r)| f == p.file && *l == p.line && *r == p.rule),
                "seed {seed}: {} at {}:{} not found; got {got:?}",
                p.rule,
                p.file,
                p.line
            );
        }
        let decoys: Vec<_> = got.iter().filter(|(f, _, _)| f.starts_with("decoy/")).collect();
        assert!(decoys.is_empty(), "seed {seed}: decoys reported: {decoys:?}");
        assert_eq!(got.len(), plants.len(), "seed {seed}: extra findings: {got:?}");
        for f in &report.findings {
            assert_eq!(f.redacted.chars().count(), 5, "only 4 characters and an ellipsis are shown");
        }
    }
}

#[test]
fn gitignore_binary_and_huge_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "Zx8Qp2Lm9Vb4Nc7KZx8Qp2Lm9Vb4Nc7K";
    write(dir.path(), ".gitignore", "ignored/\n");
    write(dir.path(), "ignored/a.py", &format!("api_secret = \"{secret}\"\n"));
    write(dir.path(), "kept.py", &format!("api_secret = \"{secret}\"\n"));
    std::fs::write(dir.path().join("blob.bin"), [b"api_secret = \"".as_slice(), secret.as_bytes(), b"\"\0\0"].concat())
        .unwrap();
    write(dir.path(), "big.py", &format!("api_secret = \"{secret}\"\n{}", "#\n".repeat(600_000)));
    let detector = Detector::new(Rules::shipped().unwrap());
    let r = scan_paths(
        &detector,
        &[dir.path().to_path_buf()],
        &ScanOptions { max_file_size: 1_000_000, threads: 2, progress: None },
    );
    let files: Vec<&str> = r.findings.iter().map(|f| f.file.rsplit('/').next().unwrap()).collect();
    assert_eq!(files, ["kept.py"], "{:?}", r.findings);
    assert_eq!((r.skipped_binary, r.skipped_large), (1, 1));
}
