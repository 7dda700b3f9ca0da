//! Prometheus metrics of the group coordinator, registered once in the process-wide default
//! registry (prefix `stratalog_broker_group_`).

use std::sync::OnceLock;

use prometheus::{IntCounter, IntGaugeVec, Opts};

pub(crate) struct Metrics {
    /// Rebalances started (transitions into PreparingRebalance).
    pub(crate) rebalances: IntCounter,
    /// Groups by state (`Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable`).
    pub(crate) groups: IntGaugeVec,
    /// Partition offsets committed (stored durably).
    pub(crate) offset_commits: IntCounter,
}

pub(crate) fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let rebalances = IntCounter::new(
            "stratalog_broker_group_rebalances_total",
            "Classic group rebalances started (transitions to PreparingRebalance).",
        );
        let groups = IntGaugeVec::new(
            Opts::new(
                "stratalog_broker_group_groups",
                "Groups owned by this coordinator, by state.",
            ),
            &["state"],
        );
        let offset_commits = IntCounter::new(
            "stratalog_broker_group_offset_commits_total",
            "Partition offsets committed durably by the group coordinator.",
        );
        // Constant, valid definitions: construction cannot fail (not input-reachable).
        let rebalances = rebalances.expect("valid metric definition");
        let offset_commits = offset_commits.expect("valid metric definition");
        let groups = groups.expect("valid metric definition");
        let registry = prometheus::default_registry();
        // Registration fails only if the names are already taken; the metrics still work.
        let _ = registry.register(Box::new(rebalances.clone()));
        let _ = registry.register(Box::new(groups.clone()));
        let _ = registry.register(Box::new(offset_commits.clone()));
        Metrics {
            rebalances,
            groups,
            offset_commits,
        }
    })
}
