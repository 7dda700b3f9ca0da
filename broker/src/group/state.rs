//! The classic group state machine (Kafka's `GroupMetadata` + the group parts of
//! `GroupCoordinator`), synchronous and clock-injected: every method runs under the group's
//! lock with a [`Ctx`] giving "now", completes waiting JoinGroup/SyncGroup requests through
//! oneshot channels, and leaves work for the caller in [`Group::take_effects`] (store writes)
//! and [`Group::take_wake_hint`] (timer wake-ups).
//!
//! States: `Empty -> PreparingRebalance -> CompletingRebalance -> Stable`, back to
//! `PreparingRebalance` on membership/metadata changes, `Dead` once deleted or unloaded.
//!
//! This file holds the types ([`Group`], [`Member`], [`GroupState`]), their accessors, state
//! changes, deadlines, offset expiry and deletion/unloading. The transitions are `impl Group`
//! blocks in child modules, one concern each, which see the private fields here:
//! - `membership`: the member table, static members (group instance ids), member
//!   validation, Heartbeat, LeaveGroup, OffsetCommit's member check, session expiry;
//! - `join`: JoinGroup: admitting new, pending, known and static members;
//! - `rebalance`: generations: preparing and completing a rebalance, protocol selection,
//!   SyncGroup and the leader's assignment, rebalance and sync deadlines;
//! - `persist`: what goes to the store (snapshots), loading a group back, and what happens
//!   once a write is durable or failed.
//!
//! None of them imports another; they import this file and the group-level leaves.

mod join;
mod membership;
mod persist;
mod rebalance;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;
use tracing::{debug, info};

use super::code;
use super::config::GroupConfig;
use super::effects::Effect;
use super::metrics::metrics;
use super::offsets::Offsets;
use super::requests::{send_join, send_sync, JoinResult, JoinTx, SyncResult, SyncTx};

/// Classic group states, named as Kafka names them on the wire (DescribeGroups, ListGroups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// "Now" and the configuration, passed into every state transition.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub now_ms: i64,
    pub cfg: &'a GroupConfig,
}

pub(crate) struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub session_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    awaiting_join: Option<JoinTx>,
    awaiting_sync: Option<SyncTx>,
    /// Joined but not yet part of a completed generation.
    is_new: bool,
    /// When the member expires unless it heartbeats; `None` while a rebalance stands in for
    /// its heartbeats (awaiting join/sync).
    heartbeat_deadline: Option<Instant>,
}

impl Member {
    /// The member's metadata for `protocol` (empty if it does not support it).
    pub fn metadata(&self, protocol: Option<&str>) -> Bytes {
        protocol
            .and_then(|p| self.protocols.iter().find(|(n, _)| n == p))
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn matches(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    fn is_awaiting_join(&self) -> bool {
        self.awaiting_join.is_some()
    }
}

#[derive(Debug, Clone, Copy)]
enum JoinPhase {
    /// The first rebalance of an empty group (`group.initial.rebalance.delay.ms`): completes
    /// only when the delay expires, extended while new members keep arriving.
    Initial {
        deadline: Instant,
        delay: Duration,
        remaining: Duration,
    },
    /// Completes when every member rejoined, or at the rebalance timeout.
    Normal { deadline: Instant },
}

impl JoinPhase {
    fn deadline(&self) -> Instant {
        match *self {
            JoinPhase::Initial { deadline, .. } | JoinPhase::Normal { deadline } => deadline,
        }
    }
}

pub(crate) struct Group {
    pub id: String,
    state: GroupState,
    /// Wall clock ms of the last state change (Kafka's `currentStateTimestamp`).
    state_since_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// group.instance.id -> member id.
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with their expiry.
    pending_members: HashMap<String, Instant>,
    /// Members of the current generation that have not sent SyncGroup yet.
    pending_sync: HashSet<String>,
    new_member_added: bool,
    join_phase: Option<JoinPhase>,
    sync_deadline: Option<Instant>,
    /// The leader's assignment while it is being persisted.
    pending_assignment: Option<HashMap<String, Bytes>>,
    /// Topics the members subscribe to (consumer protocol only), for offset expiry.
    subscribed_topics: Option<HashSet<String>>,
    pub offsets: Offsets,
    effects: Vec<Effect>,
    wake_hint: Option<Instant>,
    /// The earliest timer wake-up already requested for this group.
    pub scheduled_wake: Option<Instant>,
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.state != GroupState::Dead {
            metrics()
                .groups
                .with_label_values(&[self.state.as_str()])
                .dec();
        }
    }
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Self {
        metrics()
            .groups
            .with_label_values(&[GroupState::Empty.as_str()])
            .inc();
        Group {
            id,
            state: GroupState::Empty,
            state_since_ms: now_ms,
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            pending_sync: HashSet::new(),
            new_member_added: false,
            join_phase: None,
            sync_deadline: None,
            pending_assignment: None,
            subscribed_topics: None,
            offsets: Offsets::default(),
            effects: Vec::new(),
            wake_hint: None,
            scheduled_wake: None,
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol_name(&self) -> Option<&str> {
        self.protocol_name.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn has_pending_members(&self) -> bool {
        !self.pending_members.is_empty()
    }

    #[cfg(test)]
    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn take_wake_hint(&mut self) -> Option<Instant> {
        self.wake_hint.take()
    }

    fn note_deadline(&mut self, d: Instant) {
        self.wake_hint = Some(self.wake_hint.map_or(d, |h| h.min(d)));
    }

    /// The earliest deadline of any kind, for the timer.
    pub fn next_deadline(&self) -> Option<Instant> {
        let members = self.members.values().filter_map(|m| m.heartbeat_deadline);
        let pending = self.pending_members.values().copied();
        members
            .chain(pending)
            .chain(self.join_phase.map(|p| p.deadline()))
            .chain(self.sync_deadline)
            .min()
    }

    fn set_state(&mut self, to: GroupState) {
        let m = &metrics().groups;
        if self.state != GroupState::Dead {
            m.with_label_values(&[self.state.as_str()]).dec();
        }
        if to != GroupState::Dead {
            m.with_label_values(&[to.as_str()]).inc();
        }
        self.state = to;
    }

    fn transition(&mut self, to: GroupState, ctx: &Ctx) {
        debug!(group = %self.id, from = self.state.as_str(), to = to.as_str(), "group state change");
        self.set_state(to);
        self.state_since_ms = ctx.now_ms;
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    pub fn subscribed_topics(&self) -> Option<&HashSet<String>> {
        self.subscribed_topics.as_ref()
    }

    pub fn state_since_ms(&self) -> i64 {
        self.state_since_ms
    }

    /// Marks the group Dead ahead of its deletion from the store.
    pub fn mark_dead(&mut self, ctx: &Ctx) {
        self.transition(GroupState::Dead, ctx);
        self.join_phase = None;
        self.sync_deadline = None;
    }

    /// Undoes [`Group::mark_dead`] after a failed deletion.
    pub fn revive_empty(&mut self, ctx: &Ctx) {
        if self.state == GroupState::Dead && self.members.is_empty() {
            self.transition(GroupState::Empty, ctx);
        }
    }

    /// The coordinator stops: answer every parked request with NOT_COORDINATOR.
    pub fn unload(&mut self, ctx: &Ctx) {
        info!(group = %self.id, generation = self.generation, "unloading group");
        self.mark_dead(ctx);
        self.pending_assignment = None;
        for m in self.members.values_mut() {
            send_join(
                m.awaiting_join.take(),
                JoinResult::error(m.member_id.clone(), code::NOT_COORDINATOR),
            );
            send_sync(
                m.awaiting_sync.take(),
                SyncResult::error(code::NOT_COORDINATOR),
            );
            m.heartbeat_deadline = None;
        }
        self.pending_members.clear();
    }

    /// Removes the group's expired offsets (Kafka's `removeExpiredOffsets`, KIP-211):
    /// - a group with a protocol type that is Empty: all offsets once `retention` has passed
    ///   since it became empty;
    /// - a Stable consumer group with known subscriptions: offsets of topics no member
    ///   subscribes to, `retention` after their commit;
    /// - a group without protocol type (offsets-only, simple consumers): each offset
    ///   `retention` after its commit.
    pub fn expire_offsets(&mut self, now_ms: i64, retention: Duration) -> Vec<(String, i32)> {
        let retention = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let age = |since: i64| now_ms.saturating_sub(since) >= retention;
        match (self.protocol_type(), self.state()) {
            (Some(_), GroupState::Empty) => {
                let since = self.state_since_ms();
                self.offsets.remove_where(|_| age(since))
            }
            (Some("consumer"), GroupState::Stable) => match self.subscribed_topics().cloned() {
                Some(subscribed) => self
                    .offsets
                    .remove_where(|o| !subscribed.contains(&o.topic) && age(o.commit_timestamp_ms)),
                None => Vec::new(),
            },
            (None, _) => self.offsets.remove_where(|o| age(o.commit_timestamp_ms)),
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::store::CommittedOffset;

    fn offset(topic: &str, partition: i32, ts: i64) -> CommittedOffset {
        CommittedOffset {
            topic: topic.into(),
            partition,
            offset: 1,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp_ms: ts,
        }
    }

    #[test]
    fn simple_group_offsets_expire_per_commit() {
        let mut g = Group::new("g".into(), 0);
        g.offsets.put(offset("a", 0, 1_000));
        g.offsets.put(offset("a", 1, 5_000));
        let expired = g.expire_offsets(11_000, Duration::from_secs(10));
        assert_eq!(expired, vec![("a".to_owned(), 0)]);
        assert!(g.offsets.get("a", 1).is_some());
        assert!(g.expire_offsets(14_999, Duration::from_secs(10)).is_empty());
        assert_eq!(g.expire_offsets(15_000, Duration::from_secs(10)).len(), 1);
        assert!(g.offsets.is_empty());
    }
}
