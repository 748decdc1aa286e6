//! qemu-img's `-p` progress display: `    (42.00/100%)` rewritten with `\r`.

use std::io::Write;

pub struct Progress {
    enabled: bool,
    last: f64,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        let p = Progress { enabled, last: -1.0 };
        p.print(0.0);
        p
    }

    fn print(&self, pct: f64) {
        if self.enabled {
            let mut out = std::io::stdout();
            let _ = write!(out, "    ({pct:3.2}/100%)\r");
            let _ = out.flush();
        }
    }

    /// Reports `done` of `total`; prints at most once per whole percent.
    pub fn update(&mut self, done: u64, total: u64) {
        let pct = if total == 0 { 100.0 } else { (done as f64 * 100.0 / total as f64).min(100.0) };
        if pct.floor() > self.last {
            self.last = pct.floor();
            self.print(pct.floor());
        }
    }

    pub fn finish(&mut self) {
        if self.enabled {
            if self.last < 100.0 {
                self.print(100.0);
            }
            println!();
        }
    }
}
