//! What a group writes to the store and reads back: the snapshot ([`PersistedGroup`]) taken
//! at a transition, rebuilding a group from it at start-up, and what happens once a write is
//! durable or failed (deliver or withdraw an assignment, confirm or undo a static member's
//! replacement). The encodings are `store.rs`'s; the writes run in the coordinator.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tracing::warn;

use super::{Ctx, Group, GroupState, Member};
use crate::group::code::group_write_error;
use crate::group::effects::{AfterPersist, Effect, StaticReplace};
use crate::group::requests::send_join;
use crate::group::store::{PersistedGroup, PersistedMember, StoreError};

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

impl Group {
    /// Rebuilds a group from its persisted form: `Stable` with its members (each given a
    /// fresh session timeout) or `Empty`.
    pub fn load(id: String, p: PersistedGroup, ctx: &Ctx) -> Self {
        let mut g = Group::new(id, ctx.now_ms);
        g.generation = p.generation;
        g.protocol_type = p.protocol_type;
        g.protocol_name = p.protocol_name;
        g.state_since_ms = p.current_state_timestamp_ms;
        if !p.members.is_empty() && g.protocol_name.is_none() {
            warn!(group = %g.id, "persisted group has members but no protocol; loading it empty");
        } else {
            let protocol = g.protocol_name.clone().unwrap_or_default();
            for pm in p.members {
                let session_timeout =
                    Duration::from_millis(u64::try_from(pm.session_timeout_ms).unwrap_or(0));
                let deadline = ctx.now + session_timeout;
                if let Some(iid) = &pm.group_instance_id {
                    g.static_members.insert(iid.clone(), pm.member_id.clone());
                }
                g.members.insert(
                    pm.member_id.clone(),
                    Member {
                        member_id: pm.member_id,
                        group_instance_id: pm.group_instance_id,
                        client_id: pm.client_id,
                        client_host: pm.client_host,
                        rebalance_timeout: Duration::from_millis(
                            u64::try_from(pm.rebalance_timeout_ms).unwrap_or(0),
                        ),
                        session_timeout,
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        protocols: vec![(protocol.clone(), pm.subscription)],
                        assignment: pm.assignment,
                        awaiting_join: None,
                        awaiting_sync: None,
                        is_new: false,
                        heartbeat_deadline: Some(deadline),
                    },
                );
                g.note_deadline(deadline);
            }
        }
        if g.members.is_empty() {
            g.protocol_name = None;
        } else {
            g.leader = match p.leader {
                Some(l) if g.members.contains_key(&l) => Some(l),
                _ => g.members.keys().next().cloned(),
            };
            g.set_state(GroupState::Stable);
        }
        g.subscribed_topics = g.compute_subscribed_topics();
        g
    }

    /// The persisted form; `assignment` overrides the members' current assignments.
    pub fn snapshot(&self, assignment: Option<&HashMap<String, Bytes>>) -> PersistedGroup {
        let protocol = self.protocol_name.as_deref();
        PersistedGroup {
            protocol_type: self.protocol_type.clone(),
            generation: self.generation,
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            current_state_timestamp_ms: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| PersistedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: duration_ms(m.rebalance_timeout),
                    session_timeout_ms: duration_ms(m.session_timeout),
                    subscription: m.metadata(protocol),
                    assignment: match assignment {
                        Some(a) => a.get(&m.member_id).cloned().unwrap_or_default(),
                        None => m.assignment.clone(),
                    },
                })
                .collect(),
        }
    }

    pub(super) fn persist(&mut self, then: AfterPersist) {
        let snapshot = self.snapshot(None);
        self.effects.push(Effect::Persist { snapshot, then });
    }

    /// Continues after a snapshot write finished.
    pub fn after_persist(&mut self, ctx: &Ctx, then: AfterPersist, result: Result<(), StoreError>) {
        match then {
            AfterPersist::Nothing => {
                if let Err(e) = result {
                    warn!(group = %self.id, error = %e, "failed to persist group metadata");
                }
            }
            AfterPersist::SyncAssignment { generation } => {
                if self.state != GroupState::CompletingRebalance || generation != self.generation {
                    // Another member joined (or left) meanwhile; that rebalance answered the
                    // waiting members.
                    return;
                }
                let Some(assignment) = self.pending_assignment.take() else {
                    return;
                };
                match result {
                    Ok(()) => {
                        for m in self.members.values_mut() {
                            m.assignment =
                                assignment.get(&m.member_id).cloned().unwrap_or_default();
                        }
                        self.propagate_assignment(ctx);
                        self.transition(GroupState::Stable, ctx);
                    }
                    Err(e) => {
                        warn!(group = %self.id, error = %e, generation,
                            "failed to store group assignment; rebalancing");
                        self.reset_and_propagate_assignment_error(ctx, group_write_error(&e));
                        self.maybe_prepare_rebalance(ctx, "error storing group assignment");
                    }
                }
            }
            AfterPersist::StaticReplace(r) => self.after_static_replace(ctx, r, result),
        }
    }

    fn after_static_replace(
        &mut self,
        ctx: &Ctx,
        r: StaticReplace,
        result: Result<(), StoreError>,
    ) {
        let waiting = self
            .members
            .get(&r.new_member_id)
            .is_some_and(Member::is_awaiting_join);
        if !waiting || self.state != GroupState::Stable {
            // Fenced again, removed, or a rebalance took over and answers the member.
            return;
        }
        match result {
            Err(e) => {
                warn!(group = %self.id, instance = %r.instance_id, error = %e,
                    "failed to persist static member replacement; reverting");
                let Some(m) = self.members.get_mut(&r.new_member_id) else {
                    return;
                };
                let tx = m.awaiting_join.take();
                m.protocols = r.old_protocols;
                m.rebalance_timeout = r.old_rebalance_timeout;
                m.session_timeout = r.old_session_timeout;
                self.replace_static_member(&r.instance_id, &r.new_member_id, &r.old_member_id);
                self.reschedule_heartbeat(&r.old_member_id, ctx);
                let mut res = self.current_join_result("", false);
                res.error = group_write_error(&e);
                res.leader = r.leader_before.unwrap_or_default();
                send_join(tx, res);
            }
            Ok(()) => {
                let is_leader = self.is_leader(&r.new_member_id);
                let result = if r.supports_skip_assignment {
                    // KIP-814: the leader learns it leads but must not reassign.
                    let mut res = self.current_join_result(&r.new_member_id, is_leader);
                    res.skip_assignment = is_leader;
                    res
                } else {
                    // Older clients get the previous leader id, so a replaced leader does not
                    // compute an assignment a Stable group would ignore.
                    let mut res = self.current_join_result(&r.new_member_id, false);
                    res.leader = r.leader_before.unwrap_or_default();
                    res
                };
                let tx = self
                    .members
                    .get_mut(&r.new_member_id)
                    .and_then(|m| m.awaiting_join.take());
                send_join(tx, result);
            }
        }
    }
}
