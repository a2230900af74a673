//! Writing findings: text for people, JSON (`file`, `line`, `rule`,
//! `redacted` and more per finding) and SARIF 2.1.0 for code-scanning
//! tools. Only the redacted form of a secret is ever written.

use crate::detect::Finding;
use crate::rules::Rules;
use serde_json::{Value, json};

/// One line per finding: `file:line: rule redacted (paired with …)`.
pub fn text(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let at = match &f.commit {
            Some(c) => format!("{}:{} (commit {})", f.file, f.line, &c[..c.len().min(12)]),
            None => format!("{}:{}", f.file, f.line),
        };
        out.push_str(&format!("{at}: {} {}", f.rule, f.redacted));
        if !f.paired_with.is_empty() {
            let lines: Vec<String> = f.paired_with.iter().map(|l| l.to_string()).collect();
            out.push_str(&format!(
                " (with the rest of this {} credential at line {})",
                f.exchange.as_deref().unwrap_or(""),
                lines.join(", ")
            ));
        }
        out.push('\n');
    }
    out
}

/// A JSON array of findings, each with its fingerprint (what `--baseline` matches).
pub fn json(findings: &[Finding]) -> Value {
    Value::Array(
        findings
            .iter()
            .map(|f| {
                let mut v = json!(f);
                v["fingerprint"] = json!(fingerprint(f));
                v
            })
            .collect(),
    )
}

/// Drops the findings a baseline (an earlier `--format json` output) holds.
pub fn without_baseline(findings: Vec<Finding>, baseline: &Value) -> Result<Vec<Finding>, String> {
    let known: std::collections::HashSet<&str> = baseline
        .as_array()
        .ok_or("the baseline is not a JSON array (write one with --format json)")?
        .iter()
        .filter_map(|f| f["fingerprint"].as_str())
        .collect();
    Ok(findings.into_iter().filter(|f| !known.contains(fingerprint(f).as_str())).collect())
}

/// A SARIF 2.1.0 log with one run.
pub fn sarif(findings: &[Finding], rules: &Rules) -> Value {
    let catalogue: Vec<Value> = rules
        .catalogue()
        .into_iter()
        .map(|(id, d)| json!({"id": id, "name": id, "shortDescription": {"text": d}, "defaultConfiguration": {"level": "error"}}))
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            json!({
                "ruleId": f.rule,
                "level": "error",
                "message": {"text": format!("{} found: {}", f.rule, f.redacted)},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": f.file},
                        "region": {"startLine": f.line}
                    }
                }],
                "partialFingerprints": {"keyward/v1": fingerprint(f)},
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "keyward scan",
                "informationUri": "https://github.com/keyward/keyward",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": catalogue,
            }},
            "results": results,
        }]
    })
}

/// A stable id for a finding that reveals nothing of its secret beyond the
/// redacted form already shown: SHA-256 of rule, file, line, commit and that
/// form (as gitleaks: a finding that moves is a new finding).
pub fn fingerprint(f: &Finding) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let line = f.line.to_string();
    for part in [f.rule.as_str(), f.file.as_str(), &line, f.commit.as_deref().unwrap_or(""), f.redacted.as_str()] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    ctx.finish().as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
}
