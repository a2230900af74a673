//! The key ledger: one MAC'd, database-wide revision over every access-key
//! row and every daily order-notional counter.
//!
//! A row MAC proves a row was written by keyward, not that it is the
//! newest row keyward wrote: written back, an earlier copy of a revoked
//! key's row (state and MAC together) would make it active again, and an
//! earlier counter would give back spent uses or notional. So every row
//! also counts in the ledger's digest, the XOR of a keyed PRF of each
//! row's content (a multiset hash whose terms a database writer cannot
//! compute, so it cannot pick old rows whose changes cancel out), and the
//! head (revision, row count, digest) carries a MAC. Every write moves the
//! revision forward and replaces rows and head in one transaction; at
//! unseal the digest is recomputed from the rows and must match the head.
//! The rows are spread over [`PARTS`] parts by key id, each with its own
//! count and digest: where a part does not match, its keys are refused
//! (`key_tampered`) and its rows cannot change, and the rest serve on.
//! `--reseal-key-ledger` re-seals it over the rows as they are and revokes
//! every key of a part that did not match. While the server runs, every
//! change starts from the term keyward last wrote for the row, never from
//! the row as the database gives it back.
//!
//! What it cannot catch, and the threat model says so: a consistent
//! earlier copy of the whole ledger (every key row, every counter and the
//! head together, as a backup restore writes them). The audit log still
//! records what happened since, and `keyward audit verify --anchor`
//! catches the log cut back to match.

use super::terms::{KeyTerms, fingerprint};
use crate::seal::Unsealed;
use keyward_store::{KeyRecord, LedgerHead, LedgerPart, LedgerWrite, OrderUsage};
use std::collections::HashMap;

/// Rows are spread over this many parts of the ledger by key id, each
/// with its own count and digest, so a part that does not hold names the
/// few keys it covers instead of condemning every key.
pub(crate) const PARTS: usize = 256;

/// The part a key (and its counters) counts in: FNV-1a of the id, low byte.
pub(crate) fn part_of(key_id: &str) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    for b in key_id.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (h & 0xff) as usize
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Part {
    count: u64,
    digest: [u8; 32],
}

const PART_BYTES: usize = 40;

/// The ledger head as the server holds it while unsealed, with the term
/// of every row as keyward last wrote it: a change starts from that, never
/// from the row as the database gives it back now (which a database writer
/// may have swapped for an earlier copy just before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ledger {
    /// `None` before the first head is written.
    rev: Option<u64>,
    parts: Vec<Part>,
    /// Parts whose rows did not match the stored head at unseal: their
    /// keys are refused and their rows cannot change.
    broken: Vec<bool>,
    /// Each key row's term (its first half), by key id.
    keys: KeyTerms,
    /// Each counter's term, by key id and day.
    counters: HashMap<(String, i64), [u8; 32]>,
}

/// Why a change cannot be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The row is in a part that did not hold at unseal.
    Broken(String),
    /// The row in the database is not the one keyward last wrote.
    Stale(String),
}

/// A step computed but not yet in force: what [`Ledger::apply`] sets once
/// the write is committed.
#[derive(Debug)]
pub(crate) struct Next {
    rev: u64,
    parts: Vec<(usize, Part)>,
    keys: Vec<(String, [u8; 32])>,
    counters: Vec<((String, i64), [u8; 32])>,
}

/// Why the stored ledger does not hold, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Broken {
    /// What did not hold.
    pub(crate) why: &'static str,
    /// The parts that did not (every part when the head itself failed).
    pub(crate) parts: Vec<usize>,
}

fn framed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 8).sum());
    for p in parts {
        out.extend_from_slice(&(p.len() as u64).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn opt(v: Option<i64>) -> [u8; 9] {
    let mut b = [0u8; 9];
    if let Some(v) = v {
        b[0] = 1;
        b[1..].copy_from_slice(&v.to_be_bytes());
    }
    b
}

/// A key row's term: its id, its MAC (which covers what the key may do)
/// and its uses left (which the MAC does not, since each use changes it).
pub(crate) fn key_term(u: &Unsealed, r: &KeyRecord) -> [u8; 32] {
    u.row_mac(&framed(&[b"keyward/v1/ledger/key", r.id.as_bytes(), &r.mac, &opt(r.uses_remaining)]))
}

/// A counter's term.
pub(crate) fn usage_term(u: &Unsealed, c: &OrderUsage) -> [u8; 32] {
    u.row_mac(&framed(&[
        b"keyward/v1/ledger/order-usage",
        c.key_id.as_bytes(),
        &c.day.to_be_bytes(),
        &c.used.to_be_bytes(),
    ]))
}

fn head_input(rev: u64, count: u64, digest: &[u8]) -> Vec<u8> {
    framed(&[b"keyward/v1/ledger/head", &rev.to_be_bytes(), &count.to_be_bytes(), digest])
}

fn xor(into: &mut [u8; 32], term: &[u8; 32]) {
    for (a, b) in into.iter_mut().zip(term) {
        *a ^= b;
    }
}

/// Rows to write in one ledger step.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// New key rows.
    pub insert_keys: Vec<KeyRecord>,
    /// Key rows replaced: (as stored, as written).
    pub update_keys: Vec<(KeyRecord, KeyRecord)>,
    /// Counters set: (as stored, if any, as written).
    pub usage: Vec<(Option<OrderUsage>, OrderUsage)>,
}

impl Changes {
    fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.insert_keys
            .iter()
            .map(|k| k.id.as_str())
            .chain(self.update_keys.iter().map(|(_, k)| k.id.as_str()))
            .chain(self.usage.iter().map(|(_, c)| c.key_id.as_str()))
    }
}

impl Broken {
    /// Every part.
    pub(crate) fn everywhere(why: &'static str) -> Self {
        Self { why, parts: (0..PARTS).collect() }
    }
}

impl Ledger {
    /// The ledger over these rows with every part broken (no head to trust).
    pub(crate) fn broken_over(u: &Unsealed, keys: &[KeyRecord], usage: &[OrderUsage]) -> Self {
        Self { broken: vec![true; PARTS], ..Self::over(u, keys, usage) }
    }

    /// [`Ledger::empty`] with room for `keys` key rows.
    pub(crate) fn with_capacity(keys: usize) -> Self {
        let mut l = Self::empty();
        // Room to create keys for a while before the first reallocation.
        l.keys.reserve(keys + keys / 16);
        l
    }

    /// The ledger over no rows, before any head is stored.
    pub(crate) fn empty() -> Self {
        Self {
            rev: None,
            parts: vec![Part::default(); PARTS],
            broken: vec![false; PARTS],
            keys: KeyTerms::default(),
            counters: HashMap::new(),
        }
    }

    /// The ledger over exactly these rows (no head checked).
    pub(crate) fn over(u: &Unsealed, keys: &[KeyRecord], usage: &[OrderUsage]) -> Self {
        let mut l = Self::empty();
        l.add_keys(u, keys);
        l.add_usage(u, usage);
        l
    }

    /// Counts key rows in (their terms computed on every core).
    pub(crate) fn add_keys(&mut self, u: &Unsealed, keys: &[KeyRecord]) {
        let terms = super::index::parallel(keys, |k| key_term(u, k));
        for (k, term) in keys.iter().zip(terms) {
            add(&mut self.parts[part_of(&k.id)], &term);
            self.keys.set(&k.id, fingerprint(&term));
        }
    }

    /// Counts order-usage counters in.
    pub(crate) fn add_usage(&mut self, u: &Unsealed, usage: &[OrderUsage]) {
        for c in usage {
            let term = usage_term(u, c);
            add(&mut self.parts[part_of(&c.key_id)], &term);
            self.counters.insert((c.key_id.clone(), c.day), term);
        }
    }

    /// The revision held (`None` before the first head).
    pub(crate) fn rev(&self) -> Option<u64> {
        self.rev
    }

    /// True when the part holding `key_id` matched at unseal.
    pub(crate) fn holds(&self, key_id: &str) -> bool {
        !self.broken[part_of(key_id)]
    }

    /// Checks the stored head against the rows it must cover. A head that
    /// fails its MAC breaks every part; otherwise each part stands alone,
    /// and the answer is the ledger as stored with its broken parts marked.
    pub(crate) fn check(
        u: &Unsealed,
        head: &LedgerHead,
        keys: &[KeyRecord],
        usage: &[OrderUsage],
    ) -> (Self, Option<Broken>) {
        Self::over(u, keys, usage).against(u, head)
    }

    /// The ledger counted so far (every row added) checked against the
    /// stored head: the ledger as stored, its broken parts marked.
    pub(crate) fn against(self, u: &Unsealed, head: &LedgerHead) -> (Self, Option<Broken>) {
        let mut found = self;
        let stored = assemble(&head.parts);
        let total: u64 = stored.as_ref().map(|p| p.iter().map(|p| p.count).sum()).unwrap_or(0);
        let digest = stored.as_deref().map(encode_parts).unwrap_or_default();
        let sound = u.verify_row_mac(&head_input(head.rev, head.count, &digest), &head.mac) && total == head.count;
        let Some(parts) = stored.filter(|_| sound) else {
            let all = Self { rev: Some(head.rev), broken: vec![true; PARTS], ..found };
            return (all, Some(Broken::everywhere("the ledger head failed its MAC")));
        };
        let (keys, counters) = (std::mem::take(&mut found.keys), std::mem::take(&mut found.counters));
        let mut l = Self { rev: Some(head.rev), parts, broken: vec![false; PARTS], keys, counters };
        let mut bad = Vec::new();
        for (i, (want, got)) in l.parts.iter().zip(&found.parts).enumerate() {
            if want != got {
                l.broken[i] = true;
                bad.push(i);
            }
        }
        if bad.is_empty() {
            return (l, None);
        }
        let why = "rows differ from the ones keyward last wrote (edited, deleted, or an earlier copy written back)";
        (l, Some(Broken { why, parts: bad }))
    }

    /// The head over these rows one revision past `stored_rev` (re-sealing
    /// them as they are), writing `rewrite` (rows already counted as they
    /// will be) with it.
    pub(crate) fn reseal(
        u: &Unsealed,
        keys: &[KeyRecord],
        usage: &[OrderUsage],
        stored_rev: Option<u64>,
        rewrite: Vec<KeyRecord>,
    ) -> (Self, LedgerWrite) {
        let mut l = Self { rev: stored_rev, ..Self::over(u, keys, usage) };
        let (next, mut write) = l.head_after(u, Vec::new(), true);
        l.apply(next);
        write.update_keys = rewrite;
        (l, write)
    }

    /// The write that moves the ledger one revision on with `changes`, and
    /// what [`Ledger::apply`] sets once it is committed. Each replaced row
    /// must be the one keyward last wrote (else [`Refused::Stale`]), and no
    /// row may be in a broken part ([`Refused::Broken`]).
    pub(crate) fn step(&self, u: &Unsealed, changes: Changes) -> Result<(Next, LedgerWrite), Refused> {
        if let Some(id) = changes.key_ids().find(|id| !self.holds(id)) {
            return Err(Refused::Broken(id.to_string()));
        }
        let mut parts: HashMap<usize, Part> = HashMap::new();
        let base = &self.parts;
        fn part<'a>(parts: &'a mut HashMap<usize, Part>, base: &[Part], id: &str) -> &'a mut Part {
            let i = part_of(id);
            parts.entry(i).or_insert(base[i])
        }
        let (mut keys, mut counters) = (Vec::new(), Vec::new());
        for k in &changes.insert_keys {
            if self.keys.contains(&k.id) {
                return Err(Refused::Stale(k.id.clone()));
            }
            let term = key_term(u, k);
            add(part(&mut parts, base, &k.id), &term);
            keys.push((k.id.clone(), term));
        }
        for (stored, new) in &changes.update_keys {
            let last = key_term(u, stored);
            if stored.id != new.id || self.keys.get(&new.id) != Some(fingerprint(&last)) {
                return Err(Refused::Stale(new.id.clone()));
            }
            let term = key_term(u, new);
            swap(part(&mut parts, base, &new.id), &last, &term);
            keys.push((new.id.clone(), term));
        }
        for (stored, new) in &changes.usage {
            let at = (new.key_id.clone(), new.day);
            let last = self.counters.get(&at);
            let term = usage_term(u, new);
            match (stored, last) {
                (None, None) => add(part(&mut parts, base, &new.key_id), &term),
                (Some(s), Some(l)) if usage_term(u, s) == *l => swap(part(&mut parts, base, &new.key_id), l, &term),
                _ => return Err(Refused::Stale(new.key_id.clone())),
            }
            counters.push((at, term));
        }
        let parts: Vec<(usize, Part)> = parts.into_iter().collect();
        let (mut next, mut write) = self.head_after(u, parts, false);
        (next.keys, next.counters) = (keys, counters);
        write.insert_keys = changes.insert_keys;
        write.update_keys = changes.update_keys.into_iter().map(|(_, new)| new).collect();
        write.usage = changes.usage.into_iter().map(|(_, new)| new).collect();
        Ok((next, write))
    }

    /// The head one revision on, with `changed` parts in place; the write
    /// carries the changed parts, or every part for the first head and
    /// with `every_part`.
    fn head_after(&self, u: &Unsealed, changed: Vec<(usize, Part)>, every_part: bool) -> (Next, LedgerWrite) {
        let mut all = self.parts.clone();
        for (i, p) in &changed {
            all[*i] = *p;
        }
        let rev = self.rev.map_or(1, |r| r + 1);
        let digest = encode_parts(&all);
        let count = all.iter().map(|p| p.count).sum();
        let stored = |i: usize, p: &Part| LedgerPart { index: i as u32, bytes: encode_parts(std::slice::from_ref(p)) };
        let parts = if every_part || self.rev.is_none() {
            all.iter().enumerate().map(|(i, p)| stored(i, p)).collect()
        } else {
            changed.iter().map(|(i, p)| stored(*i, p)).collect()
        };
        let head = LedgerHead { rev, count, mac: u.row_mac(&head_input(rev, count, &digest)).to_vec(), parts };
        let next = Next { rev, parts: changed, keys: Vec::new(), counters: Vec::new() };
        (next, LedgerWrite { expected_rev: self.rev, head, ..LedgerWrite::default() })
    }

    /// The write that re-signs the head as it is at revision `to` (above
    /// the held one), every part included: after a restore, so the head
    /// moves past the one the restore replaced.
    pub(crate) fn jump(&self, u: &Unsealed, to: u64) -> (Next, LedgerWrite) {
        let at = Self { rev: Some(to.saturating_sub(1)), ..self.clone() };
        let (next, mut write) = at.head_after(u, Vec::new(), true);
        write.expected_rev = self.rev;
        (next, write)
    }

    /// Freezes the part holding `key_id` (its rows were changed behind keyward's back).
    pub(crate) fn quarantine(&mut self, key_id: &str) {
        self.broken[part_of(key_id)] = true;
    }

    /// Puts a committed step in force.
    pub(crate) fn apply(&mut self, next: Next) {
        self.rev = Some(next.rev);
        for (i, p) in next.parts {
            self.parts[i] = p;
        }
        for (id, term) in next.keys {
            self.keys.set(&id, fingerprint(&term));
        }
        self.counters.extend(next.counters);
    }
}

fn add(p: &mut Part, term: &[u8; 32]) {
    xor(&mut p.digest, term);
    p.count += 1;
}

fn swap(p: &mut Part, old: &[u8; 32], new: &[u8; 32]) {
    xor(&mut p.digest, old);
    xor(&mut p.digest, new);
}

fn encode_parts(parts: &[Part]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.len() * PART_BYTES);
    for p in parts {
        out.extend_from_slice(&p.count.to_be_bytes());
        out.extend_from_slice(&p.digest);
    }
    out
}

/// The parts as stored; a part never written is empty. `None` for a part
/// out of range or of the wrong size.
fn assemble(stored: &[LedgerPart]) -> Option<Vec<Part>> {
    let mut parts = vec![Part::default(); PARTS];
    for p in stored {
        let i = p.index as usize;
        if i >= PARTS || p.bytes.len() != PART_BYTES {
            return None;
        }
        let mut count = [0u8; 8];
        count.copy_from_slice(&p.bytes[..8]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&p.bytes[8..]);
        parts[i] = Part { count: u64::from_be_bytes(count), digest };
    }
    Some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::keyring::{Keyring, RootKey};

    fn unsealed() -> Unsealed {
        Unsealed::new(Keyring::new(RootKey::from_slice(&[3; 32]).unwrap(), 1))
    }

    fn row(id: &str, state: &str, uses: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            hash: vec![1; 32],
            name: "n".into(),
            owner: None,
            namespace: "keyward".into(),
            policy: "{}".into(),
            state: state.into(),
            created_ms: 1,
            mac: state.as_bytes().to_vec(),
            uses_remaining: uses,
            last_used_ms: None,
            last_used_ip: None,
        }
    }

    /// A step, put in force as a commit would; the write's head carries
    /// every part, as the store reads it back.
    fn stepped(l: &Ledger, u: &Unsealed, c: Changes) -> Result<(Ledger, LedgerWrite), Refused> {
        let (next, mut write) = l.step(u, c)?;
        let mut l = l.clone();
        l.apply(next);
        write.head.parts = l
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| LedgerPart { index: i as u32, bytes: encode_parts(std::slice::from_ref(p)) })
            .collect();
        Ok((l, write))
    }

    #[test]
    fn a_deleted_or_resized_part_breaks_every_part() {
        let u = unsealed();
        let (a, _) = ids();
        let (_, w) = stepped(&Ledger::empty(), &u, changes(|c| c.insert_keys = vec![row(a, "active", None)])).unwrap();
        let rows = [row(a, "active", None)];
        let mut gone = w.head.clone();
        gone.parts.retain(|p| p.index as usize != part_of(a));
        assert_eq!(Ledger::check(&u, &gone, &[], &[]).1.unwrap().parts.len(), PARTS, "part and rows deleted together");
        let mut short = w.head.clone();
        short.parts[0].bytes.pop();
        assert_eq!(Ledger::check(&u, &short, &rows, &[]).1.unwrap().parts.len(), PARTS);
        assert!(Ledger::check(&u, &w.head, &rows, &[]).1.is_none());
    }

    #[test]
    fn a_step_writes_only_the_parts_it_moves() {
        let u = unsealed();
        let (a, b) = ids();
        let (l, first) =
            stepped(&Ledger::empty(), &u, changes(|c| c.insert_keys = vec![row(a, "active", None)])).unwrap();
        assert_eq!(first.head.parts.len(), PARTS);
        let (_, w) = l.step(&u, changes(|c| c.insert_keys = vec![row(b, "active", None)])).unwrap();
        assert_eq!(w.head.parts.iter().map(|p| p.index as usize).collect::<Vec<_>>(), [part_of(b)]);
    }

    fn changes(f: impl FnOnce(&mut Changes)) -> Changes {
        let mut c = Changes::default();
        f(&mut c);
        c
    }

    /// Two keys in different parts.
    fn ids() -> (&'static str, &'static str) {
        let b = ["key_b", "key_c", "key_d", "key_e"].into_iter().find(|b| part_of(b) != part_of("key_a")).unwrap();
        ("key_a", b)
    }

    #[test]
    fn a_written_back_row_or_counter_breaks_only_its_own_part() {
        let u = unsealed();
        let (a, b) = ids();
        let (l, w) = stepped(
            &Ledger::empty(),
            &u,
            changes(|c| c.insert_keys = vec![row(a, "active", Some(3)), row(b, "active", None)]),
        )
        .unwrap();
        let usage = OrderUsage { key_id: a.into(), day: 9, used: 100 };
        let (l, _) = stepped(&l, &u, changes(|c| c.usage = vec![(None, usage.clone())])).unwrap();
        let spent = OrderUsage { used: 700, ..usage.clone() };
        let (l, _) = stepped(&l, &u, changes(|c| c.usage = vec![(Some(usage.clone()), spent.clone())])).unwrap();
        let (_, w2) =
            stepped(&l, &u, changes(|c| c.update_keys = vec![(row(a, "active", Some(3)), row(a, "revoked", Some(2)))]))
                .unwrap();
        assert_eq!((w.expected_rev, w2.expected_rev, w2.head.rev), (None, Some(3), 4));
        let now = [row(a, "revoked", Some(2)), row(b, "active", None)];
        let check = |keys: &[KeyRecord], usage: &[OrderUsage]| Ledger::check(&u, &w2.head, keys, usage);
        let (l, broken) = check(&now, std::slice::from_ref(&spent));
        assert!(broken.is_none() && l.holds(a) && l.holds(b));
        for (what, keys, usage) in [
            (
                "the revoked row written back",
                vec![row(a, "active", Some(3)), row(b, "active", None)],
                vec![spent.clone()],
            ),
            ("uses raised", vec![row(a, "revoked", Some(9)), row(b, "active", None)], vec![spent.clone()]),
            ("a counter written back", now.to_vec(), vec![usage.clone()]),
            ("a counter deleted", now.to_vec(), vec![]),
            ("a row deleted", vec![row(b, "active", None)], vec![spent.clone()]),
        ] {
            let (l, broken) = check(&keys, &usage);
            let broken = broken.unwrap_or_else(|| panic!("{what} went unnoticed"));
            assert_eq!(broken.parts, [part_of(a)], "{what}");
            assert!(!l.holds(a) && l.holds(b), "{what}: only the part of {a} is refused");
            assert!(stepped(&l, &u, changes(|c| c.usage = vec![(None, usage_for(a))])).is_err(), "{what}: frozen");
            assert!(
                stepped(&l, &u, changes(|c| c.usage = vec![(None, usage_for(b))])).is_ok(),
                "{what}: others change"
            );
        }
        let mut forged = w2.head.clone();
        forged.rev = 99;
        let (l, broken) = Ledger::check(&u, &forged, &now, std::slice::from_ref(&spent));
        assert_eq!(broken.unwrap().parts.len(), PARTS, "a head that fails its MAC breaks every part");
        assert!(!l.holds(b));
        let other = Unsealed::new(Keyring::new(RootKey::from_slice(&[4; 32]).unwrap(), 1));
        assert!(Ledger::check(&other, &w2.head, &now, std::slice::from_ref(&spent)).1.is_some(), "keyed by the root");
    }

    fn usage_for(id: &str) -> OrderUsage {
        OrderUsage { key_id: id.into(), day: 1, used: 1 }
    }

    #[test]
    fn a_broken_part_stays_broken_across_writes_elsewhere() {
        let u = unsealed();
        let (a, b) = ids();
        let (l, _) = stepped(
            &Ledger::empty(),
            &u,
            changes(|c| c.insert_keys = vec![row(a, "revoked", None), row(b, "active", None)]),
        )
        .unwrap();
        let written_back = [row(a, "active", None), row(b, "active", None)];
        let (_, w) = stepped(&l, &u, Changes::default()).unwrap();
        let (l, broken) = Ledger::check(&u, &w.head, &written_back, &[]);
        assert!(broken.is_some());
        let (_, w) = stepped(&l, &u, changes(|c| c.usage = vec![(None, usage_for(b))])).unwrap();
        let (l, broken) = Ledger::check(&u, &w.head, &written_back, &[usage_for(b)]);
        assert_eq!(broken.unwrap().parts, [part_of(a)]);
        assert!(l.holds(b));
        // Re-sealed over the rows as they are, it holds again.
        let (_, w) = Ledger::reseal(&u, &written_back, &[usage_for(b)], Some(w.head.rev), Vec::new());
        assert!(Ledger::check(&u, &w.head, &written_back, &[usage_for(b)]).1.is_none());
    }

    #[test]
    fn a_change_starts_from_what_keyward_wrote_not_from_what_the_database_says() {
        let u = unsealed();
        let (a, _) = ids();
        let stale = |r: Result<(Ledger, LedgerWrite), Refused>| matches!(r, Err(Refused::Stale(id)) if id == a);
        let (l, _) =
            stepped(&Ledger::empty(), &u, changes(|c| c.insert_keys = vec![row(a, "active", Some(3))])).unwrap();
        // Uses raised in the database, then spent back to the true count.
        let raised = row(a, "active", Some(4));
        assert!(stale(stepped(&l, &u, changes(|c| c.update_keys = vec![(raised, row(a, "active", Some(3)))]))));
        // A revoked row swapped for its earlier active copy, then revoked again.
        let revoke = || changes(|c| c.update_keys = vec![(row(a, "active", Some(3)), row(a, "revoked", Some(3)))]);
        let (l, _) = stepped(&l, &u, revoke()).unwrap();
        assert!(stale(stepped(&l, &u, revoke())));
        // A counter lowered or deleted, then spent back up.
        let day = OrderUsage { key_id: a.into(), day: 1, used: 600 };
        let at = |used| OrderUsage { used, ..day.clone() };
        let (l, _) = stepped(&l, &u, changes(|c| c.usage = vec![(None, day.clone())])).unwrap();
        assert!(stale(stepped(&l, &u, changes(|c| c.usage = vec![(Some(at(0)), at(600))]))));
        assert!(stale(stepped(&l, &u, changes(|c| c.usage = vec![(None, at(600))]))), "a deleted counter");
        assert!(stale(stepped(&l, &u, changes(|c| c.insert_keys = vec![row(a, "active", None)]))), "an id twice");
        // The true rows still change.
        assert!(stepped(&l, &u, changes(|c| c.usage = vec![(Some(day.clone()), at(700))])).is_ok());
    }
}
