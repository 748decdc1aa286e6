//! Sizes with qemu-img's suffixes: `512`, `64k`, `1.5G`, `10M`, `1T` (binary units).

/// Parses a size; `None` when malformed or too large (qemu-img then prints its
/// "Invalid image size specified" message).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let mult: u64 = match suffix {
        "" | "b" | "B" => 1,
        "k" | "K" => 1 << 10,
        "m" | "M" => 1 << 20,
        "g" | "G" => 1 << 30,
        "t" | "T" => 1 << 40,
        "p" | "P" => 1 << 50,
        "e" | "E" => 1 << 60,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    if num.contains('.') {
        let v: f64 = num.parse().ok()?;
        let r = v * mult as f64;
        if !(0.0..9.2e18).contains(&r) {
            return None;
        }
        return Some(r as u64);
    }
    let v: u64 = num.parse().ok()?;
    let r = v.checked_mul(mult)?;
    (r <= i64::MAX as u64).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("1Q"), None);
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_size("16E"), None);
    }
}
