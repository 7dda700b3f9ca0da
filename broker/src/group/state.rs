//! The classic group state machine (Kafka's `GroupMetadata` + the group parts of
//! `GroupCoordinator`), synchronous and clock-injected: every method runs under the group's
//! lock with a [`Ctx`] giving "now", completes waiting JoinGroup/SyncGroup requests through
//! oneshot channels, and leaves work for the caller in [`Group::take_effects`] (store writes)
//! and [`Group::take_wake_hint`] (timer wake-ups).
//!
//! States: `Empty -> PreparingRebalance -> CompletingRebalance -> Stable`, back to
//! `PreparingRebalance` on membership/metadata changes, `Dead` once deleted or unloaded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::metrics::metrics;
use super::offsets::{parse_subscription_topics, Offsets};
use super::store::{PersistedGroup, PersistedMember, StoreError};
use super::GroupConfig;

/// Kafka error codes used by the coordinator.
pub(crate) mod code {
    use kafka_protocol::error::ResponseError as E;
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = E::UnknownServerError.code();
    pub const OFFSET_METADATA_TOO_LARGE: i16 = E::OffsetMetadataTooLarge.code();
    pub const COORDINATOR_NOT_AVAILABLE: i16 = E::CoordinatorNotAvailable.code();
    pub const NOT_COORDINATOR: i16 = E::NotCoordinator.code();
    pub const ILLEGAL_GENERATION: i16 = E::IllegalGeneration.code();
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = E::InconsistentGroupProtocol.code();
    pub const INVALID_GROUP_ID: i16 = E::InvalidGroupId.code();
    pub const UNKNOWN_MEMBER_ID: i16 = E::UnknownMemberId.code();
    pub const INVALID_SESSION_TIMEOUT: i16 = E::InvalidSessionTimeout.code();
    pub const REBALANCE_IN_PROGRESS: i16 = E::RebalanceInProgress.code();
    pub const INVALID_COMMIT_OFFSET_SIZE: i16 = E::InvalidCommitOffsetSize.code();
    pub const NON_EMPTY_GROUP: i16 = E::NonEmptyGroup.code();
    pub const GROUP_ID_NOT_FOUND: i16 = E::GroupIdNotFound.code();
    pub const MEMBER_ID_REQUIRED: i16 = E::MemberIdRequired.code();
    pub const GROUP_MAX_SIZE_REACHED: i16 = E::GroupMaxSizeReached.code();
    pub const FENCED_INSTANCE_ID: i16 = E::FencedInstanceId.code();
}

/// Error code for a failed group metadata write (Kafka's
/// `appendGroupMetadataErrorToResponseError`).
pub(crate) fn group_write_error(e: &StoreError) -> i16 {
    match e {
        StoreError::Unavailable(_) => code::COORDINATOR_NOT_AVAILABLE,
        StoreError::NotCoordinator(_) => code::NOT_COORDINATOR,
        StoreError::TooLarge(_) | StoreError::Corrupt(_) | StoreError::Other(_) => {
            code::UNKNOWN_SERVER_ERROR
        }
    }
}

/// Error code for a failed offset write (Kafka's offset-commit append error mapping).
pub(crate) fn offset_write_error(e: &StoreError) -> i16 {
    match e {
        StoreError::Unavailable(_) => code::COORDINATOR_NOT_AVAILABLE,
        StoreError::NotCoordinator(_) => code::NOT_COORDINATOR,
        StoreError::TooLarge(_) => code::INVALID_COMMIT_OFFSET_SIZE,
        StoreError::Corrupt(_) | StoreError::Other(_) => code::UNKNOWN_SERVER_ERROR,
    }
}

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

/// A member as listed to the leader in its JoinGroup response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// Outcome of a JoinGroup request, converted to the versioned response by the caller.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinResult {
    pub error: i16,
    pub member_id: String,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    pub fn error(member_id: impl Into<String>, error: i16) -> Self {
        JoinResult {
            error,
            member_id: member_id.into(),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            members: Vec::new(),
        }
    }
}

/// Outcome of a SyncGroup request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: i16) -> Self {
        SyncResult {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

pub(crate) type JoinTx = oneshot::Sender<JoinResult>;
pub(crate) type SyncTx = oneshot::Sender<SyncResult>;

fn send_join(tx: Option<JoinTx>, result: JoinResult) {
    if let Some(tx) = tx {
        // The requester may be gone (client disconnected); nothing to do then.
        let _ = tx.send(result);
    }
}

fn send_sync(tx: Option<SyncTx>, result: SyncResult) {
    if let Some(tx) = tx {
        let _ = tx.send(result);
    }
}

/// The parsed JoinGroup request.
pub(crate) struct JoinArgs {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ without a group instance id (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+ (KIP-814).
    pub supports_skip_assignment: bool,
    pub reason: Option<String>,
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

/// Work for the caller after a transition.
pub(crate) enum Effect {
    Persist {
        snapshot: PersistedGroup,
        then: AfterPersist,
    },
}

/// What to do once a persisted snapshot is durable (or failed to be).
pub(crate) enum AfterPersist {
    Nothing,
    /// The leader's assignment for `generation`: deliver it, or fail the sync and rebalance.
    SyncAssignment {
        generation: i32,
    },
    /// A static member replaced its member id in Stable without a rebalance (KIP-345).
    StaticReplace(StaticReplace),
}

pub(crate) struct StaticReplace {
    instance_id: String,
    old_member_id: String,
    new_member_id: String,
    old_protocols: Vec<(String, Bytes)>,
    old_rebalance_timeout: Duration,
    old_session_timeout: Duration,
    leader_before: Option<String>,
    supports_skip_assignment: bool,
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

/// A new member id: `<client id or group instance id>-<random UUID>`, as Kafka makes them.
pub(crate) fn new_member_id(prefix: &str) -> String {
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

fn duration_ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
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

    // ----- accessors -------------------------------------------------------------------

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

    /// The group's rebalance timeout: the largest of its members'.
    fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    fn num_awaiting_join(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.is_awaiting_join())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(Member::is_awaiting_join)
    }

    /// Kafka's `supportsProtocols`.
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
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
    fn select_protocol(&self) -> Option<String> {
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

    fn compute_subscribed_topics(&self) -> Option<HashSet<String>> {
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

    pub fn subscribed_topics(&self) -> Option<&HashSet<String>> {
        self.subscribed_topics.as_ref()
    }

    pub fn state_since_ms(&self) -> i64 {
        self.state_since_ms
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

    fn current_join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
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

    fn persist(&mut self, then: AfterPersist) {
        let snapshot = self.snapshot(None);
        self.effects.push(Effect::Persist { snapshot, then });
    }

    fn reschedule_heartbeat(&mut self, member_id: &str, ctx: &Ctx) {
        if let Some(m) = self.members.get_mut(member_id) {
            let d = ctx.now + m.session_timeout;
            m.heartbeat_deadline = Some(d);
            self.note_deadline(d);
        }
    }

    /// Kafka's `validateCurrentMember`.
    fn validate_current_member(
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

    // ----- JoinGroup -------------------------------------------------------------------

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

    /// Moves a static member to a new member id, fencing requests parked under the old id.
    fn replace_static_member(&mut self, instance_id: &str, old_id: &str, new_id: &str) {
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

    fn maybe_prepare_rebalance(&mut self, ctx: &Ctx, reason: &str) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(ctx, reason);
        }
    }

    fn prepare_rebalance(&mut self, ctx: &Ctx, reason: &str) {
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

    fn try_complete_join(&mut self, ctx: &Ctx) {
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

    fn reset_and_propagate_assignment_error(&mut self, ctx: &Ctx, error: i16) {
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

    fn propagate_assignment(&mut self, ctx: &Ctx) {
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

    // ----- SyncGroup -------------------------------------------------------------------

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

    // ----- Heartbeat / LeaveGroup ------------------------------------------------------

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
    fn remove_member_and_update(&mut self, ctx: &Ctx, member_id: &str, reason: &str) {
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
    fn remove(&mut self, member_id: &str) {
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

    // ----- OffsetCommit validation -----------------------------------------------------

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

    // ----- timers ----------------------------------------------------------------------

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

    fn expire_sessions(&mut self, ctx: &Ctx) {
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

    // ----- deletion / unloading --------------------------------------------------------

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
}
