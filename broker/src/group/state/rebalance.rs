//! Generations: preparing a rebalance (with the initial delay of a new group), completing the
//! join phase (who stays, who leads, which protocol), SyncGroup and the leader's assignment,
//! and the rebalance and sync deadlines. Who is a member is `membership.rs`'s; storing the
//! assignment before it is handed out is `persist.rs`'s.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use tracing::{error, info, warn};

use super::{Ctx, Group, GroupState, JoinPhase, Member};
use crate::group::code;
use crate::group::effects::{AfterPersist, Effect};
use crate::group::metrics::metrics;
use crate::group::requests::{send_join, send_sync, JoinResult, JoinedMember, SyncResult, SyncTx};
use crate::group::subscription::parse_subscription_topics;

impl Group {
    /// The group's rebalance timeout: the largest of its members'.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    pub(super) fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    /// Kafka's `supportsProtocols`.
    pub(super) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.state == GroupState::Empty {
            !protocol_type.is_empty() && !protocols.is_empty()
        } else {
            self.protocol_type.as_deref() == Some(protocol_type)
                && protocols.iter().any(|(name, _)| {
                    self.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(n, _)| n == name))
                })
        }
    }

    /// The protocol every member supports, chosen by the members' votes (each votes for its
    /// most preferred candidate); ties go to the candidate the leader prefers.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(x, _)| x == n))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let max = votes.values().copied().max()?;
        let preference = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .unwrap_or(first);
        preference
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| votes.get(n) == Some(&max))
            .or_else(|| votes.iter().find(|(_, v)| **v == max).map(|(n, _)| *n))
            .map(str::to_owned)
    }

    pub(super) fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        if self.members.is_empty() {
            return Some(HashSet::new());
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut topics = HashSet::new();
        for m in self.members.values() {
            match parse_subscription_topics(&m.metadata(Some(protocol))) {
                Some(t) => topics.extend(t),
                None => {
                    warn!(group = %self.id, member = %m.member_id,
                        "cannot parse consumer subscription; offset expiry ignores subscriptions");
                    return None;
                }
            }
        }
        Some(topics)
    }

    fn current_member_metadata(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.as_deref();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(protocol),
            })
            .collect()
    }

    pub(super) fn current_join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: code::NONE,
            member_id: member_id.to_owned(),
            generation_id: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            skip_assignment: false,
            members: if with_members {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    pub(super) fn maybe_prepare_rebalance(&mut self, ctx: &Ctx, reason: &str) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(ctx, reason);
        }
    }

    pub(super) fn prepare_rebalance(&mut self, ctx: &Ctx, reason: &str) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(ctx, code::REBALANCE_IN_PROGRESS);
        }
        self.sync_deadline = None;
        let rebalance_timeout = self.rebalance_timeout();
        let phase = if self.state == GroupState::Empty {
            let delay = ctx.cfg.initial_rebalance_delay;
            JoinPhase::Initial {
                deadline: ctx.now + delay,
                delay,
                remaining: rebalance_timeout.saturating_sub(delay),
            }
        } else {
            JoinPhase::Normal {
                deadline: ctx.now + rebalance_timeout,
            }
        };
        self.join_phase = Some(phase);
        self.note_deadline(phase.deadline());
        info!(group = %self.id, from = self.state.as_str(), generation = self.generation,
            reason, "preparing to rebalance group");
        self.transition(GroupState::PreparingRebalance, ctx);
        metrics().rebalances.inc();
        self.try_complete_join(ctx);
    }

    pub(super) fn try_complete_join(&mut self, ctx: &Ctx) {
        if self.state == GroupState::PreparingRebalance
            && matches!(self.join_phase, Some(JoinPhase::Normal { .. }))
            && self.has_all_members_joined()
        {
            self.complete_join(ctx);
        }
    }

    /// Kafka's `onCompleteJoin`.
    fn complete_join(&mut self, ctx: &Ctx) {
        self.join_phase = None;
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.is_awaiting_join() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        if !not_rejoined.is_empty() {
            info!(group = %self.id, members = ?not_rejoined,
                "removing dynamic members who did not rejoin");
            for id in &not_rejoined {
                self.remove(id);
            }
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait another rebalance
            // timeout; session timeouts remove them if they are gone.
            error!(group = %self.id, "could not complete rebalance because no members rejoined");
            let d = ctx.now + self.rebalance_timeout();
            self.join_phase = Some(JoinPhase::Normal { deadline: d });
            self.note_deadline(d);
            return;
        }
        self.init_next_generation(ctx);
        if self.state == GroupState::Empty {
            info!(group = %self.id, generation = self.generation, "group is now empty");
            self.persist(AfterPersist::Nothing);
            return;
        }
        info!(group = %self.id, generation = self.generation, members = self.members.len(),
            protocol = ?self.protocol_name, "stabilized group");
        let all = self.current_member_metadata();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let mut result = self.current_join_result(&id, false);
            if self.is_leader(&id) {
                result.members = all.clone();
            }
            if let Some(m) = self.members.get_mut(&id) {
                send_join(m.awaiting_join.take(), result);
                m.is_new = false;
            }
            self.reschedule_heartbeat(&id, ctx);
            self.pending_sync.insert(id);
        }
        let d = ctx.now + self.rebalance_timeout();
        self.sync_deadline = Some(d);
        self.note_deadline(d);
    }

    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(Member::is_awaiting_join)
        {
            return true;
        }
        match self
            .members
            .values()
            .find(|m| m.is_awaiting_join())
            .map(|m| m.member_id.clone())
        {
            Some(new_leader) => {
                info!(group = %self.id, old = %leader, new = %new_leader,
                    "group leader did not rejoin; electing a member that did");
                self.leader = Some(new_leader);
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, ctx: &Ctx) {
        self.generation = self.generation.saturating_add(1);
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::Empty, ctx);
        } else {
            self.protocol_name = self.select_protocol().or_else(|| {
                self.members
                    .values()
                    .next()
                    .and_then(|m| m.protocols.first())
                    .map(|(n, _)| n.clone())
            });
            self.subscribed_topics = self.compute_subscribed_topics();
            self.transition(GroupState::CompletingRebalance, ctx);
        }
        self.pending_sync.clear();
    }

    pub(super) fn reset_and_propagate_assignment_error(&mut self, ctx: &Ctx, error: i16) {
        self.pending_assignment = None;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            m.assignment = Bytes::new();
            if let Some(tx) = m.awaiting_sync.take() {
                send_sync(Some(tx), SyncResult::error(error));
                self.reschedule_heartbeat(&id, ctx);
            }
        }
    }

    pub(super) fn propagate_assignment(&mut self, ctx: &Ctx) {
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            if let Some(tx) = m.awaiting_sync.take() {
                let result = SyncResult {
                    error: code::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                send_sync(Some(tx), result);
                self.reschedule_heartbeat(&id, ctx);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        ctx: &Ctx,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        tx: SyncTx,
    ) {
        if self.state == GroupState::Dead {
            send_sync(Some(tx), SyncResult::error(code::COORDINATOR_NOT_AVAILABLE));
            return;
        }
        if let Err(e) = self.validate_current_member(member_id, group_instance_id, "sync-group") {
            send_sync(Some(tx), SyncResult::error(e));
            return;
        }
        if generation != self.generation {
            send_sync(Some(tx), SyncResult::error(code::ILLEGAL_GENERATION));
            return;
        }
        if protocol_type.is_some_and(|t| self.protocol_type.as_deref() != Some(t))
            || protocol_name.is_some_and(|n| self.protocol_name.as_deref() != Some(n))
        {
            send_sync(
                Some(tx),
                SyncResult::error(code::INCONSISTENT_GROUP_PROTOCOL),
            );
            return;
        }
        match self.state {
            GroupState::Empty => send_sync(Some(tx), SyncResult::error(code::UNKNOWN_MEMBER_ID)),
            GroupState::PreparingRebalance => {
                send_sync(Some(tx), SyncResult::error(code::REBALANCE_IN_PROGRESS))
            }
            GroupState::CompletingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    // A previous parked SyncGroup of this member is superseded.
                    m.awaiting_sync = Some(tx);
                }
                self.pending_sync.remove(member_id);
                if self.is_leader(member_id) && self.pending_assignment.is_none() {
                    info!(group = %self.id, leader = member_id, generation = self.generation,
                        members = self.members.len(), static_members = self.static_members.len(),
                        "assignment received from leader");
                    let mut assignment: HashMap<String, Bytes> = assignments.into_iter().collect();
                    let mut missing = Vec::new();
                    for id in self.members.keys() {
                        if !assignment.contains_key(id) {
                            missing.push(id.clone());
                        }
                    }
                    if !missing.is_empty() {
                        warn!(group = %self.id, members = ?missing, generation = self.generation,
                            "setting empty assignments for members the leader did not assign");
                    }
                    for id in missing {
                        assignment.insert(id, Bytes::new());
                    }
                    let snapshot = self.snapshot(Some(&assignment));
                    self.pending_assignment = Some(assignment);
                    self.effects.push(Effect::Persist {
                        snapshot,
                        then: AfterPersist::SyncAssignment {
                            generation: self.generation,
                        },
                    });
                }
            }
            GroupState::Stable => {
                self.pending_sync.remove(member_id);
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                send_sync(
                    Some(tx),
                    SyncResult {
                        error: code::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                    },
                );
                self.reschedule_heartbeat(member_id, ctx);
            }
            GroupState::Dead => {
                send_sync(Some(tx), SyncResult::error(code::COORDINATOR_NOT_AVAILABLE))
            }
        }
    }

    /// Acts on due deadlines. `full` also scans member and pending-member session deadlines
    /// (the timer does; request paths skip that O(members) scan).
    pub fn poll(&mut self, ctx: &Ctx, full: bool) {
        if self.state == GroupState::Dead {
            return;
        }
        if full {
            self.expire_sessions(ctx);
        }
        if self.state == GroupState::PreparingRebalance {
            match self.join_phase {
                Some(JoinPhase::Initial {
                    deadline,
                    delay,
                    remaining,
                }) if deadline <= ctx.now => {
                    if self.new_member_added && !remaining.is_zero() {
                        self.new_member_added = false;
                        let next = ctx.cfg.initial_rebalance_delay.min(remaining);
                        let phase = JoinPhase::Initial {
                            deadline: ctx.now + next,
                            delay: next,
                            remaining: remaining.saturating_sub(delay),
                        };
                        self.join_phase = Some(phase);
                        self.note_deadline(phase.deadline());
                    } else {
                        self.complete_join(ctx);
                    }
                }
                Some(JoinPhase::Normal { deadline }) if deadline <= ctx.now => {
                    info!(group = %self.id, "rebalance timeout expired");
                    self.complete_join(ctx);
                }
                _ => self.try_complete_join(ctx),
            }
        }
        if let Some(d) = self.sync_deadline {
            if d <= ctx.now {
                self.sync_deadline = None;
                if matches!(
                    self.state,
                    GroupState::CompletingRebalance | GroupState::Stable
                ) && !self.pending_sync.is_empty()
                {
                    let missing: Vec<String> = self.pending_sync.drain().collect();
                    info!(group = %self.id, members = ?missing,
                        "removing members who did not send SyncGroup in time");
                    for id in &missing {
                        self.remove(id);
                    }
                    self.prepare_rebalance(ctx, "pending SyncGroup expired");
                }
            }
        }
    }
}
