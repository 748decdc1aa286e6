//! `vmm-img`: the qemu-img-compatible image tool (logic lives in the `block` crate).
fn main() {
    std::process::exit(block::img::main());
}
