//! The donor side of a Galera state transfer, as processes: found and stopped when the
//! transfer has no receiver left (see [`super::DONOR_ORPHAN_LIMIT`]).
//!
//! mysqld runs the donor as `sh -c "wsrep_sst_METHOD --role 'donor' --address ..."`; the
//! script (bash) runs the transfer as a pipeline (`mariabackup --backup | socat ...`, or
//! rsync). Bash runs its signal traps only after the foreground pipeline ends, so a TERM to
//! the script alone waits on the very socat that blocks: the whole tree below the script is
//! signalled. The script's exit status tells mysqld the transfer failed, and the donor
//! returns to Synced; mysqld itself is never signalled.

use std::path::Path;
use std::time::Duration;

/// One process as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub argv: Vec<String>,
}

/// Pure: the donor side of a state-transfer script? Some argument names a `wsrep_sst_*`
/// program (directly, or as bash's script argument) and `--role donor` follows it. The
/// `sh -c` parent holds the whole command in one argument and does not match.
pub fn is_donor_script(argv: &[String]) -> bool {
    let Some(script) = argv.iter().position(|a| {
        !a.contains(char::is_whitespace)
            && a.rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("wsrep_sst_"))
    }) else {
        return false;
    };
    argv[script..]
        .windows(2)
        .any(|w| w[0] == "--role" && w[1] == "donor")
}

/// Pure: the donor scripts and every process below them, scripts first.
pub fn donor_tree(procs: &[Proc]) -> Vec<i32> {
    let mut tree: Vec<i32> = procs
        .iter()
        .filter(|p| is_donor_script(&p.argv))
        .map(|p| p.pid)
        .collect();
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for p in procs.iter().filter(|p| p.ppid == parent) {
            if !tree.contains(&p.pid) {
                tree.push(p.pid);
            }
        }
        i += 1;
    }
    tree
}

/// Pure: the parent pid from `/proc/PID/stat` (the field after the command name, which is
/// in parentheses and may itself hold spaces and parentheses).
pub fn parse_ppid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Every process of the agent's PID namespace (the node's).
pub fn processes(proc_dir: &Path) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let raw = std::fs::read(entry.path().join("cmdline")).ok()?;
            Some(Proc {
                pid,
                ppid: parse_ppid(&stat)?,
                argv: crate::exec::split_cmdline(&raw),
            })
        })
        .collect()
}

/// How long the donor's processes get after SIGTERM before SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);

/// Stops the donor scripts and everything below them: SIGTERM, then SIGKILL for what is
/// left after [`TERM_GRACE`]. Answers how many processes were signalled.
pub async fn stop_donor(proc_dir: &Path) -> u32 {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let tree = donor_tree(&processes(proc_dir));
    for pid in &tree {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + TERM_GRACE;
    while tokio::time::Instant::now() < deadline
        && tree
            .iter()
            .any(|pid| proc_dir.join(pid.to_string()).exists())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for pid in &tree {
        if proc_dir.join(pid.to_string()).exists() {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
    tree.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<String> {
        line.split(' ').map(String::from).collect()
    }

    fn p(pid: i32, ppid: i32, line: &str) -> Proc {
        Proc {
            pid,
            ppid,
            argv: argv(line),
        }
    }

    #[test]
    fn the_donor_script_is_recognised_in_its_forms() {
        assert!(is_donor_script(&argv(
            "/bin/bash -ue /usr//bin/wsrep_sst_mariabackup --role donor --address 10.214.0.13:4444/xtrabackup_sst//1 --socket /run/mysqld/mysqld.sock"
        )));
        assert!(is_donor_script(&argv(
            "wsrep_sst_rsync --role donor --address 10.214.0.13:4444/rsync_sst"
        )));
        // the joiner side, mysqld, the sh -c parent and a grep are not
        assert!(!is_donor_script(&argv(
            "/bin/bash -ue /usr/bin/wsrep_sst_mariabackup --role joiner --address 10.214.0.13"
        )));
        assert!(!is_donor_script(&argv(
            "/usr/sbin/mariadbd --wsrep-new-cluster"
        )));
        assert!(!is_donor_script(&[
            "sh".into(),
            "-c".into(),
            "wsrep_sst_rsync --role 'donor' --address '10.214.0.13:4444'".into()
        ]));
        assert!(!is_donor_script(&argv("grep --role donor wsrep_sst_rsync")));
    }

    #[test]
    fn the_tree_below_the_donor_script_is_signalled_and_nothing_above() {
        let procs = vec![
            p(1, 0, "/sbin/init"),
            p(100, 1, "/usr/sbin/mariadbd"),
            p(200, 100, "sh -c wsrep_sst"),
            p(
                201,
                200,
                "/bin/bash -ue /usr/bin/wsrep_sst_mariabackup --role donor --address x",
            ),
            p(202, 201, "mariabackup --backup --stream=xbstream"),
            p(203, 201, "socat -u stdio TCP:10.214.0.13:4444"),
            p(204, 203, "child-of-socat"),
            p(300, 1, "/usr/sbin/apache2"),
        ];
        assert_eq!(donor_tree(&procs), vec![201, 202, 203, 204]);
        assert!(donor_tree(&procs[..2]).is_empty());
    }

    #[test]
    fn ppid_is_read_past_a_command_name_with_spaces() {
        assert_eq!(parse_ppid("4242 (socat) S 4100 4242 1 0"), Some(4100));
        assert_eq!(parse_ppid("7 (a b) c)) R 1 7 7"), Some(1));
        assert_eq!(parse_ppid("garbage"), None);
    }

    #[test]
    fn this_test_process_is_listed_with_its_parent() {
        let procs = processes(Path::new("/proc"));
        let me = procs
            .iter()
            .find(|p| p.pid == std::process::id() as i32)
            .expect("the test process in /proc");
        assert!(me.ppid > 0);
    }
}
