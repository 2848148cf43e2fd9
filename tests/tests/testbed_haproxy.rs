//! Apache in three nodes behind HAProxy on the host: requests reach every node; a node whose
//! apache2 stops is marked DOWN and gets no more requests, and no request fails.

use std::collections::BTreeMap;
use std::time::Duration;

use triad_tests::haproxy::LISTEN;
use triad_tests::{faults, formation, http, Testbed};

fn fetch_many(n: usize) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut served = BTreeMap::new();
    for i in 0..n {
        let r = http::get(LISTEN, "/", Duration::from_secs(10))?;
        anyhow::ensure!(
            r.status == 200,
            "request {i}: HTTP {} ({})",
            r.status,
            r.body
        );
        *served.entry(r.body.trim().to_string()).or_insert(0) += 1;
    }
    Ok(served)
}

#[test]
fn testbed_haproxy_failover() -> anyhow::Result<()> {
    let mut tb = Testbed::for_test(3)?;
    formation::apache_form(&tb)?;
    tb.start_haproxy()?;
    let hp = tb.haproxy()?;
    hp.wait_all_up(Duration::from_secs(30))?;

    let served = fetch_many(30)?;
    eprintln!("served before: {served:?}");
    let names: Vec<&str> = served.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["n1", "n2", "n3"],
        "every node must serve: {served:?}"
    );

    let n2 = tb.node("n2")?;
    faults::stop_unit(n2, "apache2")?;
    let t = hp.wait_status("n2", "DOWN", Duration::from_secs(15))?;
    eprintln!("HAProxy marked n2 DOWN {t:.2?} after apache2 stopped");
    let state = hp.admin("show servers state be_web")?;
    let row = state
        .lines()
        .find(|l| l.split_whitespace().nth(3) == Some("n2"))
        .unwrap_or_default();
    assert_eq!(
        row.split_whitespace().nth(5),
        Some("0"),
        "n2 op_state must be 0 (stopped): {row}"
    );
    let before = hp
        .stats()?
        .into_iter()
        .find(|s| s.name == "n2")
        .map(|s| s.total);

    let served = fetch_many(60)?;
    eprintln!("served after: {served:?}");
    assert!(
        !served.contains_key("n2"),
        "n2 must get no requests: {served:?}"
    );
    assert_eq!(served.values().sum::<usize>(), 60);
    let after = hp
        .stats()?
        .into_iter()
        .find(|s| s.name == "n2")
        .map(|s| s.total);
    assert_eq!(before, after, "n2's session counter must not move");

    tb.teardown_and_verify()?;
    Ok(())
}
