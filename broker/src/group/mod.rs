//! Kafka consumer group coordinator for classic groups (JoinGroup/SyncGroup protocol), with
//! committed offsets. Every broker is its own coordinator; durable state goes through a
//! [`GroupStore`] the broker implements over the metadata store.
//!
//! Behaviour follows Apache Kafka's classic group coordinator (`GroupCoordinator.scala` and
//! the `group-coordinator` module's `ClassicGroup`): the Empty / PreparingRebalance /
//! CompletingRebalance / Stable / Dead state machine, MEMBER_ID_REQUIRED for first joins
//! from JoinGroup v4 (KIP-394), static membership (KIP-345, with KIP-814 skip-assignment
//! from JoinGroup v9), batch LeaveGroup (KIP-345), session, rebalance, new-member and
//! pending-sync timeouts, simple-consumer offset commits (generation -1), offset retention
//! (KIP-211), multi-group OffsetFetch (v8+) and ListGroups state/type filters. Cooperative
//! rebalancing (KIP-429) needs nothing here: clients drive it over the same protocol.
//!
//! # Layout
//!
//! The coordinator, which owns the groups and runs their store writes and timers:
//! - `mod.rs`: [`GroupCoordinator`] and its shared core (`Inner`): the group table, loading
//!   from the store, the per-group write drainer, the timer callback, the offset retention
//!   task, shutdown.
//! - `group_api.rs`: JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups,
//!   ListGroups and DeleteGroups: requests in, state machine under the group lock, versioned
//!   responses out.
//! - `offset_api.rs`: OffsetCommit and OffsetFetch.
//! - `writer.rs`: the per-group ordered write queue (merges concurrent offset commits).
//! - `timers.rs`: one tokio timer task waking groups at their deadlines.
//!
//! The per-group state machine, synchronous and clock-injected: it answers parked
//! JoinGroup/SyncGroup requests through oneshot channels and returns store writes and timer
//! wake-ups as data.
//! - `state.rs`: the types ([`GroupState`], `Group`, `Member`), state changes, deadlines,
//!   offset expiry (KIP-211), deletion and unloading;
//! - `state/membership.rs`: members, static members, Heartbeat, LeaveGroup, session expiry;
//! - `state/join.rs`: JoinGroup: admitting members, member ids, static members rejoining;
//! - `state/rebalance.rs`: generations, protocol selection, SyncGroup and assignment;
//! - `state/persist.rs`: snapshots for the store, loading, continuations after a write.
//!
//! Shared types, in modules that import nothing from group/ but `store.rs`:
//! - `code.rs`: Kafka error codes, and store failures mapped to them;
//! - `config.rs`: [`GroupConfig`];
//! - `requests.rs`: the parsed JoinGroup, the JoinGroup/SyncGroup results, their channels;
//! - `effects.rs`: what a transition leaves to the coordinator (store writes and what
//!   follows them);
//! - `offsets.rs`: a group's committed offsets in memory;
//! - `subscription.rs`: the topics of a consumer-protocol subscription;
//! - `store.rs`: the [`GroupStore`] trait, the persisted values and their versioned binary
//!   encodings, and the in-memory test store;
//! - `metrics.rs`: Prometheus metrics (`stratalog_broker_group_*`).
//!
//! `tests.rs` drives the coordinator through its API over the in-memory store; the unit
//! tests of a module sit in that module.
//!
//! # Imports
//!
//! The modules import each other in one direction only (`a -> b`: `a` uses `b`):
//!
//! ```text
//! group_api, offset_api  -> mod (GroupCoordinator, Inner)
//! mod                    -> state, writer, timers, effects, config, metrics, store
//! group_api              -> state, writer, requests, code, store
//! offset_api             -> state, writer, code, store
//! state                  -> offsets, requests, effects, code, config, metrics (tests: store)
//! state/{membership, join, rebalance, persist}
//!                        -> state (the types), and requests, effects, code, store,
//!                           metrics, subscription; never each other
//! writer                 -> effects, store
//! code, effects, offsets -> store
//! store, config, requests, subscription, metrics, timers -> nothing in group/
//! tests                  -> mod, code, store
//! ```
//!
//! `mod.rs` declares `group_api` and `offset_api` but uses nothing from them: they add
//! methods to [`GroupCoordinator`], which the request handlers call. Likewise the `state/`
//! children are `impl Group` blocks that call each other's methods on the one type; what
//! they share is in `state.rs`, so no child imports another.
//!
//! Concurrency: a group's state sits behind a `parking_lot` mutex that is never held across
//! an await. Requests that must wait (JoinGroup during a rebalance, SyncGroup of followers)
//! park a oneshot sender in the member and await the receiver.

mod code;
mod config;
mod effects;
mod group_api;
mod metrics;
mod offset_api;
mod offsets;
mod requests;
mod state;
mod store;
mod subscription;
mod timers;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use tokio::sync::{oneshot, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use config::GroupConfig;
pub use state::GroupState;
pub use store::{
    CommittedOffset, GroupStore, PersistedGroup, PersistedMember, StoreError,
    COMMITTED_OFFSET_VERSION, PERSISTED_GROUP_VERSION,
};

use effects::Effect;
use state::{Ctx, Group};
use timers::Timer;
use writer::{Batch, PendingSave, WriteOp, WriteQueue};

/// The group coordinator. Cheap to clone (an `Arc` inside); `Send + Sync`.
pub struct GroupCoordinator<S: GroupStore> {
    inner: Arc<Inner<S>>,
}

impl<S: GroupStore> Clone for GroupCoordinator<S> {
    fn clone(&self) -> Self {
        GroupCoordinator {
            inner: self.inner.clone(),
        }
    }
}

pub(crate) struct GroupEntry {
    pub(crate) id: String,
    pub(crate) group: Mutex<Group>,
    pub(crate) writer: WriteQueue,
}

pub(crate) struct Inner<S> {
    store: S,
    config: GroupConfig,
    groups: RwLock<HashMap<String, Arc<GroupEntry>>>,
    timer: Timer,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    active: AtomicBool,
    /// Write drainers running; shutdown waits for them.
    writers_running: AtomicUsize,
    writers_idle: Notify,
    /// Tests move the coordinator's clock forward by this much (see `tests.rs`).
    #[cfg(test)]
    skew_ms: std::sync::atomic::AtomicU64,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl<S: GroupStore> Inner<S> {
    fn ctx(&self) -> Ctx<'_> {
        let skew = self.skew();
        Ctx {
            now: Instant::now() + skew,
            now_ms: now_ms().saturating_add(i64::try_from(skew.as_millis()).unwrap_or(0)),
            cfg: &self.config,
        }
    }

    #[cfg(test)]
    fn skew(&self) -> Duration {
        Duration::from_millis(self.skew_ms.load(Ordering::SeqCst))
    }

    #[cfg(not(test))]
    fn skew(&self) -> Duration {
        Duration::ZERO
    }

    fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    fn get(&self, id: &str) -> Option<Arc<GroupEntry>> {
        self.groups.read().get(id).cloned()
    }

    fn get_or_create(&self, id: &str) -> Arc<GroupEntry> {
        if let Some(e) = self.get(id) {
            return e;
        }
        let mut groups = self.groups.write();
        groups
            .entry(id.to_owned())
            .or_insert_with(|| {
                debug!(group = id, "creating group");
                Arc::new(GroupEntry {
                    id: id.to_owned(),
                    group: Mutex::new(Group::new(id.to_owned(), now_ms())),
                    writer: WriteQueue::default(),
                })
            })
            .clone()
    }

    /// Drops the entry from the table if it is still the one there.
    fn remove_entry(&self, entry: &Arc<GroupEntry>) {
        let mut groups = self.groups.write();
        if groups.get(&entry.id).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            groups.remove(&entry.id);
        }
    }

    /// Runs what a transition left to do: queue store writes, ask for timer wake-ups.
    /// Called with the group locked, so writes are queued in state-change order.
    fn flush(self: &Arc<Self>, entry: &Arc<GroupEntry>, g: &mut Group) {
        for effect in g.take_effects() {
            match effect {
                Effect::Persist { snapshot, then } => self.enqueue(
                    entry,
                    WriteOp::Save(Box::new(PendingSave { snapshot, then })),
                ),
            }
        }
        if let Some(hint) = g.take_wake_hint() {
            if g.state() != GroupState::Dead && g.scheduled_wake.is_none_or(|s| hint < s) {
                g.scheduled_wake = Some(hint);
                self.timer.schedule(hint, &entry.id);
            }
        }
    }

    fn enqueue(self: &Arc<Self>, entry: &Arc<GroupEntry>, op: WriteOp) {
        if entry.writer.push(op) {
            self.writers_running.fetch_add(1, Ordering::AcqRel);
            let inner = self.clone();
            let entry = entry.clone();
            tokio::spawn(async move { inner.drain(entry).await });
        }
    }

    /// Executes a group's queued writes in order.
    async fn drain(self: Arc<Self>, entry: Arc<GroupEntry>) {
        while let Some(batch) = entry.writer.next_batch() {
            match batch {
                Batch::Commits(commits) => {
                    // Later commits of the same partition win, in the store as in memory.
                    let merged = merge_commits(&commits);
                    let result = self.commit_in_chunks(&entry, merged).await;
                    for (_, done) in commits {
                        let _ = done.send(result.clone());
                    }
                }
                Batch::One(WriteOp::Save(save)) => {
                    let PendingSave { snapshot, then } = *save;
                    let result = self.store.save_group(&entry.id, snapshot).await;
                    let mut g = entry.group.lock();
                    g.after_persist(&self.ctx(), then, result);
                    self.flush(&entry, &mut g);
                }
                Batch::One(WriteOp::DeleteOffsets { partitions }) => {
                    if let Err(e) = self.store.delete_offsets(&entry.id, partitions).await {
                        warn!(group = %entry.id, error = %e, "failed to delete expired offsets");
                    }
                }
                Batch::One(WriteOp::DeleteGroup { done }) => {
                    let result = self.store.delete_group(&entry.id).await;
                    let _ = done.send(result);
                }
                Batch::One(WriteOp::Commit { offsets, done }) => {
                    // `next_batch` always returns commits as `Batch::Commits`; handle anyway.
                    let result = self.commit_in_chunks(&entry, offsets).await;
                    let _ = done.send(result);
                }
            }
        }
        if self.writers_running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.writers_idle.notify_waiters();
        }
    }

    /// Stores `offsets` in calls of at most `MAX_OFFSETS_PER_WRITE` (the metadata store's
    /// batch limit), in order, updating the in-memory offsets after each call that
    /// succeeded. A commit of more partitions is therefore not atomic: if a later call
    /// fails, the partitions of the earlier ones stay committed (in the store and in
    /// memory, which agree) and the whole request reports the error, which clients retry.
    async fn commit_in_chunks(
        &self,
        entry: &GroupEntry,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), StoreError> {
        let mut offsets = offsets.into_iter().peekable();
        while offsets.peek().is_some() {
            let chunk: Vec<CommittedOffset> = offsets
                .by_ref()
                .take(writer::MAX_OFFSETS_PER_WRITE)
                .collect();
            let count = chunk.len();
            self.store.commit_offsets(&entry.id, chunk.clone()).await?;
            let mut g = entry.group.lock();
            for o in chunk {
                g.offsets.put(o);
            }
            drop(g);
            metrics::metrics().offset_commits.inc_by(count as u64);
        }
        Ok(())
    }

    /// Timer callback: act on the group's due deadlines and ask for the next wake-up.
    fn on_timer(self: &Arc<Self>, id: &str) {
        if !self.is_active() {
            return;
        }
        let Some(entry) = self.get(id) else {
            return;
        };
        let mut g = entry.group.lock();
        let ctx = self.ctx();
        if g.scheduled_wake.is_some_and(|w| w <= ctx.now) {
            g.scheduled_wake = None;
        }
        g.poll(&ctx, true);
        if let Some(next) = g.next_deadline() {
            // Re-announce the earliest deadline; `flush` schedules it if needed.
            let _ = g.take_wake_hint();
            if g.state() != GroupState::Dead && g.scheduled_wake.is_none_or(|s| next < s) {
                g.scheduled_wake = Some(next);
                self.timer.schedule(next, &entry.id);
            }
        }
        self.flush(&entry, &mut g);
    }

    /// One pass of offset retention and removal of empty groups without offsets.
    async fn cleanup(self: &Arc<Self>) {
        let entries: Vec<_> = self.groups.read().values().cloned().collect();
        let ctx_ms = self.ctx().now_ms;
        for entry in entries {
            let (expired, delete) = {
                let mut g = entry.group.lock();
                // Skip groups with writes in flight: an expiry racing a commit of the same
                // partition could drop the fresh commit from the store but not from memory.
                if g.state() == GroupState::Dead || !entry.writer.is_idle() {
                    continue;
                }
                let expired = match self.config.offsets_retention {
                    Some(r) => g.expire_offsets(ctx_ms, r),
                    None => Vec::new(),
                };
                let delete = g.state() == GroupState::Empty
                    && g.offsets.is_empty()
                    && !g.has_pending_members();
                if delete {
                    g.mark_dead(&self.ctx());
                }
                (expired, delete)
            };
            if !expired.is_empty() {
                info!(group = %entry.id, partitions = expired.len(), "expired committed offsets");
            }
            if delete {
                let (done, rx) = oneshot::channel();
                self.enqueue(&entry, WriteOp::DeleteGroup { done });
                match rx.await {
                    Ok(Ok(())) => {
                        info!(group = %entry.id, "removed empty group without offsets");
                        self.remove_entry(&entry);
                    }
                    Ok(Err(e)) => {
                        warn!(group = %entry.id, error = %e, "failed to delete empty group");
                        entry.group.lock().revive_empty(&self.ctx());
                    }
                    Err(_) => {}
                }
            } else if !expired.is_empty() {
                self.enqueue(
                    &entry,
                    WriteOp::DeleteOffsets {
                        partitions: expired,
                    },
                );
            }
        }
    }

    /// Waits until no write drainer runs.
    async fn wait_writes_idle(&self) {
        loop {
            let notified = self.writers_idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.writers_running.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl<S: GroupStore> GroupCoordinator<S> {
    /// Loads persisted groups and committed offsets from `store` and starts the timer and
    /// retention tasks. Must be called within a tokio runtime.
    pub async fn new(store: S, config: GroupConfig) -> Result<Self, StoreError> {
        let persisted = store.load_groups().await?;
        let offsets = store.load_offsets().await?;
        let inner = Arc::new_cyclic(|weak: &Weak<Inner<S>>| {
            let w = weak.clone();
            let (timer, handle) = Timer::start(move |id| {
                if let Some(inner) = w.upgrade() {
                    inner.on_timer(id);
                }
            });
            Inner {
                store,
                config,
                groups: RwLock::new(HashMap::new()),
                timer,
                tasks: Mutex::new(vec![handle]),
                active: AtomicBool::new(true),
                writers_running: AtomicUsize::new(0),
                writers_idle: Notify::new(),
                #[cfg(test)]
                skew_ms: std::sync::atomic::AtomicU64::new(0),
            }
        });
        let (mut n_groups, mut n_offsets) = (0usize, 0usize);
        {
            let ctx = inner.ctx();
            let mut table = inner.groups.write();
            for (id, p) in persisted {
                let group = Group::load(id.clone(), p, &ctx);
                table.insert(
                    id.clone(),
                    Arc::new(GroupEntry {
                        id,
                        group: Mutex::new(group),
                        writer: WriteQueue::default(),
                    }),
                );
                n_groups += 1;
            }
            for (id, o) in offsets {
                let entry = table.entry(id.clone()).or_insert_with(|| {
                    n_groups += 1;
                    Arc::new(GroupEntry {
                        id: id.clone(),
                        group: Mutex::new(Group::new(id.clone(), ctx.now_ms)),
                        writer: WriteQueue::default(),
                    })
                });
                entry.group.lock().offsets.put(o);
                n_offsets += 1;
            }
        }
        let entries: Vec<_> = inner.groups.read().values().cloned().collect();
        for entry in entries {
            let mut g = entry.group.lock();
            inner.flush(&entry, &mut g);
        }
        info!(
            groups = n_groups,
            offsets = n_offsets,
            "group coordinator loaded"
        );
        let weak = Arc::downgrade(&inner);
        let interval = inner.config.offsets_retention_check_interval;
        let cleanup = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                if !inner.is_active() {
                    return;
                }
                inner.cleanup().await;
            }
        });
        inner.tasks.lock().push(cleanup);
        Ok(GroupCoordinator { inner })
    }

    /// The group's current state, if the group exists.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.inner.get(group_id).map(|e| e.group.lock().state())
    }

    /// Stops the coordinator: later requests get COORDINATOR_NOT_AVAILABLE, parked
    /// JoinGroup/SyncGroup requests NOT_COORDINATOR; waits for queued store writes.
    pub async fn shutdown(&self) {
        if !self.inner.active.swap(false, Ordering::AcqRel) {
            return;
        }
        for task in self.inner.tasks.lock().drain(..) {
            task.abort();
        }
        let entries: Vec<_> = self.inner.groups.read().values().cloned().collect();
        let ctx = self.inner.ctx();
        for entry in &entries {
            entry.group.lock().unload(&ctx);
        }
        self.inner.wait_writes_idle().await;
        self.inner.groups.write().clear();
        info!("group coordinator shut down");
    }
}

/// The offsets of several queued commit requests as one write, in order, keeping only the
/// last value of each partition.
fn merge_commits(commits: &[(Vec<CommittedOffset>, writer::Done)]) -> Vec<CommittedOffset> {
    if let [(offsets, _)] = commits {
        if offsets.len() <= 1 {
            return offsets.clone();
        }
    }
    let mut merged: Vec<CommittedOffset> = Vec::new();
    let mut index: HashMap<(&str, i32), usize> = HashMap::new();
    for o in commits.iter().flat_map(|(offsets, _)| offsets) {
        match index.get(&(o.topic.as_str(), o.partition)) {
            Some(&i) => merged[i] = o.clone(),
            None => {
                index.insert((o.topic.as_str(), o.partition), merged.len());
                merged.push(o.clone());
            }
        }
    }
    merged
}
