//! The `vmm` command line, in QEMU's spellings (`-m 512`, `-smp 2`, `-qmp unix:..,server=on`).
//!
//! [`OPTIONS`] is the one table of options: name, whether it takes an argument, and what it does to
//! the [`Config`]. Options may be written with one or two dashes, as QEMU allows. An unknown option
//! is an error naming it; a QEMU option we do not implement says so instead of being ignored.

pub mod device;
pub mod keyval;
pub mod size;

use std::path::PathBuf;

use crate::machine::{MachineConfig, SmpConfig};
use keyval::KeyVal;

/// Everything the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `-machine` / `-M` type (`none`, `pc`, `q35`, `microvm`, `vmm`); `None`: the default machine.
    pub machine_type: Option<String>,
    /// `-S`: start in prelaunch, vCPUs stopped until `cont`.
    pub start_paused: bool,
    pub name: Option<String>,
    pub uuid: Option<String>,
    pub nodefaults: bool,
    /// `-display` value (only `none` is supported).
    pub display: Option<String>,
    pub nographic: bool,
    pub daemonize: bool,
    pub pidfile: Option<PathBuf>,
    /// `-qmp`, `-monitor`, `-chardev`, `-mon` specs, in order, for the transport layer.
    pub monitors: Vec<MonitorArg>,
    /// KVM requested explicitly (`-enable-kvm`, `-accel kvm`, `-machine accel=kvm`).
    pub kvm_requested: bool,
    /// `-m` in bytes (`None`: QEMU's default, 128 MiB).
    pub memory_bytes: Option<u64>,
    pub smp: Option<SmpConfig>,
    pub kernel: Option<PathBuf>,
    pub initrd: Option<PathBuf>,
    pub append: Option<String>,
    /// `-serial` specs, COM1 first.
    pub serial: Vec<String>,
    /// `-cpu` (accepted: `host` and `max`, with `+feat`/`-feat` modifiers ignored by our model).
    pub cpu: Option<String>,
    pub no_reboot: bool,
    pub no_shutdown: bool,
    /// Disk and device options, kept raw for the layers that parse them.
    pub drives: Vec<DriveArg>,
    pub devices: Vec<String>,
    pub netdevs: Vec<String>,
}

/// One monitor-related option, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorArg {
    Qmp(String),
    Monitor(String),
    Chardev(String),
    Mon(String),
}

/// One disk-related option, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriveArg {
    /// `-hda`..`-hdd`: index and file.
    Hd(u8, String),
    Drive(String),
    Blockdev(String),
}

/// What parsing the command line produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Box<Config>),
    /// `-version`, `-h`: print this and exit 0.
    Print(String),
}

type Apply = fn(&mut Config, &str) -> Result<(), String>;

/// One option: its names, whether it takes an argument, and its effect.
struct OptionDef {
    names: &'static [&'static str],
    arg: bool,
    help: &'static str,
    apply: Apply,
}

macro_rules! opt {
    ($names:expr, $arg:expr, $help:expr, $apply:expr) => {
        OptionDef { names: $names, arg: $arg, help: $help, apply: $apply }
    };
}

/// Options QEMU has that we recognise but do not implement: a clear error rather than "invalid".
const UNSUPPORTED: &[&str] = &[
    "vnc",
    "spice",
    "vga",
    "bios",
    "L",
    "cdrom",
    "fda",
    "fdb",
    "usb",
    "usbdevice",
    "audiodev",
    "soundhw",
    "incoming",
    "loadvm",
    "icount",
    "gdb",
    "s",
    "singlestep",
    "numa",
    "object",
    "global",
    "boot",
    "rtc",
    "watchdog",
    "watchdog-action",
    "snapshot",
    "mem-path",
    "mem-prealloc",
    "k",
    "sandbox",
    "overcommit",
    "semihosting",
    "fw_cfg",
    "smbios",
    "acpitable",
    "virtfs",
    "fsdev",
    "parallel",
    "balloon",
    "tpmdev",
    "add-fd",
    "plugin",
    "preconfig",
    "msg",
    "runas",
    "chroot",
    "action",
    "trace",
    "D",
    "d",
];

const OPTIONS: &[OptionDef] = &[
    opt!(&["machine", "M"], true, "select the machine type (none, pc, q35, microvm)", |c, v| {
        let kv = KeyVal::parse(v, Some("type"));
        if let Some(k) = kv.unknown_key(&["type", "accel", "usb", "dump-guest-core", "mem-merge", "graphics"])
        {
            return Err(format!("Invalid parameter '{k}'"));
        }
        if let Some(t) = kv.get("type") {
            c.machine_type = Some(t.to_string());
        }
        if let Some(a) = kv.get("accel") {
            apply_accel(c, a)?;
        }
        Ok(())
    }),
    opt!(&["S"], false, "freeze CPUs at startup (use 'c' to start execution)", |c, _| {
        c.start_paused = true;
        Ok(())
    }),
    opt!(&["name"], true, "set the name of the guest (name or guest=name)", |c, v| {
        let kv = KeyVal::parse(v, Some("guest"));
        if let Some(k) = kv.unknown_key(&["guest", "process", "debug-threads"]) {
            return Err(format!("Invalid parameter '{k}'"));
        }
        c.name = kv.get("guest").map(str::to_string);
        Ok(())
    }),
    opt!(&["uuid"], true, "specify machine UUID", |c, v| {
        if !is_uuid(v) {
            return Err("Fail to parse UUID string".into());
        }
        c.uuid = Some(v.to_ascii_lowercase());
        Ok(())
    }),
    opt!(&["nodefaults"], false, "don't create default devices", |c, _| {
        c.nodefaults = true;
        Ok(())
    }),
    opt!(&["display"], true, "select display backend type (only 'none')", |c, v| {
        let kind = KeyVal::parse(v, Some("type"));
        match kind.get("type") {
            Some("none") => {
                c.display = Some("none".into());
                Ok(())
            }
            Some(other) => Err(format!("Display '{other}' is not available")),
            None => Err("Parameter 'type' is missing".into()),
        }
    }),
    opt!(&["nographic"], false, "disable graphical output; serial and monitor on stdio", |c, _| {
        c.nographic = true;
        Ok(())
    }),
    opt!(&["daemonize"], false, "daemonize the process after initialising", |c, _| {
        c.daemonize = true;
        Ok(())
    }),
    opt!(&["pidfile"], true, "write PID to 'file'", |c, v| {
        c.pidfile = Some(PathBuf::from(v));
        Ok(())
    }),
    opt!(&["qmp"], true, "like -monitor but opens in 'control' mode", |c, v| {
        c.monitors.push(MonitorArg::Qmp(v.to_string()));
        Ok(())
    }),
    opt!(&["monitor"], true, "redirect the HMP monitor to char device 'dev'", |c, v| {
        c.monitors.push(MonitorArg::Monitor(v.to_string()));
        Ok(())
    }),
    opt!(&["chardev"], true, "define a character device (socket, stdio, file, null)", |c, v| {
        c.monitors.push(MonitorArg::Chardev(v.to_string()));
        Ok(())
    }),
    opt!(&["mon"], true, "attach a monitor to a chardev: chardev=id[,mode=control|readline]", |c, v| {
        c.monitors.push(MonitorArg::Mon(v.to_string()));
        Ok(())
    }),
    opt!(&["enable-kvm"], false, "enable KVM full virtualization support", |c, _| {
        c.kvm_requested = true;
        Ok(())
    }),
    opt!(&["accel"], true, "select accelerator (only kvm)", |c, v| apply_accel(c, v)),
    opt!(&["m"], true, "configure guest RAM: [size=]megs[suffix]", |c, v| {
        let kv = KeyVal::parse(v, Some("size"));
        if let Some(k) = kv.unknown_key(&["size", "slots", "maxmem"]) {
            return Err(format!("Invalid parameter '{k}'"));
        }
        let s = kv.get("size").ok_or("Parameter 'size' is missing")?;
        let bytes = size::parse_size(s, 1 << 20).map_err(|e| format!("invalid ram size: {s} ({e})"))?;
        if bytes == 0 {
            return Err("ram size can't be 0".into());
        }
        c.memory_bytes = Some(bytes);
        Ok(())
    }),
    opt!(
        &["smp"],
        true,
        "set the number of CPUs: [cpus=]n[,sockets=][,cores=][,threads=][,maxcpus=]",
        |c, v| {
            c.smp = Some(parse_smp(v)?);
            Ok(())
        }
    ),
    opt!(&["cpu"], true, "select CPU model (host, max)", |c, v| {
        let model = v.split(',').next().unwrap_or_default();
        if !matches!(model, "host" | "max" | "qemu64" | "kvm64") {
            return Err(format!("unable to find CPU model '{model}'"));
        }
        c.cpu = Some(v.to_string());
        Ok(())
    }),
    opt!(&["kernel"], true, "use 'bzImage', ELF vmlinux or PVH ELF as kernel image", |c, v| {
        c.kernel = Some(PathBuf::from(v));
        Ok(())
    }),
    opt!(&["initrd"], true, "use 'file' as initial ram disk", |c, v| {
        c.initrd = Some(PathBuf::from(v));
        Ok(())
    }),
    opt!(&["append"], true, "use 'cmdline' as kernel command line", |c, v| {
        c.append = Some(v.to_string());
        Ok(())
    }),
    opt!(&["serial"], true, "redirect the serial port to char device 'dev'", |c, v| {
        c.serial.push(v.to_string());
        Ok(())
    }),
    opt!(&["no-reboot"], false, "exit instead of rebooting", |c, _| {
        c.no_reboot = true;
        Ok(())
    }),
    opt!(&["no-shutdown"], false, "stop before shutdown", |c, _| {
        c.no_shutdown = true;
        Ok(())
    }),
    opt!(&["hda"], true, "use 'file' as hard disk 0 image (a virtio-blk disk here)", |c, v| hd(c, 0, v)),
    opt!(&["hdb"], true, "use 'file' as hard disk 1 image", |c, v| hd(c, 1, v)),
    opt!(&["hdc"], true, "use 'file' as hard disk 2 image", |c, v| hd(c, 2, v)),
    opt!(&["hdd"], true, "use 'file' as hard disk 3 image", |c, v| hd(c, 3, v)),
    opt!(&["drive"], true, "use 'file' as a drive image: file=..,format=..,if=..,id=..", |c, v| {
        c.drives.push(DriveArg::Drive(v.to_string()));
        Ok(())
    }),
    opt!(&["blockdev"], true, "configure a block backend: driver=..,node-name=..", |c, v| {
        c.drives.push(DriveArg::Blockdev(v.to_string()));
        Ok(())
    }),
    opt!(&["device"], true, "add a device: driver[,prop=value][,...]", |c, v| {
        c.devices.push(v.to_string());
        Ok(())
    }),
    opt!(&["netdev"], true, "configure a network backend: user|tap,id=..", |c, v| {
        c.netdevs.push(v.to_string());
        Ok(())
    }),
    opt!(
        &["nic", "net"],
        true,
        "none: no network card (the default here); others are not supported yet",
        |_, v| {
            // There is no default NIC to remove; anything else would need a network back end.
            if v == "none" {
                Ok(())
            } else {
                Err("network back ends (-nic, -net) are not supported yet".into())
            }
        }
    ),
    opt!(&["version"], false, "display version information and exit", |_, _| Ok(())),
    opt!(&["h", "help"], false, "display this help and exit", |_, _| Ok(())),
];

fn hd(c: &mut Config, index: u8, v: &str) -> Result<(), String> {
    c.drives.push(DriveArg::Hd(index, v.to_string()));
    Ok(())
}

fn apply_accel(c: &mut Config, v: &str) -> Result<(), String> {
    let kv = KeyVal::parse(v, Some("accel"));
    match kv.get("accel") {
        Some("kvm") => {
            c.kvm_requested = true;
            Ok(())
        }
        Some(other) => Err(format!("invalid accelerator {other} (only kvm is available)")),
        None => Err("Parameter 'accel' is missing".into()),
    }
}

/// `-smp`, with QEMU's rules for the members left out.
fn parse_smp(v: &str) -> Result<SmpConfig, String> {
    let kv = KeyVal::parse(v, Some("cpus"));
    if let Some(k) = kv.unknown_key(&["cpus", "sockets", "dies", "clusters", "cores", "threads", "maxcpus"]) {
        return Err(format!("Invalid parameter '{k}'"));
    }
    let num = |k: &str| -> Result<Option<u32>, String> {
        kv.get(k)
            .map(|s| s.parse::<u32>().map_err(|_| format!("Parameter '{k}' expects a number")))
            .transpose()
    };
    let (cpus, sockets, cores, threads) = (num("cpus")?, num("sockets")?, num("cores")?, num("threads")?);
    let maxcpus = num("maxcpus")?;
    if [cpus, sockets, cores, threads].contains(&Some(0)) {
        return Err("Invalid CPU topology: CPU topology parameters must be greater than zero".into());
    }
    let threads = threads.unwrap_or(1);
    let cores = cores.unwrap_or(1);
    let total = cpus.or(maxcpus);
    let sockets = match (sockets, total) {
        (Some(s), _) => s,
        (None, Some(n)) => n.div_ceil(cores * threads),
        (None, None) => 1,
    };
    let cpus = cpus.unwrap_or(sockets * cores * threads);
    if sockets * cores * threads < cpus {
        return Err(format!(
            "Invalid CPU topology: product of the hierarchy must match maxcpus: sockets ({sockets}) * cores ({cores}) * threads ({threads}) != maxcpus ({cpus})"
        ));
    }
    if maxcpus.is_some_and(|m| m != cpus) {
        return Err("CPU hot-plug is not supported: maxcpus must equal cpus".into());
    }
    if cpus > 255 {
        return Err(format!("Invalid SMP CPUs {cpus}. The max CPUs supported by machine 'vmm' is 255"));
    }
    Ok(SmpConfig { cpus, sockets, cores, threads })
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Parsed, String> {
    let mut c = Config::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let Some(name) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            // QEMU treats a bare word as the disk image for -hda.
            hd(&mut c, 0, &arg)?;
            continue;
        };
        if name.is_empty() {
            return Err(format!("{arg}: invalid option"));
        }
        if name == "version" {
            return Ok(Parsed::Print(version_text()));
        }
        if name == "h" || name == "help" {
            return Ok(Parsed::Print(help_text()));
        }
        let Some(def) = OPTIONS.iter().find(|o| o.names.contains(&name)) else {
            if UNSUPPORTED.contains(&name) {
                return Err(format!("-{name}: this option is not supported by vmm"));
            }
            return Err(format!("-{name}: invalid option"));
        };
        let value = if def.arg {
            it.next().ok_or_else(|| format!("-{name}: requires an argument"))?
        } else {
            String::new()
        };
        (def.apply)(&mut c, &value).map_err(|e| format!("-{name} {value}: {e}").replace(" : ", ": "))?;
    }
    Ok(Parsed::Run(Box::new(c)))
}

/// `-version` output, in QEMU's shape.
pub fn version_text() -> String {
    format!(
        "vmm version {} (QEMU 7.2 QMP/HMP compatible)\nA KVM virtual machine monitor with a QEMU-compatible monitor\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `-h` output: usage and the option table.
pub fn help_text() -> String {
    let mut s = format!("vmm version {}\nusage: vmm [options] [disk_image]\n\n", env!("CARGO_PKG_VERSION"));
    for o in OPTIONS {
        let names: Vec<String> = o.names.iter().map(|n| format!("-{n}")).collect();
        let left = if o.arg { format!("{} ARG", names.join("|")) } else { names.join("|") };
        s.push_str(&format!("{left:<24} {}\n", o.help));
    }
    s.push_str("\nMonitor specs: stdio | unix:PATH[,server=on|off][,wait=on|off] | tcp:HOST:PORT[,...] | telnet:HOST:PORT[,...]\n");
    s
}

impl Config {
    /// The machine part of the configuration (`None` for `-machine none`).
    pub fn machine_config(&self) -> MachineConfig {
        MachineConfig {
            memory_bytes: self.memory_bytes.unwrap_or(128 << 20),
            smp: self.smp.unwrap_or_default(),
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            append: self.append.clone().unwrap_or_default(),
            serial: Vec::new(),
            machine_alias: self.machine_type.clone(),
        }
    }

    /// Whether this is the monitor-only machine.
    pub fn is_machine_none(&self) -> bool {
        self.machine_type.as_deref() == Some("none")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(c) => Ok(*c),
            Parsed::Print(p) => Err(format!("printed {p}")),
        }
    }

    #[test]
    fn issue_command_line() {
        let c = run(&[
            "-machine",
            "none",
            "-S",
            "-qmp",
            "unix:/tmp/q.sock,server=on,wait=off",
            "-monitor",
            "telnet:127.0.0.1:4444,server=on,wait=off",
        ])
        .unwrap();
        assert!(c.is_machine_none());
        assert!(c.start_paused);
        assert_eq!(
            c.monitors,
            vec![
                MonitorArg::Qmp("unix:/tmp/q.sock,server=on,wait=off".into()),
                MonitorArg::Monitor("telnet:127.0.0.1:4444,server=on,wait=off".into())
            ]
        );
    }

    #[test]
    fn machine_options() {
        let c =
            run(&["--m", "512", "-smp", "2", "-M", "q35,accel=kvm", "-name", "guest=vm1,debug-threads=on"])
                .unwrap();
        assert_eq!(c.memory_bytes, Some(512 << 20));
        assert_eq!(c.smp, Some(SmpConfig { cpus: 2, sockets: 2, cores: 1, threads: 1 }));
        assert_eq!(c.machine_type.as_deref(), Some("q35"));
        assert!(c.kvm_requested);
        assert_eq!(c.name.as_deref(), Some("vm1"));
        let c = run(&["-smp", "cpus=4,cores=2,threads=2"]).unwrap();
        assert_eq!(c.smp, Some(SmpConfig { cpus: 4, sockets: 1, cores: 2, threads: 2 }));
        assert_eq!(run(&["-m", "1G"]).unwrap().memory_bytes, Some(1 << 30));
    }

    #[test]
    fn errors_name_the_option() {
        assert_eq!(run(&["-bogus"]), Err("-bogus: invalid option".into()));
        assert_eq!(run(&["-vnc", ":0"]), Err("-vnc: this option is not supported by vmm".into()));
        assert_eq!(run(&["-m"]), Err("-m: requires an argument".into()));
        assert!(run(&["-m", "12Q"]).unwrap_err().starts_with("-m 12Q: invalid ram size"));
        assert!(run(&["-smp", "0"]).is_err());
        assert!(run(&["-smp", "cpus=4,sockets=1,cores=1"]).is_err());
        assert!(run(&["-accel", "tcg"]).is_err());
        assert!(run(&["-uuid", "nope"]).is_err());
        assert!(run(&["-display", "gtk"]).is_err());
    }

    #[test]
    fn version_and_help_print() {
        assert!(matches!(parse(["-version".to_string()]), Ok(Parsed::Print(_))));
        assert!(matches!(parse(["--help".to_string()]), Ok(Parsed::Print(_))));
    }
}
