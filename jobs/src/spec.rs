//! The shape of a job's fields, checked alike by the coordinator (its config) and the
//! agent (every offer). Whether the user and the program exist is the node's answer.

/// The command: at least the program, no empty program, no NUL byte (argv goes to
/// `execve` through systemd, never through a shell).
pub fn check_argv(argv: &[String]) -> Result<(), String> {
    match argv.first() {
        None => return Err("empty: give at least the program".into()),
        Some(program) if program.is_empty() => return Err("the program is an empty string".into()),
        Some(_) => {}
    }
    if let Some(arg) = argv.iter().find(|arg| arg.contains('\0')) {
        return Err(format!("{arg:?} contains a NUL byte"));
    }
    Ok(())
}

/// An OS user name as systemd's `User=` takes it (no spaces, ':', '/', control
/// characters or leading '-'; at most 64 bytes).
pub fn check_user(user: &str) -> Result<(), String> {
    let ok = !user.is_empty()
        && user.len() <= 64
        && !user.starts_with('-')
        && !user
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '/');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{user:?} is not a user name (an OS user of the nodes, e.g. \"www-data\")"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_and_user_shapes() {
        let argv = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_argv(&argv(&["/usr/bin/php", "cron.php"])).is_ok());
        assert!(check_argv(&argv(&[])).unwrap_err().contains("empty"));
        assert!(check_argv(&argv(&["", "x"])).is_err());
        assert!(check_argv(&argv(&["a", "b\0"]))
            .unwrap_err()
            .contains("NUL"));
        assert!(check_user("www-data").is_ok());
        for bad in ["", "-x", "a b", "a:b", "a/b", &"x".repeat(65)] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
    }
}
