//! Removing terminal escape sequences from an HMP server's output (QEMU's readline redraws the
//! echoed line with `ESC [ K`, `ESC [ D`, ...).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Text,
    Esc,
    /// Inside `ESC [` ... final byte.
    Csi,
}

/// Stateful stripper: a sequence may be split across reads.
#[derive(Debug, Default)]
pub struct AnsiStripper {
    state: State,
}

impl AnsiStripper {
    /// Appends the text of `input` without escape sequences to `out`.
    pub fn strip(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Text, 0x1b) => State::Esc,
                (State::Text, 0x9b) => State::Csi,
                (State::Text, _) => {
                    out.push(b);
                    State::Text
                }
                (State::Esc, b'[') => State::Csi,
                // ESC O x (SS3) and other two-byte sequences: drop the next byte.
                (State::Esc, b'O') => State::Esc,
                (State::Esc, _) => State::Text,
                (State::Csi, 0x40..=0x7e) => State::Text,
                (State::Csi, _) => State::Csi,
            };
        }
    }
}

/// Strips a complete string at once.
#[cfg(test)]
pub fn strip_str(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    AnsiStripper::default().strip(s.as_bytes(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_qemu_readline_echo() {
        let raw = "h\x1b[K\x1b[Dhe\x1b[K\x1b[D\x1b[Dhel\x1b[K\x1b[D\x1b[D\x1b[Dhelp\x1b[K\r\n";
        assert_eq!(strip_str(raw), "hhehelhelp\r\n");
    }

    #[test]
    fn split_sequences() {
        let mut s = AnsiStripper::default();
        let mut out = Vec::new();
        s.strip(b"a\x1b", &mut out);
        s.strip(b"[1", &mut out);
        s.strip(b"0Kb\x1bOHc", &mut out);
        assert_eq!(out, b"abc");
    }
}
