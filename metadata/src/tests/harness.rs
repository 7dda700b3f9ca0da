use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use raft::eraftpb::MessageType;

use crate::{
    MetadataConfig, MetadataNode, MetadataStore, NoopTransport, RaftInbox, RaftMessage,
    SnapshotStatus, Transport,
};

/// A single-voter config with a short tick so lease expiry is checked often.
pub(crate) fn config(dir: &Path) -> MetadataConfig {
    let mut c = MetadataConfig::new(1, dir);
    c.tick_interval = Duration::from_millis(10);
    c
}

pub(crate) async fn open(config: MetadataConfig) -> MetadataNode {
    MetadataNode::open(config, Arc::new(NoopTransport))
        .await
        .expect("open node")
}

pub(crate) async fn single(dir: &Path) -> (MetadataNode, MetadataStore) {
    let node = open(config(dir)).await;
    let store = node.store();
    (node, store)
}

/// Polls `cond` every 5 ms until it holds or `within` passes.
pub(crate) async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// Delivers raft messages between in-process nodes; nodes can be cut off.
#[derive(Default)]
pub(crate) struct Router {
    inboxes: Mutex<HashMap<u64, RaftInbox>>,
    down: Mutex<HashSet<u64>>,
}

impl Router {
    pub(crate) fn register(&self, id: u64, inbox: RaftInbox) {
        self.inboxes.lock().insert(id, inbox);
    }
    pub(crate) fn set_down(&self, id: u64, down: bool) {
        if down {
            self.down.lock().insert(id);
        } else {
            self.down.lock().remove(&id);
        }
    }
}

pub(crate) struct RouterTransport {
    pub(crate) router: Arc<Router>,
    pub(crate) from: u64,
}

impl Transport for RouterTransport {
    fn send(&self, msgs: Vec<RaftMessage>) {
        let down = self.router.down.lock().clone();
        let inboxes = self.router.inboxes.lock().clone();
        for m in msgs {
            let to = m.to;
            let is_snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let delivered = !down.contains(&self.from) && !down.contains(&to);
            match inboxes.get(&to) {
                Some(inbox) if delivered => inbox.step(m),
                _ => {
                    if let Some(me) = inboxes.get(&self.from) {
                        me.report_unreachable(to);
                        if is_snapshot {
                            me.report_snapshot(to, SnapshotStatus::Failure);
                        }
                    }
                    continue;
                }
            }
            if is_snapshot {
                if let Some(me) = inboxes.get(&self.from) {
                    me.report_snapshot(to, SnapshotStatus::Finish);
                }
            }
        }
    }
}

pub(crate) fn cluster_config(id: u64, dir: &Path, voters: &[u64]) -> MetadataConfig {
    let mut c = MetadataConfig::new(id, dir.join(format!("node{id}")));
    c.voters = voters.to_vec();
    c.tick_interval = Duration::from_millis(10);
    c
}

pub(crate) async fn open_member(router: &Arc<Router>, config: MetadataConfig) -> MetadataNode {
    let id = config.node_id;
    let transport = Arc::new(RouterTransport {
        router: router.clone(),
        from: id,
    });
    let node = MetadataNode::open(config, transport)
        .await
        .expect("open member");
    router.register(id, node.inbox());
    node
}

/// The id of the single node that considers itself leader, once there is exactly one.
pub(crate) async fn await_leader(nodes: &[&MetadataNode], within: Duration) -> Option<u64> {
    let mut leader = None;
    eventually(within, || {
        let leaders: Vec<u64> = nodes
            .iter()
            .filter(|n| n.is_leader())
            .map(|n| n.node_id())
            .collect();
        leader = (leaders.len() == 1).then(|| leaders[0]);
        leader.is_some()
    })
    .await;
    leader
}
