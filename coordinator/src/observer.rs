//! The coordinator's gossip observer.
//!
//! Inputs: gossip (as an observer node with role `coordinator`). It refreshes the
//! [`ClusterView`] every gossip interval and whenever gossip reports a change, and
//! broadcasts the view's Add/Update/Remove events. It takes no action itself: control
//! loops (recovery, balancer, scaling) consume the view and confirm over gRPC.

use std::sync::{Arc, RwLock};

use chitchat::transport::Transport;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_stream::StreamExt;
use triad_cluster::membership::{Membership, MembershipConfig, MembershipError};
use triad_proto::gossip::{NodeKeys, Role};

use crate::config::CoordinatorConfig;
use crate::runner;
use crate::view::{ClusterEvent, ClusterView};

pub struct Coordinator {
    pub cluster_name: String,
    pub started_at: Instant,
    membership: Arc<Membership>,
    view: Arc<RwLock<ClusterView>>,
    events: broadcast::Sender<ClusterEvent>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("cluster", &self.cluster_name)
            .finish()
    }
}

impl Coordinator {
    pub async fn start(
        config: &CoordinatorConfig,
        generation: u64,
        transport: &dyn Transport,
    ) -> Result<Coordinator, MembershipError> {
        let mut keys = NodeKeys::initial(
            Role::Coordinator,
            config.grpc_listen,
            env!("CARGO_PKG_VERSION"),
        );
        keys.heartbeat = None;
        let membership = Arc::new(
            Membership::join(
                MembershipConfig {
                    node_id: config.id.clone(),
                    generation,
                    cluster_id: config.cluster_name.clone(),
                    seeds: config.seeds.clone(),
                    settings: config.gossip.clone(),
                },
                &keys,
                transport,
            )
            .await?,
        );
        let view = Arc::new(RwLock::new(ClusterView::default()));
        let (events, _) = broadcast::channel(1024);
        let (stop, stop_rx) = watch::channel(false);
        let observe = ObserveLoop {
            membership: membership.clone(),
            view: view.clone(),
            events: events.clone(),
            interval: config.gossip.interval,
        };
        let task = tokio::spawn(async move {
            let changes = observe.membership.change_watcher().await;
            let inputs = runner::Inputs::<()>::default()
                .wakes(tokio_stream::wrappers::WatchStream::new(changes).map(|_| ()));
            runner::run(
                "observer",
                observe,
                runner::Backoff::NEVER_USED,
                inputs,
                stop_rx,
            )
            .await;
        });
        tracing::info!(cluster = %config.cluster_name, gossip = %config.gossip.listen, "coordinator observing gossip");
        Ok(Coordinator {
            cluster_name: config.cluster_name.clone(),
            started_at: Instant::now(),
            membership,
            view,
            events,
            stop,
            task,
        })
    }

    /// A copy of the current view.
    pub fn view(&self) -> ClusterView {
        self.view
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.events.subscribe()
    }

    /// The gossip observer's loop is still running (it ends only at [`Coordinator::stop`]).
    pub fn observing(&self) -> bool {
        !self.task.is_finished()
    }

    pub fn membership(&self) -> Arc<Membership> {
        self.membership.clone()
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        match Arc::try_unwrap(self.membership) {
            Ok(membership) => membership.shutdown().await,
            Err(_) => tracing::warn!("gossip still referenced at stop; dropping it"),
        }
    }
}

/// Refreshes the view from gossip every gossip interval and on every gossip change.
struct ObserveLoop {
    membership: Arc<Membership>,
    view: Arc<RwLock<ClusterView>>,
    events: broadcast::Sender<ClusterEvent>,
    interval: std::time::Duration,
}

#[async_trait::async_trait]
impl runner::Reconciler for ObserveLoop {
    type Command = ();

    async fn pass(&mut self) -> runner::Next {
        let observed = self.membership.members().await;
        let new_events = {
            let mut view = self
                .view
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            view.apply(&observed, Instant::now())
        };
        for event in new_events {
            let member = event.member();
            match &event {
                ClusterEvent::Add(_) => {
                    tracing::info!(node = %member.node_id, generation = member.generation, live = member.live, "member added")
                }
                ClusterEvent::Update(_) => {
                    tracing::info!(node = %member.node_id, generation = member.generation, live = member.live, ready = member.keys.ready, "member updated")
                }
                ClusterEvent::Remove(_) => {
                    tracing::info!(node = %member.node_id, "member forgotten")
                }
            }
            for error in &member.decode_errors {
                tracing::warn!(node = %member.node_id, error = %error, "gossip value ignored");
            }
            let _ = self.events.send(event);
        }
        runner::Next::After(self.interval)
    }
}
