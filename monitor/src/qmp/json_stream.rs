//! Incremental JSON decoder for the QMP input stream.
//!
//! QMP has no framing: QEMU runs a JSON lexer over the byte stream and hands a message to the
//! parser whenever braces and brackets balance (qobject/json-lexer.c, json-streamer.c,
//! json-parser.c). [`JsonStreamSplitter`] does the same in one pass over the bytes, with any
//! chunking, and builds each value while its bytes arrive.
//!
//! Layers, in data-flow order:
//! * the lexer ([`JsonStreamSplitter::feed`]): token for token QEMU 7.2's lexer, including its
//!   extensions (single-quoted strings, the `\'` escape) and its recovery after a lexical error
//!   (skip to the next structural character, control character or 0xFE/0xFF byte);
//! * the message layer (`JsonStreamSplitter::token`): counts braces, brackets, tokens and token
//!   bytes per message like json-streamer.c and applies [`Limits`];
//! * `builder::Builder`: the grammar, building a `serde_json::Value`; `decode`: strings,
//!   numbers and keywords.
//!
//! Recovery is deliberately better than QEMU 7.2, which resets its bracket counters after an
//! error and then reports one more error for each leftover token (1,025 errors for one
//! over-deep array). Here every malformed message yields exactly one error:
//! * after a grammar error or a limit error the rest of the message is skipped, still lexed
//!   (so brackets inside strings do not count), until braces and brackets balance again. A
//!   grammar error is only reported when the message ends, because QEMU only parses complete
//!   messages: a lexical or limit error later in the same message wins, as in QEMU;
//! * a lexical error caused by a control character (anything below 0x20 that is not whitespace
//!   between tokens) or by 0xFE/0xFF ends the message on the spot. This is the reset of the QMP
//!   spec ("Forcing the JSON parser into known-good state"). Everything up to the next `{` or `[`
//!   is then discarded silently, which swallows the tail of the broken message;
//! * any other lexical error (a stray byte, a malformed number) ends nothing: the message is
//!   skipped as after a grammar error, starting with QEMU's character-level recovery.
//!
//! Memory: the lexer keeps at most the bytes of the token being read, and only while the
//! message is within [`Limits::max_message_bytes`]; skipped input is never stored. Completed
//! items wait in a queue until [`JsonStreamSplitter::next_item`] takes them: a caller that
//! drains the queue after every [`JsonStreamSplitter::feed`] holds at most one partial message.

mod builder;
mod decode;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use serde_json::Value;

use builder::{Builder, Token};

/// Per-message limits. QEMU's values (qobject/json-streamer.c) are the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of all tokens of one message (whitespace between tokens is not counted).
    /// QEMU: `MAX_TOKEN_SIZE`, 64 MiB. Exceeding it: [`JsonError::TokenSizeLimit`].
    pub max_message_bytes: usize,
    /// Tokens in one message, punctuation included. QEMU: `MAX_TOKEN_COUNT`, 2 Mi.
    /// Exceeding it: [`JsonError::TokenCountLimit`].
    pub max_tokens: usize,
    /// Open braces plus open brackets. QEMU: `MAX_NESTING`, 1024 (1024 levels are accepted).
    /// Exceeding it: [`JsonError::NestingLimit`].
    pub max_nesting: usize,
}

impl Default for Limits {
    /// QEMU's limits: 64 MiB of token bytes, 2 Mi tokens, nesting depth 1024.
    ///
    /// Worst-case memory of one partial message is the token bytes plus the value tree, about
    /// 64 MiB + 2 Mi × 100 bytes; QEMU's own token queue costs about the same.
    fn default() -> Self {
        Limits { max_message_bytes: 64 << 20, max_tokens: 2 << 20, max_nesting: 1 << 10 }
    }
}

/// Why the bytes of one message did not make a value. `Display` is QEMU's `desc` text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JsonError {
    #[error("JSON parse error, expecting value")]
    ExpectingValue,
    #[error("JSON parse error, missing : in object pair")]
    MissingColon,
    #[error("JSON parse error, expected separator in dict")]
    ExpectedDictSeparator,
    #[error("JSON parse error, expected separator in list")]
    ExpectedListSeparator,
    #[error("JSON parse error, key is not a string in object")]
    KeyNotString,
    #[error("JSON parse error, duplicate key")]
    DuplicateKey,
    /// A `[a-z]+` word other than `true`, `false` and `null`.
    #[error("JSON parse error, invalid keyword '{0}'")]
    InvalidKeyword(String),
    #[error("JSON parse error, invalid escape sequence in string")]
    InvalidEscape,
    /// A `\u` escape (as written, e.g. `\ud800`) that is not a Unicode scalar value QEMU accepts.
    #[error("JSON parse error, {0} is not a valid Unicode character")]
    InvalidUnicodeEscape(String),
    #[error("JSON parse error, invalid UTF-8 sequence in string")]
    InvalidUtf8,
    /// Our own: a number too large for f64 (QEMU would echo `inf`, which is not JSON).
    #[error("JSON parse error, number out of range")]
    NumberOutOfRange,
    /// A lexical error: the text of the token so far, including the offending byte, cut at a
    /// NUL byte and with invalid UTF-8 replaced by U+FFFD (what QEMU's `%s` and its JSON writer
    /// produce).
    #[error("JSON parse error, stray '{0}'")]
    Stray(String),
    #[error("JSON token size limit exceeded")]
    TokenSizeLimit,
    #[error("JSON token count limit exceeded")]
    TokenCountLimit,
    #[error("JSON nesting depth limit exceeded")]
    NestingLimit,
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Between tokens.
    Start,
    /// Inside a string. `escape`: the previous byte was an unpaired backslash; `escaped` and
    /// `non_ascii` describe the contents so far.
    Str {
        quote: u8,
        escape: bool,
        escaped: bool,
        non_ascii: bool,
    },
    Number(NumberState),
    Keyword,
    /// QEMU's `IN_RECOVERY`, after a lexical error: skip to a structural character, a control
    /// character or 0xFE/0xFF.
    Recovery,
    /// After a reset byte: skip to the next `{` or `[`.
    Discard,
}

/// The states of QEMU's number lexer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberState {
    /// `-`
    Sign,
    /// `0` or `-0`: QEMU accepts only a fraction after it (no exponent).
    Zero,
    /// Integer digits.
    Digits,
    /// `.` seen, a digit must follow.
    Dot,
    /// Fraction digits.
    Fraction,
    /// `e`/`E` seen.
    Exponent,
    /// Exponent sign seen, a digit must follow.
    ExponentSign,
    /// Exponent digits.
    ExponentDigits,
}

enum NumberStep {
    Continue(NumberState),
    /// The byte is not part of the number (it is lexed again from `Start`).
    Done {
        float: bool,
    },
    /// The byte makes the token invalid.
    Invalid,
}

impl NumberState {
    fn step(self, b: u8) -> NumberStep {
        use NumberState::*;
        use NumberStep::{Continue, Done, Invalid};
        match (self, b) {
            (Sign, b'0') => Continue(Zero),
            (Sign, b'1'..=b'9') => Continue(Digits),
            (Sign, _) => Invalid,
            (Zero, b'0'..=b'9') => Invalid,
            (Zero | Digits, b'.') => Continue(Dot),
            (Zero, _) => Done { float: false },
            (Digits, b'0'..=b'9') => Continue(Digits),
            (Digits | Fraction, b'e' | b'E') => Continue(Exponent),
            (Digits, _) => Done { float: false },
            (Dot | Fraction, b'0'..=b'9') => Continue(Fraction),
            (Dot, _) => Invalid,
            (Fraction, _) => Done { float: true },
            (Exponent, b'+' | b'-') => Continue(ExponentSign),
            (Exponent | ExponentSign | ExponentDigits, b'0'..=b'9') => Continue(ExponentDigits),
            (Exponent | ExponentSign, _) => Invalid,
            (ExponentDigits, _) => Done { float: true },
        }
    }
}

/// What the message layer does with tokens.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// Building the current message (or waiting for the next one).
    Normal,
    /// Skipping the rest of a bad message until braces and brackets balance. `pending` is its
    /// grammar error, not yet reported; `None` once its one error is out.
    Skip { pending: Option<JsonError> },
}

/// Token kinds as the lexer reports them to the message layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Colon,
    Comma,
    Str { quote: u8, escaped: bool, non_ascii: bool },
    Number { float: bool },
    Keyword,
}

/// json-streamer.c's per-message counters.
#[derive(Debug, Default, Clone, Copy)]
struct MessageCounters {
    /// Bytes of all tokens so far, including the one being lexed.
    bytes: usize,
    tokens: usize,
    braces: i64,
    brackets: i64,
}

/// Buffers above this capacity are released once their token is done.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Items the output queue keeps room for once drained (64 KiB of `{"execute":"stop"}` is 3,600).
const QUEUE_KEEP: usize = 4096;

/// Bytes that continue a string without ending it or being an error: 0x20..=0xFD except the
/// backslash and the quote. Index 0 for `"`, 1 for `'`.
static STRING_PLAIN: [[bool; 256]; 2] = {
    let mut t = [[false; 256]; 2];
    let mut b = 0x20;
    while b <= 0xFD {
        t[0][b] = b != b'"' as usize && b != b'\\' as usize;
        t[1][b] = b != b'\'' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

/// Incremental splitter and parser for a QMP input stream. See the module documentation.
#[derive(Debug)]
pub struct JsonStreamSplitter {
    limits: Limits,
    /// `limits.max_nesting` as the type of the counters.
    max_nesting: i64,
    lex: Lex,
    mode: Mode,
    /// `mode` is `Normal` or has a pending error: token text is kept (cached for speed).
    capture: bool,
    counters: MessageCounters,
    builder: Builder,
    /// Raw contents of the string being lexed (while the message is being built or its error
    /// is still pending).
    str_buf: Vec<u8>,
    /// Text of the number or keyword being lexed (same condition).
    word_buf: Vec<u8>,
    out: VecDeque<Result<Value, JsonError>>,
}

impl JsonStreamSplitter {
    pub fn new(limits: Limits) -> Self {
        JsonStreamSplitter {
            limits,
            max_nesting: i64::try_from(limits.max_nesting).unwrap_or(i64::MAX),
            lex: Lex::Start,
            mode: Mode::Normal,
            capture: true,
            counters: MessageCounters::default(),
            builder: Builder::default(),
            str_buf: Vec::new(),
            word_buf: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// Next completed item, in input order: a parsed top-level JSON value, or one error for one
    /// bad message.
    pub fn next_item(&mut self) -> Option<Result<Value, JsonError>> {
        let item = self.out.pop_front();
        // Keep the queue's room for a typical chunk's worth of messages, release more.
        if self.out.is_empty() && self.out.capacity() > QUEUE_KEEP {
            self.out.shrink_to(QUEUE_KEEP);
        }
        item
    }

    /// Drops all state (used when a connection closes).
    pub fn reset(&mut self) {
        *self = JsonStreamSplitter::new(self.limits);
    }

    /// Items completed and not yet taken by [`next_item`](Self::next_item).
    pub fn queued_items(&self) -> usize {
        self.out.len()
    }

    /// Bytes held for the token being lexed (capacity of the token buffers). Stays within
    /// `max_message_bytes` plus a small constant whatever the input.
    pub fn buffered_bytes(&self) -> usize {
        self.str_buf.capacity() + self.word_buf.capacity()
    }

    /// Whether no message is partly read (only whitespace or nothing since the last item).
    pub fn is_idle(&self) -> bool {
        matches!(self.lex, Lex::Start | Lex::Discard | Lex::Recovery)
            && self.mode == Mode::Normal
            && self.counters.braces == 0
            && self.counters.brackets == 0
    }

    /// Feeds bytes as they arrive from the transport (any chunking: one object over many calls,
    /// many objects in one call). Completed items are queued for [`next_item`](Self::next_item).
    pub fn feed(&mut self, input: &[u8]) {
        let n = input.len();
        let mut i = 0;
        while i < n {
            match self.lex {
                Lex::Start => {
                    let b = input[i];
                    i += 1;
                    match b {
                        b' ' | b'\t' | b'\r' | b'\n' => {
                            while i < n && matches!(input[i], b' ' | b'\t' | b'\r' | b'\n') {
                                i += 1;
                            }
                        }
                        b'{' => self.punctuation(Kind::LBrace),
                        b'}' => self.punctuation(Kind::RBrace),
                        b'[' => self.punctuation(Kind::LBracket),
                        b']' => self.punctuation(Kind::RBracket),
                        b':' => self.punctuation(Kind::Colon),
                        b',' => self.punctuation(Kind::Comma),
                        b'"' | b'\'' => {
                            self.count_bytes(1);
                            self.lex = Lex::Str { quote: b, escape: false, escaped: false, non_ascii: false };
                        }
                        b'-' => self.start_word(b, Lex::Number(NumberState::Sign)),
                        b'0' => self.start_word(b, Lex::Number(NumberState::Zero)),
                        b'1'..=b'9' => self.start_word(b, Lex::Number(NumberState::Digits)),
                        b'a'..=b'z' => self.start_word(b, Lex::Keyword),
                        // Never a structural character here: `b` is used up.
                        _ => {
                            self.lex_error(b);
                        }
                    }
                }
                Lex::Str { .. } => i = self.lex_string(input, i),
                Lex::Number(state) => {
                    let start = i;
                    let mut state = state;
                    let mut step = None;
                    while i < n {
                        match state.step(input[i]) {
                            NumberStep::Continue(next) => {
                                state = next;
                                i += 1;
                            }
                            other => {
                                step = Some(other);
                                break;
                            }
                        }
                    }
                    self.lex = Lex::Number(state);
                    if i > start {
                        self.word_bytes(&input[start..i]);
                    }
                    match step {
                        None | Some(NumberStep::Continue(_)) => {}
                        Some(NumberStep::Done { float }) => {
                            self.lex = Lex::Start;
                            self.token(Kind::Number { float });
                        }
                        Some(NumberStep::Invalid) => {
                            if self.lex_error(input[i]) {
                                i += 1;
                            }
                        }
                    }
                }
                Lex::Keyword => {
                    let start = i;
                    while i < n && input[i].is_ascii_lowercase() {
                        i += 1;
                    }
                    if i > start {
                        self.word_bytes(&input[start..i]);
                    }
                    if i < n {
                        self.lex = Lex::Start;
                        self.token(Kind::Keyword);
                    }
                }
                Lex::Recovery => match input[i..].iter().position(|&b| ends_recovery(b)) {
                    Some(p) => {
                        i += p;
                        self.lex = Lex::Start;
                    }
                    None => i = n,
                },
                Lex::Discard => match input[i..].iter().position(|&b| b == b'{' || b == b'[') {
                    Some(p) => {
                        i += p;
                        self.lex = Lex::Start;
                    }
                    None => i = n,
                },
            }
        }
    }

    /// While building a message, or while its error is pending, the lexer keeps token text.
    #[inline]
    fn capturing(&self) -> bool {
        self.capture
    }

    fn punctuation(&mut self, kind: Kind) {
        self.count_bytes(1);
        self.token(kind);
    }

    /// Counts token bytes that are never kept (punctuation, quotes): the limit is checked when
    /// the token is complete, which matters for the token that closes a message.
    #[inline]
    fn count_bytes(&mut self, k: usize) {
        self.counters.bytes = self.counters.bytes.saturating_add(k);
    }

    fn start_word(&mut self, b: u8, lex: Lex) {
        self.lex = lex;
        self.word_bytes(&[b]);
    }

    /// Counts `k` more bytes of token text; on crossing the size limit reports it (once per
    /// message) and stops capturing, so that no token is buffered past the limit. Returns
    /// whether the text is still to be kept.
    #[inline]
    fn token_bytes(&mut self, k: usize) -> bool {
        self.counters.bytes = self.counters.bytes.saturating_add(k);
        if !self.capturing() {
            return false;
        }
        if self.counters.bytes > self.limits.max_message_bytes {
            self.report_limit(JsonError::TokenSizeLimit);
            return false;
        }
        true
    }

    #[inline]
    fn word_bytes(&mut self, bytes: &[u8]) {
        if self.token_bytes(bytes.len()) {
            push_bounded(&mut self.word_buf, bytes, self.limits.max_message_bytes);
        }
    }

    /// Lexes string bytes from `input[i..]`; returns the index after what was consumed.
    fn lex_string(&mut self, input: &[u8], mut i: usize) -> usize {
        let Lex::Str { quote, mut escape, mut escaped, mut non_ascii } = self.lex else {
            return i;
        };
        let plain = &STRING_PLAIN[usize::from(quote == b'\'')];
        let n = input.len();
        while i < n {
            if escape {
                // QEMU accepts any byte 0x20..=0xFD after a backslash; the parser judges it.
                let b = input[i];
                if !(0x20..=0xFD).contains(&b) {
                    self.lex = Lex::Str { quote, escape, escaped, non_ascii };
                    self.lex_error(b); // reset bytes are always used up
                    return i + 1;
                }
                escape = false;
                non_ascii |= b >= 0x80;
                self.string_bytes(&input[i..=i]);
                i += 1;
                continue;
            }
            let start = i;
            let mut seen = 0u8;
            while i < n && plain[usize::from(input[i])] {
                seen |= input[i];
                i += 1;
            }
            non_ascii |= seen >= 0x80;
            if i > start {
                self.string_bytes(&input[start..i]);
            }
            if i == n {
                break;
            }
            let b = input[i];
            i += 1;
            if b == quote {
                self.lex = Lex::Start;
                self.count_bytes(1);
                self.token(Kind::Str { quote, escaped, non_ascii });
                return i;
            }
            if b == b'\\' {
                escape = true;
                escaped = true;
                self.string_bytes(b"\\");
                continue;
            }
            // A control character or 0xFE/0xFF.
            self.lex = Lex::Str { quote, escape, escaped, non_ascii };
            self.lex_error(b); // reset bytes are always used up
            return i;
        }
        self.lex = Lex::Str { quote, escape, escaped, non_ascii };
        i
    }

    #[inline]
    fn string_bytes(&mut self, bytes: &[u8]) {
        if self.token_bytes(bytes.len()) {
            push_bounded(&mut self.str_buf, bytes, self.limits.max_message_bytes);
        }
    }

    /// A complete token: json-streamer.c's bookkeeping, then the grammar or the skipping.
    fn token(&mut self, kind: Kind) {
        let c = &mut self.counters;
        c.tokens = c.tokens.saturating_add(1);
        match kind {
            Kind::LBrace => c.braces += 1,
            Kind::RBrace => c.braces -= 1,
            Kind::LBracket => c.brackets += 1,
            Kind::RBracket => c.brackets -= 1,
            _ => {}
        }
        // QEMU 7.2: a message ends when braces and brackets balance, or either goes negative.
        let ended = c.braces < 0 || c.brackets < 0 || (c.braces == 0 && c.brackets == 0);

        if !ended
            && self.capturing()
            && let Some(e) = self.limit_violation()
        {
            self.report_limit(e);
        }
        match &mut self.mode {
            Mode::Normal => {
                let token = match kind {
                    Kind::LBrace => Token::LBrace,
                    Kind::RBrace => Token::RBrace,
                    Kind::LBracket => Token::LBracket,
                    Kind::RBracket => Token::RBracket,
                    Kind::Colon => Token::Colon,
                    Kind::Comma => Token::Comma,
                    Kind::Str { quote, escaped, non_ascii } => {
                        Token::Str { raw: &mut self.str_buf, quote, escaped, non_ascii }
                    }
                    Kind::Number { float } => Token::Number { text: &self.word_buf, float },
                    Kind::Keyword => Token::Keyword(&self.word_buf),
                };
                match self.builder.feed(token) {
                    Ok(Some(v)) => self.out.push_back(Ok(v)),
                    Ok(None) => {}
                    Err(e) => {
                        self.builder.clear();
                        if ended {
                            self.out.push_back(Err(e));
                        } else {
                            self.set_mode(Mode::Skip { pending: Some(e) });
                        }
                    }
                }
            }
            Mode::Skip { pending } => {
                if ended && let Some(e) = pending.take() {
                    self.out.push_back(Err(e));
                }
            }
        }
        match kind {
            Kind::Str { .. } => recycle(&mut self.str_buf),
            Kind::Number { .. } | Kind::Keyword => recycle(&mut self.word_buf),
            _ => {}
        }
        if ended {
            self.end_message();
        }
    }

    /// QEMU's checks, in QEMU's order.
    fn limit_violation(&self) -> Option<JsonError> {
        let c = &self.counters;
        if c.bytes > self.limits.max_message_bytes {
            Some(JsonError::TokenSizeLimit)
        } else if c.tokens > self.limits.max_tokens {
            Some(JsonError::TokenCountLimit)
        } else if c.braces + c.brackets > self.max_nesting {
            Some(JsonError::NestingLimit)
        } else {
            None
        }
    }

    /// Reports a limit error as the message's one error and skips the rest of the message.
    fn report_limit(&mut self, e: JsonError) {
        self.out.push_back(Err(e));
        self.abandon_message(Mode::Skip { pending: None });
    }

    /// Drops what was kept of the current message and switches to `mode`.
    fn abandon_message(&mut self, mode: Mode) {
        self.set_mode(mode);
        self.builder.clear();
        self.str_buf = Vec::new();
        self.word_buf = Vec::new();
    }

    fn set_mode(&mut self, mode: Mode) {
        self.capture = matches!(mode, Mode::Normal | Mode::Skip { pending: Some(_) });
        self.mode = mode;
    }

    fn end_message(&mut self) {
        self.counters = MessageCounters::default();
        self.set_mode(Mode::Normal);
        self.builder.clear();
    }

    /// A lexical error at byte `b`. Reports `stray '<token text>'` unless the message's error is
    /// already out, then recovers (see the module documentation). Returns whether `b` is used
    /// up: a structural character that breaks a number inside a message (`[1.]`) is part of
    /// the error text, as in QEMU, but still counts for finding the end of the message.
    fn lex_error(&mut self, b: u8) -> bool {
        if self.capturing() {
            let text = self.stray_text(b);
            self.out.push_back(Err(JsonError::Stray(text)));
        }
        let reset = !(0x20..0xFE).contains(&b);
        let in_message = self.counters.braces > 0 || self.counters.brackets > 0;
        if reset || !in_message {
            self.abandon_message(Mode::Normal);
            self.end_message();
        } else {
            self.abandon_message(Mode::Skip { pending: None });
        }
        self.lex = if reset { Lex::Discard } else { Lex::Recovery };
        reset || !in_message || !matches!(b, b'{' | b'}' | b'[' | b']' | b':' | b',')
    }

    /// The token text QEMU prints: what the lexer holds of the token, then the offending byte.
    fn stray_text(&self, b: u8) -> String {
        let mut text = Vec::new();
        match self.lex {
            Lex::Str { quote, .. } => {
                text.push(quote);
                text.extend_from_slice(&self.str_buf);
            }
            Lex::Number(_) | Lex::Keyword => text.extend_from_slice(&self.word_buf),
            Lex::Start | Lex::Recovery | Lex::Discard => {}
        }
        text.push(b);
        if let Some(nul) = text.iter().position(|&c| c == 0) {
            text.truncate(nul);
        }
        String::from_utf8_lossy(&text).into_owned()
    }
}

/// Where QEMU's lexer recovery stops: structural characters, control characters other than
/// `\t`, and the bytes that can never appear in UTF-8.
fn ends_recovery(b: u8) -> bool {
    matches!(b, b'{' | b'}' | b'[' | b']' | b':' | b',') || (b < 0x20 && b != b'\t') || b >= 0xFE
}

/// Appends `bytes`, growing the buffer by doubling but never past `limit` bytes of capacity
/// (the caller has checked that the contents fit).
#[inline]
fn push_bounded(buf: &mut Vec<u8>, bytes: &[u8], limit: usize) {
    let needed = buf.len() + bytes.len();
    if needed > buf.capacity() {
        let target = (buf.capacity() * 2).max(needed).max(16).min(limit.max(needed));
        buf.reserve_exact(target - buf.len());
    }
    buf.extend_from_slice(bytes);
}

/// Empties a token buffer, releasing it if a big token made it grow.
fn recycle(buf: &mut Vec<u8>) {
    buf.clear();
    if buf.capacity() > KEEP_CAPACITY {
        *buf = Vec::new();
    }
}
