//! `keyward key`: create, list, show, revoke.

use crate::client::{Client, Connection};
use crate::cmd::{cell, encode, print_json};
use anyhow::Result;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

/// Access-key commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an access key; it is printed once.
    ///
    /// A key can only grant scopes its creator holds. Scopes:
    /// secret:read:<glob>, secret:write:<glob>, account:<glob>:<class>,
    /// key:admin, key:verify:<namespace>, audit:read, sys:metrics, sys:admin.
    /// In globs `*` matches any run of characters, `/` included. A key with
    /// an account: scope must have --allow-ip (0.0.0.0/0 is an explicit opt-out).
    ///
    /// Platform keys (--namespace NS) carry free-form --perm permissions
    /// instead of scopes, are checked with POST /v1/keys/verify, and never
    /// authenticate to keyward itself.
    ///
    /// Examples:
    ///   keyward key create --name alert-bot --scope 'secret:read:apps/alerts/*'
    ///   keyward key create --name shop-user-42 --namespace shop-api --perm orders.read --rate 10/s,burst=20 --uses 1000
    Create(Box<CreateArgs>),
    /// List access keys (only those yours may manage), with last use.
    List {
        /// Only keys of this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only keys in this state (active, disabled, expired, rolled, revoked, compromised, destroyed, pending, tampered).
        #[arg(long)]
        state: Option<String>,
        /// Only keys of this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// Key id (key_…), or a key name if exactly one visible key has it.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disable a key (refused with key_disabled until enabled again).
    Disable {
        /// Key id (key_…) or unique name.
        id: String,
    },
    /// Enable a disabled key.
    Enable {
        /// Key id (key_…) or unique name.
        id: String,
    },
    /// Revoke a key for good: the very next request with it is refused.
    Revoke {
        /// Key id (key_…), or a key name if exactly one visible key has it.
        id: String,
    },
    /// Destroy a revoked or compromised key: its meta and permissions are
    /// wiped and its state is destroyed for good; the record stays so its
    /// audit trail still names it, and a use is still refused (key_revoked).
    Destroy {
        /// Key id (key_…).
        id: String,
    },
    /// Replace a key with a new one of the same settings; the old one keeps
    /// working until the grace period ends, then answers key_rolled.
    Roll {
        /// Key id (key_…) or unique name.
        id: String,
        /// Grace period of the old key (0s for none).
        #[arg(long, default_value = "24h")]
        grace: String,
        /// Print JSON (the new key included).
        #[arg(long)]
        json: bool,
    },
    /// Report a key compromised: it is refused at once and for good
    /// (key_compromised), an alert goes out, and a forensic report of its last
    /// --hours from the audit log is printed: the addresses it came from (first
    /// and last seen), the orders it placed with the exchange's order ids, its
    /// refused requests, and every action with time, address, decision and code.
    ///
    /// Examples:
    ///   keyward key compromised key_7Qe… --hours 168
    ///   keyward key compromised grid-bot --json > incident.json
    Compromised {
        /// Key id (key_…) or unique name.
        id: String,
        /// Hours of audit to report, back from now (1 to 8760).
        #[arg(long, default_value_t = 72)]
        hours: u64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a platform key as POST /v1/keys/verify does (the key is read from stdin).
    Verify {
        /// Permission the key must hold.
        #[arg(long)]
        permission: Option<String>,
        /// The end client's address.
        #[arg(long)]
        ip: Option<String>,
    },
    /// Trade the current key (KEYWARD_TOKEN) for a short-lived token bound to this address.
    Token {
        /// Scope for the token (repeat; default: all of the key's).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime (at most the server's maximum, 15m by default).
        #[arg(long)]
        ttl: Option<String>,
    },
    /// Namespaces of platform keys.
    #[command(subcommand)]
    Namespace(NamespaceCommand),
}

/// Namespace commands.
#[derive(Debug, Subcommand)]
pub enum NamespaceCommand {
    /// Create a namespace, optionally with its own key prefix (shop → shop_…).
    Create {
        /// Namespace name (a-z, 0-9, -).
        name: String,
        /// Key prefix: 2 to 16 lower-case letters or digits, not kw or kwt (keyward's own) [default: pk].
        #[arg(long)]
        prefix: Option<String>,
    },
    /// List namespaces.
    List,
}

/// Arguments of `key create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// Name (who or what uses it).
    #[arg(long)]
    name: String,
    /// Scope to grant (repeat for several).
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// Namespace of a platform key (default: keyward's own).
    #[arg(long)]
    namespace: Option<String>,
    /// Free-form permission of a platform key (repeat).
    #[arg(long = "perm")]
    permissions: Vec<String>,
    /// Client network allowed, CIDR (repeat; IPv4 or IPv6).
    #[arg(long = "allow-ip")]
    allow_ips: Vec<String>,
    /// Lifetime, e.g. 30d, 12h.
    #[arg(long, conflicts_with = "expires")]
    ttl: Option<String>,
    /// Expiry, RFC 3339 (2027-01-31T00:00:00Z).
    #[arg(long)]
    expires: Option<String>,
    /// Maximum age, e.g. 90d: the key is refused (key_expired) that long after
    /// it was made, and a roll makes a new one; `keyward rotation status` lists
    /// keys near it [default: the server's --key-max-age].
    #[arg(long)]
    max_age: Option<String>,
    /// Not valid before, RFC 3339.
    #[arg(long)]
    not_before: Option<String>,
    /// Rate limit: 10/s, 600/m, 5000/h, optionally ,burst=N.
    #[arg(long)]
    rate: Option<String>,
    /// Number of requests the key may make in all.
    #[arg(long)]
    uses: Option<u64>,
    /// Owner (team or person).
    #[arg(long)]
    owner: Option<String>,
    /// Metadata KEY=VALUE (repeat).
    #[arg(long = "meta")]
    meta: Vec<String>,
    /// Order guard: the only symbols the key may trade (exchange notation), comma-separated.
    #[arg(long, value_delimiter = ',')]
    symbols: Vec<String>,
    /// Order guard: largest quantity per order, base units.
    #[arg(long)]
    max_qty: Option<String>,
    /// Order guard: largest notional per order, quote units.
    #[arg(long)]
    max_notional: Option<String>,
    /// Order guard: largest notional per UTC day, quote units.
    #[arg(long)]
    max_notional_per_day: Option<String>,
    /// Order guard: largest distance of a limit price from the exchange's last price, e.g. 5%.
    #[arg(long)]
    price_band: Option<String>,
    /// Print JSON (the key included).
    #[arg(long, conflicts_with = "quiet")]
    json: bool,
    /// Print only the key, for scripts: BOT_KEY=$(keyward key create … -q).
    #[arg(long, short)]
    quiet: bool,
}

/// Runs a key command.
pub async fn run(cmd: KeyCommand, conn: &Connection) -> Result<()> {
    let c = Client::new(conn)?;
    match cmd {
        KeyCommand::Create(a) => create(&c, *a).await,
        KeyCommand::List { owner, state, namespace, json } => list_keys(&c, owner, state, namespace, json).await,
        KeyCommand::Show { id, json } => show(&c, &id, json).await,
        KeyCommand::Disable { id } => change(&c, &id, "disable", "disabled").await,
        KeyCommand::Enable { id } => change(&c, &id, "enable", "enabled").await,
        KeyCommand::Revoke { id } => revoke(&c, &id).await,
        KeyCommand::Destroy { id } => {
            c.call(Method::POST, &format!("/v1/keys/{}/destroy", encode(&id)), None).await?;
            println!("destroyed {id}");
            Ok(())
        }
        KeyCommand::Roll { id, grace, json } => roll(&c, &id, &grace, json).await,
        KeyCommand::Verify { permission, ip } => verify(&c, permission, ip).await,
        KeyCommand::Compromised { id, hours, json } => compromised(&c, &id, hours, json).await,
        KeyCommand::Token { scopes, ttl } => token(&c, scopes, ttl).await,
        KeyCommand::Namespace(NamespaceCommand::Create { name, prefix }) => create_namespace(&c, name, prefix).await,
        KeyCommand::Namespace(NamespaceCommand::List) => list_namespaces(&c).await,
    }
}

async fn list_keys(
    c: &Client,
    owner: Option<String>,
    state: Option<String>,
    namespace: Option<String>,
    json: bool,
) -> Result<()> {
    let mut q = Vec::new();
    for (k, v) in [("owner", owner), ("state", state), ("namespace", namespace)] {
        if let Some(v) = v {
            q.push(format!("{k}={}", encode(&v)));
        }
    }
    let url = if q.is_empty() { "/v1/keys".to_string() } else { format!("/v1/keys?{}", q.join("&")) };
    let out = c.call(Method::GET, &url, None).await?;
    if json {
        return print_json(&out);
    }
    println!(
        "{:<21} {:<18} {:<9} {:<10} {:<24} {:<24} {:<15} scopes / permissions",
        "id", "name", "namespace", "state", "expires", "last used", "last ip"
    );
    for k in out["keys"].as_array().into_iter().flatten() {
        let grants = if k["namespace"] == "keyward" { list(&k["scopes"]) } else { list(&k["permissions"]) };
        println!(
            "{:<21} {:<18} {:<9} {:<10} {:<24} {:<24} {:<15} {}",
            cell(&k["id"]),
            cell(&k["name"]),
            cell(&k["namespace"]),
            cell(&k["state"]),
            cell(&k["expires_at"]),
            cell(&k["last_used_at"]),
            cell(&k["last_used_ip"]),
            grants
        );
    }
    Ok(())
}

async fn show(c: &Client, id: &str, json: bool) -> Result<()> {
    let id = resolve_id(c, id).await?;
    let out = c.call(Method::GET, &format!("/v1/keys/{id}"), None).await?;
    if json {
        return print_json(&out);
    }
    if let Some(o) = out.as_object() {
        for (k, v) in o.iter().filter(|(k, _)| *k != "history") {
            let text = if v.is_array() { list(v) } else { cell(v) };
            println!("{k:<15} {text}");
        }
    }
    println!("\nhistory\n  {:<25} {:<12} {:<21} from", "time", "change", "by");
    for h in out["history"].as_array().into_iter().flatten() {
        println!("  {:<25} {:<12} {:<21} {}", cell(&h["time"]), cell(&h["change"]), cell(&h["by"]), cell(&h["ip"]));
    }
    Ok(())
}

async fn revoke(c: &Client, id: &str) -> Result<()> {
    let id = resolve_id(c, id).await?;
    c.call(Method::DELETE, &format!("/v1/keys/{id}"), None).await?;
    println!("revoked {id}");
    Ok(())
}

async fn roll(c: &Client, id: &str, grace: &str, json: bool) -> Result<()> {
    let id = resolve_id(c, id).await?;
    let out = c.call(Method::POST, &format!("/v1/keys/{id}/roll"), Some(&json!({"grace": grace}))).await?;
    if json {
        return print_json(&out);
    }
    println!("rolled {id} → {}; the old key works until {}", cell(&out["id"]), cell(&out["old_key_grace_until"]));
    println!("\nNew access key (shown once; store it now):\n\n    {}\n", cell(&out["key"]));
    Ok(())
}

/// The platform key is read from standard input, never from argv.
async fn verify(c: &Client, permission: Option<String>, ip: Option<String>) -> Result<()> {
    let mut key = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut key)?;
    let mut body = json!({"key": key.trim()});
    if let Some(p) = permission {
        body["permission"] = json!(p);
    }
    if let Some(i) = ip {
        body["ip"] = json!(i);
    }
    let out = c.call(Method::POST, "/v1/keys/verify", Some(&body)).await;
    if let Some(k) = body.get_mut("key") {
        *k = Value::Null;
    }
    let out = out?;
    print_json(&out)?;
    if out["valid"] != json!(true) {
        anyhow::bail!("not valid: {}", cell(&out["code"]));
    }
    Ok(())
}

async fn token(c: &Client, scopes: Vec<String>, ttl: Option<String>) -> Result<()> {
    let mut body = json!({});
    if !scopes.is_empty() {
        body["scopes"] = json!(scopes);
    }
    if let Some(t) = ttl {
        body["ttl"] = json!(t);
    }
    let out = c.call(Method::POST, "/v1/auth/token", Some(&body)).await?;
    println!("{}", cell(&out["token"]));
    Ok(())
}

async fn create_namespace(c: &Client, name: String, prefix: Option<String>) -> Result<()> {
    let mut body = json!({"name": name});
    if let Some(p) = prefix {
        body["prefix"] = json!(p);
    }
    let out = c.call(Method::POST, "/v1/namespaces", Some(&body)).await?;
    println!("namespace {} created; its keys start with {}_", cell(&out["name"]), cell(&out["prefix"]));
    Ok(())
}

async fn list_namespaces(c: &Client) -> Result<()> {
    let out = c.call(Method::GET, "/v1/namespaces", None).await?;
    for n in out["namespaces"].as_array().into_iter().flatten() {
        println!("{:<24} {}_  {}", cell(&n["name"]), cell(&n["prefix"]), cell(&n["created_at"]));
    }
    Ok(())
}

async fn change(c: &Client, id: &str, action: &str, done: &str) -> Result<()> {
    let id = resolve_id(c, id).await?;
    c.call(Method::POST, &format!("/v1/keys/{id}/{action}"), None).await?;
    println!("{done} {id}");
    Ok(())
}

async fn create(c: &Client, a: CreateArgs) -> Result<()> {
    let mut meta = serde_json::Map::new();
    for m in &a.meta {
        let (k, v) = m.split_once('=').ok_or_else(|| anyhow::anyhow!("--meta {m:?}: use KEY=VALUE"))?;
        meta.insert(k.to_string(), json!(v));
    }
    let mut body = json!({"name": a.name, "scopes": a.scopes});
    let opt = [
        ("namespace", a.namespace.map(Value::from)),
        ("ttl", a.ttl.map(Value::from)),
        ("expires_at", a.expires.map(Value::from)),
        ("max_age", a.max_age.map(Value::from)),
        ("not_before", a.not_before.map(Value::from)),
        ("rate", a.rate.map(Value::from)),
        ("uses", a.uses.map(Value::from)),
        ("owner", a.owner.map(Value::from)),
        ("max_qty", a.max_qty.map(Value::from)),
        ("max_notional", a.max_notional.map(Value::from)),
        ("max_notional_per_day", a.max_notional_per_day.map(Value::from)),
        ("price_band", a.price_band.map(Value::from)),
    ];
    for (k, v) in opt {
        if let Some(v) = v {
            body[k] = v;
        }
    }
    if !a.permissions.is_empty() {
        body["permissions"] = json!(a.permissions);
    }
    if !a.symbols.is_empty() {
        body["symbols"] = json!(a.symbols);
    }
    if !a.allow_ips.is_empty() {
        body["allow_ips"] = json!(a.allow_ips);
    }
    if !meta.is_empty() {
        body["meta"] = Value::Object(meta);
    }
    let out = c.call(Method::POST, "/v1/keys", Some(&body)).await?;
    if a.json {
        return print_json(&out);
    }
    let waits = out["state"] == "pending_approval";
    if waits {
        eprintln!(
            "key {} is created disabled and waits for approval {}: {}",
            cell(&out["id"]),
            cell(&out["approval"]["id"]),
            cell(&out["message"])
        );
    }
    if a.quiet {
        println!("{}", cell(&out["key"]));
        return Ok(());
    }
    println!("key id     {}", cell(&out["id"]));
    println!("namespace  {}", cell(&out["namespace"]));
    if out["namespace"] == "keyward" {
        println!("scopes     {}", list(&out["scopes"]));
    } else {
        println!("perms      {}", list(&out["permissions"]));
    }
    println!("expires    {}", cell(&out["expires_at"]));
    println!("\nAccess key (shown once; store it now):\n\n    {}\n", cell(&out["key"]));
    Ok(())
}

/// Takes a key id as is; otherwise finds the one visible, unrevoked key with
/// that name that has not been rolled away (after a roll the name means the
/// new key).
async fn resolve_id(c: &Client, id_or_name: &str) -> Result<String> {
    if id_or_name.starts_with("key_") {
        return Ok(id_or_name.to_string());
    }
    let out = c.call(Method::GET, "/v1/keys", None).await?;
    let matches: Vec<&str> = out["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["name"] == id_or_name && k["state"] != "revoked" && k["rolled_to"].is_null())
        .filter_map(|k| k["id"].as_str())
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.to_string()),
        [] => anyhow::bail!("no key named {id_or_name:?} (give a key id: key_…)"),
        _ => anyhow::bail!("{} keys are named {id_or_name:?}: give the key id (keyward key list)", matches.len()),
    }
}

fn list(v: &Value) -> String {
    v.as_array().map(|a| a.iter().map(cell).collect::<Vec<_>>().join(" ")).unwrap_or_else(|| cell(v))
}

async fn compromised(c: &Client, id: &str, hours: u64, json: bool) -> Result<()> {
    let id = resolve_id(c, id).await?;
    let out = c.call(Method::POST, &format!("/v1/keys/{id}/compromised"), Some(&json!({ "hours": hours }))).await?;
    if json {
        return print_json(&out);
    }
    let (k, r) = (&out["key"], &out["report"]);
    println!(
        "key {} ({}) is now compromised: every request with it is refused (key_compromised).",
        cell(&k["id"]),
        cell(&k["name"])
    );
    if let Some(next) = k["rolled_to"].as_str() {
        println!("It was rolled to {next}, which is not marked: report that one too if it may be known.");
    }
    println!(
        "\nReport {} to {}: {} allowed, {} refused{}",
        cell(&r["from"]),
        cell(&r["until"]),
        cell(&r["allowed"]),
        cell(&r["denied"]),
        if r["truncated"] == true { " (truncated: narrow --hours or use audit export)" } else { "" }
    );
    let rows = |v: &Value| v.as_array().cloned().unwrap_or_default();
    println!("\nAddresses\n  {:<40} {:<25} {:<25} {:>8} {:>8}", "ip", "first seen", "last seen", "requests", "refused");
    for a in rows(&r["addresses"]) {
        println!(
            "  {:<40} {:<25} {:<25} {:>8} {:>8}",
            cell(&a["ip"]),
            cell(&a["first_seen"]),
            cell(&a["last_seen"]),
            cell(&a["requests"]),
            cell(&a["denied"])
        );
    }
    println!("\nOrders\n  {:<25} {:<40} {:<8} {:<24} order", "time", "target", "outcome", "exchange order ids");
    for o in rows(&r["orders"]) {
        let ids: Vec<String> = rows(&o["exchange_order_ids"]).iter().map(cell).collect();
        println!(
            "  {:<25} {:<40} {:<8} {:<24} {}",
            cell(&o["time"]),
            cell(&o["target"]),
            cell(&o["outcome"]),
            ids.join(","),
            o["order"]
        );
    }
    for (title, list) in [("Refused", &r["denials"]), ("Actions", &r["actions"])] {
        println!("\n{title}\n  {:<25} {:<40} {:<6} {:<16} {:<22} target", "time", "ip", "dec.", "action", "code");
        for a in rows(list) {
            println!(
                "  {:<25} {:<40} {:<6} {:<16} {:<22} {}",
                cell(&a["time"]),
                cell(&a["ip"]),
                cell(&a["decision"]),
                cell(&a["action"]),
                cell(&a["code"]),
                cell(&a["target"])
            );
        }
    }
    Ok(())
}
