//! Byte sizes: `1048576`, `512K`, `512KiB`, `1M`, `1MiB`, `2G` (every unit a power of 1024, any
//! case; `KB`/`MB`/`GB` are read as the same powers of 1024, as `ls` and `du` do).

/// Parses a size in bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let bad = || {
        "expected a size like 1048576, 512K, 1MiB or 2G (units K, M, G: powers of 1024)".to_owned()
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(bad()),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| "too large".to_owned())
}

/// `1MiB`, `512KiB`, `1000B`: the shortest exact form.
pub fn show(bytes: u64) -> String {
    for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("1048576"), Ok(1 << 20));
        assert_eq!(parse("512K"), Ok(512 << 10));
        assert_eq!(parse("1MiB"), Ok(1 << 20));
        assert_eq!(parse("1mb"), Ok(1 << 20));
        assert_eq!(parse("2 G"), Ok(2 << 30));
        for bad in [
            "",
            "M",
            "1.5M",
            "-1",
            "1T",
            "1 MiBs",
            "99999999999999999999",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(show(1 << 20), "1MiB");
        assert_eq!(show(1500), "1500B");
    }
}
