//! Heap used by `JsonStreamSplitter` under hostile input, measured with a counting allocator.
//!
//! One test function runs the scenarios in sequence, because the allocator's counters are
//! process-wide. Limits are scaled down (4 MiB of token bytes, 256 Ki tokens) so that the
//! debug build stays fast; the code paths are those of the defaults.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use monitor::qmp::json_stream::{JsonError, JsonStreamSplitter, Limits};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(n: usize) {
    CURRENT.fetch_sub(n, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged and only
// updates counters, so `System`'s guarantees carry over.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: usize = 1 << 20;
const CHUNK: usize = 64 * 1024;

const LIMITS: Limits = Limits { max_message_bytes: 4 * MIB, max_tokens: 256 * 1024, max_nesting: 1024 };

/// Feeds `first`, then `chunk` `times` times, draining after every feed; returns the peak heap
/// growth over the starting point, the items seen and the splitter.
fn peak_while_feeding(
    first: &[u8],
    chunk: &[u8],
    times: usize,
) -> (usize, Vec<Result<serde_json::Value, JsonError>>, JsonStreamSplitter) {
    let mut items = Vec::with_capacity(16);
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let mut s = JsonStreamSplitter::new(LIMITS);
    for input in std::iter::once(first).chain(std::iter::repeat_n(chunk, times)) {
        s.feed(input);
        while let Some(item) = s.next_item() {
            if items.len() < items.capacity() {
                items.push(item);
            }
        }
    }
    (PEAK.load(Ordering::Relaxed) - base, items, s)
}

#[test]
fn heap_stays_bounded_under_hostile_input() {
    let probe = br#"{"execute":"x"}"#;
    let slack = 256 * 1024;

    // An endless string: 16 MiB of it, 4 times the size cap.
    let a = vec![b'a'; CHUNK];
    let (peak, items, mut s) = peak_while_feeding(b"[\"", &a, 256);
    println!("endless string, 16 MiB: peak {peak} bytes");
    assert!(peak <= LIMITS.max_message_bytes + slack, "{peak}");
    assert_eq!(items, [Err(JsonError::TokenSizeLimit)]);
    s.feed(b"\"]");
    s.feed(probe);
    assert!(matches!(s.next_item(), Some(Ok(_))));
    drop(s);

    // `[[[[` forever.
    let open = vec![b'['; CHUNK];
    let (peak, items, _) = peak_while_feeding(b"", &open, 256);
    println!("endless nesting, 16 MiB: peak {peak} bytes");
    assert!(peak <= slack, "{peak}");
    assert_eq!(items, [Err(JsonError::NestingLimit)]);

    // An endless number.
    let digits = vec![b'7'; CHUNK];
    let (peak, items, _) = peak_while_feeding(b"[", &digits, 256);
    println!("endless number, 16 MiB: peak {peak} bytes");
    assert!(peak <= LIMITS.max_message_bytes + slack, "{peak}");
    assert_eq!(items, [Err(JsonError::TokenSizeLimit)]);

    // Whitespace.
    let spaces = vec![b' '; CHUNK];
    let (peak, items, s) = peak_while_feeding(b"", &spaces, 256);
    println!("whitespace, 16 MiB: peak {peak} bytes");
    assert!(peak <= slack, "{peak}");
    assert!(items.is_empty() && s.is_idle());

    // Token-dense messages up to the token limit: the value tree is the cost.
    let zeros = b"0,".repeat(CHUNK / 2);
    let (peak, items, _) = peak_while_feeding(b"[", &zeros, 8);
    let per_token = peak / LIMITS.max_tokens;
    println!("[0,0,...] up to {} tokens: peak {peak} bytes, {per_token} bytes/token", LIMITS.max_tokens);
    assert_eq!(items, [Err(JsonError::TokenCountLimit)]);
    assert!(peak <= LIMITS.max_message_bytes + 80 * LIMITS.max_tokens + slack, "{peak}");

    let mut members = Vec::new();
    members.extend_from_slice(b"{");
    for i in 0..70_000 {
        members.extend_from_slice(format!("\"k{i}\":{{}},").as_bytes());
    }
    let (peak, items, _) = peak_while_feeding(&members, b"", 0);
    let per_token = peak / LIMITS.max_tokens;
    println!(
        "{{\"k0\":{{}},...}} up to {} tokens: peak {peak} bytes, {per_token} bytes/token",
        LIMITS.max_tokens
    );
    assert_eq!(items, [Err(JsonError::TokenCountLimit)]);
    assert!(peak <= LIMITS.max_message_bytes + 80 * LIMITS.max_tokens + slack, "{peak}");
}
