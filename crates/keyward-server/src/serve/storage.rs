//! Which database the data lives in: the SQLite file in the data directory
//! (the default), or a PostgreSQL database several nodes may share.

use super::StartError;
use keyward_store::{PgStore, SqliteStore, Store};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

/// A PostgreSQL connection URL. It may hold a password: zeroized when
/// dropped, never printed (`Debug` and [`DatabaseUrl::redacted`] drop it).
#[derive(Clone)]
pub struct DatabaseUrl(Zeroizing<String>);

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.redacted()).finish()
    }
}

impl DatabaseUrl {
    /// Checks the form (`postgres://` or `postgresql://`) of a URL; the
    /// error names the problem, never the URL.
    pub fn parse(url: &str) -> Result<Self, StartError> {
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(StartError(
                "the database URL must start with postgres:// or postgresql:// (SQLite needs none: it is the default)"
                    .into(),
            ));
        }
        Ok(Self(Zeroizing::new(url.to_string())))
    }

    /// Reads the URL from a file (first line; mode 0600 advised), so the
    /// password is in neither argv nor the environment.
    pub fn from_file(path: &Path) -> Result<Self, StartError> {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| StartError(format!("cannot read the database URL file {}: {e}", path.display())))?,
        );
        let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap_or("");
        Self::parse(line).map_err(|e| StartError(format!("{}: {}", path.display(), e.0)))
    }

    /// The URL with any password replaced by `***` (for banners and logs).
    pub fn redacted(&self) -> String {
        let url = self.0.as_str();
        let Some((scheme, rest)) = url.split_once("://") else { return "***".into() };
        let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
        match authority.rsplit_once('@') {
            Some((user, host)) => {
                let user = user.split_once(':').map_or(user.to_string(), |(u, _)| format!("{u}:***"));
                format!("{scheme}://{user}@{host}{tail}")
            }
            None => format!("{scheme}://{authority}{tail}"),
        }
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

/// Opens the store: PostgreSQL when a URL is given, else the SQLite file
/// in `data_dir` (created if missing).
pub async fn open_store(url: Option<&DatabaseUrl>, data_dir: &Path) -> Result<Arc<dyn Store>, StartError> {
    match url {
        Some(url) => {
            let store = PgStore::connect(url.expose())
                .await
                .map_err(|e| StartError(format!("cannot open the PostgreSQL database {}: {e}", url.redacted())))?;
            Ok(Arc::new(store))
        }
        None => {
            crate::init::ensure_data_dir(data_dir).map_err(|e| StartError(e.to_string()))?;
            let db = crate::init::database_file(data_dir);
            let store =
                SqliteStore::open(&db).await.map_err(|e| StartError(format!("cannot open {}: {e}", db.display())))?;
            Ok(Arc::new(store))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_shows() {
        let u = DatabaseUrl::parse("postgres://kw:s3cr3t@db.internal:5432/keyward?sslmode=require").unwrap();
        assert_eq!(u.redacted(), "postgres://kw:***@db.internal:5432/keyward?sslmode=require");
        assert!(!format!("{u:?}").contains("s3cr3t"));
        let plain = DatabaseUrl::parse("postgresql://kw@127.0.0.1/keyward").unwrap();
        assert_eq!(plain.redacted(), "postgresql://kw@127.0.0.1/keyward");
        let odd = DatabaseUrl::parse("postgres://kw:p@ss@host/db").unwrap();
        assert!(!odd.redacted().contains("p@ss"), "{}", odd.redacted());
    }

    #[test]
    fn other_urls_are_refused_without_echoing_them() {
        let e = DatabaseUrl::parse("mysql://root:hunter2@db/x").unwrap_err();
        assert!(!e.0.contains("hunter2"));
    }
}
