//! One conformance suite for every `Store` backend: what the server relies on.
//!
//! Each test body takes a [`support::Fixture`] and runs on SQLite and, when
//! `KEYWARD_TEST_DATABASE_URL` is set, on PostgreSQL (a fresh database per
//! test); the tests of what only a shared backend does run on PostgreSQL
//! alone. `KEYWARD_REQUIRE_POSTGRES=1` makes a missing PostgreSQL an error.

#![allow(clippy::unwrap_used)]

mod shared;
mod suite;
mod support;

support::both!(
    suite::whole_suite,
    suite::audit_chain,
    suite::audit_strings_read_back,
    suite::snapshot_of_another_schema,
    suite::restore_revives,
    suite::sharing,
    suite::first_version_race,
    suite::ledger_race,
    suite::key_pages,
);

support::postgres_only!(
    shared::changes_reach_other_nodes,
    shared::listener_reconnects,
    shared::nonces_across_nodes,
    shared::destroy_vacuums,
    shared::schemas_match,
    shared::concurrent_first_start,
    shared::dropping_the_store_ends_the_listener,
    shared::audit_head_moved,
    shared::snapshots_move_between_backends,
);
