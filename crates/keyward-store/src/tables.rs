//! The tables a snapshot carries, named once for every backend: a snapshot
//! is a SQLite database file whatever backend made it, so these columns
//! (the same names in both schemas) are what moves between them.

/// How a column's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `TEXT` in both.
    Text,
    /// `INTEGER` in SQLite, `BIGINT` in PostgreSQL.
    Int,
    /// `INTEGER` 0/1 in SQLite, `BOOLEAN` in PostgreSQL.
    Bool,
    /// `BLOB` in SQLite, `BYTEA` in PostgreSQL.
    Blob,
}

/// One table of a snapshot.
#[derive(Debug)]
pub(crate) struct Table {
    /// Its name.
    pub(crate) name: &'static str,
    /// Its primary key columns (rows are read in this order, page by page).
    pub(crate) key: &'static [&'static str],
    /// Every column, with how it is stored.
    pub(crate) columns: &'static [(&'static str, Kind)],
    /// Whether a restore replaces it (the seal record and the audit log
    /// stay: the restore keeps the current seal and the chain goes on).
    pub(crate) restored: bool,
}

impl Table {
    /// The column names, comma separated.
    pub(crate) fn column_list(&self) -> String {
        self.columns.iter().map(|(c, _)| *c).collect::<Vec<_>>().join(", ")
    }

    /// Where each key column is among the columns, with its kind.
    pub(crate) fn key_columns(&self) -> Vec<(usize, Kind)> {
        self.key
            .iter()
            .filter_map(|k| self.columns.iter().position(|(c, _)| c == k).map(|i| (i, self.columns[i].1)))
            .collect()
    }
}

use Kind::{Blob, Bool, Int, Text};

/// Every table of a snapshot, parents before children.
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "namespaces",
        key: &["name"],
        columns: &[("name", Text), ("prefix", Text), ("created_ms", Int)],
        restored: true,
    },
    Table {
        name: "secrets",
        key: &["path"],
        columns: &[
            ("path", Text),
            ("kind", Text),
            ("current_version", Int),
            ("created_ms", Int),
            ("updated_ms", Int),
            ("rotation_period_s", Int),
            ("latest_version", Int),
            ("pending_version", Int),
            ("previous_version", Int),
        ],
        restored: true,
    },
    Table {
        name: "secret_versions",
        key: &["path", "version"],
        columns: &[
            ("path", Text),
            ("version", Int),
            ("created_ms", Int),
            ("deleted_ms", Int),
            ("destroyed", Bool),
            ("ciphertext", Blob),
        ],
        restored: true,
    },
    Table {
        name: "access_keys",
        key: &["id"],
        columns: &[
            ("id", Text),
            ("hash", Blob),
            ("name", Text),
            ("owner", Text),
            ("namespace", Text),
            ("policy", Text),
            ("state", Text),
            ("created_ms", Int),
            ("mac", Blob),
            ("uses_remaining", Int),
            ("last_used_ms", Int),
            ("last_used_ip", Text),
        ],
        restored: true,
    },
    Table {
        name: "order_usage",
        key: &["key_id", "day"],
        columns: &[("key_id", Text), ("day", Int), ("used", Int)],
        restored: true,
    },
    Table {
        name: "key_ledger",
        key: &["id"],
        columns: &[("id", Int), ("rev", Int), ("count", Int), ("mac", Blob)],
        restored: true,
    },
    Table { name: "key_ledger_parts", key: &["part"], columns: &[("part", Int), ("bytes", Blob)], restored: true },
    Table { name: "meta", key: &["name"], columns: &[("name", Text), ("value", Text)], restored: false },
    Table { name: "audit_strings", key: &["id"], columns: &[("id", Int), ("value", Text)], restored: false },
    Table {
        name: "audit_entries",
        key: &["seq"],
        columns: &[
            ("seq", Int),
            ("time_ms", Int),
            ("request_id", Text),
            ("key_id", Int),
            ("ip", Int),
            ("action", Int),
            ("target", Int),
            ("class", Int),
            ("decision", Int),
            ("code", Int),
            ("detail", Text),
            ("hash", Blob),
        ],
        restored: false,
    },
    Table { name: "audit_base", key: &["id"], columns: &[("id", Int), ("seq", Int), ("hash", Blob)], restored: false },
    Table {
        name: "audit_checkpoints",
        key: &["seq"],
        columns: &[("seq", Int), ("hash", Text), ("time_ms", Int), ("signature", Text)],
        restored: false,
    },
];

/// The tables a restore replaces, parents before children.
pub(crate) fn restored() -> impl DoubleEndedIterator<Item = &'static Table> {
    TABLES.iter().filter(|t| t.restored)
}

/// Key states a restore would undo (a revoked key brought back).
pub(crate) const ENDED_STATES: [&str; 3] = ["revoked", "compromised", "destroyed"];

/// One stored value on its way between backends (a [`Kind::Bool`] travels as 0/1).
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL NULL.
    Null,
    /// An integer (or a boolean as 0/1).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (ciphertext, hashes, MACs): never printed.
    Blob(Vec<u8>),
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("Null"),
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Text(_) => f.write_str("Text(..)"),
            Value::Blob(b) => write!(f, "Blob({} bytes)", b.len()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sqlx::Row;

    /// The spec names every column of the SQLite schema, in its order, with
    /// its type (a new migration must update it, or snapshots of PostgreSQL
    /// would leave the new column out).
    #[tokio::test]
    async fn the_spec_is_the_sqlite_schema() {
        let store = crate::SqliteStore::in_memory().await.unwrap();
        for t in TABLES {
            let rows = sqlx::query(&format!("PRAGMA table_info({})", t.name)).fetch_all(store.pool()).await.unwrap();
            let stored: Vec<(String, String)> = rows.iter().map(|r| (r.get("name"), r.get("type"))).collect();
            let spec: Vec<(String, String)> = t
                .columns
                .iter()
                .map(|(c, kind)| {
                    let ty = match kind {
                        Kind::Text => "TEXT",
                        Kind::Int | Kind::Bool => "INTEGER",
                        Kind::Blob => "BLOB",
                    };
                    (c.to_string(), ty.to_string())
                })
                .collect();
            assert_eq!(stored, spec, "{}", t.name);
            let keys: Vec<String> = rows
                .iter()
                .filter(|r| r.get::<i64, _>("pk") > 0)
                .map(|r| (r.get::<i64, _>("pk"), r.get::<String, _>("name")))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect();
            assert_eq!(keys, t.key, "{}", t.name);
        }
    }
}
