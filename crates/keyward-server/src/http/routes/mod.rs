//! HTTP routes, one module per resource. Each parses its input, has the
//! caller identified, authorizes, admits, then calls a service.

pub(super) mod accounts;
pub(super) mod audit;
pub(super) mod keys;
pub(super) mod metrics;
pub(super) mod proxy;
pub(super) mod rekey;
pub(super) mod roll;
pub(super) mod rotate;
pub(super) mod rotation;
pub(super) mod secrets;
pub(super) mod sign;
pub(super) mod sys;
pub(super) mod tokens;
