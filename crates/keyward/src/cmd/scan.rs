//! `keyward scan`: find hard-coded credentials in files (no server needed).

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use keyward_scan::{Detector, Rules, ScanOptions, report, scan_paths};
use std::io::IsTerminal;
use std::path::PathBuf;

/// Output formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    /// One line per finding.
    Text,
    /// A JSON array: file, line, rule, redacted (and exchange, part, paired_with).
    Json,
    /// SARIF 2.1.0, for code-scanning tools.
    Sarif,
}

/// Arguments of `keyward scan`.
#[derive(Debug, Args)]
#[command(after_help = "Finds keyward keys and tokens (prefix and checksum), exchange credentials
(Binance, OKX, Bybit, Kraken, KuCoin, Bitget, Gate, Deribit, Coinbase: key,
secret and passphrase paired), PEM private keys, and random-looking values
assigned to credential names in code and configuration. Placeholders,
environment lookups, lock files, hashes and data URIs are not reported.
Secrets are shown as their first 4 characters only.

Exit code: 0 nothing found, 1 something found, 2 an error.

Examples:
  keyward scan .
  keyward scan src config --format sarif > keyward.sarif
  keyward scan . --rules my-rules.toml --format json
  keyward scan --git .                 # every commit of every branch
  keyward scan --install-hook .        # scan staged changes before each commit
  keyward scan . --format json > baseline.json; keyward scan . --baseline baseline.json")]
pub struct ScanArgs {
    /// Files or directories [default: .]. `.gitignore` is honoured.
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// More rules (TOML, the shipped file's format); an id of a shipped rule replaces it.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Scan every commit of every branch instead of the files (a key committed
    /// and deleted since is still found); PATH is the repository.
    #[arg(long, conflicts_with = "staged")]
    git: bool,
    /// Scan only what is staged for the next commit (the pre-commit hook).
    #[arg(long)]
    staged: bool,
    /// Install a git pre-commit hook in the repository at PATH that runs
    /// `keyward scan --staged` and refuses a commit adding a credential.
    #[arg(long, conflicts_with_all = ["git", "staged"])]
    install_hook: bool,
    /// Leave out findings already in this file (an earlier `--format json` output).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Match the findings with the server at KEYWARD_ADDR (with KEYWARD_TOKEN,
    /// keys:admin): each keyward key found is named by id, owner and state,
    /// each exchange API key by the account that holds it.
    #[arg(long)]
    server: bool,
    /// With --server: mark each keyward key found compromised (refused at
    /// once, audited) and print the rotation command for each matched
    /// exchange account.
    #[arg(long, requires = "server")]
    respond: bool,
    /// Skip files larger than this many bytes (counted in the summary).
    #[arg(long, default_value_t = 10 * 1024 * 1024, value_name = "BYTES")]
    max_file_size: u64,
}

/// Runs `keyward scan`; answers the exit code.
pub fn run(a: ScanArgs, conn: &crate::client::Connection) -> Result<u8> {
    let extra = a
        .rules
        .as_ref()
        .map(|f| std::fs::read_to_string(f).with_context(|| format!("reading the rules file {}", f.display())))
        .transpose()?;
    let rules = Rules::with_extra(extra.as_deref())?;
    let detector = Detector::new(rules);
    let paths = if a.paths.is_empty() { vec![PathBuf::from(".")] } else { a.paths.clone() };
    for p in &paths {
        if !p.exists() {
            anyhow::bail!("{}: no such file or directory", p.display());
        }
    }
    if a.install_hook {
        let exe = std::env::current_exe().context("finding keyward's own path")?;
        let hook = keyward_scan::git::install_hook(&paths[0], &exe)?;
        println!("installed {}: each commit's staged changes are scanned first", hook.display());
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let spinner = spinner(&done);
    let mut r = if a.git || a.staged {
        let findings = if a.git {
            keyward_scan::git::scan_history(&detector, &paths[0])?
        } else {
            keyward_scan::git::scan_staged(&detector, &paths[0])?
        };
        keyward_scan::ScanReport { findings, ..Default::default() }
    } else {
        scan_paths(
            &detector,
            &paths,
            &ScanOptions { max_file_size: a.max_file_size, threads: 0, progress: Some(done.clone()) },
        )
    };
    if let Some(b) = &a.baseline {
        let text = std::fs::read_to_string(b).with_context(|| format!("reading the baseline {}", b.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("the baseline {} is not JSON", b.display()))?;
        r.findings = report::without_baseline(std::mem::take(&mut r.findings), &v).map_err(anyhow::Error::msg)?;
    }
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    // The findings are printed even when the server cannot be asked (exit 2 then).
    let mut server_failed = false;
    let matches = if a.server && !r.findings.is_empty() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        match rt.block_on(crate::cmd::scan_server::match_findings(conn, &r.findings, a.respond)) {
            Ok(m) => Some(m),
            Err(e) => {
                eprintln!("error: matching with the server: {e:#}");
                server_failed = true;
                None
            }
        }
    } else {
        None
    };
    print_findings(a.format, &r.findings, matches.as_ref(), detector.rules())?;
    for n in matches.iter().flat_map(|m| m.notes.iter()) {
        eprintln!("keyward scan: {n}");
    }
    let secs = started.elapsed().as_secs_f64();
    if a.git || a.staged {
        let what = if a.git { "every commit" } else { "the staged changes" };
        eprintln!("keyward scan: {} finding(s) in {what} of {} in {secs:.2} s", r.findings.len(), paths[0].display());
        return Ok(if server_failed { 2 } else { u8::from(!r.findings.is_empty()) });
    }
    eprintln!(
        "keyward scan: {} finding(s) in {} file(s), {:.1} MB in {secs:.2} s; skipped {} binary and {} over {} bytes",
        r.findings.len(),
        r.files,
        r.bytes as f64 / 1e6,
        r.skipped_binary,
        r.skipped_large,
        a.max_file_size
    );
    for e in &r.errors {
        eprintln!("keyward scan: {e}");
    }
    // An incomplete scan is an error even when it found something.
    Ok(if !r.errors.is_empty() || server_failed { 2 } else { u8::from(!r.findings.is_empty()) })
}

/// A live count of files on a terminal; nothing when stderr is piped.
fn spinner(done: &std::sync::Arc<std::sync::atomic::AtomicU64>) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        let (s2, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            while !s2.is_finished() {
                s2.set_message(format!("scanning: {} files", done.load(std::sync::atomic::Ordering::Relaxed)));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        s
    })
}

fn print_findings(
    format: Format,
    findings: &[keyward_scan::Finding],
    matches: Option<&crate::cmd::scan_server::Matches>,
    rules: &Rules,
) -> Result<()> {
    match format {
        Format::Text => {
            print!("{}", report::text(findings));
            for (f, m) in findings.iter().zip(matches.into_iter().flat_map(|m| m.per_finding.iter())) {
                if let Some(m) = m {
                    println!("{}:{}: {}", f.file, f.line, describe_match(m));
                }
            }
        }
        Format::Json => {
            let mut v = report::json(findings);
            if let (Some(arr), Some(m)) = (v.as_array_mut(), matches) {
                for (f, m) in arr.iter_mut().zip(&m.per_finding) {
                    if let Some(m) = m {
                        f["match"] = m.clone();
                    }
                }
            }
            println!("{}", serde_json::to_string_pretty(&v)?)
        }
        Format::Sarif => println!("{}", serde_json::to_string_pretty(&report::sarif(findings, rules))?),
    }
    Ok(())
}

fn describe_match(m: &serde_json::Value) -> String {
    let s = |k: &str| m[k].as_str().unwrap_or("-").to_string();
    if m.get("key_id").is_some() {
        format!("this is keyward key {} ({}, owner {}), {}", s("key_id"), s("name"), s("owner"), s("state"))
    } else {
        format!("this API key is the one exchange account {} holds ({})", s("account"), s("path"))
    }
}
