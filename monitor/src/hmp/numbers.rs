//! Sizes (`o` arguments) and decimal numbers (`T` arguments) as QEMU reads them.

/// `qemu_strtosz_MiB`: a size with an optional suffix (`B`, `K`, `M`, `G`, `T`, `P`, `E`, any case;
/// 1024-based) and **MiB when there is none**, as QEMU 7.2's HMP uses it (`block_resize d 2` means
/// 2 MiB). Decimal with an optional fraction (`1.5G`), or hex (`0x10`, no fraction or suffix).
/// Returns the value and the bytes used; `None` for a malformed or out-of-range size.
pub fn strtosz_mib(s: &[u8]) -> Option<(u64, usize)> {
    const UNIT: u128 = 1024;
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut end = digits;
    let mut val: u128;
    let mut frac: f64 = 0.0;
    if s[..digits] == *b"0" && matches!(s.get(1), Some(b'x' | b'X')) {
        let hex = s[2..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex == 0 {
            return None;
        }
        val = u128::from(u64::from_str_radix(std::str::from_utf8(&s[2..2 + hex]).ok()?, 16).ok()?);
        end = 2 + hex;
        // Hex takes neither a fraction nor a suffix.
        if s.get(end) == Some(&b'.') || s.get(end).is_some_and(|&c| suffix_mul(c, UNIT).is_some()) {
            return None;
        }
    } else {
        val = u128::from(std::str::from_utf8(&s[..digits]).ok()?.parse::<u64>().ok()?);
        if s.get(end) == Some(&b'.') {
            let fdigits = s[end + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if matches!(s.get(end + 1 + fdigits), Some(b'e' | b'E')) {
                return None;
            }
            let text = std::str::from_utf8(&s[end..end + 1 + fdigits]).ok()?;
            frac = format!("0{text}").parse::<f64>().ok()?;
            end += 1 + fdigits;
        }
    }
    let mul = match s.get(end).and_then(|&c| suffix_mul(c, UNIT)) {
        Some(m) => {
            end += 1;
            m
        }
        None => UNIT * UNIT,
    };
    if mul == 1 && frac != 0.0 {
        return None;
    }
    // Exact enough: the fraction has at most 53 significant bits, scaled by a power of two.
    let frac_part = (frac * mul as f64).round() as u128;
    val = val.checked_mul(mul)?.checked_add(frac_part)?;
    let val = u64::try_from(val).ok()?;
    Some((val, end))
}

fn suffix_mul(c: u8, unit: u128) -> Option<u128> {
    let exp = match c.to_ascii_uppercase() {
        b'B' => 0,
        b'K' => 1,
        b'M' => 2,
        b'G' => 3,
        b'T' => 4,
        b'P' => 5,
        b'E' => 6,
        _ => return None,
    };
    Some(unit.pow(exp))
}

/// `strtod` for the forms HMP users type: `[+-]digits[.digits][e[+-]digits]`, `inf`, `nan`.
/// Returns the value and the bytes used, or `None` if no number starts here.
pub fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let mut i = 0;
    if matches!(s.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let lower: Vec<u8> = s[i..].iter().take(8).map(u8::to_ascii_lowercase).collect();
    for word in ["infinity", "inf", "nan"] {
        if lower.starts_with(word.as_bytes()) {
            let end = i + word.len();
            let v = if word == "nan" { f64::NAN } else { f64::INFINITY };
            return Some((if s[0] == b'-' { -v } else { v }, end));
        }
    }
    let int = s[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        frac = s[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if int + frac > 0 {
            i += 1 + frac;
        }
    }
    if int + frac == 0 {
        return None;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(s.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp = s[j..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp > 0 {
            i = j + exp;
        }
    }
    let v = std::str::from_utf8(&s[..i]).ok()?.parse::<f64>().ok()?;
    Some((v, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sz(s: &str) -> Option<(u64, usize)> {
        strtosz_mib(s.as_bytes())
    }

    #[test]
    fn sizes_default_to_mib() {
        assert_eq!(sz("2"), Some((2 << 20, 1)));
        assert_eq!(sz("3k"), Some((3072, 2)));
        assert_eq!(sz("1G"), Some((1 << 30, 2)));
        assert_eq!(sz("512B"), Some((512, 4)));
        assert_eq!(sz("1.5M"), Some((3 << 19, 4)));
        assert_eq!(sz("0x400000"), Some((0x40_0000 << 20, 8)), "hex is scaled by the default unit");
        assert_eq!(sz("5X"), Some((5 << 20, 1)), "an unknown suffix is left for the caller");
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(sz("-1"), None);
        assert_eq!(sz(""), None);
        assert_eq!(sz("x"), None);
        assert_eq!(sz("0x10k"), None);
        assert_eq!(sz("1.5e3"), None);
        assert_eq!(sz("1.5B"), None);
        assert_eq!(sz("16E"), None, "overflows 64 bits");
        assert_eq!(sz("99999999999999999999999"), None);
    }

    #[test]
    fn doubles() {
        assert_eq!(strtod(b"1.5ms"), Some((1.5, 3)));
        assert_eq!(strtod(b"-2e3 "), Some((-2000.0, 4)));
        assert_eq!(strtod(b".5"), Some((0.5, 2)));
        assert_eq!(strtod(b"x"), None);
        assert!(strtod(b"nan").is_some_and(|(v, _)| v.is_nan()));
        assert_eq!(strtod(b"5e"), Some((5.0, 1)));
    }
}
