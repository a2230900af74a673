//! `keyward`: the server and its command-line client in one binary.
//!
//! Every command but `server` and `operator init` is an HTTP client of a
//! running server. Secrets never come from argv when `-` or `@file` is used,
//! and the access key comes from the environment, never from a flag.

#![forbid(unsafe_code)]

mod client;
mod cmd;
mod hardening;

// pow, exp2, log2 and log for the whole binary: no libm.so in the process.
use keyward_libm as _;

use clap::{Parser, Subcommand};
use client::Connection;

/// mimalloc instead of glibc's allocator: a request allocates and frees
/// dozens of small buffers across two worker threads, and glibc's arenas
/// showed up as an eighth of the server's CPU under load (perf, bench/run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// keyward: a credential firewall for automated trading.
///
/// Stores exchange credentials and other secrets encrypted, gives each bot a
/// narrow, revocable access key, and refuses what a bot may not do.
///
/// Start with `keyward server` (creates ./keyward-data), then `export
/// KEYWARD_TOKEN=…` with the bootstrap key it prints.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the keyward server.
    Server(Box<cmd::server::ServerArgs>),
    /// Initialise, unseal, seal and inspect the server.
    #[command(subcommand)]
    Operator(cmd::operator::OperatorCommand),
    /// Store and read versioned secrets.
    #[command(subcommand)]
    Secret(cmd::secret::SecretCommand),
    /// Create, list, roll and revoke access keys; verify platform keys.
    #[command(subcommand)]
    Key(cmd::key::KeyCommand),
    /// Exchange accounts: check what the exchange's key may do, freeze and
    /// unfreeze, withdrawal addresses and caps, the dead-man timer, keygen.
    #[command(subcommand)]
    Account(cmd::account::AccountCommand),
    /// Changes waiting for M-of-N approvals: list, show, approve, reject.
    ///
    /// Granting a key withdraw, transfer, export or admin on an account (or
    /// the approve scope), adding a withdrawal address, raising or removing a
    /// withdrawal cap, changing an account's upstream and unfreezing an
    /// account wait for M approvals (keyward server --approvals M, 2 by
    /// default) from keys holding the approve scope, each a distinct key
    /// other than the requester's, once M such keys exist. The M-th approval
    /// applies the change, once; a request expires unapproved after
    /// --approval-ttl (24h); one rejection closes it.
    #[command(subcommand, verbatim_doc_comment)]
    Approvals(cmd::approvals::ApprovalsCommand),
    /// Sign an exchange request with an account's credentials.
    Sign(cmd::sign::SignArgs),
    /// Read, export and verify the audit log.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    /// What is due for rotation: secrets, exchange accounts, access keys.
    #[command(subcommand)]
    Rotation(cmd::rotation::RotationCommand),
    /// Start a command with secrets in its environment only: nothing on
    /// disk, in argv or in a log. Signals pass through; the exit code is the
    /// command's (128 + signal if one ended it).
    Run(Box<cmd::run::RunArgs>),
    /// Find hard-coded credentials in files: keyward keys, exchange keys
    /// (paired with their secrets), private keys, random-looking secrets.
    /// Needs no server. Exit code 1 when something is found.
    Scan(cmd::scan::ScanArgs),
}

fn main() -> std::process::ExitCode {
    hardening::harden_process();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Command::Scan(args) = cli.command {
        return match cmd::scan::run(args, &cli.conn) {
            Ok(code) => std::process::ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                std::process::ExitCode::from(2)
            }
        };
    }
    if let Command::Run(args) = cli.command {
        return match runtime.block_on(cmd::run::run(*args, &cli.conn)) {
            Ok(code) => std::process::ExitCode::from(code),
            Err(e) => {
                eprintln!("error: {e:#}");
                // Not a code the command could have answered with on its own terms.
                std::process::ExitCode::from(125)
            }
        };
    }
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => cmd::server::run(*args).await,
            Command::Operator(c) => cmd::operator::run(c, &cli.conn).await,
            Command::Secret(c) => cmd::secret::run(c, &cli.conn).await,
            Command::Key(c) => cmd::key::run(c, &cli.conn).await,
            Command::Account(c) => cmd::account::run(c, &cli.conn).await,
            Command::Approvals(c) => cmd::approvals::run(c, &cli.conn).await,
            Command::Sign(a) => cmd::sign::run(a, &cli.conn).await,
            Command::Audit(c) => cmd::audit::run(c, &cli.conn).await,
            Command::Rotation(c) => cmd::rotation::run(c, &cli.conn).await,
            Command::Run(_) | Command::Scan(_) => unreachable!("handled above"),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
