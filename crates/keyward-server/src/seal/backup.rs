//! The backup file: a readable header, then the database snapshot
//! encrypted with AES-256-GCM under a root-derived key (`keyward/v1/backup`),
//! the header being the associated data. The GCM tag is thus a MAC over the
//! whole file: one changed byte anywhere, header included, and it is
//! refused. The key is derived from the root key, not from a keyring term,
//! so a backup opens after any number of term rotations.
//!
//! ```text
//! keyward-backup v1
//! created: 2026-12-03T12:00:00Z
//! created_ms: 1796299200000
//! term: 2
//! retired:
//! data: 9f…(32 hex)
//! length: 123456
//!
//! <12-byte nonce><ciphertext><16-byte tag>
//! ```
//!
//! `data` names the keyward data (a hash of the root key's check value), so
//! a foreign backup is told apart from a tampered one before decryption.

use crate::error::{Code, Error, Result};
use keyward_core::clock::rfc3339;
use keyward_store::SealRecord;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

const MAGIC: &str = "keyward-backup v1\n";
const MAX_HEADER: usize = 4096;

/// What a backup's header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BackupHeader {
    /// When the snapshot was taken (ms since the epoch).
    pub created_ms: i64,
    /// The active keyring term then.
    pub term: u32,
    /// Terms retired then.
    pub retired: Vec<u32>,
    /// Which data it is of.
    pub data: String,
    /// Bytes after the header (nonce, ciphertext, tag).
    pub length: usize,
}

/// The id of the data `record` belongs to, as the header carries it.
pub(crate) fn data_id(record: &SealRecord) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("keyward data id\n{}", record.check).as_bytes());
    keyward_core::keyring::hex_encode(&d.as_ref()[..16])
}

fn key(derived: &[u8; 32]) -> Result<LessSafeKey> {
    Ok(LessSafeKey::new(UnboundKey::new(&AES_256_GCM, derived).map_err(|_| Error::internal("backup key"))?))
}

fn header_text(h: &BackupHeader) -> String {
    let retired: Vec<String> = h.retired.iter().map(u32::to_string).collect();
    format!(
        "{MAGIC}created: {}\ncreated_ms: {}\nterm: {}\nretired: {}\ndata: {}\nlength: {}\n\n",
        rfc3339(h.created_ms),
        h.created_ms,
        h.term,
        retired.join(","),
        h.data,
        h.length
    )
}

/// Encrypts `snapshot` into a backup file; answers it with its header.
pub(crate) fn seal(
    derived: &[u8; 32],
    record: &SealRecord,
    now_ms: i64,
    snapshot: &[u8],
) -> Result<(Vec<u8>, BackupHeader)> {
    let mut nonce = [0u8; NONCE_LEN];
    keyward_core::random::fill(&mut nonce)?;
    let header = BackupHeader {
        created_ms: now_ms,
        term: record.active_term,
        retired: record.retired_terms.clone(),
        data: data_id(record),
        length: NONCE_LEN + snapshot.len() + AES_256_GCM.tag_len(),
    };
    let head = header_text(&header);
    let mut body = snapshot.to_vec();
    key(derived)?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(head.as_bytes()), &mut body)
        .map_err(|_| Error::internal("backup encryption failed"))?;
    let mut out = Vec::with_capacity(head.len() + header.length);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok((out, header))
}

fn malformed(why: &str) -> Error {
    Error::new(Code::BackupMalformed, format!("this is not a keyward backup: {why}"))
}

fn truncated(have: usize, want: usize) -> Error {
    Error::new(
        Code::BackupTruncated,
        format!("the backup is truncated: {have} of its {want} bytes are there; copy the whole file again"),
    )
}

/// Reads a backup's header (no key needed) and where its body starts.
pub(crate) fn read_header(file: &[u8]) -> Result<(BackupHeader, usize)> {
    if !file.starts_with(MAGIC.as_bytes()) {
        if !file.is_empty() && MAGIC.as_bytes().starts_with(file) {
            return Err(truncated(file.len(), MAGIC.len()));
        }
        return Err(malformed("it does not start with `keyward-backup v1`"));
    }
    let window = &file[..file.len().min(MAX_HEADER)];
    let Some(end) = window.windows(2).position(|w| w == b"\n\n") else {
        return Err(if file.len() < MAX_HEADER {
            truncated(file.len(), file.len() + 1)
        } else {
            malformed("the header does not end")
        });
    };
    let text = std::str::from_utf8(&file[..end]).map_err(|_| malformed("the header is not text"))?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ").or(r.strip_prefix(":"))))
            .map(str::trim)
            .ok_or_else(|| malformed(&format!("the header has no `{name}`")))
    };
    let number =
        |name: &str| field(name).and_then(|v| v.parse::<u64>().map_err(|_| malformed(&format!("bad `{name}`"))));
    let retired = field("retired")?;
    let header = BackupHeader {
        created_ms: number("created_ms")? as i64,
        term: u32::try_from(number("term")?).map_err(|_| malformed("bad `term`"))?,
        retired: if retired.is_empty() {
            Vec::new()
        } else {
            retired
                .split(',')
                .map(|t| t.trim().parse().map_err(|_| malformed("bad `retired`")))
                .collect::<Result<_>>()?
        },
        data: field("data")?.to_owned(),
        length: usize::try_from(number("length")?).map_err(|_| malformed("bad `length`"))?,
    };
    Ok((header, end + 2))
}

/// Checks and decrypts a backup of the data `record` describes: foreign,
/// truncated and tampered files are each refused with their own code.
pub(crate) fn open(derived: &[u8; 32], record: &SealRecord, file: &[u8]) -> Result<(BackupHeader, Zeroizing<Vec<u8>>)> {
    let (header, start) = read_header(file)?;
    if header.data != data_id(record) {
        return Err(Error::new(
            Code::BackupForeign,
            format!(
                "this backup ({}) is of other keyward data, not of this one: restore it only where it was made",
                rfc3339(header.created_ms)
            ),
        ));
    }
    let body = &file[start..];
    if body.len() < header.length {
        return Err(truncated(start + body.len(), start + header.length));
    }
    let tampered = || {
        Error::new(Code::BackupTampered, "the backup fails its integrity check: it was changed after it was written")
    };
    if body.len() > header.length || header.length < NONCE_LEN + AES_256_GCM.tag_len() {
        return Err(tampered());
    }
    let nonce = Nonce::try_assume_unique_for_key(&body[..NONCE_LEN]).map_err(|_| tampered())?;
    let mut plain = Zeroizing::new(body[NONCE_LEN..].to_vec());
    let n = key(derived)?
        .open_in_place(nonce, Aad::from(&file[..start]), plain.as_mut_slice())
        .map_err(|_| tampered())?
        .len();
    plain.truncate(n);
    Ok((header, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyward_store::SealKind;

    fn record(check: &str) -> SealRecord {
        SealRecord {
            kind: SealKind::Keyfile,
            check: check.into(),
            created_ms: 1,
            active_term: 2,
            retired_terms: vec![1],
        }
    }

    #[test]
    fn round_trip_and_each_refusal_has_its_code() {
        let k = [7u8; 32];
        let r = record(&"ab".repeat(32));
        let (file, made) = seal(&k, &r, 1_700_000_000_000, b"SQLite format 3\0 and the rest").unwrap();
        assert_eq!(read_header(&file).unwrap().0, made);
        let (h, plain) = open(&k, &r, &file).unwrap();
        assert_eq!((h.term, h.retired.clone(), h.created_ms), (2, vec![1], 1_700_000_000_000));
        assert_eq!(plain.as_slice(), b"SQLite format 3\0 and the rest");
        let code = |f: &[u8], r: &SealRecord| open(&k, r, f).unwrap_err().code;
        assert_eq!(code(&file[..file.len() - 1], &r), Code::BackupTruncated);
        assert_eq!(code(&file[..20], &r), Code::BackupTruncated);
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(code(&flipped, &r), Code::BackupTampered);
        let (_, start) = read_header(&file).unwrap();
        let head = String::from_utf8_lossy(&file[..start]).replace("term: 2", "term: 3");
        let mut edited = file.clone();
        edited[..start].copy_from_slice(head.as_bytes());
        assert_eq!(code(&edited, &r), Code::BackupTampered);
        assert_eq!(code(&file, &record(&"cd".repeat(32))), Code::BackupForeign);
        assert_eq!(code(b"PK\x03\x04 a zip", &r), Code::BackupMalformed);
        assert_eq!(open(&[8u8; 32], &r, &file).unwrap_err().code, Code::BackupTampered);
    }
}
