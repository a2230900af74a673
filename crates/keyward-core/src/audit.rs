//! The audit chain: every entry's hash covers the previous entry's hash and
//! the entry's own fields, so an edited, deleted, reordered or inserted entry
//! breaks the chain from that point on; checkpoints (sequence number and hash
//! at that point) are signed with an Ed25519 key derived from the root key, so
//! a log cut back to an earlier checkpoint is caught by a newer checkpoint
//! kept elsewhere (an anchor).
//!
//! Entries carry key ids, never keys; targets and reasons, never secret values.

use crate::keyring::{RootKey, hex_encode};
use ring::digest;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};

const LABEL_SIGNING: &str = "keyward/v1/audit-checkpoint-signing";

/// One audit entry. Handlers fill the fields from `request_id` to `detail`
/// (`..Default::default()` for the rest); the audit writer sets the time
/// and chains it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When (ms since the epoch).
    pub time_ms: i64,
    /// The request this entry belongs to (decision and outcome share it).
    pub request_id: String,
    /// The key id (never the key), or empty for unauthenticated requests.
    pub key_id: String,
    /// Client address.
    pub ip: String,
    /// What was asked (`secret.read`, `proxy`, `key.create`, `auth.failed`, …).
    pub action: String,
    /// What it was asked of (secret path, account and endpoint, key id).
    pub target: String,
    /// Permission class, if any (`read`, `trade`, `withdraw`, …).
    pub class: String,
    /// `allow`, `deny` or `outcome`.
    pub decision: String,
    /// Reason code (`scope_missing`, …) or, for outcomes, the upstream status.
    pub code: String,
    /// Structured extras (order fields, exchange order id), JSON text.
    pub detail: String,
    /// Hash of the previous entry (32 zero bytes for the first).
    #[serde(with = "hex_bytes")]
    pub prev_hash: Vec<u8>,
    /// This entry's hash.
    #[serde(with = "hex_bytes")]
    pub hash: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::keyring::hex_encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        crate::keyring::hex_decode(&s).ok_or_else(|| serde::de::Error::custom("not hex"))
    }
}

impl AuditEntry {
    /// The hash this entry must carry: SHA-256 over the previous hash and
    /// every field, each length-prefixed.
    pub fn compute_hash(&self) -> Vec<u8> {
        let fields = [
            self.request_id.as_str(),
            &self.key_id,
            &self.ip,
            &self.action,
            &self.target,
            &self.class,
            &self.decision,
            &self.code,
            &self.detail,
        ];
        entry_hash(&self.prev_hash, self.seq, self.time_ms, fields).to_vec()
    }

    /// Links the entry after `(prev_seq, prev_hash)`: sets seq, prev_hash, hash.
    pub fn chain_after(&mut self, prev_seq: u64, prev_hash: &[u8]) {
        self.seq = prev_seq + 1;
        self.prev_hash = prev_hash.to_vec();
        self.hash = self.compute_hash();
    }
}

/// An entry's hash from its parts (see [`AuditEntry::compute_hash`]): the
/// fields are `request_id, key_id, ip, action, target, class, decision,
/// code, detail`. One digest over one buffer: verification hashes a million
/// entries a second.
pub fn entry_hash(prev_hash: &[u8], seq: u64, time_ms: i64, fields: [&str; 9]) -> [u8; 32] {
    const LABEL: &[u8] = b"keyward/v1/audit-entry";
    let size = 8 * 13 + LABEL.len() + prev_hash.len() + 16 + fields.iter().map(|f| f.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(size);
    let mut put = |b: &[u8]| {
        buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
        buf.extend_from_slice(b);
    };
    put(LABEL);
    put(prev_hash);
    put(&seq.to_be_bytes());
    put(&time_ms.to_be_bytes());
    for f in fields {
        put(f.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, &buf).as_ref());
    out
}

/// The hash before the first entry.
pub fn genesis() -> Vec<u8> {
    vec![0u8; 32]
}

/// Where and why the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Break {
    /// The first entry that does not check out (or the position where one is missing).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// Verifies entries in order: sequence numbers without gaps from `first_seq`,
/// each linking to its predecessor, each hash matching its fields.
pub fn verify_chain(entries: &[AuditEntry], first_seq: u64, first_prev: &[u8]) -> Result<(), Break> {
    let mut prev = first_prev.to_vec();
    for (expect_seq, e) in (first_seq..).zip(entries) {
        if e.seq != expect_seq {
            let reason = if e.seq > expect_seq {
                format!("entry {expect_seq} is missing (next is {})", e.seq)
            } else {
                format!("entry {} appears out of order (expected {expect_seq})", e.seq)
            };
            return Err(Break { seq: expect_seq, reason });
        }
        if e.prev_hash != prev {
            return Err(Break {
                seq: e.seq,
                reason: "does not link to the entry before it (inserted, reordered or edited)".into(),
            });
        }
        if e.compute_hash() != e.hash {
            return Err(Break { seq: e.seq, reason: "its fields do not match its hash (edited)".into() });
        }
        prev = e.hash.clone();
    }
    Ok(())
}

/// A signed checkpoint: the chain's hash at `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number of the last entry covered.
    pub seq: u64,
    /// That entry's hash (hex).
    pub hash: String,
    /// When it was made (ms).
    pub time_ms: i64,
    /// Ed25519 signature over `keyward/v1/checkpoint|seq|hash|time` (hex).
    pub signature: String,
}

fn checkpoint_message(seq: u64, hash: &str, time_ms: i64) -> Vec<u8> {
    format!("keyward/v1/checkpoint|{seq}|{hash}|{time_ms}").into_bytes()
}

/// The checkpoint signing key, derived from the root key.
pub fn signing_key(root: &RootKey) -> Ed25519KeyPair {
    let seed = root.derive(LABEL_SIGNING);
    // A 32-byte seed always makes a key.
    Ed25519KeyPair::from_seed_unchecked(seed.as_ref()).unwrap_or_else(|_| unreachable_key())
}

fn unreachable_key() -> Ed25519KeyPair {
    // from_seed_unchecked only fails for a seed of the wrong length.
    #[allow(clippy::expect_used)]
    Ed25519KeyPair::from_seed_unchecked(&[1u8; 32]).expect("fixed seed")
}

/// Signs a checkpoint for `(seq, hash)`.
pub fn sign_checkpoint(key: &Ed25519KeyPair, seq: u64, hash: &[u8], time_ms: i64) -> Checkpoint {
    let hash = hex_encode(hash);
    let signature = hex_encode(key.sign(&checkpoint_message(seq, &hash, time_ms)).as_ref());
    Checkpoint { seq, hash, time_ms, signature }
}

/// Checks a checkpoint's signature against the public key.
pub fn verify_checkpoint(public_key: &[u8], c: &Checkpoint) -> bool {
    let Some(sig) = crate::keyring::hex_decode(&c.signature) else { return false };
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(&checkpoint_message(c.seq, &c.hash, c.time_ms), &sig)
        .is_ok()
}

/// The public half of the checkpoint key.
pub fn public_key(key: &Ed25519KeyPair) -> Vec<u8> {
    key.public_key().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            time_ms: 1,
            request_id: "r".into(),
            key_id: "key_x".into(),
            ip: "127.0.0.1".into(),
            action: action.into(),
            target: "t".into(),
            class: String::new(),
            decision: "allow".into(),
            code: String::new(),
            detail: "{}".into(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
        }
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let mut e = entry(&format!("a{i}"));
            let (s, h) = out.last().map(|p| (p.seq, p.hash.clone())).unwrap_or((0, genesis()));
            e.chain_after(s, &h);
            out.push(e);
        }
        out
    }

    #[test]
    fn every_tampering_is_located() {
        let c = chain(5);
        assert!(verify_chain(&c, 1, &genesis()).is_ok());
        let mut edited = c.clone();
        edited[2].target = "other".into();
        assert_eq!(verify_chain(&edited, 1, &genesis()).unwrap_err().seq, 3);
        let mut deleted = c.clone();
        deleted.remove(1);
        assert_eq!(verify_chain(&deleted, 1, &genesis()).unwrap_err().seq, 2);
        let mut swapped = c.clone();
        swapped.swap(1, 2);
        assert_eq!(verify_chain(&swapped, 1, &genesis()).unwrap_err().seq, 2);
        let mut forged = c.clone();
        let mut fake = entry("forged");
        fake.chain_after(2, &c[1].hash);
        forged.insert(2, fake);
        assert_eq!(verify_chain(&forged, 1, &genesis()).unwrap_err().seq, 4);
    }

    #[test]
    fn checkpoints_are_signed() {
        let root = RootKey::from_slice(&[5u8; 32]).unwrap();
        let k = signing_key(&root);
        let cp = sign_checkpoint(&k, 7, &[9u8; 32], 100);
        assert!(verify_checkpoint(&public_key(&k), &cp));
        let mut bad = cp.clone();
        bad.seq = 8;
        assert!(!verify_checkpoint(&public_key(&k), &bad));
        let other = signing_key(&RootKey::from_slice(&[6u8; 32]).unwrap());
        assert!(!verify_checkpoint(&public_key(&other), &cp));
    }
}
