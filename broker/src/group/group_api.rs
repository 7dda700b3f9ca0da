//! JoinGroup, SyncGroup, Heartbeat, LeaveGroup, DescribeGroups, ListGroups and DeleteGroups
//! on the coordinator: checks that need no group, finding the group, running the state
//! machine's transition under the group's lock, and the versioned Kafka responses. What the
//! transitions do is `state/`'s; the group table and store writes are `mod.rs`'s.

use std::time::Duration;

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
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::code::{self, group_write_error};
use super::requests::{JoinArgs, JoinResult, SyncResult};
use super::state::GroupState;
use super::store::GroupStore;
use super::writer::WriteOp;
use super::GroupCoordinator;

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

impl<S: GroupStore> GroupCoordinator<S> {
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
        let states = list_filter(&req.states_filter, version >= 4);
        let types = list_filter(&req.types_filter, version >= 5);
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

/// A ListGroups filter, trimmed and lowercased; empty (no filter) when the request version
/// does not have the field.
fn list_filter(values: &[StrBytes], in_version: bool) -> Vec<String> {
    if !in_version {
        return Vec::new();
    }
    values
        .iter()
        .map(|s| s.as_str().trim().to_lowercase())
        .collect()
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
