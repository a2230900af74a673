//! The audit log in SQLite: entries name their strings by id (see
//! [`crate::audit_strings`]), keep their own hash sparsely (see
//! [`crate::audit`]) and not the previous one, and carry no time index:
//! time and sequence rise together, so a time bound is found by bisecting
//! the sequence.

use super::{SqliteStore, u64_of};
use crate::audit::{StoredHash, fill, hash_at, keeps_whole, stored_form};
use crate::audit_strings::{FIELDS, IdMap, StrMap, Table, fields, set_fields};
use crate::{AuditQuery, AuditRow, AuditRows, StoreError, StoreResult};
use keyward_core::audit::{AuditEntry, Checkpoint, genesis};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection};

/// Entries per multi-row insert.
const CHUNK: usize = 64;
/// Strings looked up by id in one statement.
const LOOKUP: usize = 5_000;

/// The last entry's sequence number and hash as stored (whole, unless the
/// tail was edited underneath): the newest entry, else the base a prune
/// left (its last entry), else nothing.
async fn stored_head(c: &mut SqliteConnection) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let row =
        sqlx::query("SELECT seq, hash FROM audit_entries ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *c).await?;
    if let Some(r) = row {
        return Ok(Some((u64_of(r.get("seq")), r.get("hash"))));
    }
    base(c).await
}

/// The last entry's sequence number and whole hash (see [`stored_head`]).
pub(super) async fn head(store: &SqliteStore) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let head = stored_head(&mut *store.pool.acquire().await?).await?;
    match head {
        Some((seq, hash)) if hash.len() != 32 => Ok(Some((seq, hash_at(store, seq).await?))),
        other => Ok(other),
    }
}

/// The last entry a prune removed (the log now starts after it).
pub(super) async fn base(c: &mut SqliteConnection) -> StoreResult<Option<(u64, Vec<u8>)>> {
    let row = sqlx::query("SELECT seq, hash FROM audit_base WHERE id = 1").fetch_optional(c).await?;
    Ok(row.map(|r| (u64_of(r.get("seq")), r.get("hash"))))
}

/// Whether a batch whose first entry is `seq`, chained onto `prev_hash`,
/// goes onto the `stored` head (see [`stored_head`]); if not, the stored
/// head's sequence number.
pub(super) fn onto_head(stored: Option<(u64, Vec<u8>)>, seq: u64, prev_hash: &[u8]) -> Result<(), u64> {
    let (head, hash) = stored.unwrap_or_else(|| (0, genesis()));
    if seq == head.saturating_add(1) && StoredHash::from_bytes(&hash).matches(prev_hash) { Ok(()) } else { Err(head) }
}

/// The ids of `values`, adding the new ones to `audit_strings` inside the
/// caller's transaction (a multi-row statement per 100 new strings); the new
/// pairs are returned for caching after commit.
async fn ids_of<'a>(
    store: &SqliteStore,
    c: &mut SqliteConnection,
    values: impl IntoIterator<Item = &'a str>,
) -> StoreResult<(StrMap<&'a str, i64>, Vec<(String, i64)>)> {
    let (mut out, new) = store.strings.ids_of(values);
    let pending: std::collections::HashSet<&'a str> = new.iter().copied().collect();
    let mut learnt = Vec::new();
    for chunk in new.chunks(100) {
        let sql = format!(
            "INSERT INTO audit_strings (value) VALUES {} ON CONFLICT (value) DO UPDATE SET value = excluded.value
             RETURNING id, value",
            vec!["(?)"; chunk.len()].join(", ")
        );
        let mut q = sqlx::query(&sql);
        for v in chunk {
            q = q.bind(*v);
        }
        for r in q.fetch_all(&mut *c).await? {
            let (id, value): (i64, String) = (r.get("id"), r.get("value"));
            if let Some(v) = pending.get(value.as_str()) {
                out.insert(*v, id);
            }
            learnt.push((value, id));
        }
    }
    Ok((out, learnt))
}

/// Appends through sqlx: the in-memory database's way (a file's is
/// [`super::append`]).
pub(super) async fn append(
    store: &SqliteStore,
    entries: &[AuditEntry],
    checkpoint: Option<&Checkpoint>,
) -> StoreResult<()> {
    // IMMEDIATE: the write lock from the start, so the head read below
    // cannot go stale before the insert (WAL would refuse the upgrade).
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    // Only onto the stored head (rows edited underneath move it): the
    // writer chains the batch onto what is stored and tries again.
    if let Some(first) = entries.first()
        && let Err(current) = onto_head(stored_head(&mut tx).await?, first.seq, &first.prev_hash)
    {
        return Err(StoreError::Conflict { current });
    }
    let (ids, learnt) = ids_of(store, &mut tx, entries.iter().flat_map(fields)).await?;
    let last = entries.last().map_or(0, |e| e.seq);
    for chunk in entries.chunks(CHUNK) {
        let rows = vec!["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO audit_entries (seq, time_ms, request_id, {}, detail, hash) VALUES {rows}",
            FIELDS.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q.bind(e.seq as i64).bind(e.time_ms).bind(&e.request_id);
            for f in fields(e) {
                q = q.bind(ids[f]);
            }
            q = q.bind(&e.detail).bind(stored_form(&e.hash, keeps_whole(e.seq, e.seq == last)));
        }
        q.execute(&mut *tx).await?;
    }
    if let Some(c) = checkpoint {
        sqlx::query("INSERT OR REPLACE INTO audit_checkpoints (seq, hash, time_ms, signature) VALUES (?, ?, ?, ?)")
            .bind(c.seq as i64)
            .bind(&c.hash)
            .bind(c.time_ms)
            .bind(&c.signature)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    store.strings.learn(learnt);
    Ok(())
}

/// The id of a stored string, if it is stored.
async fn id_of(store: &SqliteStore, value: &str) -> StoreResult<Option<i64>> {
    if let Some(id) = store.strings.id(value) {
        return Ok(Some(id));
    }
    let id: Option<i64> = sqlx::query_scalar("SELECT id FROM audit_strings WHERE value = ?")
        .bind(value)
        .fetch_optional(&store.pool)
        .await?;
    if let Some(id) = id {
        store.strings.learn([(value.to_string(), id)]);
    }
    Ok(id)
}

/// The smallest sequence number whose entry is at or after `time_ms`
/// (`after`), or the largest at or before it: entries are chained in time
/// order, so bisecting the sequence finds it in a few reads.
async fn seq_at(store: &SqliteStore, time_ms: i64, after: bool) -> StoreResult<Option<u64>> {
    let bounds = sqlx::query("SELECT min(seq) AS lo, max(seq) AS hi FROM audit_entries").fetch_one(&store.pool).await?;
    let (Some(mut lo), Some(mut hi)) = (bounds.get::<Option<i64>, _>("lo"), bounds.get::<Option<i64>, _>("hi")) else {
        return Ok(None);
    };
    let time_of = |seq: i64| {
        sqlx::query_scalar::<Sqlite, i64>("SELECT time_ms FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT 1")
            .bind(seq)
            .fetch_one(&store.pool)
    };
    if after {
        // The first seq with time >= time_ms (hi + 1 if none).
        hi += 1;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if time_of(mid).await? >= time_ms { hi = mid } else { lo = mid + 1 }
        }
        Ok(Some(u64_of(lo)))
    } else {
        // The last seq with time <= time_ms (lo - 1 if none).
        lo -= 1;
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2;
            if time_of(mid).await? <= time_ms { lo = mid } else { hi = mid - 1 }
        }
        Ok(Some(u64_of(lo)))
    }
}

/// A filter's string id: `Some(None)` for no filter, `None` for a string never stored.
async fn filter(store: &SqliteStore, v: &Option<String>) -> StoreResult<Option<Option<i64>>> {
    match v {
        None => Ok(Some(None)),
        Some(v) => Ok(id_of(store, v).await?.map(Some)),
    }
}

fn row_ids(r: &SqliteRow) -> [i64; 7] {
    FIELDS.map(|f| r.get::<i64, _>(f))
}

pub(super) async fn entries(store: &SqliteStore, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
    let mut from = q.from_seq.unwrap_or(0);
    let mut to = u64::MAX;
    if let Some(since) = q.since_ms {
        from = from.max(seq_at(store, since, true).await?.unwrap_or(0));
    }
    if let Some(until) = q.until_ms {
        to = seq_at(store, until, false).await?.unwrap_or(0);
    }
    // A filter on a string never stored matches nothing.
    let (Some(key), Some(decision)) = (filter(store, &q.key_id).await?, filter(store, &q.decision).await?) else {
        return Ok(Vec::new());
    };
    let order = if q.newest { "DESC" } else { "ASC" };
    let rows = sqlx::query(&format!(
        "SELECT seq, time_ms, request_id, {}, detail, hash FROM audit_entries
         WHERE seq >= ?1 AND seq <= ?2 AND time_ms >= ?3 AND time_ms <= ?4
         AND (?5 IS NULL OR key_id = ?5) AND (?6 IS NULL OR decision = ?6)
         AND (?7 IS NULL OR target IN (SELECT id FROM audit_strings WHERE substr(value, 1, length(?7)) = ?7))
         ORDER BY seq {order} LIMIT ?8",
        FIELDS.join(", ")
    ))
    .bind(from.min(i64::MAX as u64) as i64)
    .bind(to.min(i64::MAX as u64) as i64)
    .bind(q.since_ms.unwrap_or(i64::MIN))
    .bind(q.until_ms.unwrap_or(i64::MAX))
    .bind(key)
    .bind(decision)
    .bind(&q.target_prefix)
    .bind(q.limit.min(i64::MAX as u64) as i64)
    .fetch_all(&store.pool)
    .await?;
    let values = values_of(store, rows.iter().flat_map(row_ids)).await?;
    let mut out: Vec<AuditEntry> = rows
        .iter()
        .map(|r| {
            let mut e = AuditEntry {
                seq: u64_of(r.get("seq")),
                time_ms: r.get("time_ms"),
                request_id: r.get("request_id"),
                detail: r.get("detail"),
                hash: r.get("hash"),
                ..Default::default()
            };
            set_fields(&mut e, row_ids(r).map(|id| values.get(&id).cloned().unwrap_or_default()));
            e
        })
        .collect();
    if q.newest {
        out.reverse();
    }
    fill(store, &mut out).await?;
    Ok(out)
}

/// One entry as `rows` reads it: sequence number, time, the seven string
/// ids, then the byte lengths of its request id, detail and stored hash.
type Packed = (u64, i64, i64, i64, i64, i64, i64, i64, i64, usize, usize, usize);

/// A page's columns as SQLite hands them over: the numbers as one JSON
/// array, the request ids, details and hashes each as one blob.
struct Columns {
    numbers: String,
    request_ids: Vec<u8>,
    details: Vec<u8>,
    hashes: Vec<u8>,
}

/// Consecutive entries as stored, for a walk through the log: read by the
/// [`super::walk::Walker`] where the database is a file. In memory, sqlx
/// hands a page over as one row (a row each would cost a hand-off between
/// threads per entry, which dominates): the numbers as a JSON array, the
/// text and hash columns concatenated, each cut up again by the lengths in
/// the array (no escaping either way); decoded off the async threads.
pub(super) async fn rows(store: &SqliteStore, from_seq: u64, limit: u64) -> StoreResult<AuditRows> {
    if let Some(walker) = &store.walker {
        return walker.rows(store.strings.clone(), from_seq, limit).await;
    }
    let row = sqlx::query(&format!(
        "SELECT json_group_array(json_array(seq, time_ms, {},
             octet_length(request_id), octet_length(detail), length(hash))) AS numbers,
         CAST(group_concat(request_id, '') AS BLOB) AS request_ids,
         CAST(group_concat(detail, '') AS BLOB) AS details,
         CAST(group_concat(hash, '') AS BLOB) AS hashes
         FROM (SELECT * FROM audit_entries WHERE seq >= ? ORDER BY seq LIMIT ?)",
        FIELDS.join(", ")
    ))
    .bind(from_seq.min(i64::MAX as u64) as i64)
    .bind(limit.min(i64::MAX as u64) as i64)
    .fetch_one(&store.pool)
    .await?;
    let Some(numbers) = row.get::<Option<String>, _>("numbers") else { return Ok(AuditRows::default()) };
    let blob = |name: &str| row.get::<Option<Vec<u8>>, _>(name).unwrap_or_default();
    let columns =
        Columns { numbers, request_ids: blob("request_ids"), details: blob("details"), hashes: blob("hashes") };
    let (packed, columns) = tokio::task::spawn_blocking(move || {
        let packed: Result<Vec<Packed>, _> = serde_json::from_str(&columns.numbers);
        (packed, columns)
    })
    .await
    .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    let packed = packed.map_err(|e| StoreError::Corrupt(format!("an audit page does not decode: {e}")))?;
    let adds_up = |column: &[u8], len: fn(&Packed) -> usize| column.len() == packed.iter().map(len).sum::<usize>();
    if !adds_up(&columns.request_ids, |p| p.9)
        || !adds_up(&columns.details, |p| p.10)
        || !adds_up(&columns.hashes, |p| p.11)
    {
        return Err(StoreError::Corrupt("an audit page's columns do not add up".into()));
    }
    let values = values_of(store, packed.iter().flat_map(|p| [p.2, p.3, p.4, p.5, p.6, p.7, p.8])).await?;
    let table = Table::new(values);
    let (mut request_ids, mut details, mut hashes) =
        (columns.request_ids.as_slice(), columns.details.as_slice(), columns.hashes.as_slice());
    let rows = packed
        .into_iter()
        .map(|(seq, time_ms, a, b, c, d, e, f, g, request_id, detail, hash)| AuditRow {
            seq,
            time_ms,
            request_id: text(cut(&mut request_ids, request_id)),
            strings: [a, b, c, d, e, f, g].map(|id| table.at(id)),
            detail: text(cut(&mut details, detail)),
            hash: StoredHash::from_bytes(cut(&mut hashes, hash)),
        })
        .collect();
    Ok(AuditRows { rows, strings: table.strings })
}

/// The first `n` bytes of `rest`, which moves past them.
fn cut<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

/// Text as stored (SQLite text is UTF-8; a damaged row reads lossily, and
/// verification names it).
pub(super) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Consecutive entries, whole (archiving): [`rows`] with their strings.
pub(super) async fn page(store: &SqliteStore, from_seq: u64, limit: u64) -> StoreResult<Vec<AuditEntry>> {
    let rows = rows(store, from_seq, limit).await?;
    let mut out: Vec<AuditEntry> = rows
        .rows
        .iter()
        .map(|r| {
            let [request_id, key_id, ip, action, target, class, decision, code, detail] =
                rows.fields(r).map(str::to_string);
            AuditEntry {
                seq: r.seq,
                time_ms: r.time_ms,
                request_id,
                key_id,
                ip,
                action,
                target,
                class,
                decision,
                code,
                detail,
                hash: r.hash.whole().map(|h| h.to_vec()).unwrap_or_default(),
                prev_hash: Vec::new(),
            }
        })
        .collect();
    fill(store, &mut out).await?;
    Ok(out)
}

/// [`values_of`]'s statement but its condition on `id`.
macro_rules! lookup_sql {
    () => {
        "SELECT json_group_array(json_array(id, octet_length(value))) AS pairs,
         CAST(group_concat(value, '') AS BLOB) AS bytes FROM audit_strings WHERE "
    };
}

/// The values of string ids, from the cache or the database. The missing
/// ones come [`LOOKUP`] at a time as one row, like [`rows`]' pages: the ids
/// and byte lengths as a JSON array, the values concatenated. A row each
/// would cost a hand-off between threads per string, and a log whose
/// targets rarely repeat (key ids, created one after another) has a new
/// string in every entry.
async fn values_of(store: &SqliteStore, ids: impl IntoIterator<Item = i64>) -> StoreResult<IdMap<String>> {
    let (mut out, mut missing) = store.strings.values(ids);
    missing.sort_unstable();
    for chunk in missing.chunks(LOOKUP) {
        let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
        // Strings added together (a run of entries each naming a new key)
        // have neighbouring ids: walking their range, a few others with
        // them, is cheaper than looking each up.
        let dense = last.saturating_sub(first) < 2 * chunk.len() as i64;
        let query = if dense {
            sqlx::query(concat!(lookup_sql!(), "id BETWEEN ? AND ?")).bind(first).bind(last)
        } else {
            let list = serde_json::to_string(chunk).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query(concat!(lookup_sql!(), "id IN (SELECT value FROM json_each(?))")).bind(list)
        };
        let row = query.fetch_one(&store.pool).await?;
        let pairs: Vec<(i64, usize)> = serde_json::from_str(&row.get::<String, _>("pairs"))
            .map_err(|e| StoreError::Corrupt(format!("audit strings do not decode: {e}")))?;
        let bytes = row.get::<Option<Vec<u8>>, _>("bytes").unwrap_or_default();
        if bytes.len() != pairs.iter().map(|p| p.1).sum::<usize>() {
            return Err(StoreError::Corrupt("the audit strings' lengths do not add up".into()));
        }
        let mut rest = bytes.as_slice();
        for (id, len) in pairs {
            let bytes = cut(&mut rest, len);
            if chunk.binary_search(&id).is_ok() {
                out.insert(id, text(bytes));
            }
        }
    }
    store.strings.learn_looked_up(&out, &missing);
    Ok(out)
}

pub(super) async fn checkpoints(store: &SqliteStore) -> StoreResult<Vec<Checkpoint>> {
    let rows = sqlx::query("SELECT seq, hash, time_ms, signature FROM audit_checkpoints ORDER BY seq")
        .fetch_all(&store.pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Checkpoint {
            seq: u64_of(r.get("seq")),
            hash: r.get("hash"),
            time_ms: r.get("time_ms"),
            signature: r.get("signature"),
        })
        .collect())
}

/// Removes every entry up to `through` (a checkpointed entry), and the
/// checkpoints before it; the base becomes that entry.
pub(super) async fn prune(store: &SqliteStore, through: u64) -> StoreResult<u64> {
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let at = through.min(i64::MAX as u64) as i64;
    let checkpointed: Option<String> = sqlx::query_scalar("SELECT hash FROM audit_checkpoints WHERE seq = ?")
        .bind(at)
        .fetch_optional(&mut *tx)
        .await?;
    let stored: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT hash FROM audit_entries WHERE seq = ?").bind(at).fetch_optional(&mut *tx).await?;
    // A checkpointed entry keeps its whole hash (it ends its batch).
    let hash = stored.filter(|h| h.len() == 32);
    let (Some(checkpointed), Some(hash)) = (checkpointed, hash) else {
        return Err(StoreError::Refused(format!("entry {through} is not a stored, checkpointed entry")));
    };
    if checkpointed != keyward_core::keyring::hex_encode(&hash) {
        return Err(StoreError::Corrupt(format!("the checkpoint at entry {through} does not match the entry")));
    }
    sqlx::query("INSERT OR REPLACE INTO audit_base (id, seq, hash) VALUES (1, ?, ?)")
        .bind(at)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM audit_entries WHERE seq <= ?").bind(at).execute(&mut *tx).await?;
    sqlx::query("DELETE FROM audit_checkpoints WHERE seq < ?").bind(at).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(removed.rows_affected())
}
