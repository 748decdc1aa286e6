//! HMP's integer expressions (`i`, `l` and `M` arguments): C-like arithmetic on 64-bit integers,
//! with QEMU's grammar and error texts (monitor/hmp.c `get_expr`).
//!
//! ```text
//! sum   := logic (('+' | '-') logic)*
//! logic := prod (('&' | '|' | '^') prod)*
//! prod  := unary (('*' | '/' | '%') unary)*
//! unary := ('+' | '-' | '~') unary | '(' sum ')' | '\'' char '\'' | '$' register | number
//! ```
//! Numbers follow `strtoull(.., 0)`: `0x` hex, leading `0` octal, else decimal. Register variables
//! (`$eax`) are not available here and report `unknown register`. Nesting is capped so that hostile
//! input cannot exhaust the stack.

use super::args::is_space;

/// Parentheses and unary operators nested deeper than this are refused.
const MAX_DEPTH: usize = 256;

/// Evaluates the expression starting at `*pos` (leading spaces skipped) and leaves `*pos` after it,
/// past trailing spaces.
pub fn get_expr(line: &[u8], pos: &mut usize) -> Result<i64, String> {
    let mut p = Parser { s: line, pos: *pos, depth: 0 };
    p.skip_spaces();
    let r = p.sum();
    *pos = p.pos;
    r
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> u8 {
        self.s.get(self.pos).copied().unwrap_or(0)
    }

    fn skip_spaces(&mut self) {
        while is_space(self.peek()) {
            self.pos += 1;
        }
    }

    /// QEMU's `next()`: step over one character and the spaces after it.
    fn next(&mut self) {
        if self.peek() != 0 {
            self.pos += 1;
            self.skip_spaces();
        }
    }

    fn sum(&mut self) -> Result<i64, String> {
        let mut val = self.logic()?;
        loop {
            let op = self.peek();
            if op != b'+' && op != b'-' {
                return Ok(val);
            }
            self.next();
            let val2 = self.logic()?;
            val = if op == b'+' { val.wrapping_add(val2) } else { val.wrapping_sub(val2) };
        }
    }

    fn logic(&mut self) -> Result<i64, String> {
        let mut val = self.prod()?;
        loop {
            let op = self.peek();
            if !matches!(op, b'&' | b'|' | b'^') {
                return Ok(val);
            }
            self.next();
            let val2 = self.prod()?;
            val = match op {
                b'&' => val & val2,
                b'|' => val | val2,
                _ => val ^ val2,
            };
        }
    }

    fn prod(&mut self) -> Result<i64, String> {
        let mut val = self.unary()?;
        loop {
            let op = self.peek();
            if !matches!(op, b'*' | b'/' | b'%') {
                return Ok(val);
            }
            self.next();
            let val2 = self.unary()?;
            val = match op {
                b'*' => val.wrapping_mul(val2),
                _ if val2 == 0 => return Err("division by zero".into()),
                b'/' => val.wrapping_div(val2),
                _ => val.wrapping_rem(val2),
            };
        }
    }

    fn unary(&mut self) -> Result<i64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("expression too deeply nested".into());
        }
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<i64, String> {
        match self.peek() {
            b'+' => {
                self.next();
                self.unary()
            }
            b'-' => {
                self.next();
                Ok(self.unary()?.wrapping_neg())
            }
            b'~' => {
                self.next();
                Ok(!self.unary()?)
            }
            b'(' => {
                self.next();
                let n = self.sum()?;
                if self.peek() != b')' {
                    return Err("')' expected".into());
                }
                self.next();
                Ok(n)
            }
            b'\'' => {
                self.pos += 1;
                let c = self.peek();
                if c == 0 {
                    return Err("character constant expected".into());
                }
                self.pos += 1;
                if self.peek() != b'\'' {
                    return Err("missing terminating ' character".into());
                }
                self.next();
                Ok(i64::from(c))
            }
            b'$' => {
                self.pos += 1;
                while matches!(self.peek(), b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.') {
                    self.pos += 1;
                }
                self.skip_spaces();
                Err("unknown register".into())
            }
            0 => Err("unexpected end of expression".into()),
            _ => {
                let (n, used) = strtoull(&self.s[self.pos..])?;
                if used == 0 {
                    return Err(format!("invalid char '{}' in expression", char::from(self.peek())));
                }
                self.pos += used;
                self.skip_spaces();
                // strtoull's result reinterpreted as a signed 64-bit value, as in C.
                Ok(n as i64)
            }
        }
    }
}

/// `strtoull(s, &end, 0)` without leading spaces or sign: the value and the bytes used (0 if no
/// number), or `number too large` on overflow.
fn strtoull(s: &[u8]) -> Result<(u64, usize), String> {
    let (radix, start) = match s {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, 2),
        [b'0', ..] => (8, 0),
        _ => (10, 0),
    };
    let mut n: u64 = 0;
    let mut i = start;
    let mut overflow = false;
    while let Some(d) = s.get(i).and_then(|&c| char::from(c).to_digit(radix)) {
        match n.checked_mul(u64::from(radix)).and_then(|v| v.checked_add(u64::from(d))) {
            Some(v) => n = v,
            None => overflow = true,
        }
        i += 1;
    }
    if overflow {
        return Err("number too large".into());
    }
    Ok((n, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(s: &str) -> Result<(i64, usize), String> {
        let mut pos = 0;
        get_expr(s.as_bytes(), &mut pos).map(|v| (v, pos))
    }

    #[test]
    fn arithmetic_and_precedence() {
        assert_eq!(eval("1+2*3").unwrap().0, 7);
        assert_eq!(eval(" (1+2)*3 ").unwrap(), (9, 9));
        assert_eq!(eval("0x10 | 1").unwrap().0, 17);
        assert_eq!(eval("010").unwrap().0, 8);
        assert_eq!(eval("-1").unwrap().0, -1);
        assert_eq!(eval("~0").unwrap().0, -1);
        assert_eq!(eval("'a'").unwrap().0, 97);
        assert_eq!(eval("7 % 4 - 1").unwrap().0, 2);
        // `1 2`: the expression ends after `1 `; the caller reports the rest.
        assert_eq!(eval("1 2").unwrap(), (1, 2));
        // `0x` without digits is the number 0 followed by `x`.
        assert_eq!(eval("0x").unwrap(), (0, 1));
    }

    #[test]
    fn errors_match_qemu() {
        assert_eq!(eval("").unwrap_err(), "unexpected end of expression");
        assert_eq!(eval("1+").unwrap_err(), "unexpected end of expression");
        assert_eq!(eval("(1").unwrap_err(), "')' expected");
        assert_eq!(eval("'a").unwrap_err(), "missing terminating ' character");
        assert_eq!(eval("99999999999999999999999").unwrap_err(), "number too large");
        assert_eq!(eval("1/0").unwrap_err(), "division by zero");
        assert_eq!(eval("x").unwrap_err(), "invalid char 'x' in expression");
        assert_eq!(eval("$eax").unwrap_err(), "unknown register");
    }

    #[test]
    fn hostile_nesting_is_refused() {
        let deep = "(".repeat(100_000);
        assert_eq!(eval(&deep).unwrap_err(), "expression too deeply nested");
        let negs = "-".repeat(100_000);
        assert_eq!(eval(&negs).unwrap_err(), "expression too deeply nested");
        assert_eq!(eval(&format!("{}1{}", "(".repeat(200), ")".repeat(200))).unwrap().0, 1);
        assert_eq!(eval("-9223372036854775807-2").unwrap().0, i64::MAX);
    }
}
