//! Members of a group: the member table and static members (group instance id -> member id),
//! validating a request's member, Heartbeat, LeaveGroup, the member check of OffsetCommit,
//! removing members, and session expiry. Admitting members is JoinGroup's (`join.rs`);
//! what a removal does to a rebalance is `rebalance.rs`'s.

use tracing::info;

use super::{Ctx, Group, GroupState};
use crate::group::code;
use crate::group::requests::{send_join, send_sync, JoinResult, SyncResult};

impl Group {
    pub(super) fn reschedule_heartbeat(&mut self, member_id: &str, ctx: &Ctx) {
        if let Some(m) = self.members.get_mut(member_id) {
            let d = ctx.now + m.session_timeout;
            m.heartbeat_deadline = Some(d);
            self.note_deadline(d);
        }
    }

    /// Kafka's `validateCurrentMember`.
    pub(super) fn validate_current_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        operation: &str,
    ) -> Result<(), i16> {
        if let Some(iid) = group_instance_id {
            match self.static_members.get(iid) {
                Some(current) if current != member_id => {
                    info!(group = %self.id, member = member_id, instance = iid,
                        current = %current, operation, "static member fenced by newer member id");
                    return Err(code::FENCED_INSTANCE_ID);
                }
                Some(_) => {}
                None => return Err(code::UNKNOWN_MEMBER_ID),
            }
        }
        if self.members.contains_key(member_id) {
            Ok(())
        } else {
            Err(code::UNKNOWN_MEMBER_ID)
        }
    }

    /// Moves a static member to a new member id, fencing requests parked under the old id.
    pub(super) fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
        let Some(mut m) = self.members.remove(old_id) else {
            return;
        };
        send_join(
            m.awaiting_join.take(),
            JoinResult::error(old_id, code::FENCED_INSTANCE_ID),
        );
        send_sync(
            m.awaiting_sync.take(),
            SyncResult::error(code::FENCED_INSTANCE_ID),
        );
        m.member_id = new_id.to_owned();
        self.members.insert(new_id.to_owned(), m);
        if self.is_leader(old_id) {
            self.leader = Some(new_id.to_owned());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.to_owned());
        }
        self.static_members
            .insert(instance_id.to_owned(), new_id.to_owned());
    }

    pub fn heartbeat(
        &mut self,
        ctx: &Ctx,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(e) = self.validate_current_member(member_id, group_instance_id, "heartbeat") {
            return e;
        }
        if generation != self.generation {
            return code::ILLEGAL_GENERATION;
        }
        match self.state {
            GroupState::Empty => code::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, ctx);
                code::REBALANCE_IN_PROGRESS
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.reschedule_heartbeat(member_id, ctx);
                code::NONE
            }
            GroupState::Dead => code::COORDINATOR_NOT_AVAILABLE,
        }
    }

    /// One member identity of a LeaveGroup request; returns its error code.
    pub fn leave(
        &mut self,
        ctx: &Ctx,
        member_id: &str,
        group_instance_id: Option<&str>,
        reason: Option<&str>,
    ) -> i16 {
        let reason = reason.unwrap_or("unknown reason");
        if member_id.is_empty() {
            // Administrative removal of a static member by instance id.
            let current = group_instance_id.and_then(|i| self.static_members.get(i).cloned());
            return match current {
                Some(current) => {
                    self.remove_current_member(ctx, &current, reason);
                    code::NONE
                }
                None => code::UNKNOWN_MEMBER_ID,
            };
        }
        if self.pending_members.remove(member_id).is_some() {
            info!(group = %self.id, member = member_id, reason, "pending member left the group");
            self.try_complete_join(ctx);
            return code::NONE;
        }
        match self.validate_current_member(member_id, group_instance_id, "leave-group") {
            Err(e) => e,
            Ok(()) => {
                self.remove_current_member(ctx, member_id, reason);
                code::NONE
            }
        }
    }

    fn remove_current_member(&mut self, ctx: &Ctx, member_id: &str, reason: &str) {
        info!(group = %self.id, member = member_id, reason, "member left the group");
        let why = format!("removing member {member_id} on LeaveGroup; client reason: {reason}");
        self.remove_member_and_update(ctx, member_id, &why);
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    pub(super) fn remove_member_and_update(&mut self, ctx: &Ctx, member_id: &str, reason: &str) {
        self.remove(member_id);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(ctx, reason)
            }
            GroupState::PreparingRebalance => self.try_complete_join(ctx),
        }
    }

    /// Removes a member, answering its parked requests with UNKNOWN_MEMBER_ID.
    pub(super) fn remove(&mut self, member_id: &str) {
        if let Some(mut m) = self.members.remove(member_id) {
            if let Some(iid) = &m.group_instance_id {
                if self.static_members.get(iid).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(iid);
                }
            }
            send_join(
                m.awaiting_join.take(),
                JoinResult::error("", code::UNKNOWN_MEMBER_ID),
            );
            send_sync(
                m.awaiting_sync.take(),
                SyncResult::error(code::UNKNOWN_MEMBER_ID),
            );
        }
        if self.is_leader(member_id) {
            self.leader = self.members.keys().next().cloned();
        }
        self.pending_members.remove(member_id);
        self.pending_sync.remove(member_id);
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (non-transactional); keeps the committing
    /// member's session alive in Stable and PreparingRebalance.
    pub fn validate_offset_commit(
        &mut self,
        ctx: &Ctx,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && self.state == GroupState::Empty {
            // Admin clients and consumers without group management.
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_current_member(member_id, group_instance_id, "offset-commit")?;
            if generation != self.generation {
                return Err(code::ILLEGAL_GENERATION);
            }
        } else if self.state != GroupState::Empty {
            return Err(code::UNKNOWN_MEMBER_ID);
        }
        match self.state {
            GroupState::CompletingRebalance => Err(code::REBALANCE_IN_PROGRESS),
            GroupState::Stable | GroupState::PreparingRebalance => {
                self.reschedule_heartbeat(member_id, ctx);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    pub(super) fn expire_sessions(&mut self, ctx: &Ctx) {
        let expired_pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, d)| **d <= ctx.now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired_pending {
            info!(group = %self.id, member = %id, "pending member expired after its session timeout");
            self.pending_members.remove(id);
        }
        if !expired_pending.is_empty() {
            self.try_complete_join(ctx);
        }
        let due: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= ctx.now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in due {
            // Earlier expirations may have completed a rebalance that renewed this deadline.
            let Some(m) = self
                .members
                .get_mut(&id)
                .filter(|m| m.heartbeat_deadline.is_some_and(|d| d <= ctx.now))
            else {
                continue;
            };
            let expire = if m.is_new {
                true
            } else if m.awaiting_join.is_some() || m.awaiting_sync.is_some() {
                // A parked JoinGroup/SyncGroup counts as a heartbeat; the rebalance timeout
                // bounds the wait instead.
                m.heartbeat_deadline = None;
                false
            } else {
                true
            };
            if expire {
                info!(group = %self.id, member = %id, "member session expired; removing it from the group");
                let reason = format!("removing member {id} on heartbeat expiration");
                self.remove_member_and_update(ctx, &id, &reason);
            }
        }
    }
}
