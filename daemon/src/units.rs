//! Quantities in words for people, one rule for every daemon and triadctl (the status line
//! and `triadctl backup` say sizes the same way).

/// "1.2 GiB", "340 MiB", "12 KiB", "512 B": binary units, one decimal below 10.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_say_them() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(340 << 20), "340 MiB");
        assert_eq!(bytes((12 << 30) / 10), "1.2 GiB");
        assert_eq!(bytes(u64::MAX), "16777216 TiB");
    }
}
