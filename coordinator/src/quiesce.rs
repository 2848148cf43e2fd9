//! Maintenance mode that Triad turns on and off itself around a piece of work (issue 19: a
//! quiesced backup), and the wait until the balancer has a change of maintenance mode in
//! place. Apart from `maintenance` (the wanted state) and `balancer` (which puts it in
//! place), which it joins.

use std::sync::Arc;

use tokio::sync::watch;

use crate::balancer::reconcile::BalancerStatus;
use crate::maintenance::{new_bypass_token, Maintenance, MaintenanceStore};

/// How long a change of maintenance mode may take to be in place on the balancer.
pub const IN_PLACE_WITHIN: std::time::Duration = std::time::Duration::from_secs(15);

/// Waits until the balancer loop has `wanted` (None: off) in place, within
/// [`IN_PLACE_WITHIN`]; the error says why not (the loop's own words when it has them).
pub async fn wait_in_place(
    balancer: &mut watch::Receiver<BalancerStatus>,
    wanted: Option<&Maintenance>,
) -> Result<(), String> {
    let placed = tokio::time::timeout(
        IN_PLACE_WITHIN,
        balancer.wait_for(|s| s.maintenance_in_place(wanted)),
    )
    .await
    .is_ok_and(|seen| seen.is_ok());
    if placed {
        return Ok(());
    }
    Err(balancer
        .borrow()
        .maintenance_error
        .clone()
        .unwrap_or_else(|| {
            format!(
                "the balancer loop did not apply it within {}s",
                IN_PLACE_WITHIN.as_secs()
            )
        }))
}

/// Maintenance mode that Triad turns on and off itself around a piece of work (a quiesced
/// backup, `triadctl backup now --quiesce`): no client request reaches the app meanwhile,
/// not even the operator's (the allow list is empty), and cluster jobs pause. It never takes
/// over an operator's maintenance: when maintenance is already on, it is left as it is.
#[derive(Debug, Clone)]
pub struct Quiesce {
    store: Arc<MaintenanceStore>,
    balancer: Option<watch::Receiver<BalancerStatus>>,
}

impl Quiesce {
    pub fn new(
        store: Arc<MaintenanceStore>,
        balancer: Option<watch::Receiver<BalancerStatus>>,
    ) -> Quiesce {
        Quiesce { store, balancer }
    }

    /// Turns maintenance mode on with `message` and waits until the balancer has it;
    /// `Ok(None)` when it was on already (then [`Quiesce::end`] has nothing to do). On an
    /// error maintenance is off again (as it was).
    pub async fn begin(&self, message: &str) -> Result<Option<Maintenance>, String> {
        if self.store.wanted().is_some() {
            return Ok(None);
        }
        let Some(mut balancer) = self.balancer.clone() else {
            return Err(
                "no balancer is configured, so clients cannot be kept away from the app".into(),
            );
        };
        let ours = Maintenance {
            message: message.to_string(),
            retry_after_secs: 60,
            allow: Vec::new(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            bypass: new_bypass_token().map_err(|e| format!("making the bypass token: {e}"))?,
        };
        self.store.set(Some(ours.clone()))?;
        if let Err(why) = wait_in_place(&mut balancer, Some(&ours)).await {
            let _ = self.store.set(None);
            return Err(format!(
                "the balancer did not put maintenance mode in place: {why}"
            ));
        }
        Ok(Some(ours))
    }

    /// Turns `ours` off and waits until the balancer has it off; maintenance that is no
    /// longer `ours` (an operator turned it off or on anew meanwhile) is left alone.
    pub async fn end(&self, ours: &Maintenance) -> Result<(), String> {
        if self.store.wanted().as_ref() != Some(ours) {
            return Ok(());
        }
        self.store.set(None)?;
        match self.balancer.clone() {
            Some(mut balancer) => wait_in_place(&mut balancer, None).await.map_err(|why| {
                format!("maintenance mode is off, but the balancer still has it in place: {why}")
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A balancer loop stand-in that puts in place whatever is wanted, when `applies`.
    fn balancer(store: &MaintenanceStore, applies: bool) -> watch::Receiver<BalancerStatus> {
        let (tx, rx) = watch::channel(BalancerStatus::default());
        let mut wanted = store.watch();
        tokio::spawn(async move {
            loop {
                let now = wanted.borrow_and_update().clone();
                tx.send_modify(|s| {
                    s.maintenance = now;
                    s.maintenance_applied = applies;
                    s.maintenance_error = (!applies).then(|| "haproxy: refused".to_string());
                });
                if wanted.changed().await.is_err() {
                    return;
                }
            }
        });
        rx
    }

    #[tokio::test]
    async fn a_quiesce_turns_maintenance_on_for_everyone_and_off_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MaintenanceStore::open(dir.path()).unwrap());
        let quiesce = Quiesce::new(store.clone(), Some(balancer(&store, true)));
        let ours = quiesce
            .begin("backing up")
            .await
            .unwrap()
            .expect("turned on");
        assert_eq!(store.wanted().as_ref(), Some(&ours));
        assert!(ours.allow.is_empty(), "nobody passes: {ours:?}");
        assert_eq!(ours.message, "backing up");
        quiesce.end(&ours).await.unwrap();
        assert_eq!(store.wanted(), None);
        assert_eq!(
            MaintenanceStore::open(dir.path()).unwrap().wanted(),
            None,
            "off durably too"
        );
    }

    #[tokio::test]
    async fn a_quiesce_never_takes_over_an_operators_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MaintenanceStore::open(dir.path()).unwrap());
        let quiesce = Quiesce::new(store.clone(), Some(balancer(&store, true)));
        let operators = Maintenance {
            message: "Upgrading".into(),
            retry_after_secs: 120,
            allow: vec!["10.0.0.9".parse().unwrap()],
            since: 1,
            bypass: "00ff".into(),
        };
        store.set(Some(operators.clone())).unwrap();
        assert_eq!(quiesce.begin("backing up").await.unwrap(), None);
        assert_eq!(store.wanted().as_ref(), Some(&operators));
        // on during the backup, the operator turned it off and on anew: left alone
        store.set(None).unwrap();
        let ours = quiesce.begin("backing up").await.unwrap().unwrap();
        store.set(Some(operators.clone())).unwrap();
        quiesce.end(&ours).await.unwrap();
        assert_eq!(store.wanted(), Some(operators));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiesce_the_balancer_cannot_apply_is_refused_and_left_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MaintenanceStore::open(dir.path()).unwrap());
        let quiesce = Quiesce::new(store.clone(), Some(balancer(&store, false)));
        let error = quiesce.begin("backing up").await.unwrap_err();
        assert!(error.contains("haproxy: refused"), "{error}");
        assert_eq!(store.wanted(), None, "maintenance is off again");
        let without = Quiesce::new(store.clone(), None);
        let error = without.begin("backing up").await.unwrap_err();
        assert!(error.contains("no balancer"), "{error}");
        assert_eq!(store.wanted(), None);
    }
}
