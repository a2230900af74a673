//! Prometheus metrics at `/metrics` (`sys:metrics`): requests by action,
//! decision and code; latency; upstream latency per exchange account; seal
//! state; audit queue depth, write latency and sink drops; keys expiring
//! within seven days. No label ever carries a key, a path value or a secret.

use crate::error::{Error, Result};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

type Labels = Vec<(String, String)>;

/// Labels of a finished request. Fields borrow static strings where they
/// can: this is counted on every request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    action: &'static str,
    decision: &'static str,
    code: &'static str,
}

/// Label of a request's latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

fn latency() -> Histogram {
    // 50 µs to ~26 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 20))
}

/// A finished request's series: its count and its action's latency.
type RequestSeries = (Counter, Histogram);
/// A metrics instance and a request's labels (action, decision, code).
type SeriesKey = (u64, &'static str, &'static str, &'static str);

thread_local! {
    /// The request series this thread counted into, by metrics instance
    /// and labels. A family finds a series by hashing its labels (SipHash)
    /// under a lock that every serving thread takes; counted on every
    /// request, that was a measurable part of a verify. Label sets are
    /// few (actions, two decisions, codes), so this stays small.
    static REQUEST_SERIES: RefCell<FxHashMap<SeriesKey, RequestSeries>> =
        RefCell::new(FxHashMap::default());
}

/// Tells metrics instances apart in [`REQUEST_SERIES`].
static INSTANCES: AtomicU64 = AtomicU64::new(0);

/// Every metric keyward exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    instance: u64,
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Family<ActionLabel, Histogram, fn() -> Histogram>,
    upstream_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// Audit batch write time.
    pub audit_write_seconds: Histogram,
    sealed: Gauge,
    audit_queue: Gauge,
    audit_dropped: Gauge,
    keys_expiring: Gauge,
    access_keys: Gauge,
    rotation_overdue: Gauge,
    account_check_ok: Family<Labels, Gauge>,
    account_check_warnings: Family<Labels, Gauge>,
    dead_man_armed: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyward");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Family::<ActionLabel, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let upstream_seconds = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency);
        let audit_write_seconds = latency();
        let (sealed, audit_queue, audit_dropped, keys_expiring, access_keys, rotation_overdue) = (
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
            Gauge::default(),
        );
        registry.register("requests", "Requests by action, decision and code", requests.clone());
        registry.register("request_duration_seconds", "Request latency by action", request_seconds.clone());
        registry.register("upstream_duration_seconds", "Exchange latency by account", upstream_seconds.clone());
        registry.register("audit_write_duration_seconds", "Audit batch write latency", audit_write_seconds.clone());
        registry.register("sealed", "1 while sealed", sealed.clone());
        registry.register("audit_queue_depth", "Audit entries waiting for the writer", audit_queue.clone());
        registry.register("audit_sink_dropped", "Audit entries a sink dropped", audit_dropped.clone());
        registry.register("access_keys_expiring_7d", "Active keys expiring within seven days", keys_expiring.clone());
        registry.register("access_keys", "Access keys known", access_keys.clone());
        registry.register(
            "rotation_overdue",
            "Secrets and access keys past their rotation date (see keyward rotation status)",
            rotation_overdue.clone(),
        );
        let (account_check_ok, account_check_warnings, dead_man_armed) = (
            Family::<Labels, Gauge>::default(),
            Family::<Labels, Gauge>::default(),
            Family::<Labels, Gauge>::default(),
        );
        registry.register(
            "account_check_ok",
            "1 when the exchange's own key is no broader than keyward's keys need (keyward account check), 0 when not or when the check failed",
            account_check_ok.clone(),
        );
        registry.register(
            "account_check_warnings",
            "Exchange-side key settings broader than needed, per account",
            account_check_warnings.clone(),
        );
        registry.register(
            "dead_man_armed",
            "1 while this node keeps the account's cancel-on-disconnect timer armed, 0 when arming it failed",
            dead_man_armed.clone(),
        );
        Self {
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
            account_check_ok,
            account_check_warnings,
            dead_man_armed,
            registry,
            requests,
            request_seconds,
            upstream_seconds,
            audit_write_seconds,
            sealed,
            audit_queue,
            audit_dropped,
            keys_expiring,
            access_keys,
            rotation_overdue,
        }
    }
}

impl Metrics {
    /// Counts a finished request.
    pub(crate) fn request(&self, action: &'static str, decision: &'static str, code: &'static str, seconds: f64) {
        REQUEST_SERIES.with_borrow_mut(|series| {
            let (count, latency) = series.entry((self.instance, action, decision, code)).or_insert_with(|| {
                (
                    self.requests.get_or_create_owned(&RequestLabels { action, decision, code }),
                    self.request_seconds.get_or_create_owned(&ActionLabel { action }),
                )
            });
            latency.observe(seconds);
            count.inc();
        });
    }

    /// The result of an account's key check.
    pub(crate) fn account_check(&self, account: &str, ok: bool, warnings: usize) {
        let label = vec![("account".to_string(), account.to_string())];
        self.account_check_ok.get_or_create(&label).set(i64::from(ok));
        self.account_check_warnings.get_or_create(&label).set(warnings as i64);
    }

    /// Whether an account's dead-man timer is armed on this node (`None`: no longer kept).
    pub(crate) fn dead_man(&self, account: &str, armed: Option<bool>) {
        let label = vec![("account".to_string(), account.to_string())];
        match armed {
            Some(ok) => {
                self.dead_man_armed.get_or_create(&label).set(i64::from(ok));
            }
            None => {
                self.dead_man_armed.remove(&label);
            }
        }
    }

    /// Times an exchange call.
    pub(crate) fn upstream(&self, account: &str, seconds: f64) {
        self.upstream_seconds.get_or_create(&vec![("account".to_string(), account.to_string())]).observe(seconds);
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Gauges {
    /// Sealed now.
    pub sealed: bool,
    /// Audit entries waiting for the writer.
    pub audit_queue: u64,
    /// Audit entries the sinks dropped.
    pub audit_dropped: u64,
    /// Active keys expiring within seven days (unsealed only).
    pub keys_expiring: Option<u64>,
    /// Keys known (unsealed only).
    pub access_keys: Option<u64>,
    /// Items past their rotation date (unsealed only).
    pub rotation_overdue: Option<u64>,
}

impl Metrics {
    /// The exposition text (OpenMetrics) with these gauges.
    pub(crate) fn render(&self, g: Gauges) -> Result<String> {
        self.sealed.set(i64::from(g.sealed));
        self.audit_queue.set(g.audit_queue as i64);
        self.audit_dropped.set(g.audit_dropped as i64);
        if let Some(n) = g.keys_expiring {
            self.keys_expiring.set(n as i64);
        }
        if let Some(n) = g.access_keys {
            self.access_keys.set(n as i64);
        }
        if let Some(n) = g.rotation_overdue {
            self.rotation_overdue.set(n as i64);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry).map_err(|_| Error::internal("metrics encoding"))?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::{Gauges, Metrics};

    fn line<'a>(text: &'a str, start: &str) -> Option<&'a str> {
        text.lines().find(|l| l.starts_with(start))
    }

    #[test]
    fn requests_count_per_instance_and_label_set_from_any_thread() {
        let (a, b) = (Metrics::default(), Metrics::default());
        for _ in 0..3 {
            a.request("keys.post", "allow", "", 0.001);
        }
        a.request("keys.post", "deny", "scope_denied", 0.002);
        b.request("keys.post", "allow", "", 0.001);
        std::thread::scope(|s| {
            s.spawn(|| a.request("keys.post", "allow", "", 0.001));
        });
        let text = a.render(Gauges::default()).expect("renders");
        let allowed = r#"keyward_requests_total{action="keys.post",decision="allow",code=""}"#;
        let denied = r#"keyward_requests_total{action="keys.post",decision="deny",code="scope_denied"}"#;
        assert_eq!(line(&text, allowed), Some(&*format!("{allowed} 4")), "{text}");
        assert_eq!(line(&text, denied), Some(&*format!("{denied} 1")), "{text}");
        let count = r#"keyward_request_duration_seconds_count{action="keys.post"}"#;
        assert_eq!(line(&text, count), Some(&*format!("{count} 5")), "{text}");
        let other = b.render(Gauges::default()).expect("renders");
        assert_eq!(line(&other, allowed), Some(&*format!("{allowed} 1")), "{other}");
        assert_eq!(line(&other, denied), None, "{other}");
    }
}
