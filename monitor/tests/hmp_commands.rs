//! HMP commands through `run_line` and QMP `human-monitor-command`, compared with QEMU 7.2's
//! recorded output. The recordings in `tests/data/` are copies of `shared/ref/qemu-7.2/`
//! (QEMU 7.2.22).

mod common;

use monitor::hmp::{run_line, table};
use monitor::{KvmInfo, MonitorConfig, VersionInfo, VersionTriple};
use serde_json::json;

const HELP_FULL: &str = include_str!("data/hmp-help-full.txt");
const QMP_16: &str = include_str!("data/qmp-16-human-monitor-command.txt");

/// The lines of QEMU's `help` output (the recording starts with the echoed command).
fn reference_help() -> Vec<String> {
    HELP_FULL.lines().skip(1).filter(|l| !l.starts_with("(qemu)")).map(str::to_string).collect()
}

#[tokio::test]
async fn help_lines_are_qemus() {
    let m = common::monitor();
    let out = run_line(&m, "help", None).await;
    assert!(out.ends_with("\r\n"));
    let ours: Vec<&str> = out.split("\r\n").filter(|l| !l.is_empty()).collect();
    let reference = reference_help();
    // Every line we print is exactly QEMU's line for that command.
    for line in &ours {
        assert!(reference.iter().any(|r| r == line), "not in QEMU's help: {line:?}");
    }
    // And in QEMU's order (sorted by name). Continuation lines repeat (a lone "\t\t\t"), so each
    // line is looked for after the previous one.
    let mut from = 0;
    for line in &ours {
        let at = reference[from..].iter().position(|r| r == line);
        assert!(at.is_some(), "order differs from QEMU's at {line:?}: {ours:?}");
        from += at.unwrap_or(0) + 1;
    }
    for expected in [
        "stop|s  -- stop emulation",
        "cont|c  -- resume emulation",
        "quit|q  -- quit the emulator",
        "system_reset  -- reset the system",
        "system_powerdown  -- send system power down event",
        "help|? [cmd] -- show the help",
        "info [subcommand] -- show various information about the system state",
        "cpu index -- set the default CPU",
    ] {
        assert!(ours.contains(&expected), "missing {expected:?}");
    }
}

#[tokio::test]
async fn help_info_lines_are_qemus() {
    let m = common::monitor();
    // QEMU's `info` listing, from the human-monitor-command recording.
    let line = QMP_16.lines().find(|l| l.contains("info balloon")).unwrap();
    let start = line.find("\"return\": \"").unwrap() + 11;
    let reference: Vec<String> = line[start..]
        .split("\\\\r\\\\n")
        .map(|s| s.replace("\\'", "'"))
        .filter(|s| s.starts_with("info "))
        .collect();
    let ours = run_line(&m, "help info", None).await;
    assert_eq!(ours, run_line(&m, "info", None).await, "bare info lists the same");
    let ours: Vec<&str> = ours.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert!(ours.len() >= 10, "{ours:?}");
    let mut last = 0;
    for l in &ours {
        let pos = reference.iter().position(|r| r == l).unwrap_or_else(|| panic!("not QEMU's: {l:?}"));
        assert!(pos >= last, "order");
        last = pos;
    }
    assert!(ours.contains(&"info status  -- show the current VM status (running|paused)"));
}

#[tokio::test]
async fn help_one_command() {
    let m = common::monitor();
    assert_eq!(run_line(&m, "help stop", None).await, "stop|s  -- stop emulation\r\n");
    assert_eq!(run_line(&m, "? stop", None).await, "stop|s  -- stop emulation\r\n");
    assert_eq!(run_line(&m, "help stop cont", None).await, "stop|s  -- stop emulation\r\n");
    assert_eq!(run_line(&m, "help help", None).await, "help|? [cmd] -- show the help\r\n");
    assert_eq!(
        run_line(&m, "help   info   status", None).await,
        "info status  -- show the current VM status (running|paused)\r\n"
    );
    assert_eq!(run_line(&m, "help nosuch", None).await, "unknown command: 'nosuch'\r\n");
    assert_eq!(run_line(&m, "help info nosuch", None).await, "unknown command: 'info nosuch'\r\n");
    assert_eq!(run_line(&m, "help \"stop", None).await, "");
}

#[tokio::test]
async fn info_status_texts() {
    let m = common::monitor();
    assert_eq!(run_line(&m, "info status", None).await, "VM status: paused (prelaunch)\r\n");
    assert_eq!(run_line(&m, "   info    status  ", None).await, "VM status: paused (prelaunch)\r\n");
    assert_eq!(run_line(&m, "c", None).await, "");
    assert_eq!(run_line(&m, "info status", None).await, "VM status: running\r\n");
    assert_eq!(run_line(&m, "s", None).await, "");
    assert_eq!(run_line(&m, "info status", None).await, "VM status: paused\r\n");
    assert_eq!(run_line(&m, "system_reset", None).await, "");
    assert_eq!(run_line(&m, "system_powerdown", None).await, "");
}

#[tokio::test]
async fn identity_queries() {
    let m = common::monitor();
    assert_eq!(
        run_line(&m, "info version", None).await,
        format!("7.2.0 (vmm {})\r\n", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(run_line(&m, "info kvm", None).await, "kvm support: enabled\r\n");
    assert_eq!(run_line(&m, "info name", None).await, "probe-vm\r\n");
    assert_eq!(run_line(&m, "info uuid", None).await, "00000000-0000-0000-0000-000000000000\r\n");
    assert_eq!(
        run_line(&m, "info memory_size_summary", None).await,
        "base memory: 0\r\nplugged memory: 0\r\n"
    );
    assert_eq!(run_line(&m, "info history", None).await, "", "no history without a line editor");

    let config = MonitorConfig {
        version: VersionInfo {
            qemu: VersionTriple { major: 7, minor: 2, micro: 22 },
            package: "Debian 1:7.2+dfsg-7+deb12u18+b3".into(),
        },
        kvm: KvmInfo { enabled: false, present: true },
        ..MonitorConfig::default()
    };
    let m = common::monitor_with(0, config);
    // QEMU 7.2.22's exact output (qemu72-t2.txt).
    assert_eq!(run_line(&m, "info version", None).await, "7.2.22Debian 1:7.2+dfsg-7+deb12u18+b3\r\n");
    assert_eq!(run_line(&m, "info kvm", None).await, "kvm support: disabled\r\n");
    assert_eq!(run_line(&m, "info name", None).await, "");
    let m = common::monitor_with(0, MonitorConfig::default());
    assert_eq!(run_line(&m, "info kvm", None).await, "kvm support: not compiled\r\n");
}

#[tokio::test]
async fn parse_errors_match_qemu() {
    let m = common::monitor();
    // All recorded from QEMU 7.2.
    assert_eq!(run_line(&m, "bogus", None).await, "unknown command: 'bogus'\r\n");
    assert_eq!(run_line(&m, "  bogus  x", None).await, "unknown command: '  bogus'\r\n");
    assert_eq!(run_line(&m, "info bogus", None).await, "unknown command: 'info bogus'\r\n");
    assert_eq!(run_line(&m, "info    bogus   x", None).await, "unknown command: 'info    bogus'\r\n");
    assert_eq!(
        run_line(&m, "info status xyz", None).await,
        "status: extraneous characters at the end of line\r\nTry \"help info status\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "stop x", None).await,
        "stop|s: extraneous characters at the end of line\r\nTry \"help stop\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "  stop  x", None).await,
        "stop|s: extraneous characters at the end of line\r\nTry \"help   stop\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "q x", None).await,
        "quit|q: extraneous characters at the end of line\r\nTry \"help q\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "stop/x", None).await,
        "stop|s: extraneous characters at the end of line\r\nTry \"help stop\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "cpu", None).await,
        "unexpected end of expression\r\nTry \"help cpu\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "cpu -1", None).await,
        "'cpu' has failed: integer is for 32-bit values\r\nTry \"help cpu\" for more information\r\n"
    );
    assert_eq!(
        run_line(&m, "info registers -b", None).await,
        "registers: unsupported option -b\r\nTry \"help info registers\" for more information\r\n"
    );
    assert_eq!(run_line(&m, "", None).await, "");
    assert_eq!(run_line(&m, "   ", None).await, "");
}

#[tokio::test]
async fn cpus_and_registers() {
    let m = common::monitor_with(2, MonitorConfig::default());
    assert_eq!(
        run_line(&m, "info cpus", None).await,
        "* CPU #0: thread_id=9001\r\n  CPU #1: thread_id=9002\r\n"
    );
    assert_eq!(
        run_line(&m, "info cpus", Some(1)).await,
        "  CPU #0: thread_id=9001\r\n* CPU #1: thread_id=9002\r\n"
    );
    assert_eq!(run_line(&m, "cpu 1", None).await, "");
    assert_eq!(run_line(&m, "cpu 5", None).await, "invalid CPU index\r\n");
    assert_eq!(
        run_line(&m, "info registers", Some(1)).await,
        "\r\nCPU#1\r\nRAX=0000000000000001 RBX=0000000000000000\r\nRIP=000000000000fff0\r\n"
    );
    assert_eq!(run_line(&m, "info registers 3", None).await, "CPU#3 not available\r\n");
    let all = run_line(&m, "info registers -a", None).await;
    assert!(
        all.starts_with("\r\nCPU#0\r\nRAX=0000000000000000")
            && all.contains("\r\nCPU#1\r\nRAX=0000000000000001"),
        "{all:?}"
    );
    let none = common::monitor_with(0, MonitorConfig::default());
    assert_eq!(run_line(&none, "info cpus", None).await, "");
    assert_eq!(run_line(&none, "info registers", None).await, "No CPU available\r\n");
    assert_eq!(run_line(&none, "info registers -a", None).await, "");
    assert_eq!(run_line(&none, "cpu 0", None).await, "invalid CPU index\r\n");
}

/// `info pci` over the functions QEMU 7.2 reported in shared/ref/qemu-7.2/qemu72-t2.txt gives
/// QEMU's text byte for byte.
#[tokio::test]
async fn info_pci_is_qemus_text() {
    let m = common::monitor();
    let expected = "  Bus  0, device   0, function 0:\r\n    Host bridge: PCI device 8086:1237\r\n      PCI subsystem 1af4:1100\r\n      id \"\"\r\n  Bus  0, device   1, function 0:\r\n    ISA bridge: PCI device 8086:7000\r\n      PCI subsystem 1af4:1100\r\n      id \"\"\r\n  Bus  0, device   1, function 1:\r\n    IDE controller: PCI device 8086:7010\r\n      PCI subsystem 1af4:1100\r\n      BAR4: I/O at 0xc0a0 [0xc0af].\r\n      id \"\"\r\n  Bus  0, device   1, function 3:\r\n    Bridge: PCI device 8086:7113\r\n      PCI subsystem 1af4:1100\r\n      IRQ 9, pin A\r\n      id \"\"\r\n  Bus  0, device   2, function 0:\r\n    SCSI controller: PCI device 1af4:1001\r\n      PCI subsystem 1af4:0002\r\n      IRQ 10, pin A\r\n      BAR0: I/O at 0xc000 [0xc07f].\r\n      BAR1: 32 bit memory at 0xfebc0000 [0xfebc0fff].\r\n      BAR4: 64 bit prefetchable memory at 0xfebf8000 [0xfebfbfff].\r\n      id \"vd0\"\r\n  Bus  0, device   3, function 0:\r\n    Ethernet controller: PCI device 1af4:1000\r\n      PCI subsystem 1af4:0001\r\n      IRQ 11, pin A\r\n      BAR0: I/O at 0xc080 [0xc09f].\r\n      BAR1: 32 bit memory at 0xfebc1000 [0xfebc1fff].\r\n      BAR4: 64 bit prefetchable memory at 0xfebfc000 [0xfebfffff].\r\n      BAR6: 32 bit memory at 0xffffffffffffffff [0x0003fffe].\r\n      id \"nic0\"\r\n";
    assert_eq!(run_line(&m, "info pci", None).await, expected);
}

#[tokio::test]
async fn human_monitor_command_through_qmp_registry() {
    let m = common::monitor_with(1, MonitorConfig::default());
    let hmc = m.registry.get("human-monitor-command").unwrap();
    let call = |args: serde_json::Value| {
        let serde_json::Value::Object(map) = args else { unreachable!() };
        hmc.call(m.clone(), map)
    };
    assert_eq!(
        call(json!({"command-line": "info status"})).await.unwrap(),
        json!("VM status: paused (prelaunch)\r\n")
    );
    assert_eq!(call(json!({"command-line": ""})).await.unwrap(), json!(""));
    assert_eq!(
        call(json!({"command-line": "nosuchcmd"})).await.unwrap(),
        json!("unknown command: 'nosuchcmd'\r\n")
    );
    assert_eq!(
        call(json!({"command-line": "info cpus", "cpu-index": 0})).await.unwrap(),
        json!("* CPU #0: thread_id=9001\r\n")
    );
    let err = call(json!({"command-line": "info status", "cpu-index": 5})).await.unwrap_err();
    assert_eq!(err.desc, "Parameter 'cpu-index' expects a CPU number");
    // `stop` over HMP is the QMP command: the run state follows.
    common::cont(&m).await;
    assert_eq!(call(json!({"command-line": "stop"})).await.unwrap(), json!(""));
    let status = m.registry.get("query-status").unwrap().call(m.clone(), Default::default()).await.unwrap();
    assert_eq!(status["status"], "paused");
}

#[tokio::test]
async fn tables_are_sorted_and_unique() {
    let t = table::tables();
    for list in [&t.main, &t.info] {
        assert!(list.windows(2).all(|w| w[0].names < w[1].names));
        for c in list.iter() {
            for n in c.names.split('|') {
                assert_eq!(list.iter().filter(|o| o.is_named(n)).count(), 1, "{n} twice");
            }
        }
    }
}
