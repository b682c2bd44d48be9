//! Parsing the sizes users type for `--log-max-size`: `10MiB`, `512K`, `1G`, `4096`.
//!
//! K, M and G are powers of 1024 with or without `i`/`B` (`10M` = `10MiB` = `10MB`): a
//! logfile bound is not a place where the difference matters, and accepting every spelling
//! is kinder than an error.

/// Parse a size in bytes. A bare number is bytes.
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size; use e.g. 10MiB, 512K, 4096"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("'{text}': unknown unit; use B, KiB, MiB or GiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("'{text}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn sizes() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("10MiB"), Ok(10 << 20));
        assert_eq!(parse("10M"), Ok(10 << 20));
        assert_eq!(parse("2 KiB"), Ok(2048));
        assert_eq!(parse("1g"), Ok(1 << 30));
        assert_eq!(parse("0"), Ok(0));
        assert!(parse("").is_err());
        assert!(parse("ten").is_err());
        assert!(parse("1.5M").is_err());
        assert!(parse("5T").is_err());
    }
}
