//! The node: one tokio task that owns the `RawNode` and drives the Ready loop.
//!
//! Each turn of the loop takes what arrived (ticks, proposals, read requests, raft messages;
//! everything queued is drained at once), then processes Readys: send the leader's messages,
//! install a snapshot if any, answer read requests, apply committed entries, write the new
//! entries and hard state in one sled batch and `flush_async` once, send the messages that
//! had to wait for persistence, `advance`, apply what became committed. While a flush is in
//! progress new proposals queue up in the channel and all go into the next Ready, so one
//! fsync commits many proposals (group commit) without any timer.
//!
//! Nothing assumes a single voter: a proposal's caller waits until its entry is applied
//! (matched by index *and* term, so an entry replaced by another leader is reported as lost);
//! reads wait on a ReadIndex round before they look at the state machine; followers refuse
//! both with `NotLeader` and a leader hint.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeV2, Entry, EntryType, Message, Snapshot};
use raft::{RawNode, ReadState, SnapshotStatus, StateRole};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::command::{Command, Response};
use crate::config::MetadataConfig;
use crate::durability::DurableSync;
use crate::error::MetadataError;
use crate::layout::{RAFT_TREE, SLED_DIR, STATE_TREE};
use crate::lease::LeaseTracker;
use crate::logger::raft_logger;
use crate::metrics::metrics;
use crate::shared::{Reply, Request, Shared};
use crate::state_machine::{Applied, LeaseChange, StateMachine};
use crate::storage::SledStorage;
use crate::store::MetadataStore;
use crate::transport::Transport;
use crate::watch::WatchHub;

/// sled's page cache. sled's default (1 GiB) would let the store's memory grow with its
/// number of keys (one per segment and producer of every partition) up to that; the hot
/// set (heads, open segments, leases, groups) is far smaller, and cold keys are read from
/// disk on the rare lookups of old segments.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// Capacity of the node's inbox. Proposals wait for room; raft messages that find it full
/// are dropped (raft retransmits).
const INBOX_CAPACITY: usize = 8192;
/// Requests taken from the inbox per loop turn before a Ready is processed.
const MAX_DRAIN: usize = 4096;

/// Where the network layer hands in raft messages from peers. Cheap to clone.
#[derive(Clone)]
pub struct RaftInbox {
    requests: mpsc::Sender<Request>,
}

impl RaftInbox {
    /// Queues a message from a peer for the raft state machine. Never blocks: if the inbox is
    /// full the message is dropped and raft's retransmission takes over.
    pub fn step(&self, msg: Message) {
        self.try_send(Request::Raft(Box::new(msg)));
    }

    /// Tells raft that sending to `peer` failed, so the leader stops pipelining to it.
    pub fn report_unreachable(&self, peer: u64) {
        self.try_send(Request::Unreachable(peer));
    }

    /// Tells raft whether a `MsgSnapshot` sent to `peer` arrived.
    pub fn report_snapshot(&self, peer: u64, status: SnapshotStatus) {
        self.try_send(Request::SnapshotStatus(peer, status));
    }

    fn try_send(&self, req: Request) {
        match self.requests.try_send(req) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics().dropped_messages.inc();
                debug!("metadata inbox full; dropping a raft message");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A running metadata node. Dropping it stops the loop too, but [`MetadataNode::shutdown`]
/// waits for the stop (final flush) to finish.
pub struct MetadataNode {
    shared: Arc<Shared>,
    inbox: RaftInbox,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl MetadataNode {
    /// Opens (or creates) the node's state under `config.data_dir` and starts its loop.
    /// A node that is the only voter campaigns at once and is leader when this returns
    /// (well, within one loop turn).
    pub async fn open(
        config: MetadataConfig,
        transport: Arc<dyn Transport>,
    ) -> Result<MetadataNode, MetadataError> {
        config.validate()?;
        let node_id = config.node_id;
        let dir = config.data_dir.join(SLED_DIR);
        // sled's recovery reads the whole log: keep it off the async workers.
        let (db, durable) = tokio::task::spawn_blocking(move || {
            let db = sled::Config::new()
                .path(&dir)
                .cache_capacity(SLED_CACHE_BYTES)
                .open()?;
            let durable = DurableSync::open(&dir)
                .map_err(|e| MetadataError::Storage(format!("fsync {}: {e}", dir.display())))?;
            Ok::<_, MetadataError>((db, Arc::new(durable)))
        })
        .await
        .map_err(|e| MetadataError::Storage(format!("sled open task failed: {e}")))??;
        let sm = Arc::new(StateMachine::open(db.open_tree(STATE_TREE)?)?);
        let raft_tree = db.open_tree(RAFT_TREE)?;
        let storage = SledStorage::open(db, durable, raft_tree, sm.clone(), &config.voters)?;
        let applied = storage.applied_index();
        let conf_state = storage.conf_state();
        let single_voter = conf_state.voters == [node_id] && conf_state.learners.is_empty();

        let raft_config = raft::Config {
            id: node_id,
            election_tick: config.election_tick,
            heartbeat_tick: config.heartbeat_tick,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // A leader that loses its quorum steps down instead of serving as a zombie, and
            // a rejoining partitioned node does not disrupt the cluster with a higher term.
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        let raft_err = |e: raft::Error| MetadataError::Raft(e.to_string());
        raft_config.validate().map_err(raft_err)?;
        let mut raw =
            RawNode::new(&raft_config, storage, &raft_logger(node_id)).map_err(raft_err)?;
        if single_voter {
            // Nobody else can win an election: skip the randomized election timeout.
            raw.campaign().map_err(raft_err)?;
        }

        let leases = LeaseTracker::default();
        leases.load(sm.leases()?, Instant::now());
        let (applied_tx, applied_rx) = watch::channel(sm.applied().max(applied));
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        let shared = Arc::new(Shared {
            node_id,
            requests: tx.clone(),
            watch: WatchHub::new(sm.revision(), config.watch_history),
            sm,
            leases,
            applied: applied_rx,
            is_leader: AtomicBool::new(false),
            leader: AtomicU64::new(0),
            request_timeout: config.request_timeout,
        });
        let m = metrics();
        m.keys.set(saturating_i64(shared.sm.key_count()));
        m.leases.set(saturating_i64(shared.leases.len() as u64));
        m.is_leader.set(0);
        info!(
            node_id,
            applied,
            revision = shared.sm.revision(),
            voters = ?conf_state.voters,
            "metadata node opened"
        );

        let (stop_tx, stop_rx) = oneshot::channel();
        let driver = Driver {
            durable_applied: shared.sm.applied(),
            raw,
            rx,
            shared: shared.clone(),
            transport,
            applied_tx,
            waiters: BTreeMap::new(),
            pending_reads: Vec::new(),
            reads_in_flight: HashMap::new(),
            next_read_ctx: 1,
            tick_interval: config.tick_interval,
            log_compact_after: config.log_compact_after,
            log_keep_after_compact: config.log_keep_after_compact,
        };
        let task = tokio::spawn(driver.run(stop_rx));
        Ok(MetadataNode {
            shared,
            inbox: RaftInbox { requests: tx },
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// A handle for clients of this node.
    pub fn store(&self) -> MetadataStore {
        MetadataStore::new(self.shared.clone())
    }

    /// A cloneable handle for the network layer to deliver raft messages.
    pub fn inbox(&self) -> RaftInbox {
        self.inbox.clone()
    }

    /// Delivers a raft message from a peer (same as `self.inbox().step(msg)`).
    pub fn step(&self, msg: Message) {
        self.inbox.step(msg)
    }

    pub fn node_id(&self) -> u64 {
        self.shared.node_id
    }

    pub fn is_leader(&self) -> bool {
        self.shared.is_leader.load(Ordering::Acquire)
    }

    pub fn leader_id(&self) -> Option<u64> {
        self.shared.leader_hint()
    }

    /// Stops the loop, fails everything still waiting with `ShuttingDown`, flushes sled and
    /// waits for all that. To reopen the same `data_dir` in this process, drop every
    /// `MetadataStore` clone too: they keep the sled database (and its file lock) alive.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                error!(error = %e, "metadata loop task failed");
            }
        }
    }
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

struct Waiter {
    term: u64,
    reply: Reply<Response>,
}

struct Driver {
    raw: RawNode<SledStorage>,
    rx: mpsc::Receiver<Request>,
    shared: Arc<Shared>,
    transport: Arc<dyn Transport>,
    applied_tx: watch::Sender<u64>,
    /// Proposals waiting for their entry to apply, by log index.
    waiters: BTreeMap<u64, Waiter>,
    /// Read requests not yet sent to raft as a ReadIndex.
    pending_reads: Vec<Reply<u64>>,
    /// Read requests batched under one ReadIndex context each.
    reads_in_flight: HashMap<u64, Vec<Reply<u64>>>,
    next_read_ctx: u64,
    /// Applied index known to be on disk (as of the start of the last completed flush);
    /// the log is never compacted past it.
    durable_applied: u64,
    tick_interval: Duration,
    log_compact_after: u64,
    log_keep_after_compact: u64,
}

impl Driver {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut ticker = tokio::time::interval(self.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let exit = loop {
            tokio::select! {
                biased;
                // Also fires when the MetadataNode is dropped without `shutdown`.
                _ = &mut stop => break Ok(()),
                _ = ticker.tick() => {
                    self.raw.tick();
                    self.expire_leases();
                }
                req = self.rx.recv() => {
                    let Some(req) = req else { break Ok(()) };
                    self.handle(req);
                    for _ in 0..MAX_DRAIN {
                        match self.rx.try_recv() {
                            Ok(req) => self.handle(req),
                            Err(_) => break,
                        }
                    }
                }
            }
            if let Err(e) = self.process_readies().await {
                break Err(e);
            }
        };
        self.finish(exit).await;
    }

    async fn process_readies(&mut self) -> Result<(), MetadataError> {
        self.issue_reads();
        while self.raw.has_ready() {
            self.process_ready().await?;
            self.issue_reads();
        }
        Ok(())
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Propose { data, reply } => self.propose(data, Some(reply)),
            Request::ReadIndex { reply } => self.pending_reads.push(reply),
            Request::Raft(msg) => {
                if msg.to != self.shared.node_id {
                    debug!(
                        to = msg.to,
                        "dropping a raft message addressed to another node"
                    );
                    return;
                }
                if let Err(e) = self.raw.step(*msg) {
                    debug!(error = %e, "raft rejected a message");
                }
            }
            Request::Unreachable(peer) => self.raw.report_unreachable(peer),
            Request::SnapshotStatus(peer, status) => self.raw.report_snapshot(peer, status),
        }
    }

    fn propose(&mut self, data: Vec<u8>, reply: Option<Reply<Response>>) {
        metrics().proposals.inc();
        if self.raw.raft.state != StateRole::Leader {
            if let Some(reply) = reply {
                let _ = reply.send(Err(self.shared.not_leader()));
            }
            return;
        }
        match self.raw.propose(vec![], data) {
            Ok(()) => {
                if let Some(reply) = reply {
                    // raft appended the entry at the end of its log, in the current term.
                    let index = self.raw.raft.raft_log.last_index();
                    let term = self.raw.raft.term;
                    self.waiters.insert(index, Waiter { term, reply });
                }
            }
            Err(e) => {
                let err = match e {
                    raft::Error::ProposalDropped => self.shared.not_leader(),
                    e => MetadataError::Raft(e.to_string()),
                };
                debug!(error = %err, "proposal refused");
                if let Some(reply) = reply {
                    let _ = reply.send(Err(err));
                }
            }
        }
    }

    /// Sends all queued reads to raft as one ReadIndex. A new leader must first commit an
    /// entry of its own term (raft-rs silently drops ReadIndex before that), so reads wait.
    fn issue_reads(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        if self.raw.raft.state != StateRole::Leader {
            let err = self.shared.not_leader();
            for reply in self.pending_reads.drain(..) {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
        if !self.raw.raft.commit_to_current_term() {
            return;
        }
        let ctx = self.next_read_ctx;
        self.next_read_ctx += 1;
        self.raw.read_index(ctx.to_be_bytes().to_vec());
        self.reads_in_flight
            .insert(ctx, std::mem::take(&mut self.pending_reads));
    }

    fn complete_reads(&mut self, states: Vec<ReadState>) {
        for rs in states {
            let Ok(ctx) = <[u8; 8]>::try_from(rs.request_ctx.as_slice()) else {
                continue;
            };
            if let Some(replies) = self.reads_in_flight.remove(&u64::from_be_bytes(ctx)) {
                for reply in replies {
                    let _ = reply.send(Ok(rs.index));
                }
            }
        }
    }

    fn fail_reads(&mut self, err: &MetadataError) {
        for reply in self.pending_reads.drain(..) {
            let _ = reply.send(Err(err.clone()));
        }
        for (_, replies) in self.reads_in_flight.drain() {
            for reply in replies {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }

    async fn process_ready(&mut self) -> Result<(), MetadataError> {
        let m = metrics();
        let mut rd = self.raw.ready();
        if let Some(ss) = rd.ss() {
            let (role, leader) = (ss.raft_state, ss.leader_id);
            self.on_role_change(role, leader);
        }
        // A leader may send before it persists (raft thesis 10.2.1).
        if !rd.messages().is_empty() {
            self.transport.send(rd.take_messages());
        }
        let snapshot = rd.snapshot().clone();
        if !snapshot.is_empty() {
            self.install_snapshot(&snapshot)?;
        }
        self.complete_reads(rd.take_read_states());
        self.apply_entries(rd.take_committed_entries())?;

        let entries = rd.take_entries();
        let hard_state = rd.hs().cloned();
        if !entries.is_empty() || hard_state.is_some() {
            self.raw.store().append(&entries, hard_state.as_ref())?;
        }
        if !entries.is_empty() {
            m.entries_per_ready.observe(entries.len() as f64);
        }
        if rd.must_sync() || !snapshot.is_empty() {
            // This one fsync also makes every apply batch written so far durable.
            let applied_before = self.shared.sm.applied();
            let started = Instant::now();
            self.raw.store().flush().await?;
            m.persist_seconds.observe(started.elapsed().as_secs_f64());
            self.durable_applied = applied_before;
        }
        if !rd.persisted_messages().is_empty() {
            self.transport.send(rd.take_persisted_messages());
        }

        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.store().set_commit(commit)?;
        }
        if !light.messages().is_empty() {
            self.transport.send(light.take_messages());
        }
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.maybe_compact()?;
        m.term.set(saturating_i64(self.raw.raft.term));
        Ok(())
    }

    fn on_role_change(&mut self, role: StateRole, leader: u64) {
        self.shared.leader.store(leader, Ordering::Release);
        let is_leader = role == StateRole::Leader;
        let was_leader = self.shared.is_leader.swap(is_leader, Ordering::AcqRel);
        if is_leader && !was_leader {
            info!(
                node_id = self.shared.node_id,
                term = self.raw.raft.term,
                "became metadata leader"
            );
            // We cannot know when the old leader last heard each keep-alive.
            self.shared.leases.refresh_all(Instant::now());
        } else if !is_leader && was_leader {
            info!(
                node_id = self.shared.node_id,
                ?role,
                leader,
                "lost metadata leadership"
            );
            let err = self.shared.not_leader();
            self.fail_reads(&err);
        }
        metrics().is_leader.set(i64::from(is_leader));
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), MetadataError> {
        // Anything at or below the applied index is already in the state machine (e.g.
        // replayed after a restart).
        let applied = self.shared.sm.applied();
        let entries: Vec<Entry> = entries.into_iter().filter(|e| e.index > applied).collect();
        if entries.is_empty() {
            return Ok(());
        }
        // Runs of normal entries apply as one batch each; configuration changes need the
        // RawNode and go one by one between runs.
        let mut rest = &entries[..];
        while !rest.is_empty() {
            let run_len = rest
                .iter()
                .position(|e| e.get_entry_type() != EntryType::EntryNormal)
                .unwrap_or(rest.len());
            let (run, after) = rest.split_at(run_len);
            self.apply_run(run)?;
            if let Some((conf, after)) = after.split_first() {
                self.apply_conf_change(conf)?;
                self.shared.sm.apply_noop(conf.index)?;
                self.complete_waiters(conf.index, conf.term, None);
                rest = after;
            } else {
                rest = after;
            }
        }
        self.applied_tx.send_replace(self.shared.sm.applied());
        let m = metrics();
        m.keys.set(saturating_i64(self.shared.sm.key_count()));
        m.leases
            .set(saturating_i64(self.shared.leases.len() as u64));
        Ok(())
    }

    fn apply_run(&mut self, run: &[Entry]) -> Result<(), MetadataError> {
        if run.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let inputs: Vec<(u64, Option<&[u8]>)> = run
            .iter()
            .map(|e| (e.index, (!e.data.is_empty()).then_some(&e.data[..])))
            .collect();
        let results = self.shared.sm.apply_entries(&inputs)?;
        metrics()
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        for (entry, applied) in run.iter().zip(results) {
            let result = applied.map(|a| self.publish(a));
            self.complete_waiters(entry.index, entry.term, result);
        }
        Ok(())
    }

    /// Membership changes are not proposed by this crate yet, but a log that contains them
    /// (from a future version or a tool) must still be followed.
    fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), MetadataError> {
        let result = if entry.get_entry_type() == EntryType::EntryConfChange {
            let mut cc = ConfChange::default();
            cc.merge_from_bytes(&entry.data)
                .map_err(MetadataError::from)
                .and_then(|()| {
                    self.raw
                        .apply_conf_change(&cc)
                        .map_err(|e| MetadataError::Raft(e.to_string()))
                })
        } else {
            let mut cc = ConfChangeV2::default();
            cc.merge_from_bytes(&entry.data)
                .map_err(MetadataError::from)
                .and_then(|()| {
                    self.raw
                        .apply_conf_change(&cc)
                        .map_err(|e| MetadataError::Raft(e.to_string()))
                })
        };
        match result {
            Ok(cs) => {
                info!(index = entry.index, voters = ?cs.voters, "applied a configuration change");
                self.raw.store().set_conf_state(cs)
            }
            Err(e) => {
                // Deterministic on every replica: the same bytes fail the same way.
                warn!(index = entry.index, error = %e, "ignoring an invalid configuration change");
                Ok(())
            }
        }
    }

    /// Hands an applied command's side effects to watchers and the lease tracker and returns
    /// its result for the proposer.
    fn publish(&mut self, applied: Applied) -> Result<Response, MetadataError> {
        let Applied {
            result,
            events,
            lease_changes,
        } = applied;
        if let Some(revision) = events.first().map(|e| e.revision()) {
            self.shared.watch.publish(events, revision);
        }
        let now = Instant::now();
        for change in lease_changes {
            match change {
                LeaseChange::Granted { id, ttl } => self.shared.leases.granted(id, ttl, now),
                LeaseChange::Removed(id) => self.shared.leases.removed(id),
            }
        }
        result
    }

    /// Answers the proposals whose fate the entry at `index` (of `term`) decides.
    fn complete_waiters(
        &mut self,
        index: u64,
        term: u64,
        result: Option<Result<Response, MetadataError>>,
    ) {
        let mut result = result;
        while let Some(entry) = self.waiters.first_entry() {
            let waiting_index = *entry.key();
            if waiting_index > index {
                break;
            }
            let waiter = entry.remove();
            let outcome = if waiting_index < index {
                // Skipped over (a snapshot replaced that part of the log): unknown outcome.
                Err(MetadataError::Timeout)
            } else if waiter.term == term {
                result
                    .take()
                    .unwrap_or_else(|| Err(self.shared.not_leader()))
            } else {
                // Another leader's entry took this index: ours was never committed.
                Err(self.shared.not_leader())
            };
            let _ = waiter.reply.send(outcome);
        }
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), MetadataError> {
        let index = snap.get_metadata().index;
        info!(
            index,
            term = snap.get_metadata().term,
            bytes = snap.data.len(),
            "installing snapshot"
        );
        self.raw.store().apply_snapshot(snap)?;
        let shared = self.shared.clone();
        let sm = &shared.sm;
        shared.leases.load(sm.leases()?, Instant::now());
        shared.watch.reset(sm.revision());
        self.applied_tx.send_replace(sm.applied());
        self.complete_waiters(index, 0, None);
        let m = metrics();
        m.keys.set(saturating_i64(sm.key_count()));
        m.leases.set(saturating_i64(shared.leases.len() as u64));
        Ok(())
    }

    /// Drops applied, durable log entries once there are more than `log_compact_after`,
    /// keeping the last `log_keep_after_compact` for followers that are a little behind.
    fn maybe_compact(&mut self) -> Result<(), MetadataError> {
        let storage = self.raw.store();
        let first = storage.first_log_index();
        if self.durable_applied < first || self.durable_applied - first < self.log_compact_after {
            return Ok(());
        }
        let to = self
            .durable_applied
            .saturating_sub(self.log_keep_after_compact);
        if to >= first {
            storage.compact(to)?;
            debug!(first, to, "compacted raft log");
        }
        Ok(())
    }

    /// Leader only: proposes `ExpireLease` for every lease past its deadline.
    fn expire_leases(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            return;
        }
        for id in self.shared.leases.due(Instant::now()) {
            info!(lease = id, "lease deadline passed; proposing its expiry");
            self.propose(Command::ExpireLease(id).encode(), None);
        }
    }

    async fn finish(mut self, exit: Result<(), MetadataError>) {
        let err = match exit {
            Ok(()) => {
                info!(node_id = self.shared.node_id, "metadata node stopping");
                MetadataError::ShuttingDown
            }
            Err(e) => {
                error!(node_id = self.shared.node_id, error = %e, "metadata node stopped on a fatal error");
                e
            }
        };
        self.shared.is_leader.store(false, Ordering::Release);
        metrics().is_leader.set(0);
        self.rx.close();
        while let Ok(req) = self.rx.try_recv() {
            match req {
                Request::Propose { reply, .. } => {
                    let _ = reply.send(Err(err.clone()));
                }
                Request::ReadIndex { reply } => {
                    let _ = reply.send(Err(err.clone()));
                }
                _ => {}
            }
        }
        for (_, waiter) in std::mem::take(&mut self.waiters) {
            let _ = waiter.reply.send(Err(err.clone()));
        }
        self.fail_reads(&err);
        self.shared.watch.close();
        if let Err(e) = self.raw.store().flush().await {
            warn!(error = %e, "final flush failed");
        }
    }
}
