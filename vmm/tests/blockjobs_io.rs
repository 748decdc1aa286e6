//! Guest I/O during block jobs, without a guest: threads write through a drive
//! ([`BlockBackend`], what virtio-blk uses) while stream and active commit run, and every
//! acknowledged write must be found afterwards in the layer the guest ends up on. The jobs are
//! driven through the same functions the block service calls for QMP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use block::qcow2::create::{CreateOptions, create};
use block::{BlockNode, Format, OpenOptions};
use monitor::block::types::{BlockCommitArgs, BlockStreamArgs, JobStatus};
use monitor::block::{JobApi, JobVerb};
use monitor::events::{EventBus, SystemClock};
use vmm::blockdev::graph::NodeCache;
use vmm::blockdev::jobs::JobManager;
use vmm::blockdev::{BlockBackend, BlockGraph, start};

const MIB: u64 = 1 << 20;
const SIZE: u64 = 32 * MIB;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The expected guest view: one byte per 4 KiB block (every write here is 4 KiB aligned).
struct Model(Vec<u8>);

impl Model {
    fn apply(&mut self, off: u64, len: u64, byte: u8) {
        for b in (off / 4096)..((off + len) / 4096) {
            self.0[b as usize] = byte;
        }
    }

    fn check(&self, node: &BlockNode, what: &str) {
        let mut buf = vec![0u8; 4096];
        for (i, &want) in self.0.iter().enumerate() {
            node.read(&mut buf, i as u64 * 4096).unwrap();
            assert!(
                buf.iter().all(|&b| b == want),
                "{what}: block {i} should read {want:#x}, reads {:#x}",
                buf[0]
            );
        }
    }
}

fn qcow2(path: &std::path::Path, backing: Option<&std::path::Path>) {
    let opts = CreateOptions {
        size: SIZE,
        backing_file: backing.map(|b| b.to_str().unwrap().to_string()),
        backing_format: backing.map(|_| "qcow2".to_string()),
        ..Default::default()
    };
    create(path, &opts).unwrap();
}

fn fill(path: &std::path::Path, off: u64, len: u64, byte: u8) {
    let n = BlockNode::open(
        path.to_str().unwrap(),
        &OpenOptions { format: Some(Format::Qcow2), ..Default::default() },
    )
    .unwrap();
    n.write(&vec![byte; len as usize], off).unwrap();
    n.flush().unwrap();
}

fn qemu_img_check(path: &std::path::Path) {
    let out = std::process::Command::new("qemu-img")
        .args(["check", path.to_str().unwrap()])
        .output()
        .expect("qemu-img is needed for this test (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img check {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Writers: two threads on disjoint halves (even / odd MiB), each write 4 KiB aligned, 4-32 KiB
/// long, with its own pattern byte, a few hundred writes per second (slow enough for an active
/// commit to get in sync, as a mirror needs); returns the writes in the order each thread
/// completed them.
fn spawn_writers(
    drive: Arc<BlockBackend>,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<(u64, u64, u8)>>> {
    (0..2u64)
        .map(|t| {
            let (drive, stop) = (drive.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1));
                let mut done = Vec::new();
                let mut n = 0u8;
                while !stop.load(Ordering::Relaxed) {
                    let mib = (rng.next() % (SIZE / MIB / 2)) * 2 + t;
                    let len = (1 + rng.next() % 8) * 4096;
                    let off = mib * MIB + (rng.next() % ((MIB - len) / 4096)) * 4096;
                    n = n.wrapping_add(1);
                    let byte = 0x80 | (t as u8) << 6 | (n & 0x3f);
                    drive.write(&vec![byte; len as usize], off).unwrap();
                    done.push((off, len, byte));
                    std::thread::sleep(Duration::from_millis(3));
                }
                done
            })
        })
        .collect()
}

fn wait_status(jobs: &JobManager, id: &str, want: Option<JobStatus>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = jobs.find(id).map(|j| j.status());
        if now == want {
            return;
        }
        assert!(Instant::now() < deadline, "job {id}: waiting for {want:?}, is {now:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn setup() -> (tempfile::TempDir, Arc<BlockGraph>, Arc<JobManager>, Arc<BlockBackend>, Model) {
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = (dir.path().join("base.qcow2"), dir.path().join("top.qcow2"));
    qcow2(&base, None);
    fill(&base, 0, SIZE, 0x11);
    qcow2(&top, Some(&base));
    fill(&top, 4 * MIB, 4 * MIB, 0x22);
    let mut model = Model(vec![0x11; (SIZE / 4096) as usize]);
    model.apply(4 * MIB, 4 * MIB, 0x22);
    let graph = Arc::new(BlockGraph::new());
    let opts = OpenOptions { format: Some(Format::Qcow2), ..Default::default() };
    let node = graph
        .open_chain(top.to_str().unwrap(), &opts, Some("top"), NodeCache::default(), Default::default())
        .unwrap();
    graph.update_entry(&node.backing().unwrap(), |e| e.name = "base".into());
    let drive = Arc::new(BlockBackend::new("drive0", node, false, false, false));
    graph.add_backend(drive.clone()).unwrap();
    let jobs = JobManager::new(EventBus::new(Box::new(SystemClock)), graph.clone());
    (dir, graph, jobs, drive, model)
}

#[test]
fn stream_under_guest_writes() {
    let (dir, graph, jobs, drive, mut model) = setup();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(drive.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(20));
    let args: BlockStreamArgs = serde_json::from_value(serde_json::json!({
        "device": "drive0", "job-id": "st", "speed": 16 * MIB
    }))
    .unwrap();
    let kick = {
        let _ops = graph.lock_ops();
        start::start_stream(&graph, &jobs, args, 2).unwrap()
    };
    kick.run();
    wait_status(&jobs, "st", None);
    std::thread::sleep(Duration::from_millis(20));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        for (off, len, byte) in w.join().unwrap() {
            model.apply(off, len, byte);
        }
    }
    let top = drive.root();
    assert!(top.backing().is_none(), "streamed into a standalone image");
    model.check(&top, "stream");
    top.flush().unwrap();
    qemu_img_check(&dir.path().join("top.qcow2"));
}

#[test]
fn active_commit_pivot_keeps_every_write() {
    let (dir, graph, jobs, drive, mut model) = setup();
    let base = graph.node("base").unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(drive.clone(), stop.clone());
    std::thread::sleep(Duration::from_millis(20));
    let args: BlockCommitArgs =
        serde_json::from_value(serde_json::json!({"device": "drive0", "job-id": "cm"})).unwrap();
    let kick = {
        let _ops = graph.lock_ops();
        start::start_commit(&graph, &jobs, args, 1).unwrap()
    };
    kick.run();
    wait_status(&jobs, "cm", Some(JobStatus::Ready));
    // Mirroring in READY for a while, with writes still coming.
    std::thread::sleep(Duration::from_millis(200));
    let kick = {
        let _ops = graph.lock_ops();
        jobs.verb("cm", JobApi::Block, JobVerb::Complete).unwrap()
    };
    kick.run();
    wait_status(&jobs, "cm", None);
    // The writers kept going across the pivot; now the drive writes into the base.
    std::thread::sleep(Duration::from_millis(50));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        for (off, len, byte) in w.join().unwrap() {
            model.apply(off, len, byte);
        }
    }
    let root = drive.root();
    assert_eq!(root.filename(), dir.path().join("base.qcow2").to_str().unwrap(), "pivoted to the base");
    let base = graph.node("base").unwrap_or(base);
    assert!(Arc::ptr_eq(&root, &base));
    model.check(&root, "active commit");
    root.flush().unwrap();
    qemu_img_check(&dir.path().join("base.qcow2"));
}

#[test]
fn cancelled_active_commit_stays_on_top() {
    let (_dir, graph, jobs, drive, mut model) = setup();
    let top = drive.root();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(drive.clone(), stop.clone());
    let args: BlockCommitArgs =
        serde_json::from_value(serde_json::json!({"device": "drive0", "job-id": "cm"})).unwrap();
    let kick = {
        let _ops = graph.lock_ops();
        start::start_commit(&graph, &jobs, args, 1).unwrap()
    };
    kick.run();
    wait_status(&jobs, "cm", Some(JobStatus::Ready));
    let kick = {
        let _ops = graph.lock_ops();
        jobs.verb("cm", JobApi::Block, JobVerb::Cancel { force: false }).unwrap()
    };
    kick.run();
    wait_status(&jobs, "cm", None);
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        for (off, len, byte) in w.join().unwrap() {
            model.apply(off, len, byte);
        }
    }
    assert!(Arc::ptr_eq(&drive.root(), &top), "a cancelled commit does not pivot");
    model.check(&drive.root(), "after cancel");
}
