//! The machine's lifecycle through the monitor, with the purpose-built test guests (guests/): run
//! states, STOP/RESUME/RESET/SHUTDOWN/POWERDOWN with QEMU's data, -no-reboot/-no-shutdown, vCPU
//! threads, and bad command lines. Needs /dev/kvm (the guests are tiny: they run even where KVM is
//! emulated).

use std::time::Duration;

use proto_tests::{Conn, Server, guest, require_kvm, wait_for_file_text};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(60);

fn boot(action: &str, extra: &[&str]) -> (Server, Conn) {
    require_kvm();
    let kernel = guest("testguest-pvh.elf");
    let kernel = kernel.to_str().expect("utf-8 path").to_string();
    let append = format!("action={action}");
    let mut args: Vec<&str> = vec![
        "-m",
        "128",
        "-display",
        "none",
        "-serial",
        "file:{dir}/serial.log",
        "-kernel",
        &kernel,
        "-append",
        &append,
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
    ];
    args.extend_from_slice(extra);
    let mut vmm = Server::vmm(&args);
    let mut c = vmm.connect_unix("qmp.sock");
    c.negotiate();
    (vmm, c)
}

/// The next event with this name (skipping others), with a timeout.
fn event(c: &mut Conn, name: &str) -> Value {
    let deadline = std::time::Instant::now() + T;
    loop {
        assert!(std::time::Instant::now() < deadline, "no {name} event");
        let line = c.recv_line_timeout(T).expect("recv").unwrap_or_else(|| panic!("EOF waiting for {name}"));
        let v: Value = serde_json::from_str(&line).expect("json");
        if v["event"] == name {
            assert!(v["timestamp"]["seconds"].is_i64() && v["timestamp"]["microseconds"].is_i64(), "{v}");
            return v;
        }
    }
}

fn status(c: &mut Conn) -> String {
    let r = c.execute("query-status", None);
    r["return"]["status"].as_str().expect("status").to_string()
}

fn hmp(c: &mut Conn, line: &str) -> String {
    let r = c.execute("human-monitor-command", Some(json!({"command-line": line})));
    r["return"].as_str().unwrap_or_else(|| panic!("{line}: {r}")).to_string()
}

#[test]
fn prelaunch_cont_powerdown_and_guest_shutdown() {
    let (mut vmm, mut c) = boot("demo", &["-S"]);
    assert_eq!(status(&mut c), "prelaunch");
    assert_eq!(hmp(&mut c, "info status"), "VM status: paused (prelaunch)\r\n");
    // Nothing runs in prelaunch.
    std::thread::sleep(Duration::from_millis(300));
    assert!(std::fs::read_to_string(vmm.path("serial.log")).unwrap_or_default().is_empty());
    c.send(&json!({"execute": "cont"}));
    assert_eq!(c.recv()["event"], "RESUME");
    assert_eq!(c.recv(), json!({"return": {}}));
    wait_for_file_text(&vmm.path("serial.log"), "powerbutton: waiting", T);
    assert_eq!(status(&mut c), "running");
    c.send(&json!({"execute": "system_powerdown"}));
    let ev = c.recv();
    assert_eq!(ev["event"], "POWERDOWN");
    assert!(ev.get("data").is_none());
    assert_eq!(c.recv(), json!({"return": {}}));
    let ev = event(&mut c, "SHUTDOWN");
    assert_eq!(ev["data"], json!({"guest": true, "reason": "guest-shutdown"}));
    assert_eq!(vmm.wait_exit(T), Some(0));
    assert!(std::fs::read_to_string(vmm.path("serial.log")).unwrap().contains("powerbutton: pressed"));
}

#[test]
fn stop_really_pauses_and_cont_resumes() {
    let (vmm, mut c) = boot("tick", &[]);
    let log = vmm.path("serial.log");
    wait_for_file_text(&log, "tick 3", T);
    c.send(&json!({"execute": "stop"}));
    assert_eq!(c.recv()["event"], "STOP");
    assert_eq!(c.recv(), json!({"return": {}}));
    assert_eq!(status(&mut c), "paused");
    let frozen = std::fs::read(&log).unwrap().len();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(std::fs::read(&log).unwrap().len(), frozen, "the guest ran while paused");
    assert_eq!(hmp(&mut c, "info status"), "VM status: paused\r\n");
    c.send(&json!({"execute": "cont"}));
    assert_eq!(c.recv()["event"], "RESUME");
    assert_eq!(c.recv(), json!({"return": {}}));
    let deadline = std::time::Instant::now() + T;
    while std::fs::read(&log).unwrap().len() == frozen {
        assert!(std::time::Instant::now() < deadline, "the guest did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn system_reset_restarts_from_the_boot_entry() {
    let (vmm, mut c) = boot("tick", &[]);
    let log = vmm.path("serial.log");
    wait_for_file_text(&log, "tick 2", T);
    c.send(&json!({"execute": "system_reset"}));
    let ev = c.recv();
    assert_eq!(ev["event"], "RESET");
    assert_eq!(ev["data"], json!({"guest": false, "reason": "host-qmp-system-reset"}));
    assert_eq!(c.recv(), json!({"return": {}}));
    let deadline = std::time::Instant::now() + T;
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.matches("testguest: boot protocol").count() >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no second boot:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&mut c), "running");
}

#[test]
fn guest_reset_paths_report_guest_reset() {
    for action in ["reset", "cf9", "triplefault"] {
        let (vmm, mut c) = boot(action, &["-no-shutdown"]);
        let ev = event(&mut c, "RESET");
        assert_eq!(ev["data"], json!({"guest": true, "reason": "guest-reset"}), "{action}");
        // The guest comes back, notices the reset, and powers off: -no-shutdown keeps us around.
        let ev = event(&mut c, "SHUTDOWN");
        assert_eq!(ev["data"], json!({"guest": true, "reason": "guest-shutdown"}), "{action}");
        assert_eq!(event(&mut c, "STOP")["event"], "STOP");
        assert_eq!(status(&mut c), "shutdown");
        let text = std::fs::read_to_string(vmm.path("serial.log")).unwrap();
        assert!(text.contains("this is the boot after the reset"), "{action}: {text}");
        let r = c.execute("cont", None);
        assert_eq!(r["error"]["desc"], "Resetting the Virtual Machine is required", "{r}");
    }
}

#[test]
fn no_reboot_turns_a_guest_reset_into_shutdown() {
    let (mut vmm, mut c) = boot("reset", &["-no-reboot"]);
    let ev = event(&mut c, "SHUTDOWN");
    assert_eq!(ev["data"], json!({"guest": true, "reason": "guest-reset"}));
    assert_eq!(vmm.wait_exit(T), Some(0));
}

#[test]
fn no_shutdown_then_reset_then_cont() {
    let (mut vmm, mut c) = boot("poweroff", &["-no-shutdown"]);
    assert_eq!(event(&mut c, "SHUTDOWN")["data"], json!({"guest": true, "reason": "guest-shutdown"}));
    event(&mut c, "STOP");
    assert_eq!(status(&mut c), "shutdown");
    assert_eq!(hmp(&mut c, "info status"), "VM status: paused (shutdown)\r\n");
    c.send(&json!({"execute": "system_reset"}));
    assert_eq!(c.recv()["event"], "RESET");
    assert_eq!(c.recv(), json!({"return": {}}));
    assert_eq!(status(&mut c), "prelaunch");
    c.send(&json!({"execute": "cont"}));
    assert_eq!(c.recv()["event"], "RESUME");
    assert_eq!(c.recv(), json!({"return": {}}));
    // It boots again and powers off again.
    assert_eq!(event(&mut c, "SHUTDOWN")["data"]["reason"], "guest-shutdown");
    c.send(&json!({"execute": "quit"}));
    assert_eq!(event(&mut c, "SHUTDOWN")["data"], json!({"guest": false, "reason": "host-qmp-quit"}));
    assert_eq!(vmm.wait_exit(T), Some(0));
}

#[test]
fn cpus_have_real_threads_and_registers() {
    let (vmm, mut c) = boot("smp", &["-smp", "2", "-no-shutdown"]);
    wait_for_file_text(&vmm.path("serial.log"), "smp: 2 of 2 cpus up", T);
    let cpus = c.execute("query-cpus-fast", None);
    let list = cpus["return"].as_array().expect("list");
    assert_eq!(list.len(), 2, "{cpus}");
    let pid = vmm.child.id();
    for (i, cpu) in list.iter().enumerate() {
        assert_eq!(cpu["cpu-index"], i as i64);
        assert_eq!(cpu["target"], "x86_64");
        assert_eq!(cpu["qom-path"], format!("/machine/unattached/device[{i}]"));
        let tid = cpu["thread-id"].as_i64().expect("thread-id");
        assert!(
            std::path::Path::new(&format!("/proc/{pid}/task/{tid}")).exists(),
            "thread {tid} is not ours"
        );
        assert!(cpu["props"]["socket-id"].is_i64() && cpu["props"]["core-id"].is_i64(), "{cpu}");
    }
    let info = hmp(&mut c, "info cpus");
    assert!(info.starts_with("* CPU #0: thread_id="), "{info}");
    assert!(info.contains("  CPU #1: thread_id="), "{info}");
    let regs = hmp(&mut c, "info registers");
    assert!(regs.contains("RAX=") && regs.contains("RIP="), "{regs}");
    assert_eq!(c.execute("query-memory-size-summary", None)["return"]["base-memory"], 128 << 20);
    assert_eq!(c.execute("query-kvm", None)["return"], json!({"enabled": true, "present": true}));
}

#[test]
fn bad_guest_io_leaves_the_monitor_answering() {
    let (vmm, mut c) = boot("badio", &["-no-shutdown"]);
    wait_for_file_text(&vmm.path("serial.log"), "badio: survived", T);
    assert!(matches!(status(&mut c).as_str(), "running" | "shutdown"));
}

#[test]
fn impossible_machines_fail_with_exit_1() {
    require_kvm();
    let kernel = guest("testguest-pvh.elf");
    let kernel = kernel.to_str().unwrap();
    for (args, want) in [
        (vec!["-m", "64T", "-display", "none", "-kernel", kernel], "memory"),
        (
            vec!["-display", "none", "-kernel", kernel, "-initrd", "/nonexistent/initrd.img"],
            "/nonexistent/initrd.img",
        ),
    ] {
        let out = std::process::Command::new(proto_tests::binary("vmm")).args(&args).output().expect("vmm");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.to_lowercase().contains(want), "{args:?}: {err}");
    }
}

#[test]
fn serial_port_on_sockets() {
    require_kvm();
    let kernel = guest("testguest-pvh.elf");
    let kernel = kernel.to_str().unwrap();
    for serial in [
        vec!["-serial", "unix:{dir}/s.sock,server=on,wait=off"],
        vec!["-chardev", "socket,id=ser0,path={dir}/s.sock,server=on,wait=off", "-serial", "chardev:ser0"],
    ] {
        let mut args =
            vec!["-m", "64", "-display", "none", "-kernel", kernel, "-append", "action=tick", "-S"];
        args.extend(serial.iter().copied());
        args.extend(["-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"]);
        let mut vmm = Server::vmm(&args);
        let mut q = vmm.connect_unix("qmp.sock");
        q.negotiate();
        let mut s = std::os::unix::net::UnixStream::connect(vmm.path("s.sock")).expect("serial socket");
        s.set_read_timeout(Some(T)).unwrap();
        assert_eq!(q.execute("cont", None), json!({"return": {}}));
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains("tick 2") {
            let n = std::io::Read::read(&mut s, &mut buf).expect("serial output");
            assert!(n > 0, "serial socket closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        assert!(String::from_utf8_lossy(&got).contains("testguest: boot protocol pvh"), "{serial:?}");
        let chardevs = q.execute("query-chardev", None);
        assert!(chardevs.to_string().contains("s.sock"), "{chardevs}");
    }
}

/// The first loadable segment of an ELF64 file: (file offset, physical address, file size).
fn first_load_segment(elf: &[u8]) -> (usize, u64, usize) {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    let (phoff, phentsize, phnum) = (u64_at(0x20) as usize, u16_at(0x36) as usize, u16_at(0x38) as usize);
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&p| u32::from_le_bytes(elf[p..p + 4].try_into().unwrap()) == 1 && u64_at(p + 0x20) >= 64)
        .map(|p| (u64_at(p + 0x08) as usize, u64_at(p + 0x18), u64_at(p + 0x20) as usize))
        .expect("a PT_LOAD segment")
}

/// `pmemsave`, `memsave`, `xp` and `x` show the guest's memory: the kernel image where it was
/// loaded (the guest runs identity-mapped, so virtual = physical), in QEMU's dump format.
#[test]
fn guest_memory_through_the_monitor() {
    let (vmm, mut c) = boot("halt", &[]);
    let elf = std::fs::read(guest("testguest-pvh.elf")).expect("guest ELF");
    let (off, paddr, _) = first_load_segment(&elf);
    let want = &elf[off..off + 64];
    let file = vmm.path("p.bin");
    let r = c.execute("pmemsave", Some(json!({"val": paddr, "size": 64, "filename": file})));
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(std::fs::read(&file).expect("pmemsave file"), want);
    // Once the guest runs, its page tables translate the same address to the same bytes.
    wait_for_file_text(&vmm.path("serial.log"), "action: halt", T);
    let file = vmm.path("m.bin");
    let r = c.execute("memsave", Some(json!({"val": paddr, "size": 64, "filename": file, "cpu-index": 0})));
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(std::fs::read(&file).expect("memsave file"), want);
    let line = |bytes: &[u8], at: u64| {
        let vals: Vec<String> = bytes.iter().map(|b| format!("0x{b:02x}")).collect();
        format!("{at:016x}: {}\r\n", vals.join(" "))
    };
    let expect = format!("{}{}", line(&want[..8], paddr), line(&want[8..16], paddr + 8));
    assert_eq!(hmp(&mut c, &format!("xp /16xb {paddr:#x}")), expect);
    assert_eq!(hmp(&mut c, &format!("x /16xb {paddr:#x}")), expect);
    let word = u32::from_le_bytes(want[..4].try_into().unwrap());
    assert_eq!(hmp(&mut c, &format!("xp /1xw {paddr:#x}")), format!("{paddr:016x}: 0x{word:08x}\r\n"));
    // The unit size is remembered from one command to the next, as QEMU's defaults are.
    let half = |i: usize| u16::from_le_bytes([want[i], want[i + 1]]);
    assert_eq!(
        hmp(&mut c, &format!("xp /2xh {paddr:#x}")),
        format!("{paddr:016x}: 0x{:04x} 0x{:04x}\r\n", half(0), half(2))
    );
    assert_eq!(hmp(&mut c, &format!("xp /1x {paddr:#x}")), format!("{paddr:016x}: 0x{:04x}\r\n", half(0)));
    // Past the end of RAM: the first line says so and the dump stops.
    assert_eq!(hmp(&mut c, "xp /2xg 0x100000000000"), "0000100000000000: Cannot access memory\r\n");
    let r = c.execute("memsave", Some(json!({"val": 0x1000_0000_0000u64, "size": 16, "filename": file})));
    assert_eq!(r["error"]["desc"], "Invalid addr 0x0000100000000000/size 16 specified", "{r}");
    let r = c.execute("memsave", Some(json!({"val": 0, "size": 16, "filename": file, "cpu-index": 5})));
    assert_eq!(r["error"]["desc"], "Parameter 'cpu-index' expects a CPU number", "{r}");
}
