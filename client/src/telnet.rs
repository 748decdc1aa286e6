//! Telnet byte handling: strip the server's option negotiation (`IAC WILL ECHO` ...) from the
//! input, and double 0xFF bytes on output.

const IAC: u8 = 0xFF;
const SB: u8 = 0xFA;
const SE: u8 = 0xF0;
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Data,
    /// Saw IAC.
    Command,
    /// Saw IAC WILL/WONT/DO/DONT: one option byte follows.
    Option,
    /// Inside IAC SB ... IAC SE.
    Sub,
    /// Saw IAC inside a subnegotiation.
    SubIac,
}

/// Stateful filter: sequences may be split across reads.
#[derive(Debug, Default)]
pub struct TelnetFilter {
    state: State,
}

impl TelnetFilter {
    /// Removes telnet commands from `input`, appending the data bytes to `out`.
    pub fn filter(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Command,
                (State::Data, _) => {
                    out.push(b);
                    State::Data
                }
                (State::Command, IAC) => {
                    out.push(IAC);
                    State::Data
                }
                (State::Command, WILL..=DONT) => State::Option,
                (State::Command, SB) => State::Sub,
                // NOP, GA, BREAK and the other two-byte commands carry no data.
                (State::Command, _) => State::Data,
                (State::Option, _) => State::Data,
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, _) => State::Sub,
                (State::SubIac, SE) => State::Data,
                (State::SubIac, _) => State::Sub,
            };
        }
    }
}

/// Escapes data for a telnet peer (0xFF becomes IAC IAC).
pub fn escape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_qemu_negotiation() {
        let mut f = TelnetFilter::default();
        let mut out = Vec::new();
        f.filter(b"\xff\xfb\x01\xff\xfb\x03\xff\xfb\x00\xff\xfd\x00QEMU", &mut out);
        assert_eq!(out, b"QEMU");
    }

    #[test]
    fn handles_split_sequences_and_escapes() {
        let mut f = TelnetFilter::default();
        let mut out = Vec::new();
        f.filter(b"a\xff", &mut out);
        f.filter(b"\xfb", &mut out);
        f.filter(b"\x01b\xff\xffc\xff\xfa\x18\x01\xff\xf0d\xff\xf3e", &mut out);
        assert_eq!(out, b"ab\xffcde");
    }

    #[test]
    fn escape_doubles_iac() {
        assert_eq!(escape(b"a\xffb"), b"a\xff\xffb");
    }
}
