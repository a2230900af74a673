//! What an authorized caller may change about keys: create, change state,
//! roll, and namespaces of platform keys. Callers check authorization (the
//! subset rule and namespaces, [`may_manage`]) and admission first; every
//! function here that writes takes the [`Admitted`] proof.
//!
//! A new key is returned once, with its creation; only its keyed hash is
//! stored.

use super::{Admitted, Changes, KEYWARD_NAMESPACE, KeyEntry, Keys, mac_input};
use crate::error::{Code, Error, Result};
use crate::seal::Unsealed;
use ipnet::IpNet;
use keyward_core::access_key::{self, AccessKeySecret};
use keyward_core::duration;
use keyward_core::guard::OrderGuard;
use keyward_core::policy::{KeyPolicy, KeyState};
use keyward_core::rate::RateSpec;
use keyward_core::scope::{Need, Scope, all_covered, any_grants};
use keyward_store::{KeyRecord, NamespaceRecord, StoreError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKey {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
    namespace: Option<String>,
    #[serde(default)]
    permissions: Vec<String>,
    owner: Option<String>,
    #[serde(default)]
    allow_ips: Vec<String>,
    ttl: Option<String>,
    expires_at: Option<String>,
    not_before: Option<String>,
    rate: Option<String>,
    uses: Option<u64>,
    #[serde(default)]
    meta: BTreeMap<String, String>,
    #[serde(default)]
    symbols: Vec<String>,
    max_qty: Option<String>,
    max_notional: Option<String>,
    max_notional_per_day: Option<String>,
    price_band: Option<String>,
    max_age: Option<String>,
}

/// A key to create, validated: what `POST /v1/keys` asked for.
#[derive(Debug, Clone)]
pub(crate) struct NewKey {
    /// Name.
    pub name: String,
    /// Owner.
    pub owner: Option<String>,
    /// Namespace (`keyward` for keyward's own keys).
    pub namespace: String,
    /// The policy it gets.
    pub policy: KeyPolicy,
    /// Created disabled (waiting for approvals) instead of active.
    pub disabled: bool,
}

/// Parses a CIDR or a bare address (taken as a single host).
pub(super) fn parse_net(s: &str) -> Result<IpNet> {
    s.parse::<IpNet>().or_else(|_| s.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
        Error::new(
            Code::InvalidCidr,
            format!(
                "{s:?} is not an IP network; use CIDR notation such as 203.0.113.7/32, 10.0.0.0/8 or 2001:db8::/32"
            ),
        )
    })
}

fn check_text(what: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        return Err(Error::invalid(format!("{what} must be 1 to 128 printable characters")));
    }
    Ok(())
}

fn parse_time(what: &str, s: &str) -> Result<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| Error::invalid(format!("{what} {s:?} is not RFC 3339, e.g. 2027-01-31T00:00:00Z")))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Checks a namespace name: 1 to 64 of `a-z 0-9 -`, starting with a letter or digit.
pub(super) fn check_namespace(ns: &str) -> Result<()> {
    let ok = (1..=64).contains(&ns.len())
        && ns.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !ns.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidNamespace,
            format!("namespace {ns:?}: use 1 to 64 of a-z, 0-9 and '-', e.g. shop-api"),
        ))
    }
}

impl CreateKey {
    /// Validates the request into the key to create (nothing is authorized
    /// or written here): names, namespace, scopes or permissions, networks,
    /// times, rate, uses and order guards.
    pub(crate) fn plan(self, now_ms: i64) -> Result<NewKey> {
        check_text("name", &self.name)?;
        if let Some(o) = &self.owner {
            check_text("owner", o)?;
        }
        let namespace = self.namespace.clone().unwrap_or_else(|| KEYWARD_NAMESPACE.to_string());
        check_namespace(&namespace)?;
        let scopes = self.scopes.iter().map(|s| s.parse::<Scope>()).collect::<Result<Vec<_>, _>>()?;
        check_grants(&namespace, &scopes, &self.permissions)?;
        for p in &self.permissions {
            check_text("a permission", p)?;
        }
        for (k, v) in &self.meta {
            check_text("a meta key", k)?;
            if v.len() > 1024 {
                return Err(Error::invalid("meta values are at most 1024 bytes"));
            }
        }
        let allow_ips = self.allow_ips.iter().map(|s| parse_net(s)).collect::<Result<Vec<_>>>()?;
        let has_account = scopes.iter().any(|s| matches!(s, Scope::Account(..)));
        if has_account && allow_ips.is_empty() {
            return Err(Error::new(
                Code::AllowlistRequired,
                "a key with an account: scope must be bound to client networks (--allow-ip CIDR); 0.0.0.0/0 and ::/0 are an explicit opt-out",
            ));
        }
        let expires_ms = self.expiry(now_ms)?;
        let not_before_ms = self.not_before.as_deref().map(|t| parse_time("not_before", t)).transpose()?;
        let rate = self.rate.as_deref().map(str::parse::<RateSpec>).transpose()?;
        if self.uses == Some(0) {
            return Err(Error::invalid("uses must be at least 1"));
        }
        let max_age_s = self.max_age.as_deref().map(duration::parse_secs).transpose()?;
        let guard = OrderGuard {
            symbols: self.symbols,
            max_qty: self.max_qty,
            max_notional: self.max_notional,
            max_notional_per_day: self.max_notional_per_day,
            price_band_pct: self.price_band.as_deref().map(|b| b.trim_end_matches('%').to_string()),
        };
        guard.limits().map_err(|e| Error::invalid(e.0))?;
        if guard.is_set() && !has_account {
            return Err(Error::invalid("order guards apply to keys with account: scopes"));
        }
        let policy = KeyPolicy {
            guard: guard.is_set().then_some(guard),
            scopes,
            allow_ips,
            expires_ms,
            not_before_ms,
            rate,
            uses: self.uses,
            permissions: self.permissions,
            meta: self.meta,
            max_age_s,
            ..KeyPolicy::default()
        };
        Ok(NewKey { name: self.name, owner: self.owner, namespace, policy, disabled: false })
    }

    fn expiry(&self, now_ms: i64) -> Result<Option<i64>> {
        match (&self.ttl, &self.expires_at) {
            (Some(_), Some(_)) => Err(Error::invalid("give ttl or expires_at, not both")),
            (Some(ttl), None) => Ok(Some(now_ms + duration::parse_secs(ttl)? as i64 * 1000)),
            (None, Some(at)) => {
                let ms = parse_time("expires_at", at)?;
                if ms <= now_ms {
                    return Err(Error::invalid("expires_at is in the past"));
                }
                Ok(Some(ms))
            }
            (None, None) => Ok(None),
        }
    }
}

/// keyward's own keys take scopes; platform keys take free-form permissions.
fn check_grants(namespace: &str, scopes: &[Scope], permissions: &[String]) -> Result<()> {
    if namespace == KEYWARD_NAMESPACE {
        if scopes.is_empty() {
            return Err(Error::new(Code::InvalidScope, "a key needs at least one scope, e.g. secret:read:apps/*"));
        }
        if !permissions.is_empty() {
            return Err(Error::invalid(
                "permissions belong to platform keys: give --namespace NS (keyward's own keys take scopes)",
            ));
        }
    } else if !scopes.is_empty() {
        return Err(Error::invalid(
            "a platform key carries permissions (--perm), not keyward scopes: it can never authenticate to keyward",
        ));
    }
    Ok(())
}

/// The subset rule: a caller holding `held` may create, see or change keys
/// of `namespace` with these `scopes` only if its own scopes cover them
/// (keyward's keys) or it may verify that namespace (platform keys).
pub(crate) fn may_manage(held: &[Scope], namespace: &str, scopes: &[Scope]) -> bool {
    if namespace == KEYWARD_NAMESPACE {
        all_covered(held, scopes)
    } else {
        any_grants(held, Need::KeyVerify(namespace))
    }
}

/// Builds a stored row for a new key, with its MAC.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_record(
    unsealed: &Unsealed,
    secret: &AccessKeySecret,
    name: &str,
    owner: Option<String>,
    namespace: &str,
    policy: &KeyPolicy,
    uses_remaining: Option<i64>,
    created_ms: i64,
) -> Result<KeyRecord> {
    let mut rec = KeyRecord {
        id: access_key::new_key_id(created_ms)?,
        hash: unsealed.access_key_hash(secret.expose().as_bytes()).to_vec(),
        name: name.to_string(),
        owner,
        namespace: namespace.to_string(),
        policy: serde_json::to_string(policy).map_err(|e| Error::internal(&e.to_string()))?,
        state: KeyState::Active.as_str().to_string(),
        created_ms,
        mac: Vec::new(),
        uses_remaining,
        last_used_ms: None,
        last_used_ip: None,
    };
    rec.mac = unsealed.row_mac(&mac_input(&rec)).to_vec();
    Ok(rec)
}

/// A state change from one of `allowed_from` to `to`; the same state again
/// is no change. Checked on the in-memory entry before admission and again
/// on the stored row.
pub(crate) fn state_change(from: KeyState, to: KeyState, allowed_from: &[KeyState]) -> Result<()> {
    if from != to && !allowed_from.contains(&from) {
        return Err(Error::new(Code::InvalidState, format!("a {} key cannot become {}", from.as_str(), to.as_str())));
    }
    Ok(())
}

/// Why a key cannot be rolled.
pub(crate) const ROLL_REFUSED: &str = "only an active key, or one expired by its maximum age, can be rolled";

/// What a roll made.
#[derive(Debug)]
pub(crate) struct Rolled {
    /// The new key's entry.
    pub new: Arc<KeyEntry>,
    /// The new key, shown once.
    pub secret: AccessKeySecret,
    /// The old key's entry, now with its grace period.
    pub old: Arc<KeyEntry>,
    /// When the old key stops working (ms).
    pub grace_until_ms: i64,
}

impl Keys {
    /// The key prefix of a namespace, creating the namespace (prefix `pk`) on first use.
    pub(super) async fn namespace_prefix(&self, ns: &str, now_ms: i64) -> Result<String> {
        if ns == KEYWARD_NAMESPACE {
            return Ok(access_key::DEFAULT_PREFIX.to_string());
        }
        if let Some(found) = self.store.list_namespaces().await?.into_iter().find(|n| n.name == ns) {
            return Ok(found.prefix);
        }
        let rec = NamespaceRecord {
            name: ns.to_string(),
            prefix: access_key::PLATFORM_PREFIX.to_string(),
            created_ms: now_ms,
        };
        match self.store.insert_namespace(&rec).await {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        Ok(self
            .store
            .list_namespaces()
            .await?
            .into_iter()
            .find(|n| n.name == ns)
            .map(|n| n.prefix)
            .unwrap_or(rec.prefix))
    }

    /// Loads a key's row, checks its MAC, applies `change`, re-MACs, stores
    /// it and updates the index before returning. `change` runs again on
    /// the row as reread when another node changed it meanwhile.
    pub(crate) async fn change(
        &self,
        _: &Admitted,
        unsealed: &Unsealed,
        id: &str,
        change: impl Fn(&mut KeyRecord, &mut KeyPolicy) -> Result<()>,
    ) -> Result<Arc<KeyEntry>> {
        self.retrying(|| async {
            let mut turn = self.turn().await;
            let (stored, rec) = self.changed_row(unsealed, id, &change).await?;
            let changes = Changes { update_keys: vec![(stored, rec.clone())], ..Changes::default() };
            self.commit(&mut turn, unsealed, changes).await?;
            self.upsert(KeyEntry::from_record(&rec, unsealed))
        })
        .await
    }

    /// [`Keys::change`] for several keys in one ledger write: every row
    /// changes, or none does (a freeze disables every bot of an account in
    /// one step). `change` returns false for a row it leaves as it is.
    pub(crate) async fn change_many(
        &self,
        _: &Admitted,
        unsealed: &Unsealed,
        ids: &[String],
        change: impl Fn(&mut KeyRecord, &mut KeyPolicy) -> Result<bool>,
    ) -> Result<Vec<Arc<KeyEntry>>> {
        self.retrying(|| async {
            let mut turn = self.turn().await;
            let mut update_keys = Vec::new();
            for id in ids {
                let mut touched = false;
                let (stored, rec) = self
                    .changed_row(unsealed, id, |r, p| {
                        touched = change(r, p)?;
                        Ok(())
                    })
                    .await?;
                if touched {
                    update_keys.push((stored, rec));
                }
            }
            if update_keys.is_empty() {
                return Ok(Vec::new());
            }
            let rows: Vec<KeyRecord> = update_keys.iter().map(|(_, r)| r.clone()).collect();
            self.commit(&mut turn, unsealed, Changes { update_keys, ..Changes::default() }).await?;
            rows.iter().map(|r| self.upsert(KeyEntry::from_record(r, unsealed))).collect()
        })
        .await
    }

    /// Reads a key's row, checks its MAC and applies `change`: the row as
    /// stored and as it is to be written (re-MACed).
    pub(crate) async fn changed_row(
        &self,
        unsealed: &Unsealed,
        id: &str,
        mut change: impl FnMut(&mut KeyRecord, &mut KeyPolicy) -> Result<()>,
    ) -> Result<(KeyRecord, KeyRecord)> {
        let stored = self.store.key(id).await?.ok_or_else(|| Error::not_found(format!("no key {id:?}")))?;
        if !unsealed.verify_row_mac(&mac_input(&stored), &stored.mac) {
            return Err(Error::new(Code::RowTampered, "this key's stored record failed its integrity check"));
        }
        let mut rec = stored.clone();
        let mut policy: KeyPolicy = serde_json::from_str(&rec.policy).map_err(|e| Error::internal(&e.to_string()))?;
        change(&mut rec, &mut policy)?;
        rec.policy = serde_json::to_string(&policy).map_err(|e| Error::internal(&e.to_string()))?;
        rec.mac = unsealed.row_mac(&mac_input(&rec)).to_vec();
        Ok((stored, rec))
    }

    /// Sets a key's state (see [`state_change`]).
    pub(crate) async fn set_state(
        &self,
        admitted: &Admitted,
        unsealed: &Unsealed,
        id: &str,
        to: KeyState,
        allowed_from: &'static [KeyState],
    ) -> Result<Arc<KeyEntry>> {
        self.change(admitted, unsealed, id, move |rec, _| {
            let from = KeyState::parse(&rec.state).unwrap_or(KeyState::Revoked);
            state_change(from, to, allowed_from)?;
            rec.state = to.as_str().to_string();
            Ok(())
        })
        .await
    }

    /// Replaces an active key with a new one of the same settings; the old
    /// one works until `grace_ms` from now, then answers `key_rolled`. The
    /// key is checked again in turn: one revoked or rolled since the caller
    /// looked is not rolled.
    pub(crate) async fn roll(
        &self,
        _: &Admitted,
        unsealed: &Unsealed,
        old: &KeyEntry,
        grace_ms: i64,
    ) -> Result<Rolled> {
        self.retrying(|| self.roll_once(unsealed, &old.id, grace_ms)).await
    }

    async fn roll_once(&self, unsealed: &Unsealed, old_id: &str, grace_ms: i64) -> Result<Rolled> {
        let mut turn = self.turn().await;
        let now = self.clock.now_ms();
        let current = self.by_id(old_id)?.ok_or_else(|| Error::not_found(format!("no key {old_id:?}")))?;
        if !current.rollable(now) {
            return Err(Error::new(Code::InvalidState, ROLL_REFUSED));
        }
        let old = current;
        let mut policy = (*old.policy).clone();
        policy.grace_until_ms = None;
        policy.rolled_to = None;
        let prefix = self.namespace_prefix(&old.namespace, now).await?;
        let secret = AccessKeySecret::generate(&prefix)?;
        let uses_left = policy.uses.map(|_| old.uses_remaining.load(Ordering::Relaxed).max(0));
        let rec = new_record(
            unsealed,
            &secret,
            &old.name,
            old.owner.as_deref().map(str::to_string),
            &old.namespace,
            &policy,
            uses_left,
            now,
        )?;
        let grace_until_ms = now + grace_ms;
        let new_id = rec.id.clone();
        let (stored, rolled) = self
            .changed_row(unsealed, &old.id.clone(), move |rec, p| {
                state_change(KeyState::parse(&rec.state).unwrap_or(KeyState::Revoked), KeyState::Active, &[])?;
                p.grace_until_ms = Some(grace_until_ms);
                p.rolled_to = Some(new_id.clone());
                Ok(())
            })
            .await?;
        // Both rows in one write: a crash never leaves two keys or none.
        let changes = Changes {
            insert_keys: vec![rec.clone()],
            update_keys: vec![(stored, rolled.clone())],
            ..Changes::default()
        };
        self.commit(&mut turn, unsealed, changes).await?;
        let new = self.upsert(KeyEntry::from_record(&rec, unsealed))?;
        let old = self.upsert(KeyEntry::from_record(&rolled, unsealed))?;
        Ok(Rolled { new, secret, old, grace_until_ms })
    }

    /// Every namespace of platform keys.
    pub(crate) async fn namespaces(&self) -> Result<Vec<NamespaceRecord>> {
        Ok(self.store.list_namespaces().await?)
    }

    /// Creates a namespace with its own key prefix (validated by [`CreateNamespace::plan`]).
    pub(crate) async fn create_namespace(&self, _: &Admitted, rec: NamespaceRecord) -> Result<NamespaceRecord> {
        match self.store.insert_namespace(&rec).await {
            Ok(()) => Ok(rec),
            Err(StoreError::Conflict { .. }) => {
                Err(Error::new(Code::NamespaceExists, format!("namespace {} already exists", rec.name)))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Body of `POST /v1/namespaces`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateNamespace {
    name: String,
    prefix: Option<String>,
}

impl CreateNamespace {
    /// Validates the request into the row to write.
    pub(crate) fn plan(self, now_ms: i64) -> Result<NamespaceRecord> {
        check_namespace(&self.name)?;
        if self.name == KEYWARD_NAMESPACE {
            return Err(Error::new(Code::InvalidNamespace, "the keyward namespace is keyward's own"));
        }
        let prefix = self.prefix.unwrap_or_else(|| access_key::PLATFORM_PREFIX.to_string());
        if access_key::reserved_prefix(&prefix) {
            return Err(Error::new(
                Code::InvalidPrefix,
                format!("the prefix {prefix} is keyward's own (kw_ keys, kwt_ tokens); choose another, e.g. shop"),
            ));
        }
        if !access_key::valid_prefix(&prefix) {
            return Err(Error::new(
                Code::InvalidPrefix,
                "a key prefix is 2 to 16 lower-case letters or digits, e.g. shop",
            ));
        }
        Ok(NamespaceRecord { name: self.name, prefix, created_ms: now_ms })
    }
}
