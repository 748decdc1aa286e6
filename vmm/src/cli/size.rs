//! QEMU's size syntax (`qemu_strtosz`): a number, optionally with a fraction, and a suffix
//! B/K/M/G/T/P/E (case-insensitive, powers of 1024).

/// Parses `s`; a bare number is multiplied by `default_unit` (1 for bytes, 1 MiB for `-m`).
pub fn parse_size(s: &str, default_unit: u64) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return Err("invalid size".into());
    }
    let unit: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" => default_unit,
        "b" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        "e" => 1 << 60,
        _ => return Err("Unknown unit suffix".into()),
    };
    let bytes = if num.contains('.') {
        let f: f64 = num.parse().map_err(|_| "invalid size".to_string())?;
        let v = f * unit as f64;
        if !v.is_finite() || v >= u64::MAX as f64 {
            return Err("Value exceeds the maximum size".into());
        }
        v as u64
    } else {
        let n: u64 = num.parse().map_err(|_| "invalid size".to_string())?;
        n.checked_mul(unit).ok_or_else(|| "Value exceeds the maximum size".to_string())?
    };
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        const M: u64 = 1 << 20;
        assert_eq!(parse_size("512", M), Ok(512 * M));
        assert_eq!(parse_size("512M", M), Ok(512 * M));
        assert_eq!(parse_size("1G", M), Ok(1024 * M));
        assert_eq!(parse_size("1.5g", M), Ok(1536 * M));
        assert_eq!(parse_size("64k", 1), Ok(65536));
        assert_eq!(parse_size("10", 1), Ok(10));
        assert!(parse_size("12X", 1).is_err());
        assert!(parse_size("", 1).is_err());
        assert!(parse_size("99999999999E", 1).is_err());
    }
}
