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
//! - `mod.rs`: [`GroupCoordinator`] (the API the request handlers call, one method per Kafka
//!   API), [`GroupConfig`], the group table, and lifecycle: loading from the store, the
//!   timer callback, the retention task, the per-group write drainer, shutdown.
//! - `state.rs`: the per-group state machine ([`GroupState`]), synchronous and
//!   clock-injected; it answers parked JoinGroup/SyncGroup requests through oneshot channels
//!   and returns store writes and timer wake-ups as data.
//! - `offsets.rs`: in-memory committed offsets, OffsetCommit/OffsetFetch, offset expiry.
//! - `store.rs`: the [`GroupStore`] trait, the persisted values and their versioned binary
//!   encodings, and the in-memory test store.
//! - `writer.rs`: the per-group ordered write queue (merges concurrent offset commits).
//! - `timers.rs`: one tokio timer task waking groups at their deadlines.
//! - `metrics.rs`: Prometheus metrics (`stratalog_broker_group_*`).
//!
//! Concurrency: a group's state sits behind a `parking_lot` mutex that is never held across
//! an await. Requests that must wait (JoinGroup during a rebalance, SyncGroup of followers)
//! park a oneshot sender in the member and await the receiver.

mod code;
mod config;
mod effects;
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

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;
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

use code::group_write_error;
use effects::Effect;
use requests::{JoinArgs, JoinResult, SyncResult};
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

/// A receiver that already holds `value`.
fn ready<T>(value: T) -> oneshot::Receiver<T> {
    let (tx, rx) = oneshot::channel();
    let _ = tx.send(value);
    rx
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn ms(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
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

    // ----- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ------------------------------

    /// JoinGroup (v0-v9). Parks until the rebalance completes when the member must wait.
    pub async fn join_group(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> JoinGroupResponse {
        let member_id = req.member_id.as_str().to_owned();
        let result = self
            .start_join(req, version, client_id, client_host)
            .await
            .unwrap_or_else(|_| JoinResult::error(member_id, code::REBALANCE_IN_PROGRESS));
        join_response(result, version)
    }

    fn start_join(
        &self,
        req: JoinGroupRequest,
        version: i16,
        client_id: &str,
        client_host: &str,
    ) -> oneshot::Receiver<JoinResult> {
        let inner = &self.inner;
        let member_id = req.member_id.as_str().to_owned();
        if !inner.is_active() {
            return ready(JoinResult::error(
                member_id,
                code::COORDINATOR_NOT_AVAILABLE,
            ));
        }
        let group_id = req.group_id.as_str();
        if group_id.is_empty() {
            return ready(JoinResult::error(member_id, code::INVALID_GROUP_ID));
        }
        let session = i64::from(req.session_timeout_ms);
        let min = i64::try_from(inner.config.min_session_timeout.as_millis()).unwrap_or(i64::MAX);
        let max = i64::try_from(inner.config.max_session_timeout.as_millis()).unwrap_or(i64::MAX);
        if session < min || session > max {
            return ready(JoinResult::error(member_id, code::INVALID_SESSION_TIMEOUT));
        }
        let entry = if member_id.is_empty() {
            inner.get_or_create(group_id)
        } else {
            match inner.get(group_id) {
                Some(e) => e,
                None => return ready(JoinResult::error(member_id, code::UNKNOWN_MEMBER_ID)),
            }
        };
        let mut protocols: Vec<(String, Bytes)> = Vec::with_capacity(req.protocols.len());
        for p in req.protocols {
            let name = p.name.as_str();
            if !protocols.iter().any(|(n, _)| n == name) {
                protocols.push((name.to_owned(), p.metadata));
            }
        }
        let group_instance_id = req.group_instance_id.map(|i| i.as_str().to_owned());
        let rebalance_timeout_ms = if version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        let req_member_id = member_id.clone();
        let args = JoinArgs {
            require_known_member_id: version >= 4 && group_instance_id.is_none(),
            supports_skip_assignment: version >= 9,
            member_id,
            group_instance_id,
            client_id: client_id.to_owned(),
            client_host: client_host.to_owned(),
            session_timeout: ms(req.session_timeout_ms),
            rebalance_timeout: ms(rebalance_timeout_ms),
            protocol_type: req.protocol_type.as_str().to_owned(),
            protocols,
            reason: req.reason.map(|r| r.as_str().to_owned()),
        };
        let (tx, rx) = oneshot::channel();
        let ctx = inner.ctx();
        let mut g = entry.group.lock();
        if !inner.is_active() {
            // Shut down meanwhile: nothing would ever complete a parked request.
            return ready(JoinResult::error(
                req_member_id,
                code::COORDINATOR_NOT_AVAILABLE,
            ));
        }
        g.join(&ctx, args, tx);
        g.poll(&ctx, false);
        inner.flush(&entry, &mut g);
        rx
    }

    /// SyncGroup (v0-v5). Followers park until the leader's assignment is stored.
    pub async fn sync_group(&self, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
        let result = self
            .start_sync(req, version)
            .await
            .unwrap_or_else(|_| SyncResult::error(code::REBALANCE_IN_PROGRESS));
        let mut resp = SyncGroupResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(result.error)
            .with_assignment(result.assignment);
        if version >= 5 {
            resp = resp
                .with_protocol_type(result.protocol_type.map(str_bytes))
                .with_protocol_name(result.protocol_name.map(str_bytes));
        }
        resp
    }

    fn start_sync(&self, req: SyncGroupRequest, version: i16) -> oneshot::Receiver<SyncResult> {
        let inner = &self.inner;
        if !inner.is_active() {
            return ready(SyncResult::error(code::COORDINATOR_NOT_AVAILABLE));
        }
        if req.group_id.as_str().is_empty() {
            return ready(SyncResult::error(code::INVALID_GROUP_ID));
        }
        if version >= 5 && (req.protocol_type.is_none() || req.protocol_name.is_none()) {
            return ready(SyncResult::error(code::INCONSISTENT_GROUP_PROTOCOL));
        }
        let Some(entry) = inner.get(req.group_id.as_str()) else {
            return ready(SyncResult::error(code::UNKNOWN_MEMBER_ID));
        };
        let assignments = req
            .assignments
            .into_iter()
            .map(|a| (a.member_id.as_str().to_owned(), a.assignment))
            .collect();
        let (tx, rx) = oneshot::channel();
        let ctx = inner.ctx();
        let mut g = entry.group.lock();
        if !inner.is_active() {
            return ready(SyncResult::error(code::COORDINATOR_NOT_AVAILABLE));
        }
        g.sync(
            &ctx,
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|i| i.as_str()),
            req.generation_id,
            req.protocol_type.as_ref().map(|p| p.as_str()),
            req.protocol_name.as_ref().map(|p| p.as_str()),
            assignments,
            tx,
        );
        g.poll(&ctx, false);
        inner.flush(&entry, &mut g);
        rx
    }

    /// Heartbeat (v0-v4).
    pub async fn heartbeat(&self, req: HeartbeatRequest, _version: i16) -> HeartbeatResponse {
        let error = self.do_heartbeat(&req);
        HeartbeatResponse::default()
            .with_throttle_time_ms(0)
            .with_error_code(error)
    }

    fn do_heartbeat(&self, req: &HeartbeatRequest) -> i16 {
        let inner = &self.inner;
        if !inner.is_active() {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        if req.group_id.as_str().is_empty() {
            return code::INVALID_GROUP_ID;
        }
        let Some(entry) = inner.get(req.group_id.as_str()) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        let ctx = inner.ctx();
        let mut g = entry.group.lock();
        let error = g.heartbeat(
            &ctx,
            req.member_id.as_str(),
            req.group_instance_id.as_ref().map(|i| i.as_str()),
            req.generation_id,
        );
        inner.flush(&entry, &mut g);
        error
    }

    /// LeaveGroup (v0-v5; v3+ leaves several members, possibly by group instance id only).
    pub async fn leave_group(&self, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        let identities: Vec<(String, Option<String>, Option<String>)> = if version < 3 {
            vec![(req.member_id.as_str().to_owned(), None, None)]
        } else {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.as_str().to_owned(),
                        m.group_instance_id.as_ref().map(|i| i.as_str().to_owned()),
                        m.reason.as_ref().map(|r| r.as_str().to_owned()),
                    )
                })
                .collect()
        };
        let (top, errors) = self.do_leave(req.group_id.as_str(), &identities);
        let resp = LeaveGroupResponse::default().with_throttle_time_ms(0);
        if version < 3 {
            // One member: its error is the top-level error.
            let error = if top != code::NONE {
                top
            } else {
                errors
                    .iter()
                    .copied()
                    .find(|e| *e != code::NONE)
                    .unwrap_or(code::NONE)
            };
            return resp.with_error_code(error);
        }
        let members = identities
            .into_iter()
            .zip(errors)
            .map(|((member_id, instance, _), error)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(member_id))
                    .with_group_instance_id(instance.map(str_bytes))
                    .with_error_code(error)
            })
            .collect();
        resp.with_error_code(top).with_members(members)
    }

    fn do_leave(
        &self,
        group_id: &str,
        identities: &[(String, Option<String>, Option<String>)],
    ) -> (i16, Vec<i16>) {
        let inner = &self.inner;
        if !inner.is_active() {
            return (code::COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        if group_id.is_empty() {
            return (code::INVALID_GROUP_ID, Vec::new());
        }
        let Some(entry) = inner.get(group_id) else {
            return (code::NONE, vec![code::UNKNOWN_MEMBER_ID; identities.len()]);
        };
        let ctx = inner.ctx();
        let mut g = entry.group.lock();
        if g.state() == GroupState::Dead {
            return (code::COORDINATOR_NOT_AVAILABLE, Vec::new());
        }
        let errors = identities
            .iter()
            .map(|(member_id, instance, reason)| {
                g.leave(&ctx, member_id, instance.as_deref(), reason.as_deref())
            })
            .collect();
        g.poll(&ctx, false);
        inner.flush(&entry, &mut g);
        (code::NONE, errors)
    }

    // ----- DescribeGroups / ListGroups / DeleteGroups ----------------------------------

    /// DescribeGroups (v0-v6).
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let active = self.inner.is_active();
        let groups = req
            .groups
            .into_iter()
            .map(|gid| {
                let mut d = DescribedGroup::default().with_group_id(gid.clone());
                if !active {
                    return d
                        .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                        .with_group_state(str_bytes(""));
                }
                if version >= 3 && req.include_authorized_operations {
                    // No authorizer: every operation a group supports (READ, DELETE,
                    // DESCRIBE) is allowed.
                    d = d.with_authorized_operations((1 << 3) | (1 << 6) | (1 << 8));
                }
                let entry = self.inner.get(gid.as_str());
                let Some(entry) = entry.filter(|e| e.group.lock().state() != GroupState::Dead)
                else {
                    d = d.with_group_state(str_bytes(GroupState::Dead.as_str()));
                    if version >= 6 {
                        d = d
                            .with_error_code(code::GROUP_ID_NOT_FOUND)
                            .with_error_message(Some(str_bytes(format!(
                                "Group {} not found.",
                                gid.as_str()
                            ))));
                    }
                    return d;
                };
                let g = entry.group.lock();
                let stable = g.state() == GroupState::Stable;
                let protocol = g.protocol_name().unwrap_or_default().to_owned();
                let members = g
                    .members()
                    .map(|m| {
                        let (metadata, assignment) = if stable {
                            (m.metadata(Some(&protocol)), m.assignment.clone())
                        } else {
                            (Bytes::new(), Bytes::new())
                        };
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(m.member_id.clone()))
                            .with_group_instance_id(m.group_instance_id.clone().map(str_bytes))
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_member_metadata(metadata)
                            .with_member_assignment(assignment)
                    })
                    .collect();
                d.with_group_state(str_bytes(g.state().as_str()))
                    .with_protocol_type(str_bytes(g.protocol_type().unwrap_or_default()))
                    .with_protocol_data(str_bytes(if stable { protocol } else { String::new() }))
                    .with_members(members)
            })
            .collect();
        DescribeGroupsResponse::default()
            .with_throttle_time_ms(0)
            .with_groups(groups)
    }

    /// ListGroups (v0-v5): state filter (v4+, case-insensitive) and type filter (v5+; all
    /// groups here are "classic").
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let resp = ListGroupsResponse::default().with_throttle_time_ms(0);
        if !self.inner.is_active() {
            return resp.with_error_code(code::COORDINATOR_NOT_AVAILABLE);
        }
        let states: Vec<String> = if version >= 4 {
            req.states_filter
                .iter()
                .map(|s| s.as_str().trim().to_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        let types: Vec<String> = if version >= 5 {
            req.types_filter
                .iter()
                .map(|s| s.as_str().trim().to_lowercase())
                .collect()
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t == "classic") {
            return resp;
        }
        let entries: Vec<_> = self.inner.groups.read().values().cloned().collect();
        let mut groups: Vec<ListedGroup> = entries
            .iter()
            .filter_map(|e| {
                let g = e.group.lock();
                let state = g.state();
                if state == GroupState::Dead {
                    return None;
                }
                if !states.is_empty() && !states.contains(&state.as_str().to_lowercase()) {
                    return None;
                }
                Some(
                    ListedGroup::default()
                        .with_group_id(str_bytes(e.id.clone()).into())
                        .with_protocol_type(str_bytes(g.protocol_type().unwrap_or_default()))
                        .with_group_state(str_bytes(state.as_str()))
                        .with_group_type(str_bytes("classic")),
                )
            })
            .collect();
        groups.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
        resp.with_groups(groups)
    }

    /// DeleteGroups (v0-v2): only empty groups; deletes their offsets too.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        _version: i16,
    ) -> DeleteGroupsResponse {
        let inner = &self.inner;
        let mut results: Vec<(kafka_protocol::messages::GroupId, i16)> = Vec::new();
        let mut waits = Vec::new();
        for gid in req.groups_names {
            let error = if !inner.is_active() {
                code::COORDINATOR_NOT_AVAILABLE
            } else {
                match inner.get(gid.as_str()) {
                    None => code::GROUP_ID_NOT_FOUND,
                    Some(entry) => {
                        let ctx = inner.ctx();
                        let mut g = entry.group.lock();
                        match g.state() {
                            GroupState::Dead => code::GROUP_ID_NOT_FOUND,
                            GroupState::Empty => {
                                g.mark_dead(&ctx);
                                drop(g);
                                let (done, rx) = oneshot::channel();
                                inner.enqueue(&entry, WriteOp::DeleteGroup { done });
                                waits.push((results.len(), entry, rx));
                                code::NONE
                            }
                            _ => code::NON_EMPTY_GROUP,
                        }
                    }
                }
            };
            results.push((gid, error));
        }
        for (i, entry, rx) in waits {
            let error = match rx.await {
                Ok(Ok(())) => {
                    info!(group = %entry.id, "group deleted");
                    inner.remove_entry(&entry);
                    code::NONE
                }
                Ok(Err(e)) => {
                    warn!(group = %entry.id, error = %e, "failed to delete group");
                    entry.group.lock().revive_empty(&inner.ctx());
                    group_write_error(&e)
                }
                Err(_) => code::COORDINATOR_NOT_AVAILABLE,
            };
            if let Some(r) = results.get_mut(i) {
                r.1 = error;
            }
        }
        DeleteGroupsResponse::default()
            .with_throttle_time_ms(0)
            .with_results(
                results
                    .into_iter()
                    .map(|(gid, error)| {
                        DeletableGroupResult::default()
                            .with_group_id(gid)
                            .with_error_code(error)
                    })
                    .collect(),
            )
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

fn join_response(r: JoinResult, version: i16) -> JoinGroupResponse {
    let members = r
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(str_bytes(m.member_id))
                .with_group_instance_id(if version >= 5 {
                    m.group_instance_id.map(str_bytes)
                } else {
                    None
                })
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_throttle_time_ms(0)
        .with_error_code(r.error)
        .with_generation_id(r.generation_id)
        .with_protocol_type(if version >= 7 {
            r.protocol_type.map(str_bytes)
        } else {
            None
        })
        // Nullable only from v7; older versions get "" when no protocol is selected.
        .with_protocol_name(if version >= 7 {
            r.protocol_name.map(str_bytes)
        } else {
            Some(str_bytes(r.protocol_name.unwrap_or_default()))
        })
        .with_leader(str_bytes(r.leader))
        .with_skip_assignment(version >= 9 && r.skip_assignment)
        .with_member_id(str_bytes(r.member_id))
        .with_members(members)
}
