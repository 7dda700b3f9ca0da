//! Coordinator tests over the in-memory store. Most tests move the coordinator's clock by
//! hand ([`H::advance`]: skews "now" and fires every group's timer callback), so session and
//! rebalance timeouts are deterministic and cost no wall-clock time; one test lets the real
//! timer task expire sessions.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, GroupId, HeartbeatRequest, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::task::JoinHandle;

use super::code;
use super::store::MemoryGroupStore;
use super::{GroupConfig, GroupCoordinator, GroupState};

const SESSION_MS: i32 = 1_000;
const REBALANCE_MS: i32 = 5_000;
const META: &[u8] = b"subscription-v1";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

fn gid(v: &str) -> GroupId {
    s(v).into()
}

fn config() -> GroupConfig {
    GroupConfig {
        min_session_timeout: Duration::from_millis(10),
        initial_rebalance_delay: Duration::ZERO,
        offsets_retention: None,
        offsets_retention_check_interval: Duration::from_secs(24 * 3600),
        ..GroupConfig::default()
    }
}

/// Checks that a response encodes at `version` (fields absent from that version unset).
fn encodes<T: Encodable>(msg: &T, version: i16) {
    let mut buf = BytesMut::new();
    if let Err(e) = msg.encode(&mut buf, version) {
        panic!("response does not encode at v{version}: {e}");
    }
}

struct H {
    c: GroupCoordinator<MemoryGroupStore>,
    store: MemoryGroupStore,
}

impl H {
    async fn new() -> H {
        H::with(MemoryGroupStore::new(), config()).await
    }

    async fn with(store: MemoryGroupStore, cfg: GroupConfig) -> H {
        let c = GroupCoordinator::new(store.clone(), cfg).await.unwrap();
        H { c, store }
    }

    fn join_req(
        group: &str,
        member: &str,
        instance: Option<&str>,
        meta: &'static [u8],
    ) -> JoinGroupRequest {
        JoinGroupRequest::default()
            .with_group_id(gid(group))
            .with_session_timeout_ms(SESSION_MS)
            .with_rebalance_timeout_ms(REBALANCE_MS)
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(Bytes::from_static(meta)),
                JoinGroupRequestProtocol::default()
                    .with_name(s("roundrobin"))
                    .with_metadata(Bytes::from_static(meta)),
            ])
    }

    async fn join(&self, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
        let r = self
            .c
            .join_group(req, version, "client", "/127.0.0.1")
            .await;
        encodes(&r, version);
        r
    }

    fn spawn_join(&self, req: JoinGroupRequest, version: i16) -> JoinHandle<JoinGroupResponse> {
        let c = self.c.clone();
        tokio::spawn(async move {
            let r = c.join_group(req, version, "client", "/127.0.0.1").await;
            encodes(&r, version);
            r
        })
    }

    /// First JoinGroup of a dynamic member (v5): returns the id from MEMBER_ID_REQUIRED.
    async fn member_id(&self, group: &str) -> String {
        let r = self.join(H::join_req(group, "", None, META), 5).await;
        assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
        assert_eq!(r.generation_id, -1);
        assert!(!r.member_id.is_empty());
        r.member_id.as_str().to_owned()
    }

    fn sync_req(
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &'static [u8])],
    ) -> SyncGroupRequest {
        SyncGroupRequest::default()
            .with_group_id(gid(group))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s("range")))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(m))
                            .with_assignment(Bytes::from_static(a))
                    })
                    .collect(),
            )
    }

    async fn sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: &[(&str, &'static [u8])],
    ) -> SyncGroupResponse {
        let r = self
            .c
            .sync_group(H::sync_req(group, member, generation, assignments), 5)
            .await;
        encodes(&r, 5);
        r
    }

    fn spawn_sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> JoinHandle<SyncGroupResponse> {
        let c = self.c.clone();
        let req = H::sync_req(group, member, generation, &[]);
        tokio::spawn(async move { c.sync_group(req, 5).await })
    }

    async fn heartbeat(&self, group: &str, member: &str, generation: i32) -> i16 {
        self.heartbeat_static(group, member, None, generation).await
    }

    async fn heartbeat_static(
        &self,
        group: &str,
        member: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(gid(group))
            .with_member_id(s(member))
            .with_group_instance_id(instance.map(s))
            .with_generation_id(generation);
        let r = self.c.heartbeat(req, 4).await;
        encodes(&r, 4);
        r.error_code
    }

    /// Moves the coordinator's clock forward and runs the timer callback of every group,
    /// then lets spawned tasks (write drainers, parked requests) run.
    async fn advance(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap();
        self.c
            .inner
            .skew_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        let ids: Vec<String> = self.c.inner.groups.read().keys().cloned().collect();
        for id in ids {
            self.c.inner.on_timer(&id);
        }
        settle().await;
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.c.group_state(group)
    }

    /// Lets spawned tasks run until `group` reaches `state`.
    async fn wait_state(&self, group: &str, state: GroupState) {
        for _ in 0..1000 {
            if self.state(group) == Some(state) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!(
            "group {group} never reached {state:?} (now {:?})",
            self.state(group)
        );
    }

    async fn commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64, Option<&str>)],
        version: i16,
    ) -> OffsetCommitResponse {
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (t, p, o, m) in offsets {
            let part = OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(m.map(s));
            match topics.iter_mut().find(|x| x.name.as_str() == *t) {
                Some(x) => x.partitions.push(part),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(s(t).into())
                        .with_partitions(vec![part]),
                ),
            }
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(gid(group))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(topics);
        let r = self.c.offset_commit(req, version).await;
        encodes(&r, version);
        r
    }

    async fn fetch(
        &self,
        group: &str,
        topics: Option<&[(&str, &[i32])]>,
        version: i16,
    ) -> OffsetFetchResponse {
        let req = OffsetFetchRequest::default()
            .with_group_id(gid(group))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(s(t).into())
                            .with_partition_indexes(ps.to_vec())
                    })
                    .collect()
            }));
        let r = self.c.offset_fetch(req, version).await;
        encodes(&r, version);
        r
    }
}

async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

fn commit_codes(r: &OffsetCommitResponse) -> Vec<i16> {
    r.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// (topic, partition, offset, metadata) of a v1-v7 OffsetFetch response.
fn fetched(r: &OffsetFetchResponse) -> Vec<(String, i32, i64, String)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.as_str().to_owned(),
                    p.partition_index,
                    p.committed_offset,
                    p.metadata
                        .as_ref()
                        .map(|m| m.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
        })
        .collect()
}

/// Brings up a Stable group with two dynamic members; returns (leader, follower, generation).
async fn two_member_group(h: &H, group: &str) -> (String, String, i32) {
    // The first member forms generation 1 alone (no initial delay).
    let m1 = h.member_id(group).await;
    let r1 = h.join(H::join_req(group, &m1, None, META), 5).await;
    assert_eq!(r1.error_code, code::NONE);
    assert_eq!(r1.generation_id, 1);
    assert_eq!(r1.leader.as_str(), m1);
    assert_eq!(r1.members.len(), 1);
    assert_eq!(r1.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let s1 = h.sync(group, &m1, 1, &[(&m1, b"all")]).await;
    assert_eq!(s1.error_code, code::NONE);
    assert_eq!(&s1.assignment[..], b"all");
    assert_eq!(h.state(group), Some(GroupState::Stable));

    // The second member's join parks and starts one rebalance.
    let m2 = h.member_id(group).await;
    let j2 = h.spawn_join(H::join_req(group, &m2, None, META), 5);
    h.wait_state(group, GroupState::PreparingRebalance).await;
    assert_eq!(
        h.heartbeat(group, &m1, 1).await,
        code::REBALANCE_IN_PROGRESS
    );
    // The leader rejoins: everyone has joined, generation 2 forms.
    let r1 = h.join(H::join_req(group, &m1, None, META), 5).await;
    let r2 = j2.await.unwrap();
    assert_eq!((r1.error_code, r2.error_code), (code::NONE, code::NONE));
    assert_eq!((r1.generation_id, r2.generation_id), (2, 2));
    assert_eq!(r1.leader.as_str(), m1);
    assert_eq!(r2.leader.as_str(), m1);
    let mut listed: Vec<_> = r1
        .members
        .iter()
        .map(|m| m.member_id.as_str().to_owned())
        .collect();
    listed.sort();
    let mut expected = vec![m1.clone(), m2.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(r1.members.iter().all(|m| &m.metadata[..] == META));
    assert!(r2.members.is_empty(), "followers get no member list");
    assert_eq!(h.state(group), Some(GroupState::CompletingRebalance));

    // The follower's SyncGroup waits for the leader's assignment.
    let f = h.spawn_sync(group, &m2, 2);
    tokio::task::yield_now().await;
    let l = h.sync(group, &m1, 2, &[(&m1, b"p0"), (&m2, b"p1")]).await;
    assert_eq!(l.error_code, code::NONE);
    assert_eq!(&l.assignment[..], b"p0");
    assert_eq!(l.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
    let f = f.await.unwrap();
    assert_eq!(f.error_code, code::NONE);
    assert_eq!(&f.assignment[..], b"p1");
    assert_eq!(h.state(group), Some(GroupState::Stable));
    (m1, m2, 2)
}

#[tokio::test]
async fn two_members_join_sync_and_get_assignments() {
    let h = H::new().await;
    let saves = h.store.save_calls();
    let (m1, m2, generation) = two_member_group(&h, "g").await;
    // Both assignments were persisted (generation 1 and 2).
    assert_eq!(h.store.save_calls(), saves + 2);
    let p = h.store.group("g").unwrap();
    assert_eq!(p.generation, generation);
    assert_eq!(p.members.len(), 2);
    assert_eq!(h.heartbeat("g", &m1, generation).await, code::NONE);
    assert_eq!(h.heartbeat("g", &m2, generation).await, code::NONE);
    // A follower rejoining with unchanged metadata gets the current generation back.
    let r = h.join(H::join_req("g", &m2, None, META), 5).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, generation));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // A late SyncGroup in Stable returns the stored assignment.
    let r = h.sync("g", &m2, generation, &[]).await;
    assert_eq!(&r.assignment[..], b"p1");
}

#[tokio::test]
async fn leaving_member_triggers_rebalance_and_remaining_gets_everything() {
    let h = H::new().await;
    let (m1, m2, _) = two_member_group(&h, "g").await;
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![MemberIdentity::default()
            .with_member_id(s(&m2))
            .with_reason(Some(s("shutting down")))]);
    let r = h.c.leave_group(req, 5).await;
    encodes(&r, 5);
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.members.len(), 1);
    assert_eq!(r.members[0].error_code, code::NONE);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", &m1, 2).await, code::REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat("g", &m2, 2).await, code::UNKNOWN_MEMBER_ID);
    let r = h.join(H::join_req("g", &m1, None, META), 5).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 3));
    assert_eq!(r.members.len(), 1);
    let s1 = h.sync("g", &m1, 3, &[(&m1, b"p0+p1")]).await;
    assert_eq!(&s1.assignment[..], b"p0+p1");
    // The last member leaving (v0 form) empties the group.
    let r =
        h.c.leave_group(
            LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_member_id(s(&m1)),
            0,
        )
        .await;
    encodes(&r, 0);
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    settle().await;
    assert_eq!(h.store.group("g").unwrap().members.len(), 0);
    // Leaving again: unknown member (the v0 shape puts it at the top level).
    let r =
        h.c.leave_group(
            LeaveGroupRequest::default()
                .with_group_id(gid("g"))
                .with_member_id(s(&m1)),
            1,
        )
        .await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn session_timeout_expires_member_and_triggers_rebalance() {
    let h = H::new().await;
    let (m1, m2, _) = two_member_group(&h, "g").await;
    // m1 keeps heartbeating every 300 ms; m2 goes silent.
    let mut rc = code::NONE;
    for _ in 0..10 {
        h.advance(Duration::from_millis(300)).await;
        rc = h.heartbeat("g", &m1, 2).await;
        if rc != code::NONE {
            break;
        }
    }
    assert_eq!(rc, code::REBALANCE_IN_PROGRESS);
    assert_eq!(h.heartbeat("g", &m2, 2).await, code::UNKNOWN_MEMBER_ID);
    let r = h.join(H::join_req("g", &m1, None, META), 5).await;
    assert_eq!(
        (r.error_code, r.generation_id, r.members.len()),
        (code::NONE, 3, 1)
    );
    // Then m1 goes silent too: the group ends up empty.
    let s1 = h.sync("g", &m1, 3, &[(&m1, b"x")]).await;
    assert_eq!(s1.error_code, code::NONE);
    h.advance(Duration::from_millis(SESSION_MS as u64 + 100))
        .await;
    assert_eq!(h.state("g"), Some(GroupState::Empty));
}

#[tokio::test]
async fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let h = H::new().await;
    let (m1, m2, _) = two_member_group(&h, "g").await;
    let m3 = h.member_id("g").await;
    let j3 = h.spawn_join(H::join_req("g", &m3, None, META), 5);
    h.wait_state("g", GroupState::PreparingRebalance).await;
    // m1 rejoins; m2 keeps heartbeating but never rejoins.
    let j1 = h.spawn_join(H::join_req("g", &m1, None, META), 5);
    for _ in 0..30 {
        h.advance(Duration::from_millis(300)).await;
        if h.state("g") != Some(GroupState::PreparingRebalance) {
            break;
        }
        assert_eq!(h.heartbeat("g", &m2, 2).await, code::REBALANCE_IN_PROGRESS);
    }
    let (r1, r3) = (j1.await.unwrap(), j3.await.unwrap());
    assert_eq!((r1.generation_id, r3.generation_id), (3, 3));
    assert_eq!(
        r1.members.len(),
        2,
        "m2 was removed at the rebalance timeout"
    );
    assert_eq!(h.heartbeat("g", &m2, 3).await, code::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn member_id_required_flow() {
    let h = H::new().await;
    // v4+: a dynamic member must first get a member id.
    let id = h.member_id("g").await;
    assert!(id.starts_with("client-"), "{id}");
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    let r = h.join(H::join_req("g", &id, None, META), 4).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 1));
    assert_eq!(r.member_id.as_str(), id);
    // v3: joins directly with a generated id.
    let r = h.join(H::join_req("g2", "", None, META), 3).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 1));
    assert!(!r.member_id.is_empty());
    // An unknown member id is refused, for a known or an unknown group.
    let r = h.join(H::join_req("g", "made-up", None, META), 5).await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    let r = h.join(H::join_req("nope", "made-up", None, META), 5).await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    // A pending member that never comes back expires after its session timeout and does
    // not hold up a rebalance.
    let pending = h.member_id("g").await;
    let _ = pending;
    h.advance(Duration::from_millis(SESSION_MS as u64 + 50))
        .await;
    let r = h.join(H::join_req("g", &pending, None, META), 5).await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn static_member_rejoin_with_new_member_id_keeps_generation() {
    let h = H::new().await;
    // Static members skip MEMBER_ID_REQUIRED.
    let r = h.join(H::join_req("g", "", Some("i1"), META), 5).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 1));
    let s1 = r.member_id.as_str().to_owned();
    assert!(s1.starts_with("i1-"), "{s1}");
    h.sync("g", &s1, 1, &[(&s1, b"a")]).await;
    let j2 = h.spawn_join(H::join_req("g", "", Some("i2"), META), 5);
    h.wait_state("g", GroupState::PreparingRebalance).await;
    let r1 = h.join(H::join_req("g", &s1, Some("i1"), META), 5).await;
    let r2 = j2.await.unwrap();
    assert_eq!((r1.generation_id, r2.generation_id), (2, 2));
    assert!(r1
        .members
        .iter()
        .any(|m| m.group_instance_id.as_ref().map(|i| i.as_str()) == Some("i2")));
    let s2 = r2.member_id.as_str().to_owned();
    let f = h.spawn_sync("g", &s2, 2);
    tokio::task::yield_now().await;
    h.sync("g", &s1, 2, &[(&s1, b"a"), (&s2, b"b")]).await;
    assert_eq!(&f.await.unwrap().assignment[..], b"b");

    // i2 restarts: unknown member id, same instance id, same subscription -> new member id,
    // same generation, no rebalance; the old leader id comes back (pre-v9 clients).
    let saves = h.store.save_calls();
    let r = h.join(H::join_req("g", "", Some("i2"), META), 5).await;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(r.generation_id, 2);
    assert_eq!(r.leader.as_str(), s1);
    let s2b = r.member_id.as_str().to_owned();
    assert_ne!(s2b, s2);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(h.store.save_calls(), saves + 1, "replacement persisted");
    let r = h.sync("g", &s2b, 2, &[]).await;
    assert_eq!((r.error_code, &r.assignment[..]), (code::NONE, &b"b"[..]));
    // The old member id is fenced.
    assert_eq!(
        h.heartbeat_static("g", &s2, Some("i2"), 2).await,
        code::FENCED_INSTANCE_ID
    );
    assert_eq!(
        h.heartbeat_static("g", &s2b, Some("i2"), 2).await,
        code::NONE
    );
    // Even a restarted consumer whose metadata changed (e.g. owned partitions dropped)
    // keeps the generation as long as the selected protocol stays the same.
    let r = h
        .join(H::join_req("g", "", Some("i2"), b"other-metadata"), 5)
        .await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 2));
    assert_eq!(h.state("g"), Some(GroupState::Stable));

    // The static leader restarting with JoinGroup v9 learns it leads but skips assignment.
    let r = h.join(H::join_req("g", "", Some("i1"), META), 9).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 2));
    assert!(r.skip_assignment);
    assert_eq!(r.leader, r.member_id);
    assert_eq!(r.members.len(), 2);
    assert_eq!(h.state("g"), Some(GroupState::Stable));

    // Admin removal by instance id (LeaveGroup v3+, empty member id).
    let req = LeaveGroupRequest::default()
        .with_group_id(gid("g"))
        .with_members(vec![
            MemberIdentity::default().with_group_instance_id(Some(s("i2")))
        ]);
    let r = h.c.leave_group(req, 4).await;
    assert_eq!(r.members[0].error_code, code::NONE);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[tokio::test]
async fn generation_and_member_errors() {
    let h = H::new().await;
    let (m1, _m2, generation) = two_member_group(&h, "g").await;
    assert_eq!(
        h.heartbeat("g", &m1, generation - 1).await,
        code::ILLEGAL_GENERATION
    );
    assert_eq!(
        h.heartbeat("g", "stranger", generation).await,
        code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.heartbeat("nope", &m1, generation).await,
        code::UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        h.heartbeat("", &m1, generation).await,
        code::INVALID_GROUP_ID
    );
    let r = h.sync("g", &m1, generation + 1, &[]).await;
    assert_eq!(r.error_code, code::ILLEGAL_GENERATION);
    let r = h.sync("g", "stranger", generation, &[]).await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    // SyncGroup v5 needs protocol type and name.
    let r =
        h.c.sync_group(
            H::sync_req("g", &m1, generation, &[]).with_protocol_name(None),
            5,
        )
        .await;
    assert_eq!(r.error_code, code::INCONSISTENT_GROUP_PROTOCOL);
    // Offset commits check member and generation.
    let r = h
        .commit("g", &m1, generation - 1, &[("t", 0, 5, None)], 8)
        .await;
    assert_eq!(commit_codes(&r), vec![code::ILLEGAL_GENERATION]);
    let r = h
        .commit("g", "stranger", generation, &[("t", 0, 5, None)], 8)
        .await;
    assert_eq!(commit_codes(&r), vec![code::UNKNOWN_MEMBER_ID]);
    let r = h.commit("g", "", -1, &[("t", 0, 5, None)], 8).await;
    assert_eq!(
        commit_codes(&r),
        vec![code::UNKNOWN_MEMBER_ID],
        "only members commit to a non-empty group"
    );
    let r = h
        .commit("g", &m1, generation, &[("t", 0, 5, None)], 8)
        .await;
    assert_eq!(commit_codes(&r), vec![code::NONE]);
    // A member generation for an unknown group: ILLEGAL_GENERATION (v9+: GROUP_ID_NOT_FOUND).
    let r = h.commit("nope", &m1, 1, &[("t", 0, 5, None)], 8).await;
    assert_eq!(commit_codes(&r), vec![code::ILLEGAL_GENERATION]);
    let r = h.commit("nope", &m1, 1, &[("t", 0, 5, None)], 9).await;
    assert_eq!(commit_codes(&r), vec![code::GROUP_ID_NOT_FOUND]);
    // JoinGroup validation.
    let mut req = H::join_req("g", "", None, META);
    req.session_timeout_ms = 1;
    assert_eq!(
        h.join(req, 5).await.error_code,
        code::INVALID_SESSION_TIMEOUT
    );
    assert_eq!(
        h.join(H::join_req("", "", None, META), 5).await.error_code,
        code::INVALID_GROUP_ID
    );
    let mut req = H::join_req("g", "", None, META);
    req.protocol_type = s("connect");
    assert_eq!(
        h.join(req, 3).await.error_code,
        code::INCONSISTENT_GROUP_PROTOCOL
    );
    let mut req = H::join_req("g", "", None, META);
    req.protocols.retain(|p| p.name.as_str() == "unknown");
    assert_eq!(
        h.join(req, 3).await.error_code,
        code::INCONSISTENT_GROUP_PROTOCOL
    );
}

#[tokio::test]
async fn offset_commit_fetch_round_trip_with_metadata() {
    let h = H::new().await;
    // A simple consumer (generation -1, no member id) commits to a new group.
    let r = h
        .commit(
            "simple",
            "",
            -1,
            &[
                ("t1", 0, 100, Some("checkpoint-a")),
                ("t1", 1, 200, None),
                ("t2", 0, 7, Some("")),
            ],
            8,
        )
        .await;
    assert_eq!(commit_codes(&r), vec![code::NONE; 3]);
    // Specific partitions, including unknown ones.
    let r = h
        .fetch("simple", Some(&[("t1", &[0, 1, 5]), ("zz", &[0])]), 5)
        .await;
    assert_eq!(r.error_code, code::NONE);
    assert_eq!(
        fetched(&r),
        vec![
            ("t1".into(), 0, 100, "checkpoint-a".into()),
            ("t1".into(), 1, 200, String::new()),
            ("t1".into(), 5, -1, String::new()),
            ("zz".into(), 0, -1, String::new()),
        ]
    );
    assert_eq!(r.topics[0].partitions[0].committed_leader_epoch, 3);
    assert_eq!(r.topics[0].partitions[2].committed_leader_epoch, -1);
    // Null topics: everything committed.
    let r = h.fetch("simple", None, 7).await;
    assert_eq!(fetched(&r).len(), 3);
    // Unknown group: -1 for requested partitions, nothing for "all".
    let r = h.fetch("nope", Some(&[("t1", &[0])]), 1).await;
    assert_eq!(fetched(&r), vec![("t1".into(), 0, -1, String::new())]);
    assert!(h.fetch("nope", None, 6).await.topics.is_empty());
    // A later commit overwrites.
    h.commit("simple", "", -1, &[("t1", 0, 150, Some("checkpoint-b"))], 2)
        .await;
    let r = h.fetch("simple", Some(&[("t1", &[0])]), 3).await;
    assert_eq!(
        fetched(&r),
        vec![("t1".into(), 0, 150, "checkpoint-b".into())]
    );
    // Too-large metadata is refused per partition.
    let big = "x".repeat(4097);
    let r = h
        .commit(
            "simple",
            "",
            -1,
            &[("t1", 0, 1, Some(&big)), ("t1", 3, 9, None)],
            8,
        )
        .await;
    assert_eq!(
        commit_codes(&r),
        vec![code::OFFSET_METADATA_TOO_LARGE, code::NONE]
    );
    // v8 multi-group fetch.
    let req = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("simple"))
            .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                .with_name(s("t1").into())
                .with_partition_indexes(vec![1, 3])])),
        OffsetFetchRequestGroup::default()
            .with_group_id(gid("nope"))
            .with_topics(None),
    ]);
    let r = h.c.offset_fetch(req, 8).await;
    encodes(&r, 8);
    assert_eq!(r.groups.len(), 2);
    let parts: Vec<_> = r.groups[0].topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset))
        .collect();
    assert_eq!(parts, vec![(1, 200), (3, 9)]);
    assert!(r.groups[1].topics.is_empty());
    // Simple groups are listed as Empty with no protocol type.
    let r = h.c.list_groups(ListGroupsRequest::default(), 3).await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].protocol_type.as_str(), "");
}

#[tokio::test]
async fn offsets_and_groups_survive_restart() {
    let store = MemoryGroupStore::new();
    let h = H::with(store.clone(), config()).await;
    let (m1, m2, generation) = two_member_group(&h, "g").await;
    let r = h
        .commit("g", &m1, generation, &[("t", 0, 42, Some("meta"))], 8)
        .await;
    assert_eq!(commit_codes(&r), vec![code::NONE]);
    h.commit("simple", "", -1, &[("u", 3, 9, None)], 8).await;
    h.c.shutdown().await;
    assert_eq!(
        h.heartbeat("g", &m1, generation).await,
        code::COORDINATOR_NOT_AVAILABLE
    );

    let h = H::with(store, config()).await;
    let r = h.fetch("g", Some(&[("t", &[0])]), 6).await;
    assert_eq!(fetched(&r), vec![("t".into(), 0, 42, "meta".into())]);
    let r = h.fetch("simple", None, 6).await;
    assert_eq!(fetched(&r), vec![("u".into(), 3, 9, String::new())]);
    // The group comes back Stable in the same generation: members carry on.
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(h.heartbeat("g", &m1, generation).await, code::NONE);
    let r = h.sync("g", &m2, generation, &[]).await;
    assert_eq!((r.error_code, &r.assignment[..]), (code::NONE, &b"p1"[..]));
    // A member that does not come back expires after its session timeout.
    for _ in 0..6 {
        h.advance(Duration::from_millis(300)).await;
        h.heartbeat("g", &m2, generation).await;
    }
    assert_eq!(
        h.heartbeat("g", &m1, generation).await,
        code::UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn delete_groups() {
    let h = H::new().await;
    two_member_group(&h, "busy").await;
    h.commit("idle", "", -1, &[("t", 0, 1, None)], 8).await;
    assert_eq!(h.store.offset_count("idle"), 1);
    let req = DeleteGroupsRequest::default().with_groups_names(vec![
        gid("busy"),
        gid("idle"),
        gid("nope"),
    ]);
    let r = h.c.delete_groups(req, 2).await;
    encodes(&r, 2);
    let codes: Vec<_> = r
        .results
        .iter()
        .map(|r| (r.group_id.as_str().to_owned(), r.error_code))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("busy".into(), code::NON_EMPTY_GROUP),
            ("idle".into(), code::NONE),
            ("nope".into(), code::GROUP_ID_NOT_FOUND),
        ]
    );
    assert_eq!(h.state("idle"), None);
    assert_eq!(h.store.offset_count("idle"), 0);
    let r = h.fetch("idle", Some(&[("t", &[0])]), 5).await;
    assert_eq!(fetched(&r)[0].2, -1);
    // A failed store delete leaves the group in place.
    h.commit("idle2", "", -1, &[("t", 0, 1, None)], 8).await;
    h.store.set_fail_writes(true);
    let r =
        h.c.delete_groups(
            DeleteGroupsRequest::default().with_groups_names(vec![gid("idle2")]),
            1,
        )
        .await;
    assert_eq!(r.results[0].error_code, code::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(h.state("idle2"), Some(GroupState::Empty));
}

#[tokio::test]
async fn describe_and_list_groups() {
    let h = H::new().await;
    let (m1, m2, _) = two_member_group(&h, "g").await;
    h.commit("simple", "", -1, &[("t", 0, 1, None)], 8).await;
    for version in 0..=6 {
        let req = DescribeGroupsRequest::default()
            .with_groups(vec![gid("g"), gid("nope")])
            .with_include_authorized_operations(version >= 3);
        let r = h.c.describe_groups(req, version).await;
        encodes(&r, version);
        let g = &r.groups[0];
        assert_eq!(g.error_code, code::NONE);
        assert_eq!(g.group_state.as_str(), "Stable");
        assert_eq!(g.protocol_type.as_str(), "consumer");
        assert_eq!(g.protocol_data.as_str(), "range");
        assert_eq!(g.members.len(), 2);
        let d1 = g
            .members
            .iter()
            .find(|m| m.member_id.as_str() == m1)
            .unwrap();
        assert_eq!(d1.client_id.as_str(), "client");
        assert_eq!(d1.client_host.as_str(), "/127.0.0.1");
        assert_eq!(&d1.member_metadata[..], META);
        assert_eq!(&d1.member_assignment[..], b"p0");
        let d2 = g
            .members
            .iter()
            .find(|m| m.member_id.as_str() == m2)
            .unwrap();
        assert_eq!(&d2.member_assignment[..], b"p1");
        let missing = &r.groups[1];
        assert_eq!(missing.group_state.as_str(), "Dead");
        let expected = if version >= 6 {
            code::GROUP_ID_NOT_FOUND
        } else {
            code::NONE
        };
        assert_eq!(missing.error_code, expected);
    }
    for version in 0..=5 {
        let r = h.c.list_groups(ListGroupsRequest::default(), version).await;
        encodes(&r, version);
        let ids: Vec<_> = r
            .groups
            .iter()
            .map(|g| g.group_id.as_str().to_owned())
            .collect();
        assert_eq!(ids, vec!["g".to_owned(), "simple".to_owned()]);
    }
    let req = ListGroupsRequest::default().with_states_filter(vec![s("stable")]);
    let r = h.c.list_groups(req, 4).await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_state.as_str(), "Stable");
    let req = ListGroupsRequest::default().with_states_filter(vec![s("Empty"), s("Dead")]);
    let r = h.c.list_groups(req, 4).await;
    assert_eq!(r.groups.len(), 1);
    assert_eq!(r.groups[0].group_id.as_str(), "simple");
    let req = ListGroupsRequest::default().with_types_filter(vec![s("consumer")]);
    assert!(h.c.list_groups(req, 5).await.groups.is_empty());
    let req = ListGroupsRequest::default().with_types_filter(vec![s("Classic")]);
    assert_eq!(h.c.list_groups(req, 5).await.groups.len(), 2);
}

#[tokio::test]
async fn responses_encode_at_every_version() {
    let h = H::new().await;
    // JoinGroup: v0-v3 join directly; errors and successes encode at every version.
    for version in 0..=9i16 {
        let group = format!("g{version}");
        let mut r = h.join(H::join_req(&group, "", None, META), version).await;
        if version >= 4 {
            assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
            let id = r.member_id.as_str().to_owned();
            r = h.join(H::join_req(&group, &id, None, META), version).await;
        }
        assert_eq!(
            (r.error_code, r.generation_id),
            (code::NONE, 1),
            "v{version}"
        );
        let protocol = r.protocol_name.as_ref().map(|p| p.as_str().to_owned());
        assert_eq!(protocol.as_deref(), Some("range"));
        let m = r.member_id.as_str().to_owned();
        for sv in 0..=5i16 {
            let r =
                h.c.sync_group(H::sync_req(&group, &m, 1, &[(&m, b"a")]), sv)
                    .await;
            encodes(&r, sv);
            assert_eq!(r.error_code, code::NONE);
        }
        for lv in 0..=5i16 {
            let req = if lv < 3 {
                LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_member_id(s("x"))
            } else {
                LeaveGroupRequest::default()
                    .with_group_id(gid(&group))
                    .with_members(vec![MemberIdentity::default().with_member_id(s("x"))])
            };
            let r = h.c.leave_group(req, lv).await;
            encodes(&r, lv);
        }
    }
    let r = h.join(H::join_req("g0", "bad", None, META), 0).await;
    assert_eq!(r.error_code, code::UNKNOWN_MEMBER_ID);
    for v in 0..=4i16 {
        let r =
            h.c.heartbeat(HeartbeatRequest::default().with_group_id(gid("g0")), v)
                .await;
        encodes(&r, v);
    }
    for v in 1..=7i16 {
        h.fetch("g0", Some(&[("t", &[0])]), v).await;
    }
    for v in 2..=9i16 {
        h.commit("g0", "", -1, &[("t", 0, 1, None)], v).await;
    }
    h.c.shutdown().await;
    for v in 1..=7i16 {
        let r = h.fetch("g0", Some(&[("t", &[0])]), v).await;
        if v < 2 {
            assert_eq!(
                r.topics[0].partitions[0].error_code,
                code::COORDINATOR_NOT_AVAILABLE
            );
        } else {
            assert_eq!(r.error_code, code::COORDINATOR_NOT_AVAILABLE);
        }
    }
}

#[tokio::test]
async fn store_failures_map_to_retriable_errors() {
    let h = H::new().await;
    h.store.set_fail_writes(true);
    let r = h.commit("g", "", -1, &[("t", 0, 1, None)], 8).await;
    assert_eq!(commit_codes(&r), vec![code::COORDINATOR_NOT_AVAILABLE]);
    assert_eq!(
        fetched(&h.fetch("g", Some(&[("t", &[0])]), 5).await)[0].2,
        -1,
        "not applied"
    );
    // A failed assignment write fails the SyncGroup and restarts the rebalance.
    let r = h.join(H::join_req("g", "", None, META), 3).await;
    let m = r.member_id.as_str().to_owned();
    let r = h.sync("g", &m, 1, &[(&m, b"a")]).await;
    assert_eq!(r.error_code, code::COORDINATOR_NOT_AVAILABLE);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.store.set_fail_writes(false);
    let r = h.join(H::join_req("g", &m, None, META), 3).await;
    assert_eq!((r.error_code, r.generation_id), (code::NONE, 2));
    assert_eq!(
        h.sync("g", &m, 2, &[(&m, b"a")]).await.error_code,
        code::NONE
    );
}

#[tokio::test]
async fn parked_requests_are_answered_on_shutdown() {
    let h = H::new().await;
    let (m1, _m2, _) = two_member_group(&h, "g").await;
    let m3 = h.member_id("g").await;
    let j3 = h.spawn_join(H::join_req("g", &m3, None, META), 5);
    h.wait_state("g", GroupState::PreparingRebalance).await;
    h.c.shutdown().await;
    assert_eq!(j3.await.unwrap().error_code, code::NOT_COORDINATOR);
    assert_eq!(
        h.join(H::join_req("g", &m1, None, META), 5)
            .await
            .error_code,
        code::COORDINATOR_NOT_AVAILABLE
    );
}

#[tokio::test]
async fn concurrent_commits_are_merged_in_order() {
    let h = H::new().await;
    let calls = h.store.commit_calls();
    let tasks: Vec<_> = (0..100i64)
        .map(|i| {
            let c = h.c.clone();
            tokio::spawn(async move {
                let req = OffsetCommitRequest::default()
                    .with_group_id(gid("g"))
                    .with_topics(vec![OffsetCommitRequestTopic::default()
                        .with_name(s("t").into())
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(i)])]);
                c.offset_commit(req, 8).await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(commit_codes(&t.await.unwrap()), vec![code::NONE]);
    }
    assert!(h.store.commit_calls() - calls < 100, "commits were merged");
    let r = h.fetch("g", Some(&[("t", &[0])]), 5).await;
    assert_eq!(fetched(&r)[0].2, 99);
}

#[tokio::test]
async fn initial_rebalance_delay_collects_members() {
    let cfg = GroupConfig {
        initial_rebalance_delay: Duration::from_millis(3000),
        ..config()
    };
    let h = H::with(MemoryGroupStore::new(), cfg).await;
    let j1 = h.spawn_join(H::join_req("g", "", Some("a"), META), 5);
    h.wait_state("g", GroupState::PreparingRebalance).await;
    h.advance(Duration::from_millis(1000)).await;
    let j2 = h.spawn_join(H::join_req("g", "", Some("b"), META), 5);
    settle().await;
    // At 3 s a new member had arrived: the delay is extended (by the 2 s of rebalance
    // timeout left), and the join completes at 5 s with both members.
    h.advance(Duration::from_millis(2000)).await;
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    h.advance(Duration::from_millis(2000)).await;
    let (r1, r2) = (j1.await.unwrap(), j2.await.unwrap());
    assert_eq!((r1.generation_id, r2.generation_id), (1, 1));
    let leader = if r1.leader == r1.member_id { &r1 } else { &r2 };
    assert_eq!(leader.members.len(), 2);
}

#[tokio::test]
async fn offset_retention_expires_offsets_and_removes_empty_groups() {
    let cfg = GroupConfig {
        offsets_retention: Some(Duration::from_secs(10)),
        ..config()
    };
    let h = H::with(MemoryGroupStore::new(), cfg).await;
    h.commit("simple", "", -1, &[("t", 0, 1, None)], 8).await;
    // A consumer group that became empty, with offsets.
    let r = h.join(H::join_req("left", "", None, META), 3).await;
    let m = r.member_id.as_str().to_owned();
    h.sync("left", &m, 1, &[(&m, b"a")]).await;
    h.commit("left", &m, 1, &[("t", 0, 5, None)], 8).await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("left"))
        .with_member_id(s(&m));
    h.c.leave_group(leave, 1).await;
    assert_eq!(h.state("left"), Some(GroupState::Empty));
    // A Stable group with members.
    let (m1, m2, generation) = two_member_group(&h, "g").await;
    h.commit("g", &m1, generation, &[("t", 0, 1, None)], 8)
        .await;
    // A group with no offsets at all is removed at the first pass.
    let r = h.join(H::join_req("nothing", "", None, META), 3).await;
    let leave = LeaveGroupRequest::default()
        .with_group_id(gid("nothing"))
        .with_member_id(r.member_id);
    assert_eq!(h.c.leave_group(leave, 1).await.error_code, code::NONE);
    assert_eq!(h.state("nothing"), Some(GroupState::Empty));
    settle().await;
    h.c.inner.cleanup().await;
    assert_eq!(h.state("nothing"), None);
    assert_eq!(
        h.state("simple"),
        Some(GroupState::Empty),
        "not yet expired"
    );
    assert_eq!(h.state("left"), Some(GroupState::Empty));

    // 12 s later (members heartbeating): offsets-only and empty groups expire.
    for _ in 0..40 {
        h.advance(Duration::from_millis(300)).await;
        assert_eq!(h.heartbeat("g", &m1, generation).await, code::NONE);
        assert_eq!(h.heartbeat("g", &m2, generation).await, code::NONE);
    }
    h.c.inner.cleanup().await;
    assert_eq!(h.state("simple"), None);
    assert_eq!(h.store.offset_count("simple"), 0);
    assert_eq!(h.state("left"), None);
    assert!(h.store.group("left").is_none());
    // The Stable group keeps its offsets (its subscription metadata is opaque here).
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(h.store.offset_count("g"), 1);
}

#[tokio::test]
async fn leader_is_reelected_when_it_does_not_rejoin() {
    let h = H::new().await;
    let (m1, m2, _) = two_member_group(&h, "g").await;
    // m2 rejoins with new metadata (forces a rebalance); the leader m1 goes silent, expires,
    // and m2 leads the next generation.
    let j2 = h.spawn_join(H::join_req("g", &m2, None, b"new-subscription"), 5);
    h.wait_state("g", GroupState::PreparingRebalance).await;
    h.advance(Duration::from_millis(SESSION_MS as u64 + 1))
        .await;
    let r2 = j2.await.unwrap();
    assert_eq!(r2.generation_id, 3);
    assert_eq!(r2.leader.as_str(), m2);
    assert_eq!(r2.members.len(), 1);
    assert_eq!(
        h.c.inner.get("g").unwrap().group.lock().leader(),
        Some(m2.as_str())
    );
    assert_eq!(h.heartbeat("g", &m1, 2).await, code::UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn real_timer_expires_sessions_and_pending_members() {
    let h = H::new().await;
    let mut req = H::join_req("g", "", None, META);
    req.session_timeout_ms = 100;
    let r = h.join(req, 3).await;
    let m = r.member_id.as_str().to_owned();
    assert_eq!(
        h.sync("g", &m, 1, &[(&m, b"a")]).await.error_code,
        code::NONE
    );
    // A pending member (MEMBER_ID_REQUIRED) that never rejoins.
    let mut req = H::join_req("g", "", None, META);
    req.session_timeout_ms = 100;
    let pending = h.join(req, 5).await.member_id.as_str().to_owned();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if h.state("g") == Some(GroupState::Empty) {
            break;
        }
    }
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    let mut req = H::join_req("g", &pending, None, META);
    req.session_timeout_ms = 100;
    assert_eq!(h.join(req, 5).await.error_code, code::UNKNOWN_MEMBER_ID);
}

/// Coordinator-side cost of OffsetCommit (in-memory store, debug build): about 40,000
/// sequential commits/s on the development machine. The bound is loose on purpose (shared,
/// loaded CI machines); the target for the whole broker is 5,000/s.
#[tokio::test]
async fn offset_commit_is_cheap() {
    let h = H::new().await;
    let n = 5_000;
    let start = std::time::Instant::now();
    for i in 0..n {
        let r = h
            .commit("g", "", -1, &[("t", i % 8, i64::from(i), Some("m"))], 8)
            .await;
        assert_eq!(commit_codes(&r), vec![code::NONE]);
    }
    let elapsed = start.elapsed();
    eprintln!(
        "{n} sequential commits in {elapsed:?} ({:.0}/s)",
        f64::from(n) / elapsed.as_secs_f64()
    );
    assert!(elapsed < Duration::from_millis(2_500), "{elapsed:?}");
}

#[tokio::test]
async fn coordinator_and_its_futures_are_send_and_sync() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(t: T) -> T {
        t
    }
    let h = H::new().await;
    send_sync(&h.c);
    let r = send(h.c.join_group(H::join_req("g", "", None, META), 5, "c", "h")).await;
    assert_eq!(r.error_code, code::MEMBER_ID_REQUIRED);
    send(h.c.sync_group(SyncGroupRequest::default(), 3)).await;
    send(h.c.heartbeat(HeartbeatRequest::default(), 3)).await;
    send(h.c.leave_group(LeaveGroupRequest::default(), 3)).await;
    send(h.c.offset_commit(OffsetCommitRequest::default(), 8)).await;
    send(h.c.offset_fetch(OffsetFetchRequest::default(), 8)).await;
    send(h.c.list_groups(ListGroupsRequest::default(), 4)).await;
    send(h.c.describe_groups(DescribeGroupsRequest::default(), 5)).await;
    send(h.c.delete_groups(DeleteGroupsRequest::default(), 2)).await;
    send(h.c.shutdown()).await;
}
