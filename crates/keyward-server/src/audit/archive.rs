//! Audit archives: old entries moved out of the database into a gzip file
//! of JSON lines that verifies on its own. The file holds, in order:
//!
//! 1. a header: `{"keyward_audit_archive":1,"first_seq","last_seq","prev_hash","entries","created_ms"}`,
//!    `prev_hash` being the hash of the entry before the first (the
//!    previous archive's last, or 32 zero bytes for entry 1);
//! 2. every signed checkpoint whose entry is in the file: `{"checkpoint":{…}}`;
//! 3. every entry, oldest first, with all its fields and hashes.
//!
//! The last entry always has a checkpoint: an archive ends where a signed
//! checkpoint vouches for everything before it, and the database keeps
//! that entry's hash as its base, so archives and database chain into one
//! log. Verifying reads the file once, in constant memory (checkpoints are
//! one in a thousand entries, and come first).

use keyward_core::audit::{AuditEntry, Checkpoint, genesis, verify_checkpoint};
use keyward_core::keyring::{hex_decode, hex_encode};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};

/// The format's version.
pub const FORMAT: u32 = 1;

/// The first line of an archive.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    /// The format (`1`).
    pub keyward_audit_archive: u32,
    /// The first entry's sequence number.
    pub first_seq: u64,
    /// The last entry's.
    pub last_seq: u64,
    /// The hash before the first entry (hex).
    pub prev_hash: String,
    /// How many entries follow.
    pub entries: u64,
    /// When the archive was made (ms).
    pub created_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointLine {
    checkpoint: Checkpoint,
}

/// Writes an archive: header, checkpoints, then entries as they are given,
/// compressed; [`ArchiveWriter::take`] hands over what is ready so far (for
/// streaming).
pub struct ArchiveWriter {
    gz: flate2::write::GzEncoder<Vec<u8>>,
    expect: u64,
    last_seq: u64,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter").field("next", &self.expect).field("last_seq", &self.last_seq).finish()
    }
}

impl ArchiveWriter {
    /// Starts an archive of `header.entries` entries with these checkpoints.
    pub fn new(header: &Header, checkpoints: &[Checkpoint]) -> std::io::Result<Self> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        serde_json::to_writer(&mut gz, header)?;
        gz.write_all(b"\n")?;
        for c in checkpoints {
            serde_json::to_writer(&mut gz, &CheckpointLine { checkpoint: c.clone() })?;
            gz.write_all(b"\n")?;
        }
        Ok(Self { gz, expect: header.first_seq, last_seq: header.last_seq })
    }

    /// Adds the next entry (in sequence).
    pub fn entry(&mut self, e: &AuditEntry) -> std::io::Result<()> {
        if e.seq != self.expect || e.seq > self.last_seq {
            return Err(std::io::Error::other(format!("entry {} out of sequence (expected {})", e.seq, self.expect)));
        }
        self.expect += 1;
        serde_json::to_writer(&mut self.gz, e)?;
        self.gz.write_all(b"\n")
    }

    /// The compressed bytes ready so far.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(self.gz.get_mut())
    }

    /// Ends the archive; the last compressed bytes. Fails unless every
    /// entry the header announced was written.
    pub fn finish(self) -> std::io::Result<Vec<u8>> {
        if self.expect != self.last_seq + 1 {
            return Err(std::io::Error::other(format!(
                "the archive stops at entry {} of {}",
                self.expect - 1,
                self.last_seq
            )));
        }
        self.gz.finish()
    }
}

/// What a verified archive holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Its header.
    pub header: Header,
    /// The last entry's hash (hex): the next archive's, or the database
    /// base's, previous hash.
    pub last_hash: String,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Compressed size, when known.
    pub bytes: u64,
}

/// Why an archive does not verify: the entry (or line) and what is wrong.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Broken {
    /// The first entry that does not check out (0: the header or a checkpoint line).
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

fn broken(seq: u64, reason: impl Into<String>) -> Broken {
    Broken { seq, reason: reason.into() }
}

/// Verifies an archive read from `r` (decompressed) against the audit
/// public key: the header, every checkpoint's signature, the chain from the
/// header's previous hash through every entry, each checkpoint against its
/// entry, each signed checkpoint marker against a checkpoint, and a
/// checkpoint on the last entry.
pub fn verify(r: impl BufRead, public_key: &[u8]) -> Result<Summary, Broken> {
    let mut lines = r.lines();
    let mut next = || -> Result<Option<String>, Broken> {
        lines.next().transpose().map_err(|e| broken(0, format!("the archive cannot be read: {e}")))
    };
    let first = next()?.ok_or_else(|| broken(0, "the archive is empty"))?;
    let header: Header =
        serde_json::from_str(&first).map_err(|_| broken(0, "the first line is not an archive header"))?;
    if header.keyward_audit_archive != FORMAT {
        return Err(broken(
            0,
            format!("archive format {} (this keyward reads {FORMAT})", header.keyward_audit_archive),
        ));
    }
    if header.last_seq < header.first_seq || header.entries != header.last_seq - header.first_seq + 1 {
        return Err(broken(0, "the header's entries do not match its first and last entry"));
    }
    let mut prev =
        hex_decode(&header.prev_hash).filter(|h| h.len() == 32).ok_or_else(|| broken(0, "prev_hash is not a hash"))?;
    if header.first_seq == 1 && prev != genesis() {
        return Err(broken(1, "entry 1 must follow the genesis hash"));
    }
    let mut checkpoints: HashMap<u64, String> = HashMap::new();
    let mut expect = header.first_seq;
    let mut in_entries = false;
    while let Some(line) = next()? {
        if !in_entries && let Ok(CheckpointLine { checkpoint: c }) = serde_json::from_str::<CheckpointLine>(&line) {
            if !verify_checkpoint(public_key, &c) {
                return Err(broken(c.seq, format!("the checkpoint at entry {} has a bad signature", c.seq)));
            }
            if c.seq < header.first_seq || c.seq > header.last_seq {
                return Err(broken(c.seq, format!("the checkpoint at entry {} is outside the archive", c.seq)));
            }
            checkpoints.insert(c.seq, c.hash);
            continue;
        }
        in_entries = true;
        let e: AuditEntry =
            serde_json::from_str(&line).map_err(|_| broken(expect, format!("entry {expect} is not an audit entry")))?;
        if e.seq != expect {
            return Err(broken(expect, format!("entry {expect} is missing (next is {})", e.seq)));
        }
        if e.prev_hash != prev {
            return Err(broken(e.seq, "does not link to the entry before it (inserted, reordered or edited)"));
        }
        if e.compute_hash() != e.hash {
            return Err(broken(e.seq, "its fields do not match its hash (edited)"));
        }
        if let Some(h) = checkpoints.get(&e.seq)
            && *h != hex_encode(&e.hash)
        {
            return Err(broken(e.seq, format!("the checkpoint at entry {} does not match the entry's hash", e.seq)));
        }
        let signed_marker = e.action == super::writer::MARKER_ACTION && !e.detail.contains("skipped");
        if signed_marker && !checkpoints.contains_key(&e.seq) {
            return Err(broken(e.seq, format!("the checkpoint at entry {} is missing from the archive", e.seq)));
        }
        prev = e.hash;
        expect += 1;
    }
    if expect != header.last_seq + 1 {
        return Err(broken(
            expect,
            format!("the archive stops at entry {} of {}: it was cut", expect - 1, header.last_seq),
        ));
    }
    if !checkpoints.contains_key(&header.last_seq) {
        return Err(broken(header.last_seq, "no signed checkpoint covers the archive's last entry"));
    }
    Ok(Summary { last_hash: hex_encode(&prev), checkpoints: checkpoints.len() as u64, header, bytes: 0 })
}

/// Verifies a gzip archive file.
pub fn verify_file(path: &std::path::Path, public_key: &[u8]) -> Result<Summary, Broken> {
    let f = std::fs::File::open(path).map_err(|e| broken(0, format!("{}: {e}", path.display())))?;
    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
    let r = std::io::BufReader::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)));
    verify(r, public_key).map(|s| Summary { bytes, ..s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_core::audit::sign_checkpoint;
    use ring::signature::Ed25519KeyPair;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = (0u64, genesis());
        (0..n)
            .map(|i| {
                let mut e = AuditEntry {
                    time_ms: i as i64,
                    action: "secret.read".into(),
                    target: format!("t{i}"),
                    ..Default::default()
                };
                e.chain_after(prev.0, &prev.1);
                prev = (e.seq, e.hash.clone());
                e
            })
            .collect()
    }

    fn archive(entries: &[AuditEntry], key: &Ed25519KeyPair) -> Vec<u8> {
        let last = entries.last().unwrap();
        let header = Header {
            keyward_audit_archive: FORMAT,
            first_seq: entries[0].seq,
            last_seq: last.seq,
            prev_hash: hex_encode(&entries[0].prev_hash),
            entries: entries.len() as u64,
            created_ms: 0,
        };
        let cp = sign_checkpoint(key, last.seq, &last.hash, 1);
        let mut w = ArchiveWriter::new(&header, &[cp]).unwrap();
        let mut out = Vec::new();
        for e in entries {
            w.entry(e).unwrap();
            out.extend(w.take());
        }
        out.extend(w.finish().unwrap());
        out
    }

    fn read(bytes: &[u8], public: &[u8]) -> Result<Summary, Broken> {
        verify(std::io::BufReader::new(flate2::read::GzDecoder::new(bytes)), public)
    }

    fn edit(bytes: &[u8], f: impl Fn(String) -> String) -> Vec<u8> {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(bytes), &mut text).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(f(text).as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn an_archive_verifies_and_every_change_is_named() {
        let key = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).unwrap();
        let public = keyward_core::audit::public_key(&key);
        let entries = chain(50);
        let good = archive(&entries, &key);
        let s = read(&good, &public).unwrap();
        assert_eq!((s.header.first_seq, s.header.last_seq, s.checkpoints), (1, 50, 1));
        assert_eq!(s.last_hash, hex_encode(&entries[49].hash));

        let edited = edit(&good, |t| t.replace("\"t17\"", "\"innocent\""));
        assert_eq!(read(&edited, &public).unwrap_err().seq, 18);
        let dropped = edit(&good, |t| t.lines().filter(|l| !l.contains("\"t30\"")).collect::<Vec<_>>().join("\n"));
        assert_eq!(read(&dropped, &public).unwrap_err().seq, 31);
        let cut = edit(&good, |t| t.lines().take(40).collect::<Vec<_>>().join("\n"));
        assert!(read(&cut, &public).unwrap_err().reason.contains("cut"));
        let other = Ed25519KeyPair::from_seed_unchecked(&[8u8; 32]).unwrap();
        assert!(read(&good, &keyward_core::audit::public_key(&other)).unwrap_err().reason.contains("bad signature"));
        // A tail without its checkpoint vouches for nothing.
        let uncovered = archive(&entries[..49], &key);
        let s = read(&uncovered, &public).unwrap();
        assert_eq!(s.header.last_seq, 49, "signed at its own end");
        assert!(read(&good[..good.len() / 2], &public).is_err(), "a truncated file");
    }
}
