//! A replica-3 GlusterFS volume mounted in every node: an isolated node's mount stops
//! answering while the others keep working, and after the link heals `gluster volume heal`
//! brings heal info back to 0 entries.

use std::time::{Duration, Instant};

use triad_tests::formation::{self, DOCROOT};
use triad_tests::wait::{self, Poll};
use triad_tests::{faults, LabError, Testbed};

#[test]
fn testbed_gluster_partition_and_heal() -> anyhow::Result<()> {
    let tb = Testbed::for_test(3)?;
    let (n1, n2, n3) = (&tb.nodes[0], &tb.nodes[1], &tb.nodes[2]);

    formation::gluster_form(&tb)?;
    let vs = formation::gluster(
        n1,
        &["volume", "get", formation::VOLUME, "network.ping-timeout"],
    )?;
    assert!(
        vs.contains("network.ping-timeout") && vs.contains(" 5"),
        "{vs}"
    );

    n1.sh(&format!("echo hello-from-n1 > {DOCROOT}/a.txt"))?;
    assert_eq!(
        n2.exec(&["cat", &format!("{DOCROOT}/a.txt")])?,
        "hello-from-n1"
    );

    // the probe used below must succeed while n3 is connected, or the check proves nothing
    let probe = format!("ls {DOCROOT} >/dev/null && echo x > {DOCROOT}/probe-n3");
    n3.exec_limit(&["sh", "-c", &probe], Duration::from_secs(8))?;

    faults::isolate(n3)?;
    let cut = Instant::now();
    // the isolated node's mount must stop answering: an ls or a write either errors
    // (client quorum lost, ENOTCONN) or does not finish within its limit
    let how = wait::until(
        "the isolated n3's mount to stop answering",
        Duration::from_secs(45),
        Duration::from_millis(500),
        || match n3.exec_output(&["sh", "-c", &probe], Duration::from_secs(8)) {
            Ok(o) if o.status.success() => Ok(Poll::Pending("ls + write still succeed".into())),
            // `timeout` inside the node exits 124 (or 137 after -k) when it had to kill
            Ok(o) if matches!(o.status.code(), Some(124) | Some(137)) => {
                Ok(Poll::Ready("timed out".to_string()))
            }
            Ok(o) => Ok(Poll::Ready(format!(
                "failed ({}): {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))),
            Err(LabError::CommandTimeout { .. }) => Ok(Poll::Ready("timed out".into())),
            Err(e) => Err(e),
        },
    )?;
    eprintln!(
        "n3's mount stopped answering {:.2?} after the cut: {how}",
        cut.elapsed()
    );

    // the majority keeps working (the first write may stall up to ping-timeout)
    n1.exec_limit(
        &[
            "sh",
            "-c",
            &format!("echo during-partition > {DOCROOT}/b.txt"),
        ],
        Duration::from_secs(30),
    )?;
    assert_eq!(
        n2.exec_limit(
            &["cat", &format!("{DOCROOT}/b.txt")],
            Duration::from_secs(30)
        )?,
        "during-partition"
    );
    n2.exec_limit(
        &["sh", "-c", &format!("echo from-n2 > {DOCROOT}/c.txt")],
        Duration::from_secs(30),
    )?;
    assert_eq!(n1.exec(&["cat", &format!("{DOCROOT}/c.txt")])?, "from-n2");

    faults::heal(n3)?;
    formation::wait_bricks_online(n1, 3, Duration::from_secs(60))?;
    eprintln!(
        "heal info before `volume heal`: {:?}",
        formation::heal_info(n1)?
    );
    // no self-heal starts by itself after a partition without RST (testbed.md §9.12)
    wait::until_default(
        "gluster volume heal www to be accepted",
        Duration::from_secs(60),
        || {
            Ok(
                match formation::gluster(n1, &["volume", "heal", formation::VOLUME]) {
                    Ok(_) => Poll::Ready(()),
                    Err(e) => Poll::Pending(e.to_string()),
                },
            )
        },
    )?;
    for n in [n1, n2, n3] {
        let t = formation::wait_healed(n, 3, Duration::from_secs(120))?;
        eprintln!("heal info on {} shows 0 entries after {t:.2?}", n.name);
    }
    let b = wait::until_value(
        "n3 to read b.txt after the heal",
        Duration::from_secs(30),
        || {
            n3.exec_limit(
                &["cat", &format!("{DOCROOT}/b.txt")],
                Duration::from_secs(8),
            )
        },
        |v| v == "during-partition",
    )?;
    assert_eq!(b, "during-partition");

    tb.teardown_and_verify()?;
    Ok(())
}
