//! Galera formed by hand through the harness; a crashed node leaves a Primary pair behind and
//! rejoins when started again.

use std::time::Duration;

use triad_tests::formation::{self, sql, wait_galera};
use triad_tests::{faults, Testbed};

#[test]
fn testbed_galera_crash_and_rejoin() -> anyhow::Result<()> {
    let tb = Testbed::for_test(3)?;
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);

    formation::galera_configure(&tb)?;
    formation::galera_bootstrap(n1)?;
    formation::galera_join(n2, 2)?;
    formation::galera_join(n3, 3)?;
    for n in &tb.nodes {
        wait_galera(n, 3, Duration::from_secs(30))?;
    }

    sql(
        n1,
        "CREATE DATABASE lab; CREATE TABLE lab.t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(32)); \
         INSERT INTO lab.t (v) VALUES ('from-n1')",
    )?;
    assert_eq!(sql(n2, "SELECT v FROM lab.t ORDER BY id")?, "from-n1");

    let took = faults::crash(n3)?;
    eprintln!("crash n3 took effect in {took:.2?}");
    for n in [n1, n2] {
        let t = wait_galera(n, 2, Duration::from_secs(30))?;
        let w = formation::wsrep(n)?;
        assert_eq!(w["wsrep_cluster_status"], "Primary", "{}", n.name);
        assert_eq!(w["wsrep_cluster_size"], "2", "{}", n.name);
        eprintln!("{} Primary with size 2 after {t:.2?}", n.name);
    }
    sql(n2, "INSERT INTO lab.t (v) VALUES ('from-n2-while-n3-down')")?;

    let took = faults::start(n3)?;
    eprintln!("n3 running again after {took:.2?}");
    for n in &tb.nodes {
        wait_galera(n, 3, Duration::from_secs(90))?;
    }
    assert_eq!(
        sql(n3, "SELECT v FROM lab.t ORDER BY id")?,
        "from-n1\nfrom-n2-while-n3-down"
    );

    tb.teardown_and_verify()?;
    Ok(())
}
