//! `keyward scan --server [--respond]`: findings matched against what the
//! server holds (`POST /v1/scan/match`): a keyward key is looked up by its
//! keyed hash on its own server only, an exchange API key against the
//! stored accounts. `--respond` marks each found keyward key compromised
//! (audited by the server) and prints the rotation command for a matched
//! exchange account.

use crate::client::{Client, Connection};
use anyhow::Result;
use keyward_scan::{Finding, Part};
use reqwest::Method;
use serde_json::{Value, json};

/// What the server said about each finding (by index into the findings).
pub struct Matches {
    /// Per finding, the server's match, if any.
    pub per_finding: Vec<Option<Value>>,
    /// Lines to print after the findings.
    pub notes: Vec<String>,
}

/// Asks the server about `findings`; with `respond`, acts on the matches.
pub async fn match_findings(conn: &Connection, findings: &[Finding], respond: bool) -> Result<Matches> {
    // A found key travels only to its server, and never in the clear over a network.
    if let Ok(u) = reqwest::Url::parse(&conn.addr)
        && u.scheme() == "http"
        && !matches!(u.host_str(), Some("127.0.0.1" | "localhost" | "[::1]" | "::1"))
    {
        anyhow::bail!(
            "--server sends the keys it found to {}: over plain http that is only allowed to loopback; use https",
            conn.addr
        );
    }
    let c = Client::new(conn)?;
    // Each distinct value once (history repeats them).
    let mut seen = std::collections::HashSet::new();
    let key_idx: Vec<usize> = (0..findings.len())
        .filter(|i| findings[*i].rule == "keyward-access-key" && seen.insert(findings[*i].secret.as_str()))
        .collect();
    let ex_idx: Vec<usize> = (0..findings.len()).filter(|i| findings[*i].part == Some(Part::Key)).collect();
    let body = json!({
        "keys": key_idx.iter().map(|i| findings[*i].secret.as_str()).collect::<Vec<_>>(),
        "exchange_keys": ex_idx.iter().map(|i| json!({"exchange": findings[*i].exchange, "key": findings[*i].secret.as_str()})).collect::<Vec<_>>(),
    });
    let answer = c.call(Method::POST, "/v1/scan/match", Some(&body)).await?;
    let mut per_finding: Vec<Option<Value>> = vec![None; findings.len()];
    let mut notes = Vec::new();
    for k in answer["keys"].as_array().into_iter().flatten() {
        let Some(i) = k["index"].as_u64().and_then(|i| key_idx.get(i as usize)) else { continue };
        let mut m = k.clone();
        if respond && !matches!(k["state"].as_str(), Some("compromised" | "revoked" | "destroyed")) {
            let id = k["key_id"].as_str().unwrap_or_default();
            match c.call(Method::POST, &format!("/v1/keys/{id}/compromised"), Some(&json!({}))).await {
                Ok(_) => {
                    m["state"] = json!("compromised");
                    m["responded"] = json!("marked compromised");
                    notes.push(format!(
                        "marked {id} ({}) compromised: it is refused from now on; see `keyward key show {id}`",
                        k["name"].as_str().unwrap_or("")
                    ));
                }
                Err(e) => notes.push(format!("could not mark {id} compromised: {e:#}")),
            }
        }
        // Every finding of the same key gets the same answer.
        for (j, f) in findings.iter().enumerate() {
            if f.secret.as_str() == findings[*i].secret.as_str() {
                per_finding[j] = Some(m.clone());
            }
        }
    }
    for a in answer["accounts"].as_array().into_iter().flatten() {
        let Some(i) = a["index"].as_u64().and_then(|i| ex_idx.get(i as usize)) else { continue };
        let path = a["path"].as_str().unwrap_or_default();
        let mut m = a.clone();
        if respond {
            let fields = match a["type"].as_str() {
                Some("coinbase") => "api_key=<the new key name> private_key=@new-key.pem",
                Some("okx" | "kucoin" | "bitget") => {
                    "api_key=<the new key> api_secret=- passphrase=<the new passphrase>"
                }
                _ => "api_key=<the new key> api_secret=-",
            };
            let cmd = format!(
                "keyward secret rotate {path} {fields} --verify   # secrets on stdin or from a file; then delete the leaked key on the exchange"
            );
            m["respond"] = json!(cmd);
            notes.push(format!("{} holds this API key: rotate it:\n    {cmd}", a["account"].as_str().unwrap_or("")));
        }
        per_finding[*i] = Some(m);
    }
    Ok(Matches { per_finding, notes })
}
