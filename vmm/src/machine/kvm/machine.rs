//! `KvmMachine`: the machine behind the `Machine` trait. Construction builds everything (VM,
//! memory, devices, ACPI, kernel, vCPUs and their parked threads); `start` lets them run.
//!
//! Threads: the control thread calls the trait methods; one thread per vCPU (see `vcpu.rs`);
//! devices run on the vCPU thread that touched them, behind a mutex each. Guest events go out
//! on the channel given to `new`, and every vCPU parks when one is reported.

use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_MAX_CPUID_ENTRIES,
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED, KVM_PIT_SPEAKER_DUMMY, Msrs, kvm_debugregs,
    kvm_irqchip, kvm_lapic_state, kvm_mp_state, kvm_pit_config, kvm_pit_state2, kvm_regs, kvm_sregs,
    kvm_userspace_memory_region, kvm_vcpu_events, kvm_xcrs,
};
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryRegion};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::acpi::{self, AcpiConfig, AcpiTables};
use super::boot_cpu::{boot_fpu, boot_registers, write_boot_tables};
use super::bus::{Bus, SharedDevice};
use super::cpuid::{apic_id, topology_ids, vcpu_cpuid};
use super::devices::IrqLine;
use super::devices::acpi_pm::{AcpiPm, PM_BLOCK_LEN};
use super::devices::cmos::Cmos;
use super::devices::i8042::I8042;
use super::devices::misc::{DebugPort, ResetControl};
use super::devices::serial::{SerialDevice, SerialInput, SerialOutput};
use super::events::GuestEvents;
use super::layout::{
    ACPI_START, CMOS_PORT, COM_PORTS, DEBUG_PORT, I8042_PORT, KVM_IDENTITY_MAP_ADDR, KVM_TSS_ADDR,
    MMIO32_START, PM_BASE, RESET_CONTROL_PORT,
};
use super::loader::{BootEntry, BootFiles};
use super::memory::{GuestMemory, create_guest_memory};
use super::msrs::boot_msrs;
use super::probe::{check_capabilities, errno_text, open_kvm};
use super::registers::{self, CpuState};
use super::vcpu::{self, RunControl, VcpuContext};
use crate::machine::pci::{PciDeviceInfo, PciSystem};
use crate::machine::{CpuInfo, GuestEvent, Machine, MachineConfig, MachineError, SerialBackend, SmpConfig};

const APIC_LVT0: usize = 0x350;
const APIC_LVT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 4;
const APIC_MODE_EXTINT: u32 = 7;

struct KvmIrqLine(Arc<VmFd>);

impl IrqLine for KvmIrqLine {
    fn set_level(&self, gsi: u32, high: bool) {
        if let Err(e) = self.0.set_irq_line(gsi, high) {
            tracing::warn!("cannot set GSI {gsi} to {high}: {e}");
        }
    }
}

/// Register state each vCPU returns to on reset.
#[derive(Clone)]
struct VcpuResetState {
    regs: kvm_regs,
    sregs: kvm_sregs,
    lapic: kvm_lapic_state,
    events: kvm_vcpu_events,
}

struct VmResetState {
    irqchips: Vec<kvm_irqchip>,
    pit: kvm_pit_state2,
}

struct Devices {
    serials: Vec<Arc<Mutex<SerialDevice>>>,
    pm: Arc<Mutex<AcpiPm>>,
    i8042: Arc<Mutex<I8042>>,
    cmos: Arc<Mutex<Cmos>>,
    reset_control: Arc<Mutex<ResetControl>>,
}

/// The KVM-backed PC machine.
pub struct KvmMachine {
    vm: Arc<VmFd>,
    mem: GuestMemory,
    mem_size: u64,
    smp: SmpConfig,
    boot: BootFiles,
    acpi: AcpiTables,
    entry: BootEntry,
    devices: Devices,
    pci: PciSystem,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    control: Arc<RunControl>,
    threads: Vec<JoinHandle<VcpuFd>>,
    vcpu_reset: Vec<VcpuResetState>,
    vm_reset: VmResetState,
    msrs: Msrs,
    events: Arc<GuestEvents>,
    started: bool,
    stopped: bool,
}

fn kvm_err(what: &str) -> impl Fn(kvm_ioctls::Error) -> MachineError + '_ {
    move |e| MachineError::Other(format!("{what}: {}", errno_text(e.errno())))
}

/// Open what `-serial` names where the machine can do it alone (stdio, file, null); a chardev
/// (socket, `chardev:ID`) is the caller's to connect, so it gets an error here.
pub fn serial_outputs(config: &MachineConfig) -> Result<Vec<SerialOutput>, MachineError> {
    config
        .serial
        .iter()
        .map(|b| -> Result<SerialOutput, MachineError> {
            Ok(match b {
                SerialBackend::Stdio => Box::new(std::io::stdout()),
                SerialBackend::Null => Box::new(std::io::sink()),
                SerialBackend::File(path) => Box::new(std::fs::File::create(path).map_err(|e| {
                    MachineError::Config(format!("could not open serial output '{}': {e}", path.display()))
                })?),
                SerialBackend::Chardev(spec) => {
                    return Err(MachineError::Config(format!(
                        "serial chardev '{spec}' must be connected by the caller"
                    )));
                }
            })
        })
        .collect()
}

fn set_lapic_mode(lapic: &mut kvm_lapic_state, reg: usize, mode: u32) {
    let bytes: Vec<u8> = lapic.regs[reg..reg + 4].iter().map(|b| *b as u8).collect();
    let v = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let v = (v & !0x700) | (mode << 8);
    for (dst, src) in lapic.regs[reg..reg + 4].iter_mut().zip(v.to_le_bytes()) {
        *dst = src as _;
    }
}

impl KvmMachine {
    /// Build the machine. `serial` gives one writer per COM port (COM1 first, at most 4);
    /// guest-initiated transitions are sent on `events`. Nothing runs until `start`.
    pub fn new(
        config: &MachineConfig,
        serial: Vec<SerialOutput>,
        events: Sender<GuestEvent>,
    ) -> Result<Self, MachineError> {
        let smp = config.smp;
        if smp.cpus == 0 || smp.cpus != smp.sockets * smp.cores * smp.threads {
            return Err(MachineError::Config(format!(
                "Invalid CPU topology: cpus={} sockets={} cores={} threads={}",
                smp.cpus, smp.sockets, smp.cores, smp.threads
            )));
        }
        if serial.len() > COM_PORTS.len() {
            return Err(MachineError::Config(format!("at most {} serial ports", COM_PORTS.len())));
        }
        let kernel = config.kernel.as_deref().ok_or_else(|| {
            MachineError::Boot("no kernel given: this machine has no firmware, use -kernel".into())
        })?;
        let mut boot = BootFiles::open(kernel, config.initrd.as_deref(), &config.append)?;

        let kvm = open_kvm()?;
        check_capabilities(&kvm)?;
        let max = kvm.get_max_vcpus();
        if smp.cpus as usize > max {
            return Err(MachineError::Config(format!(
                "Number of SMP cpus requested ({}) exceeds the maximum cpus supported by KVM ({max})",
                smp.cpus
            )));
        }
        let mem_size = config.memory_bytes;
        let mem = create_guest_memory(mem_size)?;

        let vm = Arc::new(kvm.create_vm().map_err(|e| MachineError::KvmUnavailable(errno_text(e.errno())))?);
        vm.set_tss_address(KVM_TSS_ADDR as usize).map_err(kvm_err("KVM_SET_TSS_ADDR"))?;
        if let Err(e) = vm.set_identity_map_address(KVM_IDENTITY_MAP_ADDR) {
            tracing::debug!("KVM_SET_IDENTITY_MAP_ADDR: {e}");
        }
        vm.create_irq_chip().map_err(kvm_err("KVM_CREATE_IRQCHIP"))?;
        vm.create_pit2(kvm_pit_config { flags: KVM_PIT_SPEAKER_DUMMY, ..Default::default() })
            .map_err(kvm_err("KVM_CREATE_PIT2"))?;
        for (slot, region) in mem.iter().enumerate() {
            let region_desc = kvm_userspace_memory_region {
                slot: slot as u32,
                flags: 0,
                guest_phys_addr: region.start_addr().0,
                memory_size: region.len(),
                userspace_addr: region.as_ptr() as u64,
            };
            // SAFETY: the host mapping belongs to `mem`, which the machine keeps for as long as
            // the VM exists (fields are dropped after `vm` is no longer used by any thread).
            unsafe { vm.set_user_memory_region(region_desc) }
                .map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))?;
        }

        let guest_events = Arc::new(GuestEvents::new(events));
        let control = RunControl::new(smp.cpus as usize);
        {
            let c = Arc::clone(&control);
            guest_events.set_stop_hook(Box::new(move || c.request_park()));
        }
        let pio = Arc::new(Bus::new());
        let mmio = Arc::new(Bus::new());
        let devices = Self::add_devices(&vm, &pio, &guest_events, serial, mem_size)?;
        // The conf1 ports (0xcf8-0xcff) enclose the reset control register: conf1 forwards it.
        let reset_control = pio.remove(u64::from(RESET_CONTROL_PORT));
        let pci =
            PciSystem::new(Arc::clone(&vm), mem.clone(), Arc::clone(&pio), Arc::clone(&mmio), reset_control)?;

        let apic_ids: Vec<u32> = (0..smp.cpus).map(|i| apic_id(&smp, i)).collect();
        let acpi = acpi::build(&AcpiConfig {
            apic_ids: apic_ids.clone(),
            serial_ports: devices.serials.len(),
            extra_sb_aml: PciSystem::acpi_sb_aml(),
            extra_tables: PciSystem::acpi_tables(),
        });
        let entry = Self::load_boot_image(&mem, mem_size, &acpi, &mut boot)?;

        let supported =
            kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(kvm_err("KVM_GET_SUPPORTED_CPUID"))?;
        let msr_list = kvm.get_msr_index_list().map_err(kvm_err("KVM_GET_MSR_INDEX_LIST"))?;
        let msrs = boot_msrs(msr_list.as_slice())?;
        let mut fds = Vec::new();
        let mut vcpu_reset = Vec::new();
        for i in 0..smp.cpus {
            let fd = vm.create_vcpu(u64::from(apic_ids[i as usize])).map_err(kvm_err("KVM_CREATE_VCPU"))?;
            fd.set_cpuid2(&vcpu_cpuid(&supported, &smp, i)).map_err(kvm_err("KVM_SET_CPUID2"))?;
            let mut lapic = fd.get_lapic().map_err(kvm_err("KVM_GET_LAPIC"))?;
            set_lapic_mode(&mut lapic, APIC_LVT0, APIC_MODE_EXTINT);
            set_lapic_mode(&mut lapic, APIC_LVT1, APIC_MODE_NMI);
            let state = VcpuResetState {
                regs: fd.get_regs().map_err(kvm_err("KVM_GET_REGS"))?,
                sregs: fd.get_sregs().map_err(kvm_err("KVM_GET_SREGS"))?,
                lapic,
                events: fd.get_vcpu_events().map_err(kvm_err("KVM_GET_VCPU_EVENTS"))?,
            };
            apply_reset_state(&fd, &state, &msrs, (i == 0).then_some(entry)).map_err(MachineError::Vcpu)?;
            vcpu_reset.push(state);
            fds.push(fd);
        }
        let mut irqchips = Vec::new();
        for chip_id in [KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC] {
            let mut chip = kvm_irqchip { chip_id, ..Default::default() };
            vm.get_irqchip(&mut chip).map_err(kvm_err("KVM_GET_IRQCHIP"))?;
            irqchips.push(chip);
        }
        let vm_reset = VmResetState { irqchips, pit: vm.get_pit2().map_err(kvm_err("KVM_GET_PIT2"))? };

        let unknown_io = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for (index, fd) in fds.into_iter().enumerate() {
            let ctx = VcpuContext {
                index,
                control: Arc::clone(&control),
                pio: Arc::clone(&pio),
                mmio: Arc::clone(&mmio),
                events: Arc::clone(&guest_events),
                unknown_io: Arc::clone(&unknown_io),
            };
            threads.push(vcpu::spawn(ctx, fd)?);
        }
        vcpu::wait_started(&control);
        let machine = KvmMachine {
            vm,
            mem,
            mem_size,
            smp,
            boot,
            acpi,
            entry,
            devices,
            pci,
            pio,
            mmio,
            control,
            threads,
            vcpu_reset,
            vm_reset,
            msrs,
            events: guest_events,
            started: false,
            stopped: false,
        };
        machine.control.park_all();
        Ok(machine)
    }

    fn add_devices(
        vm: &Arc<VmFd>,
        pio: &Bus,
        events: &Arc<GuestEvents>,
        serial: Vec<SerialOutput>,
        mem_size: u64,
    ) -> Result<Devices, MachineError> {
        let bus_err = |e: super::bus::BusError| MachineError::Other(e.to_string());
        let mut serials = Vec::new();
        for (out, &(port, irq)) in serial.into_iter().zip(COM_PORTS.iter()) {
            let evt = EventFd::new(EFD_NONBLOCK).map_err(|e| MachineError::Other(format!("eventfd: {e}")))?;
            vm.register_irqfd(&evt, irq).map_err(kvm_err("KVM_IRQFD"))?;
            let dev = Arc::new(Mutex::new(SerialDevice::new(evt, out)));
            pio.insert(u64::from(port), 8, dev.clone() as SharedDevice).map_err(bus_err)?;
            serials.push(dev);
        }
        let irq_line: Arc<dyn IrqLine> = Arc::new(KvmIrqLine(Arc::clone(vm)));
        let pm = Arc::new(Mutex::new(AcpiPm::new(irq_line, Arc::clone(events))));
        pio.insert(u64::from(PM_BASE), PM_BLOCK_LEN, pm.clone() as SharedDevice).map_err(bus_err)?;
        let i8042 = Arc::new(Mutex::new(I8042::new(Arc::clone(events))));
        pio.insert(u64::from(I8042_PORT), 5, i8042.clone() as SharedDevice).map_err(bus_err)?;
        let above_4g = mem_size.saturating_sub(MMIO32_START);
        let cmos = Arc::new(Mutex::new(Cmos::new(mem_size.min(MMIO32_START), above_4g)));
        pio.insert(u64::from(CMOS_PORT), 2, cmos.clone() as SharedDevice).map_err(bus_err)?;
        let reset_control = Arc::new(Mutex::new(ResetControl::new(Arc::clone(events))));
        pio.insert(u64::from(RESET_CONTROL_PORT), 1, reset_control.clone() as SharedDevice)
            .map_err(bus_err)?;
        pio.insert(u64::from(DEBUG_PORT), 1, Arc::new(Mutex::new(DebugPort)) as SharedDevice)
            .map_err(bus_err)?;
        Ok(Devices { serials, pm, i8042, cmos, reset_control })
    }

    /// ACPI tables, boot GDT/page tables, kernel, initrd, command line and boot information.
    fn load_boot_image(
        mem: &GuestMemory,
        mem_size: u64,
        acpi: &AcpiTables,
        boot: &mut BootFiles,
    ) -> Result<BootEntry, MachineError> {
        mem.write_slice(&acpi.image, GuestAddress(ACPI_START))
            .map_err(|e| MachineError::Boot(format!("could not write the ACPI tables: {e}")))?;
        write_boot_tables(mem)?;
        boot.load(mem, mem_size, acpi.rsdp_addr)
    }

    /// Feed bytes to COM`port+1` (the host side of `-serial stdio`, a socket...).
    pub fn serial_input(&self, port: usize) -> Option<SerialInput> {
        self.devices.serials.get(port).map(|d| SerialInput::new(Arc::clone(d)))
    }

    /// The ACPI tables as built for the guest (for dumps and `iasl`).
    pub fn acpi_tables(&self) -> &AcpiTables {
        &self.acpi
    }

    /// How the boot vCPU enters the kernel.
    pub fn boot_entry(&self) -> BootEntry {
        self.entry
    }

    /// Copy guest memory out (tests, dumps).
    pub fn read_guest_memory(&self, addr: u64, len: usize) -> Result<Vec<u8>, MachineError> {
        let mut buf = vec![0u8; len];
        self.mem
            .read_slice(&mut buf, GuestAddress(addr))
            .map_err(|e| MachineError::Other(format!("cannot read guest memory at {addr:#x}: {e}")))?;
        Ok(buf)
    }

    /// The port-I/O and MMIO buses, for devices added after construction (PCI).
    pub fn buses(&self) -> (Arc<Bus>, Arc<Bus>) {
        (Arc::clone(&self.pio), Arc::clone(&self.mmio))
    }

    /// The PCI bus: plug devices in (`add_virtio`) before `start`.
    pub fn pci(&self) -> &PciSystem {
        &self.pci
    }

    /// The VM, for irqfd/ioeventfd/MSI routing by devices added after construction.
    pub fn vm_fd(&self) -> Arc<VmFd> {
        Arc::clone(&self.vm)
    }

    /// Report a guest event from a device added after construction (parks the vCPUs).
    pub fn report_guest_event(&self, event: GuestEvent) {
        self.events.report(event);
    }
}

/// Put one vCPU in its power-on (APs) or boot-entry (BSP, `entry` given) state.
fn apply_reset_state(
    fd: &VcpuFd,
    st: &VcpuResetState,
    msrs: &Msrs,
    entry: Option<BootEntry>,
) -> Result<(), String> {
    let e = |what: &'static str| move |err: kvm_ioctls::Error| format!("{what}: {}", errno_text(err.errno()));
    let n = fd.set_msrs(msrs).map_err(e("KVM_SET_MSRS"))?;
    if n != msrs.as_slice().len() {
        tracing::warn!("KVM_SET_MSRS set {n} of {} MSRs", msrs.as_slice().len());
    }
    fd.set_fpu(&boot_fpu()).map_err(e("KVM_SET_FPU"))?;
    let mut xcrs = kvm_xcrs { nr_xcrs: 1, ..Default::default() };
    xcrs.xcrs[0].xcr = 0;
    xcrs.xcrs[0].value = 1;
    if let Err(err) = fd.set_xcrs(&xcrs) {
        tracing::debug!("KVM_SET_XCRS: {err}");
    }
    let dbg = kvm_debugregs { dr6: 0xffff_0ff0, dr7: 0x400, ..Default::default() };
    fd.set_debug_regs(&dbg).map_err(e("KVM_SET_DEBUGREGS"))?;
    fd.set_lapic(&st.lapic).map_err(e("KVM_SET_LAPIC"))?;
    let (regs, sregs, mp_state) = match entry {
        Some(entry) => {
            let (r, s) = boot_registers(entry, st.sregs);
            (r, s, KVM_MP_STATE_RUNNABLE)
        }
        None => (st.regs, st.sregs, KVM_MP_STATE_UNINITIALIZED),
    };
    fd.set_sregs(&sregs).map_err(e("KVM_SET_SREGS"))?;
    fd.set_regs(&regs).map_err(e("KVM_SET_REGS"))?;
    fd.set_vcpu_events(&st.events).map_err(e("KVM_SET_VCPU_EVENTS"))?;
    fd.set_mp_state(kvm_mp_state { mp_state }).map_err(e("KVM_SET_MP_STATE"))?;
    Ok(())
}

fn read_cpu_state(fd: &mut VcpuFd) -> Result<CpuState, String> {
    let e = |what: &'static str| move |err: kvm_ioctls::Error| format!("{what}: {}", errno_text(err.errno()));
    let dbg = fd.get_debug_regs().map_err(e("KVM_GET_DEBUGREGS"))?;
    let events = fd.get_vcpu_events().map_err(e("KVM_GET_VCPU_EVENTS"))?;
    Ok(CpuState {
        regs: fd.get_regs().map_err(e("KVM_GET_REGS"))?,
        sregs: fd.get_sregs().map_err(e("KVM_GET_SREGS"))?,
        fpu: fd.get_fpu().map_err(e("KVM_GET_FPU"))?,
        dr6: dbg.dr6,
        dr7: dbg.dr7,
        db: dbg.db,
        interrupt_shadow: events.interrupt.shadow != 0,
        mp_state: fd.get_mp_state().map_err(e("KVM_GET_MP_STATE"))?.mp_state,
    })
}

impl Machine for KvmMachine {
    fn start(&mut self) -> Result<(), MachineError> {
        if self.stopped {
            return Err(MachineError::Vcpu("the machine has been shut down".into()));
        }
        self.started = true;
        self.control.run_all();
        Ok(())
    }

    fn pause(&mut self) -> Result<(), MachineError> {
        self.control.park_all();
        self.pci.pause();
        Ok(())
    }

    fn resume(&mut self) -> Result<(), MachineError> {
        if self.stopped {
            return Err(MachineError::Vcpu("the machine has been shut down".into()));
        }
        self.started = true;
        self.pci.resume();
        self.control.run_all();
        Ok(())
    }

    fn reset(&mut self) -> Result<(), MachineError> {
        if self.stopped {
            return Err(MachineError::Vcpu("the machine has been shut down".into()));
        }
        self.control.park_all();
        self.entry = Self::load_boot_image(&self.mem, self.mem_size, &self.acpi, &mut self.boot)?;
        for chip in &self.vm_reset.irqchips {
            self.vm.set_irqchip(chip).map_err(kvm_err("KVM_SET_IRQCHIP"))?;
        }
        self.vm.set_pit2(&self.vm_reset.pit).map_err(kvm_err("KVM_SET_PIT2"))?;
        for s in &self.devices.serials {
            s.lock().unwrap_or_else(|p| p.into_inner()).reset();
        }
        self.devices.pm.lock().unwrap_or_else(|p| p.into_inner()).reset();
        self.devices.i8042.lock().unwrap_or_else(|p| p.into_inner()).reset();
        self.devices.cmos.lock().unwrap_or_else(|p| p.into_inner()).reset();
        self.devices.reset_control.lock().unwrap_or_else(|p| p.into_inner()).reset();
        self.pci.reset();
        for (i, st) in self.vcpu_reset.iter().enumerate() {
            let (st, msrs) = (st.clone(), self.msrs.clone());
            let entry = (i == 0).then_some(self.entry);
            self.control
                .run_on(i, move |fd| apply_reset_state(fd, &st, &msrs, entry))?
                .map_err(|e| MachineError::Vcpu(format!("CPU {i}: {e}")))?;
        }
        Ok(())
    }

    fn powerdown(&mut self) -> Result<(), MachineError> {
        self.devices.pm.lock().unwrap_or_else(|p| p.into_inner()).press_power_button();
        Ok(())
    }

    fn cpus(&self) -> Vec<CpuInfo> {
        (0..self.smp.cpus)
            .map(|i| {
                let (socket, core, thread) = topology_ids(&self.smp, i);
                CpuInfo {
                    cpu_index: i,
                    thread_id: self.control.thread_id(i as usize),
                    socket_id: socket,
                    core_id: core,
                    thread_id_in_core: thread,
                }
            })
            .collect()
    }

    fn memory_size(&self) -> u64 {
        self.mem_size
    }

    fn pci_info(&self) -> Vec<PciDeviceInfo> {
        self.pci.info()
    }

    fn registers(&self, cpu: usize) -> Result<String, MachineError> {
        if cpu >= self.smp.cpus as usize {
            return Err(MachineError::Vcpu(format!("CPU {cpu} does not exist")));
        }
        let state = self.control.run_on(cpu, read_cpu_state)?.map_err(MachineError::Vcpu)?;
        Ok(registers::format(&state))
    }

    fn read_memory(&self, addr: u64, len: usize, cpu: Option<usize>) -> Result<Vec<u8>, MachineError> {
        let no_access = || MachineError::Other("Cannot access memory".into());
        if let Some(c) = cpu
            && c >= self.smp.cpus as usize
        {
            return Err(MachineError::Vcpu(format!("CPU {c} does not exist")));
        }
        let mut out = vec![0u8; len];
        let mut done = 0usize;
        while done < len {
            let at = addr.checked_add(done as u64).ok_or_else(no_access)?;
            let (gpa, n) = match cpu {
                None => (at, len - done),
                Some(c) => {
                    let page_left = (0x1000 - (at & 0xfff)) as usize;
                    let t =
                        self.control.run_on(c, move |fd| fd.translate_gva(at))?.map_err(|_| no_access())?;
                    if t.valid == 0 {
                        return Err(no_access());
                    }
                    (t.physical_address, page_left.min(len - done))
                }
            };
            self.mem.read_slice(&mut out[done..done + n], GuestAddress(gpa)).map_err(|_| no_access())?;
            done += n;
        }
        Ok(out)
    }

    fn shutdown(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.control.exit_all();
        let mut fds = Vec::new();
        for t in self.threads.drain(..) {
            match t.join() {
                Ok(fd) => fds.push(fd),
                Err(_) => tracing::error!("a vCPU thread panicked"),
            }
        }
        drop(fds);
        self.pci.shutdown();
        for s in &self.devices.serials {
            s.lock().unwrap_or_else(|p| p.into_inner()).flush_output();
        }
    }
}

impl Drop for KvmMachine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
