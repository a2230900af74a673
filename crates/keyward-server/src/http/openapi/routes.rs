//! The route table the OpenAPI document is generated from: each route's
//! method, path, scope, body and answer, and whether its audit entry is
//! durable before the answer (sensitive). A test sends each entry to the
//! router and fails when one is not served.

/// One route as documented.
#[derive(Debug)]
pub(crate) struct Route {
    /// HTTP method (`ANY` for the proxy).
    pub method: &'static str,
    /// Path with `{parameters}`.
    pub path: &'static str,
    /// Group in the document.
    pub tag: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The scope it needs (`none`: no key).
    pub scope: &'static str,
    /// Query parameters: name and meaning.
    pub query: &'static [(&'static str, &'static str)],
    /// The JSON body's schema name, if it takes one.
    pub body: Option<&'static str>,
    /// Success status, its schema name (`None`: a JSON object described in prose) and meaning.
    pub ok: (u16, Option<&'static str>, &'static str),
    /// Key and policy changes, seal and unseal: the audit entry is durable
    /// before the answer goes out.
    pub sensitive: bool,
}

const fn route(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    scope: &'static str,
) -> Route {
    Route { method, path, tag, summary, scope, query: &[], body: None, ok: (200, None, "done"), sensitive: false }
}

impl Route {
    const fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.query = query;
        self
    }
    const fn body(mut self, schema: &'static str) -> Self {
        self.body = Some(schema);
        self
    }
    const fn ok(mut self, status: u16, schema: Option<&'static str>, what: &'static str) -> Self {
        self.ok = (status, schema, what);
        self
    }
    const fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }
}

/// The test hooks, served only on `--test-clock` servers and left out of the document.
const TEST_ROUTES: &[Route] = &[
    route("POST", "/v1/sys/test-clock", "sys", "Set the test clock", "sys:admin").sensitive(),
    route("POST", "/v1/sys/test-fault", "sys", "Make audit writes fail", "sys:admin").sensitive(),
];

/// True when the route (as the router matched it: `{*path}` for the
/// documented `{path}`) is sensitive. Runs on every request: reads (GET)
/// are never sensitive as routes (an export is, by its class), and the
/// answer for a route and a standard method is worked out once (the route
/// table's walk was a tenth of a signing request's CPU). Routes come from
/// the router's own table, so the cache stays as small as it is.
pub(crate) fn is_sensitive(method: &axum::http::Method, matched: &str) -> bool {
    use std::cell::RefCell;
    use std::collections::HashMap;
    const METHODS: [axum::http::Method; 6] = [
        axum::http::Method::POST,
        axum::http::Method::PUT,
        axum::http::Method::DELETE,
        axum::http::Method::PATCH,
        axum::http::Method::HEAD,
        axum::http::Method::OPTIONS,
    ];
    type Known = HashMap<Box<str>, [Option<bool>; METHODS.len()]>;
    // One cache a thread: serving threads never share (or lock) a cache line for it.
    thread_local! {
        static KNOWN: RefCell<Known> = RefCell::new(HashMap::new());
    }
    if method == axum::http::Method::GET {
        return false;
    }
    // Another method (made up by the client): not cached, so it cannot grow the cache.
    let Some(slot) = METHODS.iter().position(|m| m == method) else { return walk(method, matched) };
    KNOWN.with_borrow_mut(|known| {
        if let Some(answer) = known.get(matched).and_then(|a| a[slot]) {
            return answer;
        }
        let answer = walk(method, matched);
        known.entry(matched.into()).or_default()[slot] = Some(answer);
        answer
    })
}

/// [`is_sensitive`] by walking the route table.
fn walk(method: &axum::http::Method, matched: &str) -> bool {
    let same = |documented: &str| {
        let (mut d, mut m) = (documented.split('/'), matched.split('/'));
        loop {
            match (d.next(), m.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x == y || (x.starts_with('{') && y.strip_prefix("{*") == x.strip_prefix('{')) => {
                }
                _ => return false,
            }
        }
    };
    ROUTES
        .iter()
        .chain(TEST_ROUTES)
        .filter(|r| r.sensitive && (r.method == "ANY" || r.method == method.as_str()))
        .any(|r| same(r.path))
}

/// Every public route of the router (the test-clock hooks are left out: they
/// exist only on `--test-clock` servers).
pub(crate) const ROUTES: &[Route] = &[
    route("GET", "/v1/sys/health", "sys", "Seal state; always 200 while the process answers", "none").ok(
        200,
        None,
        "{initialized, sealed, seal_type, progress, threshold, version}",
    ),
    route("POST", "/v1/sys/unseal", "sys", "Submit one unseal share, the key file text, or reset", "none")
        .sensitive()
        .body("UnsealRequest")
        .ok(200, None, "as health, with the progress"),
    route("POST", "/v1/sys/seal", "sys", "Seal: wipe every key from memory", "sys:admin").sensitive(),
    route("POST", "/v1/sys/rotate", "sys", "Add a keyring term for new writes; older terms still decrypt", "sys:admin")
        .sensitive()
        .ok(200, None, "as status: {active_term, previous_term, terms: [{term, active, retired, secret_versions}]}"),
    route(
        "POST",
        "/v1/sys/rewrap",
        "sys",
        "Re-encrypt one batch of secret versions under the active term; optionally retire an emptied term",
        "sys:admin",
    )
    .sensitive()
    .body("RewrapRequest")
    .ok(200, None, "{rewrapped, changed_meanwhile, active_term, remaining, retired_term, terms}"),
    route("POST", "/v1/sys/rekey", "sys", "Start making new unseal shares from a threshold of the old ones", "sys:admin")
        .sensitive()
        .body("RekeyStart")
        .ok(200, None, "{nonce, progress, old_threshold, shares, threshold}"),
    route("POST", "/v1/sys/rekey/update", "sys", "Give one old share to the rekey in progress", "sys:admin")
        .sensitive()
        .body("RekeyUpdate")
        .ok(200, None, "{complete: false, progress, old_threshold} or, at the threshold, {complete: true, set_id, threshold, shares}"),
    route("DELETE", "/v1/sys/rekey", "sys", "Drop the rekey in progress", "sys:admin").sensitive(),
    route("POST", "/v1/sys/backup", "sys", "A consistent snapshot of the data, sealed under a root-derived key", "sys:admin")
        .sensitive()
        .ok(200, None, "the backup file (application/octet-stream): a readable header, then AES-256-GCM over the snapshot"),
    route(
        "POST",
        "/v1/sys/restore",
        "sys",
        "Check a backup (body) and, with confirm=true, restore its secrets, keys and ledger",
        "sys:admin",
    )
    .sensitive()
    .query(&[("confirm", "true to restore; otherwise only what restoring would do")])
    .ok(200, None, "{created, created_ms, term, bytes, revived: [{id, name, state_now, state_then}], restored}"),
    route(
        "POST",
        "/v1/sys/migrate-seal",
        "sys",
        "Keep the root key another way (key file, PKCS#11 token, Shamir shares) while serving",
        "sys:admin",
    )
    .sensitive()
    .body("MigrateSealRequest")
    .ok(200, None, "{from, seal_type, seal, removed_key_file?, unseal_key_file?, shares?, threshold?, encrypted?}"),
    route(
        "POST",
        "/v1/scan/match",
        "keys",
        "Match what `keyward scan` found with the keys and exchange accounts this server holds",
        "keys:admin",
    )
    .sensitive()
    .body("MatchRequest")
    .ok(200, None, "{keys: [{index, key_id, name, owner, namespace, state}], accounts: [{index, account, path, type, exchange, version}]}"),
    route(
        "GET",
        "/v1/sys/status",
        "sys",
        "Health plus the keyring terms (and what each encrypts), key count and storage (backend, shared, key-ledger revision)",
        "sys:admin",
    ),
    route("GET", "/v1/secrets", "secrets", "List secrets the key may read or write", "any secret: scope")
        .query(&[("prefix", "only paths starting with this")]),
    route(
        "GET",
        "/v1/secrets/{path}",
        "secrets",
        "Read a secret (current or one version), or its history",
        "secret:read:<glob>",
    )
    .query(&[
        ("version", "a version number from 1 (default: current)"),
        ("field", "only this field"),
        ("history", "true: metadata and every version, no values"),
    ])
    .ok(200, None, "{path, version, data: {field: value}, metadata}"),
    route("PUT", "/v1/secrets/{path}", "secrets", "Write a new version (durable when answered)", "secret:write:<glob>")
        .body("PutRequest")
        .ok(200, None, "the metadata with the version written"),
    route(
        "POST",
        "/v1/secrets/{path}",
        "secrets",
        "Write (no action), undelete or destroy versions, or rotate in stages",
        "secret:write:<glob> (an exchange account: and account:<name>:admin)",
    )
    .query(&[(
        "action",
        "undelete or destroy (body: VersionsRequest); rotate (body: RotateRequest: stage a pending version, then verify with the exchange or promote; answers with check and drain); rollback (body: StepRequest: previous becomes current); abandon (destroy the pending version); absent: write (body: PutRequest)",
    )])
    .body("VersionsRequest"),
    route("DELETE", "/v1/secrets/{path}", "secrets", "Soft-delete versions (default: current)", "secret:write:<glob>")
        .query(&[("versions", "comma-separated version numbers")]),
    route("GET", "/v1/keys", "keys", "List the keys the caller may manage", "key:admin").query(&[
        ("owner", "only this owner"),
        ("state", "only this lifecycle state"),
        ("namespace", "only this namespace"),
    ]),
    route("POST", "/v1/keys", "keys", "Create an access key (shown once)", "key:admin and every scope granted")
        .sensitive()
        .body("CreateKey")
        .ok(201, None, "the key's settings and `key`, shown this once"),
    route("GET", "/v1/keys/{id}", "keys", "One key's settings and last use", "key:admin"),
    route("DELETE", "/v1/keys/{id}", "keys", "Revoke a key at once", "key:admin").sensitive(),
    route("POST", "/v1/keys/{id}/revoke", "keys", "Revoke a key at once", "key:admin").sensitive(),
    route(
        "POST",
        "/v1/keys/{id}/destroy",
        "keys",
        "Destroy a revoked or compromised key: its details wiped, a tombstone kept",
        "key:admin",
    )
    .sensitive(),
    route("POST", "/v1/keys/{id}/disable", "keys", "Disable a key (reversible)", "key:admin").sensitive(),
    route("POST", "/v1/keys/{id}/enable", "keys", "Enable a disabled key", "key:admin").sensitive(),
    route(
        "POST",
        "/v1/keys/{id}/roll",
        "keys",
        "A new key with the same settings; the old one works for the grace",
        "key:admin",
    )
    .sensitive()
    .body("RollKey")
    .ok(201, None, "the new key's settings and `key`, shown this once"),
    route(
        "POST",
        "/v1/keys/verify",
        "keys",
        "Verify a platform key (counts a use and a rate-limit hit)",
        "key:verify:<namespace>",
    )
    .body("VerifyRequest")
    .ok(200, Some("VerifyAnswer"), "the verdict; unknown keys and other namespaces answer alike"),
    route(
        "POST",
        "/v1/keys/{id}/compromised",
        "keys",
        "Report a key compromised: refused at once and for good, alerted, with a forensic report",
        "key:admin",
    )
    .sensitive()
    .body("ReportCompromised")
    .ok(200, Some("CompromisedAnswer"), "the key and its report: actions, addresses, denials, orders"),
    route("GET", "/v1/namespaces", "keys", "List key namespaces", "key:admin"),
    route(
        "POST",
        "/v1/namespaces",
        "keys",
        "Create a key namespace with its own prefix",
        "key:admin and key:verify:<name>",
    )
    .sensitive()
    .body("CreateNamespace")
    .ok(201, None, "{name, prefix, created_at}"),
    route("POST", "/v1/auth/token", "keys", "Mint a short-lived token bound to the caller's address", "any key")
        .body("TokenRequest")
        .ok(201, None, "{token, expires_at, scopes, ip}"),
    route(
        "POST",
        "/v1/sign/{account}",
        "exchanges",
        "Sign an exchange request (keyward sets time and nonce)",
        "account:<name>:<class>",
    )
    .body("SignRequest")
    .ok(200, Some("Signed"), "what to send to the exchange"),
    route(
        "POST",
        "/v1/accounts/{name}/keygen",
        "exchanges",
        "Make an exchange key pair inside keyward: the private key is staged as the pending, non-exportable version",
        "secret:write:exchanges/<name> and account:<name>:admin",
    )
    .sensitive()
    .body("KeygenRequest")
    .ok(
        200,
        None,
        "{account, path, pending_version, alg, public_key_pem, public_key (base64 SPKI), non_exportable, next} and the metadata",
    ),
    route("GET", "/v1/accounts/{name}", "incident", "An exchange account's controls: frozen, withdrawal addresses and caps, dead-man timer", "account:<name>:admin, account:<name>:withdraw or sys:admin")
        .ok(200, None, "{account, exchange, frozen, withdrawal_addresses, withdrawal_caps: {asset: {per_24h, spent_24h, left}}, dead_man}"),
    route("POST", "/v1/accounts/{name}/check", "incident", "Ask the exchange what its API key may do, against what keyward's keys need", "account:<name>:admin or sys:admin")
        .ok(200, Some("CheckReport"), "each exchange-side setting broader than needed, by its name on the exchange's page"),
    route("GET", "/v1/accounts/{name}/check", "incident", "The same check", "account:<name>:admin or sys:admin")
        .ok(200, Some("CheckReport"), "as POST"),
    route("POST", "/v1/accounts/{name}/freeze", "incident", "Freeze an account: its bot keys disabled, nothing signed for it, open orders cancelled on request", "account:<name>:admin or sys:admin")
        .sensitive()
        .body("FreezeRequest")
        .ok(200, Some("FreezeSummary"), "what was done and what failed"),
    route("POST", "/v1/accounts/{name}/unfreeze", "incident", "Unfreeze an account: each key the freeze disabled enabled again (waits for approvals where they are in force: 202)", "account:<name>:admin or sys:admin")
        .sensitive()
        .ok(200, Some("UnfreezeSummary"), "the keys enabled again; or 202 {state: pending_approval, approval}"),
    route("POST", "/v1/accounts/{name}/addresses", "incident", "Allow a withdrawal destination (waits for approvals where they are in force: 202)", "account:<name>:admin or sys:admin")
        .sensitive()
        .body("AddressRequest")
        .ok(200, None, "{account, withdrawal_addresses}; or 202 {state: pending_approval, approval}"),
    route("DELETE", "/v1/accounts/{name}/addresses", "incident", "Remove a withdrawal destination (at once)", "account:<name>:admin or sys:admin")
        .sensitive()
        .body("AddressRequest")
        .ok(200, None, "{account, withdrawal_addresses}"),
    route("PUT", "/v1/accounts/{name}/caps/{asset}", "incident", "Set an asset's withdrawal cap per 24 hours: lowered at once, raised or removed after approvals", "account:<name>:admin or sys:admin")
        .sensitive()
        .body("CapRequest")
        .ok(200, None, "{account, asset, cap_per_24h, was}; or 202 {state: pending_approval, approval}"),
    route("PUT", "/v1/accounts/{name}/dead-man", "incident", "Keep the exchange's cancel-on-disconnect timer armed while keyward runs (or disarm it)", "account:<name>:admin or sys:admin")
        .sensitive()
        .body("DeadManRequest")
        .ok(200, None, "{account, timeout_s, timer, armed, calls}"),
    route("GET", "/v1/approvals", "approvals", "Changes waiting for approvals (and closed ones)", "approve, sys:admin, or the requester")
        .ok(200, None, "{approvals: [Approval], required, approvers, in_force}"),
    route("GET", "/v1/approvals/{id}", "approvals", "One request", "approve, sys:admin, or the requester")
        .ok(200, Some("Approval"), "the request"),
    route("POST", "/v1/approvals/{id}/approve", "approvals", "Approve a request; the M-th approval applies the change, once", "approve (not the requester's key)")
        .sensitive()
        .ok(200, Some("Approval"), "the request; state applied (or failed, with error) when this was the last approval"),
    route("POST", "/v1/approvals/{id}/reject", "approvals", "Reject a request (or withdraw one's own)", "approve, or the requester")
        .sensitive()
        .body("RejectRequest")
        .ok(200, Some("Approval"), "the request, rejected"),
    route(
        "ANY",
        "/proxy/{account}/{path}",
        "exchanges",
        "Forward an exchange request, signed, and stream the answer back",
        "account:<name>:<class>",
    )
    .ok(200, None, "the exchange's answer"),
    route("GET", "/v1/audit", "audit", "Audit entries, oldest first", "audit:read").query(&[
        ("since", "a duration back (1h) or an RFC 3339 time"),
        ("until", "an RFC 3339 time"),
        ("key", "only this key id"),
        ("account", "only this exchange account"),
        ("decision", "allow, deny or outcome"),
        ("after", "only entries after this sequence number"),
        ("limit", "at most this many entries"),
    ]),
    route("GET", "/v1/audit/verify", "audit", "Check the hash chain and the signed checkpoints", "audit:read").ok(
        200,
        None,
        "{ok, entries, checkpoints, last_checkpoint, first_broken, problems}",
    ),
    route("POST", "/v1/audit/verify", "audit", "Check the chain against an anchor ({anchor})", "audit:read"),
    route("GET", "/metrics", "audit", "Prometheus metrics (text)", "sys:metrics").ok(200, None, "Prometheus text"),
    route("GET", "/v1/rotation", "sys", "What is due for rotation, soonest first", "sys:admin")
        .query(&[("due_within", "only items due within this long (7d), overdue included; also what counts as due")])
        .ok(200, Some("RotationStatus"), "secrets, exchange accounts and keys with their due dates"),
    route(
        "POST",
        "/v1/rotation/roll",
        "sys",
        "Roll every access key due (or overdue) by its maximum age; run it on a schedule",
        "key:admin (+ secret:write on each store path)",
    )
    .sensitive()
    .body("RollDue")
    .ok(
        200,
        None,
        "{dry_run, rolled: [{id, name, new_id, grace_until, stored_at, version | key}], failed: [{id, name, error}]}; with dry_run: {would_roll}",
    ),
];
