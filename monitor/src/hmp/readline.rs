//! The HMP line editor, byte for byte as QEMU's `util/readline.c` behaves, so that terminals and
//! expect scripts see the same echo.
//!
//! Input bytes edit a line buffer; after each byte the editor redraws what changed the way QEMU
//! does: move the cursor back (`ESC[D` per column), print the whole line, erase to the end of the
//! line (`ESC[K`), then move the cursor to its place. Keys:
//!
//! | bytes | action |
//! |---|---|
//! | 32..=255 (except 127, 155) | insert at the cursor |
//! | `^A`, `ESC[1~`, `ESC OH` / `^E`, `ESC[4~`, `ESC OF` | start / end of line |
//! | `^D`, `ESC[3~` | delete under the cursor |
//! | `^H`, DEL (127) | delete before the cursor |
//! | `^W` | delete the word before the cursor |
//! | `^L` | clear the screen, redraw prompt and line |
//! | `^P`, `ESC[A` / `^N`, `ESC[B` | history back / forward (64 entries) |
//! | `ESC[D` / `ESC[C` | cursor left / right |
//! | TAB | completion (the session supplies the candidates) |
//! | `\r` or `\n` | execute the line (so `\r\n` runs it, then an empty line) |
//! | 155 | CSI, same as `ESC [` |
//!
//! Other control bytes are ignored. The line holds at most [`LINE_MAX`] bytes; more are dropped.
//! Output is produced with `\r\n` line ends, as the monitor converts QEMU's `\n`.

use std::collections::VecDeque;

/// The longest line (QEMU's `READLINE_CMD_BUF_SIZE`).
pub const LINE_MAX: usize = 4095;
/// History entries kept (QEMU's `READLINE_MAX_CMDS`).
pub const HISTORY_MAX: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    Norm,
    /// After ESC.
    Started,
    Csi,
    Ss3,
}

/// What the session must do after a byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    /// Run this line (already echoed and followed by `\r\n`), then show the prompt.
    Execute(Vec<u8>),
    /// Find completions for this text (the line up to the cursor), then call
    /// [`LineEditor::complete`].
    Complete(Vec<u8>),
}

/// One session's line editor.
pub struct LineEditor {
    prompt: &'static str,
    buf: Vec<u8>,
    index: usize,
    last_buf: Vec<u8>,
    last_index: usize,
    esc: Esc,
    esc_param: u32,
    history: VecDeque<Vec<u8>>,
    /// The history entry being shown (`None`: the line being typed).
    hist_entry: Option<usize>,
    out: Vec<u8>,
}

impl LineEditor {
    pub fn new(prompt: &'static str) -> Self {
        LineEditor {
            prompt,
            buf: Vec::new(),
            index: 0,
            last_buf: Vec::new(),
            last_index: 0,
            esc: Esc::Norm,
            esc_param: 0,
            history: VecDeque::new(),
            hist_entry: None,
            out: Vec::new(),
        }
    }

    /// Output produced so far (echo, redraws, prompts); the caller writes and clears it.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Appends text to the output, turning `\n` into `\r\n`.
    pub fn print(&mut self, text: &[u8]) {
        for &b in text {
            if b == b'\n' {
                self.out.push(b'\r');
            }
            self.out.push(b);
        }
    }

    /// Prints the prompt; the next redraw prints the whole line after it.
    pub fn show_prompt(&mut self) {
        let prompt = self.prompt;
        self.print(prompt.as_bytes());
        self.last_index = 0;
        self.last_buf.clear();
        self.esc = Esc::Norm;
    }

    /// Forgets the line being typed (QEMU's `readline_restart`).
    pub fn restart(&mut self) {
        self.buf.clear();
        self.index = 0;
    }

    /// The history, oldest first.
    pub fn history(&self) -> Vec<String> {
        self.history.iter().map(|h| String::from_utf8_lossy(h).into_owned()).collect()
    }

    /// Handles one input byte.
    pub fn handle_byte(&mut self, ch: u8) -> Action {
        let mut action = Action::None;
        match self.esc {
            Esc::Norm => match ch {
                1 => self.bol(),
                4 => self.delete_char(),
                5 => self.eol(),
                9 => return Action::Complete(self.buf[..self.index].to_vec()),
                12 => self.clear_screen(),
                10 | 13 => {
                    let line = std::mem::take(&mut self.buf);
                    self.add_history(&line);
                    self.print(b"\n");
                    self.index = 0;
                    self.last_buf.clear();
                    self.last_index = 0;
                    action = Action::Execute(line);
                }
                14 => self.history_down(),
                16 => self.history_up(),
                23 => self.backword(),
                27 => self.esc = Esc::Started,
                8 | 127 => self.backspace(),
                155 => {
                    self.esc = Esc::Csi;
                    self.esc_param = 0;
                }
                c if c >= 32 => self.insert(c),
                _ => {}
            },
            Esc::Started => {
                (self.esc, self.esc_param) = match ch {
                    b'[' => (Esc::Csi, 0),
                    b'O' => (Esc::Ss3, 0),
                    _ => (Esc::Norm, 0),
                };
            }
            Esc::Csi => {
                match ch {
                    b'A' | b'F' => self.history_up(),
                    b'B' | b'E' => self.history_down(),
                    b'D' => self.index = self.index.saturating_sub(1),
                    b'C' => self.index = (self.index + 1).min(self.buf.len()),
                    b'0'..=b'9' => {
                        self.esc_param =
                            self.esc_param.saturating_mul(10).saturating_add(u32::from(ch - b'0'));
                        self.update();
                        return Action::None;
                    }
                    b'~' => match self.esc_param {
                        1 => self.bol(),
                        3 => self.delete_char(),
                        4 => self.eol(),
                        _ => {}
                    },
                    _ => {}
                }
                self.esc = Esc::Norm;
            }
            Esc::Ss3 => {
                match ch {
                    b'F' => self.eol(),
                    b'H' => self.bol(),
                    _ => {}
                }
                self.esc = Esc::Norm;
            }
        }
        self.update();
        action
    }

    /// Applies completion candidates for the text given with [`Action::Complete`]: one candidate
    /// completes the word (and adds a space unless it ends in `/`); several are listed in columns,
    /// their common prefix is inserted, and the prompt and line are printed again.
    /// `prefix_len` is how many bytes of the word being completed were already typed.
    pub fn complete(&mut self, mut candidates: Vec<String>, prefix_len: usize) {
        match candidates.len() {
            0 => {}
            1 => {
                let c = candidates[0].as_bytes();
                for &b in c.iter().skip(prefix_len) {
                    self.insert(b);
                }
                if c.last().is_some_and(|&l| l != b'/') {
                    self.insert(b' ');
                }
            }
            _ => {
                candidates.sort();
                self.print(b"\n");
                let first = candidates[0].as_bytes();
                let mut max_prefix = first.len();
                let mut max_width = 0;
                for c in &candidates {
                    let c = c.as_bytes();
                    max_prefix = max_prefix.min(c.len());
                    max_prefix = first.iter().zip(c).take(max_prefix).take_while(|(a, b)| a == b).count();
                    max_width = max_width.max(c.len());
                }
                if max_prefix > prefix_len {
                    for &b in &first[prefix_len..max_prefix] {
                        self.insert(b);
                    }
                }
                let width = (max_width + 2).clamp(10, 80);
                let columns = 80 / width;
                for (i, c) in candidates.iter().enumerate() {
                    let line = format!("{c:<width$}");
                    self.print(line.as_bytes());
                    if (i + 1) % columns == 0 || i + 1 == candidates.len() {
                        self.print(b"\n");
                    }
                }
                self.show_prompt();
            }
        }
        self.update();
    }

    /// Redraws what changed since the last redraw (QEMU's `readline_update`).
    fn update(&mut self) {
        if self.buf != self.last_buf {
            for _ in 0..self.last_index {
                self.out.extend_from_slice(b"\x1b[D");
            }
            self.out.extend_from_slice(&self.buf);
            self.out.extend_from_slice(b"\x1b[K");
            self.last_buf.clone_from(&self.buf);
            self.last_index = self.buf.len();
        }
        if self.index != self.last_index {
            let seq: &[u8] = if self.index > self.last_index { b"\x1b[C" } else { b"\x1b[D" };
            for _ in 0..self.index.abs_diff(self.last_index) {
                self.out.extend_from_slice(seq);
            }
            self.last_index = self.index;
        }
    }

    fn insert(&mut self, ch: u8) {
        if self.buf.len() < LINE_MAX {
            self.buf.insert(self.index, ch);
            self.index += 1;
        }
    }

    fn bol(&mut self) {
        self.index = 0;
    }

    fn eol(&mut self) {
        self.index = self.buf.len();
    }

    fn delete_char(&mut self) {
        if self.index < self.buf.len() {
            self.buf.remove(self.index);
        }
    }

    fn backspace(&mut self) {
        if self.index > 0 {
            self.index -= 1;
            self.buf.remove(self.index);
        }
    }

    /// Deletes spaces before the cursor, then the word before them.
    fn backword(&mut self) {
        if self.index == 0 {
            return;
        }
        let mut start = self.index;
        while start > 0 && super::args::is_space(self.buf[start - 1]) {
            start -= 1;
        }
        while start > 0 && !super::args::is_space(self.buf[start - 1]) {
            start -= 1;
        }
        self.buf.drain(start..self.index);
        self.index = start;
    }

    fn clear_screen(&mut self) {
        self.out.extend_from_slice(b"\x1b[2J\x1b[1;1H");
        self.show_prompt();
    }

    fn add_history(&mut self, line: &[u8]) {
        if line.is_empty() {
            return;
        }
        if let Some(pos) = self.history.iter().position(|h| h == line) {
            self.history.remove(pos);
        }
        if self.history.len() == HISTORY_MAX {
            self.history.pop_front();
        }
        self.history.push_back(line.to_vec());
        self.hist_entry = None;
    }

    fn history_up(&mut self) {
        let current = match self.hist_entry {
            Some(0) => return,
            Some(i) => i,
            None => self.history.len(),
        };
        if current == 0 {
            self.hist_entry = None;
            return;
        }
        self.hist_entry = Some(current - 1);
        self.load_history(current - 1);
    }

    fn history_down(&mut self) {
        let Some(i) = self.hist_entry else { return };
        if i + 1 < self.history.len() {
            self.hist_entry = Some(i + 1);
            self.load_history(i + 1);
        } else {
            self.hist_entry = None;
            self.buf.clear();
            self.index = 0;
        }
    }

    fn load_history(&mut self, i: usize) {
        if let Some(h) = self.history.get(i) {
            self.buf = h[..h.len().min(LINE_MAX)].to_vec();
            self.index = self.buf.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(ed: &mut LineEditor, bytes: &[u8]) -> Vec<Action> {
        bytes.iter().map(|&b| ed.handle_byte(b)).filter(|a| *a != Action::None).collect()
    }

    fn take(ed: &mut LineEditor) -> Vec<u8> {
        std::mem::take(ed.output())
    }

    #[test]
    fn echo_matches_qemu_bytes() {
        let mut ed = LineEditor::new("(qemu) ");
        let actions = feed(&mut ed, b"help\r");
        assert_eq!(actions, vec![Action::Execute(b"help".to_vec())]);
        // Recorded from QEMU 7.2 over telnet (hmp-telnet-session.jsonl).
        assert_eq!(
            take(&mut ed),
            b"h\x1b[K\x1b[Dhe\x1b[K\x1b[D\x1b[Dhel\x1b[K\x1b[D\x1b[D\x1b[Dhelp\x1b[K\r\n".to_vec()
        );
    }

    #[test]
    fn backspace_editing_matches_qemu_bytes() {
        let mut ed = LineEditor::new("(qemu) ");
        let actions = feed(&mut ed, b"info\x7f\x7f\x7f\x7fhelp stop\r\n");
        assert_eq!(actions, vec![Action::Execute(b"help stop".to_vec()), Action::Execute(Vec::new())]);
        let out = take(&mut ed);
        // Recorded from QEMU 7.2 (qemu72-t6.txt): the four DELs.
        let expected_start =
            b"i\x1b[K\x1b[Din\x1b[K\x1b[D\x1b[Dinf\x1b[K\x1b[D\x1b[D\x1b[Dinfo\x1b[K\x1b[D\x1b[D\x1b[D\x1b[Dinf\x1b[K\x1b[D\x1b[D\x1b[Din\x1b[K\x1b[D\x1b[Di\x1b[K\x1b[D\x1b[Kh\x1b[K";
        assert!(out.starts_with(expected_start), "{:?}", String::from_utf8_lossy(&out));
        assert!(out.ends_with(b"help stop\x1b[K\r\n\r\n"));
    }

    #[test]
    fn cursor_movement_and_keys() {
        let mut ed = LineEditor::new("> ");
        feed(&mut ed, b"abc");
        take(&mut ed);
        feed(&mut ed, b"\x1b[D");
        assert_eq!(take(&mut ed), b"\x1b[D");
        feed(&mut ed, b"X");
        // Whole line redrawn, then the cursor goes back before "c".
        assert_eq!(take(&mut ed), b"\x1b[D\x1b[DabXc\x1b[K\x1b[D");
        feed(&mut ed, b"\x01Y\x05Z");
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"YabXcZ".to_vec())]);
        feed(&mut ed, b"hello\x1b[1~\x04\x1b[3~\x1bOF!");
        assert_eq!(feed(&mut ed, b"\n"), vec![Action::Execute(b"llo!".to_vec())]);
        feed(&mut ed, b"ab\x9bDc\x9b4~d");
        assert_eq!(feed(&mut ed, b"\n"), vec![Action::Execute(b"acbd".to_vec())]);
    }

    #[test]
    fn ctrl_w_deletes_a_word_and_control_bytes_are_ignored() {
        let mut ed = LineEditor::new("> ");
        feed(&mut ed, b"info  status  \x17");
        assert_eq!(feed(&mut ed, b"\x00\x02\x07\r"), vec![Action::Execute(b"info  ".to_vec())]);
        feed(&mut ed, b"word\x17\x17x");
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"x".to_vec())]);
    }

    #[test]
    fn clear_screen_redraws() {
        let mut ed = LineEditor::new("(qemu) ");
        feed(&mut ed, b"ab");
        take(&mut ed);
        feed(&mut ed, b"\x0c");
        assert_eq!(take(&mut ed), b"\x1b[2J\x1b[1;1H(qemu) ab\x1b[K");
    }

    #[test]
    fn history_up_down_dedup_and_cap() {
        let mut ed = LineEditor::new("> ");
        feed(&mut ed, b"one\rtwo\rone\r");
        assert_eq!(ed.history(), vec!["two", "one"]);
        feed(&mut ed, b"\x1b[A");
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"one".to_vec())]);
        feed(&mut ed, b"\x1b[A\x1b[A\x1b[A");
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"two".to_vec())]);
        feed(&mut ed, b"\x1b[A\x1b[B\x1b[B");
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(Vec::new())]);
        for i in 0..100 {
            feed(&mut ed, format!("cmd{i}\r").as_bytes());
        }
        let h = ed.history();
        assert_eq!(h.len(), HISTORY_MAX);
        assert_eq!(h.first().map(String::as_str), Some("cmd36"));
        assert_eq!(h.last().map(String::as_str), Some("cmd99"));
    }

    #[test]
    fn line_length_is_capped() {
        let mut ed = LineEditor::new("> ");
        let long = vec![b'x'; LINE_MAX + 100];
        feed(&mut ed, &long);
        match feed(&mut ed, b"\r").as_slice() {
            [Action::Execute(line)] => assert_eq!(line.len(), LINE_MAX),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn completion_one_and_many() {
        let mut ed = LineEditor::new("(qemu) ");
        feed(&mut ed, b"sto");
        assert_eq!(feed(&mut ed, b"\t"), vec![Action::Complete(b"sto".to_vec())]);
        take(&mut ed);
        ed.complete(vec!["stop".into()], 3);
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"stop ".to_vec())]);
        take(&mut ed);

        feed(&mut ed, b"c");
        take(&mut ed);
        ed.complete(vec!["cpu".into(), "c".into(), "cont".into()], 1);
        // QEMU lists them sorted, padded to the widest + 2 (at least 10), then prompt and line.
        assert_eq!(
            String::from_utf8(take(&mut ed)).unwrap(),
            "\r\nc         cont      cpu       \r\n(qemu) c\x1b[K"
        );
        ed.complete(vec!["query-a".into(), "query-b".into()], 0);
        assert_eq!(feed(&mut ed, b"\r"), vec![Action::Execute(b"cquery-".to_vec())]);
    }
}
