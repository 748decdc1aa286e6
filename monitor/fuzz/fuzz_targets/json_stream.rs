//! Fuzzes `JsonStreamSplitter` with arbitrary bytes in arbitrary chunks.
//!
//! Input layout: byte 0 picks the limits (bit 0: tiny limits that the fuzzer can reach, else
//! QEMU's), bytes 1..9 seed the chunk sizes, the rest is the stream.
//!
//! Invariants checked:
//! * no panic;
//! * the token buffers never exceed `max_message_bytes` plus a constant, and each feed queues
//!   at most one item per byte (plus one for a number or keyword left open before it);
//! * chunking does not matter: the items equal those of feeding the stream in one piece;
//! * recovery: after the stream, a reset byte (0x01) and `{"execute":"x"}` give that object as
//!   the last item, and the splitter is idle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use monitor::qmp::json_stream::{JsonError, JsonStreamSplitter, Limits};
use serde_json::Value;

/// `KEEP_CAPACITY` (64 KiB) for each of the two token buffers.
const SLACK: usize = 128 * 1024;

fn drain(s: &mut JsonStreamSplitter, into: &mut Vec<Result<Value, JsonError>>) {
    while let Some(item) = s.next_item() {
        into.push(item);
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let limits = if data[0] & 1 == 1 {
        Limits {
            max_message_bytes: 64,
            max_tokens: 24,
            max_nesting: 6,
        }
    } else {
        Limits::default()
    };
    let mut seed = u64::from_le_bytes(data[1..9].try_into().unwrap_or([0; 8])) | 1;
    let stream = &data[9..];

    let mut whole = JsonStreamSplitter::new(limits);
    whole.feed(stream);
    let mut want = Vec::new();
    drain(&mut whole, &mut want);

    let mut s = JsonStreamSplitter::new(limits);
    let mut got = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift64
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = (1 + (seed % 64) as usize).min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        s.feed(chunk);
        assert!(s.queued_items() <= chunk.len() + 1, "too many items");
        assert!(
            s.buffered_bytes() <= limits.max_message_bytes + SLACK,
            "buffered {}",
            s.buffered_bytes()
        );
        drain(&mut s, &mut got);
    }
    assert_eq!(got, want, "chunking changed the items");

    s.feed(b"\x01{\"execute\":\"x\"}");
    let mut tail = Vec::new();
    drain(&mut s, &mut tail);
    let expected: Value = serde_json::json!({"execute": "x"});
    assert_eq!(tail.last(), Some(&Ok(expected)), "no recovery: {tail:?}");
    assert!(s.is_idle());
});
