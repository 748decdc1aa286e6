//! Random operation sequences on qcow2 images compared with an in-memory model of the
//! guest-visible content; qemu-img then checks the result. Deterministic (fixed seeds).

mod common;
use block::qcow2::create::{CreateOptions, create};
use block::{Backing, BlockNode, Format, OpenOptions};
use common::*;
use std::collections::HashMap;
use std::sync::Arc;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SIZE: u64 = 2 << 20;

fn open(path: &str, base: &Arc<BlockNode>) -> Arc<BlockNode> {
    BlockNode::open(
        path,
        &OpenOptions { format: Some(Format::Qcow2), read_only: false, backing: Backing::Node(base.clone()) },
    )
    .unwrap()
}

fn run(seed: u64, cluster_size: u64, refcount_bits: u32, version: u32) {
    let d = tempfile::tempdir().unwrap();
    let bp = d.path().join("base.raw");
    let backing: Vec<u8> = (0..SIZE).map(|i| (i / 4096) as u8 | 1).collect();
    std::fs::write(&bp, &backing).unwrap();
    let base =
        BlockNode::open(s(&bp), &OpenOptions { format: Some(Format::Raw), ..OpenOptions::read_only() })
            .unwrap();
    let tp = d.path().join("top.qcow2");
    create(
        &tp,
        &CreateOptions {
            size: SIZE,
            cluster_size,
            refcount_bits,
            version,
            backing_file: Some("base.raw".into()),
            backing_format: Some("raw".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let t = s(&tp).to_string();
    let mut node = open(&t, &base);
    let mut model = backing.clone();
    let mut snaps: HashMap<String, Vec<u8>> = HashMap::new();
    let mut rng = Rng(seed);
    let verify = |node: &BlockNode, model: &[u8], step: usize| {
        let mut buf = vec![0u8; SIZE as usize];
        node.read(&mut buf, 0).unwrap();
        if buf != model {
            let i = buf.iter().zip(model).position(|(a, b)| a != b).unwrap_or(0);
            panic!("seed {seed} step {step}: content differs at {i}");
        }
    };
    for step in 0..300 {
        let off = rng.below(SIZE / 512) * 512;
        let len = (rng.below(64) + 1) * 512;
        let len = len.min(SIZE - off);
        match rng.below(20) {
            0..=8 => {
                let v = (rng.below(250) + 2) as u8;
                node.write(&vec![v; len as usize], off).unwrap();
                model[off as usize..(off + len) as usize].fill(v);
            }
            9..=10 => {
                node.write_zeroes(off, len).unwrap();
                model[off as usize..(off + len) as usize].fill(0);
            }
            11 if version >= 3 => {
                node.discard(off, len).unwrap();
                let first = off.next_multiple_of(cluster_size);
                let last = (off + len) / cluster_size * cluster_size;
                if first < last {
                    model[first as usize..last as usize].fill(0);
                }
            }
            12 => {
                let first = off.next_multiple_of(cluster_size);
                let last = (off + len) / cluster_size * cluster_size;
                node.make_unallocated(off, len).unwrap();
                if first < last {
                    model[first as usize..last as usize]
                        .copy_from_slice(&backing[first as usize..last as usize]);
                }
            }
            13 => {
                let name = format!("s{}", rng.below(3));
                let q = node.qcow2().unwrap();
                if snaps.remove(&name).is_some() {
                    q.snapshot_delete(&name).unwrap();
                }
                match q.snapshot_create(&name, 0) {
                    Ok(_) => {
                        snaps.insert(name, model.clone());
                    }
                    // narrow refcounts cannot count the extra references
                    Err(e) => assert!(
                        refcount_bits < 16 && e.to_string().starts_with("Refcount overflow"),
                        "seed {seed} step {step}: {e}"
                    ),
                }
            }
            14 => {
                let name = format!("s{}", rng.below(3));
                if let Some(m) = snaps.get(&name) {
                    match node.qcow2().unwrap().snapshot_apply(&name) {
                        Ok(()) => model = m.clone(),
                        Err(e) => assert!(
                            refcount_bits < 16 && e.to_string().starts_with("Refcount overflow"),
                            "seed {seed} step {step}: {e}"
                        ),
                    }
                }
            }
            15 => {
                let name = format!("s{}", rng.below(3));
                if snaps.remove(&name).is_some() {
                    node.qcow2().unwrap().snapshot_delete(&name).unwrap();
                }
            }
            16 => node.flush().unwrap(),
            17 => {
                node.flush().unwrap();
                drop(node);
                node = open(&t, &base);
                verify(&node, &model, step);
            }
            _ => {
                let mut buf = vec![0u8; len as usize];
                node.read(&mut buf, off).unwrap();
                assert!(
                    buf == model[off as usize..(off + len) as usize],
                    "seed {seed} step {step}: read at {off}+{len} differs"
                );
            }
        }
    }
    verify(&node, &model, 300);
    node.flush().unwrap();
    drop(node);
    let o = qemu_img(&["check", &t]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "seed {seed}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let raw = d.path().join("out.raw");
    qemu_img_ok(&["convert", "-O", "raw", &t, s(&raw)]);
    assert!(std::fs::read(&raw).unwrap() == model, "seed {seed}: qemu reads other content");
}

#[test]
fn random_ops_64k_clusters() {
    run(0x9e37_79b9_7f4a_7c15, 65536, 16, 3);
}

#[test]
fn random_ops_small_clusters_narrow_refcounts() {
    run(0x1234_5678_9abc_def1, 4096, 1, 3);
    run(0x0f0f_1234_5555_aaaa, 512, 2, 3);
}

#[test]
fn random_ops_v2_wide_refcounts() {
    run(0xdead_beef_cafe_f00d, 8192, 16, 2);
}

/// Longer stress run: `cargo test -p block --test model_random -- --ignored`.
#[test]
#[ignore]
fn random_ops_many_seeds() {
    for i in 1..=40u64 {
        let seed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let (cs, bits, version) = match i % 4 {
            0 => (65536, 16, 3),
            1 => (512, 8, 3),
            2 => (4096, 64, 3),
            _ => (16384, 16, 2),
        };
        run(seed, cs, bits, version);
    }
}
