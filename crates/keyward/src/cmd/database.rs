//! Where the data lives: `--database-url`, `--database-url-file`,
//! `KEYWARD_DATABASE_URL` or `[storage]` in the configuration file name a
//! PostgreSQL database; without them the data is the SQLite file in the
//! data directory.

use anyhow::{Result, bail};
use clap::Args;
use keyward_server::DatabaseUrl;
use serde::Deserialize;
use std::path::PathBuf;

/// The database flags, shared by `server` and `operator init`.
#[derive(Debug, Default, Args)]
pub struct DatabaseArgs {
    /// Keep the data in this PostgreSQL database instead of the SQLite file
    /// in the data directory (postgres://USER@HOST:PORT/DB?sslmode=require);
    /// several keyward nodes may share it. A password written here shows in
    /// the process list: give it in KEYWARD_DATABASE_URL, in
    /// --database-url-file, in ~/.pgpass or with PGPASSWORD instead.
    #[arg(long, env = "KEYWARD_DATABASE_URL", hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Read the PostgreSQL URL from the first line of this file (mode 0600).
    #[arg(long, env = "KEYWARD_DATABASE_URL_FILE", value_name = "FILE", conflicts_with = "database_url")]
    database_url_file: Option<PathBuf>,
}

/// `[storage]` in the server's configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `sqlite` (the default) or `postgres`.
    backend: Option<String>,
    /// The PostgreSQL URL (better: `database_url_file`).
    database_url: Option<String>,
    /// A file holding the PostgreSQL URL.
    database_url_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The PostgreSQL URL, if one is given (flags first, then the file's
    /// `[storage]`); `None` for SQLite.
    pub fn url(&self, file: &StorageFile) -> Result<Option<DatabaseUrl>> {
        if let Some(u) = &self.database_url {
            if std::env::var("KEYWARD_DATABASE_URL").ok().as_deref() != Some(u.as_str()) && has_password(u) {
                eprintln!(
                    "warning: the database password is on the command line (visible in the process list); \
                     use KEYWARD_DATABASE_URL or --database-url-file"
                );
            }
            return Ok(Some(DatabaseUrl::parse(u)?));
        }
        if let Some(f) = &self.database_url_file {
            return Ok(Some(DatabaseUrl::from_file(f)?));
        }
        let url = match (&file.database_url, &file.database_url_file) {
            (Some(_), Some(_)) => bail!("[storage]: give database_url or database_url_file, not both"),
            (Some(u), None) => Some(DatabaseUrl::parse(u)?),
            (None, Some(f)) => Some(DatabaseUrl::from_file(f)?),
            (None, None) => None,
        };
        match (file.backend.as_deref(), &url) {
            (None | Some("postgres" | "postgresql"), Some(_)) | (None | Some("sqlite"), None) => Ok(url),
            (Some("postgres" | "postgresql"), None) => {
                bail!("[storage] backend = \"postgres\" needs database_url_file (or database_url)")
            }
            (Some("sqlite"), Some(_)) => bail!("[storage] backend = \"sqlite\" takes no database URL"),
            (Some(other), _) => bail!("[storage] backend = {other:?}: use \"sqlite\" or \"postgres\""),
        }
    }
}

/// True when the URL's user part carries a password.
fn has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    authority.rsplit_once('@').is_some_and(|(user, _)| user.contains(':'))
}
