//! JoinGroup: admitting a member (group size limit, protocol check), handing out member ids
//! (MEMBER_ID_REQUIRED, KIP-394), new, pending and known members joining, and static members
//! rejoining under a new member id (KIP-345). Starting and completing the rebalance a join
//! causes is `rebalance.rs`'s.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tracing::{debug, info, warn};

use super::{Ctx, Group, GroupState, Member};
use crate::group::code;
use crate::group::effects::{AfterPersist, StaticReplace};
use crate::group::requests::{send_join, JoinArgs, JoinResult, JoinTx};

/// A new member id: `<client id or group instance id>-<random UUID>`, as Kafka makes them.
fn new_member_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // RandomState is seeded randomly per process/thread; hashing a counter with it yields
    // unpredictable, unique-enough bits without a `rand` dependency.
    let rs = std::collections::hash_map::RandomState::new();
    let word = |salt: u8| {
        let mut h = rs.build_hasher();
        h.write_u64(n);
        h.write_u8(salt);
        h.finish()
    };
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&word(1).to_be_bytes());
    b[8..].copy_from_slice(&word(2).to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

impl Group {
    /// Handles a JoinGroup; the answer goes to `tx`, now or when the rebalance completes.
    pub fn join(&mut self, ctx: &Ctx, a: JoinArgs, tx: JoinTx) {
        if !self.accept_joining_member(&a.member_id, ctx.cfg.max_group_size) {
            info!(group = %self.id, member = %a.member_id, "group is at its maximum size");
            if self.members.contains_key(&a.member_id) {
                self.remove_member_and_update(ctx, &a.member_id, "group is at its maximum size");
            }
            send_join(
                Some(tx),
                JoinResult::error("", code::GROUP_MAX_SIZE_REACHED),
            );
            return;
        }
        if a.member_id.is_empty() {
            self.join_new_member(ctx, a, tx);
        } else {
            self.join_existing_member(ctx, a, tx);
        }
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(ctx);
        }
    }

    fn accept_joining_member(&self, member_id: &str, max: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(Member::is_awaiting_join)
                    || self.num_awaiting_join() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    fn join_new_member(&mut self, ctx: &Ctx, a: JoinArgs, tx: JoinTx) {
        if self.state == GroupState::Dead {
            send_join(
                Some(tx),
                JoinResult::error("", code::COORDINATOR_NOT_AVAILABLE),
            );
            return;
        }
        if !self.supports_protocols(&a.protocol_type, &a.protocols) {
            send_join(
                Some(tx),
                JoinResult::error("", code::INCONSISTENT_GROUP_PROTOCOL),
            );
            return;
        }
        let new_id = new_member_id(a.group_instance_id.as_deref().unwrap_or(&a.client_id));
        match a.group_instance_id.clone() {
            Some(iid) => match self.static_members.get(&iid).cloned() {
                Some(old_id) => {
                    info!(group = %self.id, instance = %iid, old = %old_id, new = %new_id,
                        state = self.state.as_str(),
                        "static member with unknown member id rejoins; replacing its member id");
                    self.update_static_member_and_rebalance(ctx, iid, old_id, new_id, a, tx);
                }
                None => {
                    info!(group = %self.id, instance = %iid, member = %new_id,
                        state = self.state.as_str(), "new static member joins");
                    self.add_member_and_rebalance(ctx, new_id, a, tx);
                }
            },
            None if a.require_known_member_id => {
                let d = ctx.now + a.session_timeout;
                self.pending_members.insert(new_id.clone(), d);
                self.note_deadline(d);
                debug!(group = %self.id, member = %new_id,
                    "dynamic member with unknown member id joins; member id required");
                send_join(
                    Some(tx),
                    JoinResult::error(new_id, code::MEMBER_ID_REQUIRED),
                );
            }
            None => self.add_member_and_rebalance(ctx, new_id, a, tx),
        }
    }

    fn join_existing_member(&mut self, ctx: &Ctx, a: JoinArgs, tx: JoinTx) {
        let member_id = a.member_id.clone();
        if self.state == GroupState::Dead {
            send_join(
                Some(tx),
                JoinResult::error(member_id, code::COORDINATOR_NOT_AVAILABLE),
            );
            return;
        }
        if !self.supports_protocols(&a.protocol_type, &a.protocols) {
            send_join(
                Some(tx),
                JoinResult::error(member_id, code::INCONSISTENT_GROUP_PROTOCOL),
            );
            return;
        }
        if self.pending_members.contains_key(&member_id) {
            if a.group_instance_id.is_some() {
                // Kafka: IllegalStateException (pending members are never static).
                send_join(
                    Some(tx),
                    JoinResult::error(member_id, code::UNKNOWN_SERVER_ERROR),
                );
                return;
            }
            debug!(group = %self.id, member = %member_id, "pending member rejoins");
            self.add_member_and_rebalance(ctx, member_id, a, tx);
            return;
        }
        if let Err(e) =
            self.validate_current_member(&member_id, a.group_instance_id.as_deref(), "join-group")
        {
            send_join(Some(tx), JoinResult::error(member_id, e));
            return;
        }
        let Some(member) = self.members.get(&member_id) else {
            send_join(
                Some(tx),
                JoinResult::error(member_id, code::UNKNOWN_MEMBER_ID),
            );
            return;
        };
        let matches = member.matches(&a.protocols);
        match self.state {
            GroupState::PreparingRebalance => {
                let reason = format!("member {member_id} joining group during PreparingRebalance");
                self.update_member_and_rebalance(ctx, a, tx, &reason);
            }
            GroupState::CompletingRebalance => {
                if matches {
                    // The member probably lost the JoinGroup response: answer with the
                    // current generation.
                    let is_leader = self.is_leader(&member_id);
                    send_join(Some(tx), self.current_join_result(&member_id, is_leader));
                } else {
                    let reason = format!(
                        "updating metadata for member {member_id} during CompletingRebalance"
                    );
                    self.update_member_and_rebalance(ctx, a, tx, &reason);
                }
            }
            GroupState::Stable => {
                if self.is_leader(&member_id) || !matches {
                    // The leader rejoining forces a rebalance (it may have seen topic
                    // metadata changes the member metadata does not show).
                    let reason = format!("member {member_id} rejoining a Stable group");
                    self.update_member_and_rebalance(ctx, a, tx, &reason);
                } else {
                    send_join(Some(tx), self.current_join_result(&member_id, false));
                }
            }
            GroupState::Empty | GroupState::Dead => {
                warn!(group = %self.id, member = %member_id, state = self.state.as_str(),
                    "rejoining member in unexpected group state");
                send_join(
                    Some(tx),
                    JoinResult::error(member_id, code::UNKNOWN_MEMBER_ID),
                );
            }
        }
    }

    fn add_member_and_rebalance(&mut self, ctx: &Ctx, member_id: String, a: JoinArgs, tx: JoinTx) {
        // New members cannot heartbeat while their JoinGroup is parked; bound the wait.
        let deadline = ctx.now + ctx.cfg.new_member_join_timeout;
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: a.group_instance_id,
            client_id: a.client_id,
            client_host: a.client_host,
            rebalance_timeout: a.rebalance_timeout,
            session_timeout: a.session_timeout,
            protocol_type: a.protocol_type,
            protocols: a.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline: Some(deadline),
        };
        if self.state == GroupState::PreparingRebalance && self.generation == 0 {
            self.new_member_added = true;
        }
        if let Some(iid) = &member.group_instance_id {
            self.static_members.insert(iid.clone(), member_id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(member.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
        self.pending_members.remove(&member_id);
        self.members.insert(member_id.clone(), member);
        self.note_deadline(deadline);
        let reason = match a.reason {
            Some(r) => format!("adding new member {member_id}; client reason: {r}"),
            None => format!("adding new member {member_id}"),
        };
        self.maybe_prepare_rebalance(ctx, &reason);
    }

    fn update_member_and_rebalance(&mut self, ctx: &Ctx, a: JoinArgs, tx: JoinTx, reason: &str) {
        if let Some(m) = self.members.get_mut(&a.member_id) {
            m.protocols = a.protocols;
            m.rebalance_timeout = a.rebalance_timeout;
            m.session_timeout = a.session_timeout;
            // A previous parked JoinGroup of this member is superseded (its waiter sees the
            // channel closed and answers REBALANCE_IN_PROGRESS).
            m.awaiting_join = Some(tx);
        }
        let reason = match a.reason {
            Some(r) => format!("{reason}; client reason: {r}"),
            None => reason.to_owned(),
        };
        self.maybe_prepare_rebalance(ctx, &reason);
    }

    fn update_static_member_and_rebalance(
        &mut self,
        ctx: &Ctx,
        instance_id: String,
        old_id: String,
        new_id: String,
        a: JoinArgs,
        tx: JoinTx,
    ) {
        let leader_before = self.leader.clone();
        self.replace_static_member(&instance_id, &old_id, &new_id);
        self.reschedule_heartbeat(&new_id, ctx);
        let Some(m) = self.members.get_mut(&new_id) else {
            send_join(Some(tx), JoinResult::error("", code::UNKNOWN_SERVER_ERROR));
            return;
        };
        let old_protocols = std::mem::replace(&mut m.protocols, a.protocols);
        let old_rebalance_timeout =
            std::mem::replace(&mut m.rebalance_timeout, a.rebalance_timeout);
        let old_session_timeout = std::mem::replace(&mut m.session_timeout, a.session_timeout);
        m.awaiting_join = Some(tx);
        match self.state {
            GroupState::Stable => {
                // No rebalance unless the group's selected protocol would change (Kafka
                // GroupCoordinator / KIP-345); the replacement is persisted first.
                if self.select_protocol() == self.protocol_name {
                    info!(group = %self.id, instance = %instance_id, member = %new_id,
                        "static member rejoined in Stable without changing the selected protocol; no rebalance");
                    self.persist(AfterPersist::StaticReplace(StaticReplace {
                        instance_id,
                        old_member_id: old_id,
                        new_member_id: new_id,
                        old_protocols,
                        old_rebalance_timeout,
                        old_session_timeout,
                        leader_before,
                        supports_skip_assignment: a.supports_skip_assignment,
                    }));
                } else {
                    let reason = format!(
                        "selected protocol would change because static member {new_id} ({instance_id}) rejoined with other protocols"
                    );
                    self.maybe_prepare_rebalance(ctx, &reason);
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may already have assigned the old member id: start over.
                let reason =
                    format!("updating metadata for static member {new_id} ({instance_id})");
                self.prepare_rebalance(ctx, &reason);
            }
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                // Unreachable (a known static member implies members); answer like Kafka's
                // IllegalStateException would.
                let tx = self
                    .members
                    .get_mut(&new_id)
                    .and_then(|m| m.awaiting_join.take());
                send_join(tx, JoinResult::error("", code::UNKNOWN_SERVER_ERROR));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::new_member_id;

    #[test]
    fn member_ids_are_unique_uuid_like() {
        let a = new_member_id("c");
        let b = new_member_id("c");
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 36);
        assert_eq!(&a[2 + 14..2 + 15], "4");
    }
}
