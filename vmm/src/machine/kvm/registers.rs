//! HMP `info registers` for one vCPU, in QEMU 7.2's `x86_cpu_dump_state` format (with FPU).

use std::fmt::Write;

use kvm_bindings::{KVM_MP_STATE_HALTED, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

/// Everything the dump shows, read from KVM on the vCPU thread.
pub struct CpuState {
    pub regs: kvm_regs,
    pub sregs: kvm_sregs,
    pub fpu: kvm_fpu,
    pub dr6: u64,
    pub dr7: u64,
    pub db: [u64; 4],
    pub interrupt_shadow: bool,
    pub mp_state: u32,
}

fn seg_flags(s: &kvm_segment) -> u32 {
    (u32::from(s.type_) << 8)
        | (u32::from(s.s) << 12)
        | (u32::from(s.dpl) << 13)
        | (u32::from(s.present) << 15)
        | (u32::from(s.avl) << 20)
        | (u32::from(s.l) << 21)
        | (u32::from(s.db) << 22)
        | (u32::from(s.g) << 23)
}

const SYS_TYPE: [[&str; 16]; 2] = [
    [
        "Reserved",
        "TSS16-avl",
        "LDT",
        "TSS16-busy",
        "CallGate16",
        "TaskGate",
        "IntGate16",
        "TrapGate16",
        "Reserved",
        "TSS32-avl",
        "Reserved",
        "TSS32-busy",
        "CallGate32",
        "Reserved",
        "IntGate32",
        "TrapGate32",
    ],
    [
        "<hiword>",
        "Reserved",
        "LDT",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "Reserved",
        "TSS64-avl",
        "Reserved",
        "TSS64-busy",
        "CallGate64",
        "Reserved",
        "IntGate64",
        "TrapGate64",
    ],
];

fn dump_seg(out: &mut String, name: &str, s: &kvm_segment, cs64: bool, lma: bool, pe: bool) {
    // A segment KVM marks unusable has no present bit as QEMU sees it.
    let flags = if s.unusable != 0 { seg_flags(s) & !(1 << 15) } else { seg_flags(s) };
    if cs64 {
        let _ = write!(
            out,
            "{name:<3}={:04x} {:016x} {:08x} {:08x}",
            s.selector,
            s.base,
            s.limit,
            flags & 0x00ff_ff00
        );
    } else {
        let _ = write!(
            out,
            "{name:<3}={:04x} {:08x} {:08x} {:08x}",
            s.selector,
            s.base as u32,
            s.limit,
            flags & 0x00ff_ff00
        );
    }
    if pe && flags & (1 << 15) != 0 {
        let _ = write!(out, " DPL={} ", (flags >> 13) & 3);
        if flags & (1 << 12) != 0 {
            if flags & (1 << 11) != 0 {
                let kind = if flags & (1 << 21) != 0 {
                    "CS64"
                } else if flags & (1 << 22) != 0 {
                    "CS32"
                } else {
                    "CS16"
                };
                let c = if flags & (1 << 10) != 0 { 'C' } else { '-' };
                let r = if flags & (1 << 9) != 0 { 'R' } else { '-' };
                let _ = write!(out, "{kind} [{c}{r}");
            } else {
                let kind = if flags & (1 << 22) != 0 || lma { "DS  " } else { "DS16" };
                let e = if flags & (1 << 10) != 0 { 'E' } else { '-' };
                let w = if flags & (1 << 9) != 0 { 'W' } else { '-' };
                let _ = write!(out, "{kind} [{e}{w}");
            }
            let a = if flags & (1 << 8) != 0 { 'A' } else { '-' };
            let _ = write!(out, "{a}]");
        } else {
            let _ = write!(out, "{}", SYS_TYPE[usize::from(lma)][((flags >> 8) & 0xf) as usize]);
        }
    }
    out.push('\n');
}

/// The text QEMU prints after its `CPU#n` line.
pub fn format(st: &CpuState) -> String {
    let (r, s) = (&st.regs, &st.sregs);
    let lma = s.efer & (1 << 10) != 0;
    let cs64 = lma && s.cs.l != 0;
    let pe = s.cr0 & 1 != 0;
    let mut o = String::with_capacity(2048);
    let fl = r.rflags;
    let bit = |b: u32, c: char| if fl & (1 << b) != 0 { c } else { '-' };
    let flag_text: String =
        [bit(10, 'D'), bit(11, 'O'), bit(7, 'S'), bit(6, 'Z'), bit(4, 'A'), bit(2, 'P'), bit(0, 'C')]
            .iter()
            .collect();
    let cpl = s.ss.dpl;
    let hlt = u8::from(st.mp_state == KVM_MP_STATE_HALTED);
    let ii = u8::from(st.interrupt_shadow);
    if cs64 {
        let _ = writeln!(o, "RAX={:016x} RBX={:016x} RCX={:016x} RDX={:016x}", r.rax, r.rbx, r.rcx, r.rdx);
        let _ = writeln!(o, "RSI={:016x} RDI={:016x} RBP={:016x} RSP={:016x}", r.rsi, r.rdi, r.rbp, r.rsp);
        let _ = writeln!(o, "R8 ={:016x} R9 ={:016x} R10={:016x} R11={:016x}", r.r8, r.r9, r.r10, r.r11);
        let _ = writeln!(o, "R12={:016x} R13={:016x} R14={:016x} R15={:016x}", r.r12, r.r13, r.r14, r.r15);
        let _ = writeln!(
            o,
            "RIP={:016x} RFL={:08x} [{flag_text}] CPL={cpl} II={ii} A20=1 SMM=0 HLT={hlt}",
            r.rip, fl
        );
    } else {
        let _ = writeln!(
            o,
            "EAX={:08x} EBX={:08x} ECX={:08x} EDX={:08x}",
            r.rax as u32, r.rbx as u32, r.rcx as u32, r.rdx as u32
        );
        let _ = writeln!(
            o,
            "ESI={:08x} EDI={:08x} EBP={:08x} ESP={:08x}",
            r.rsi as u32, r.rdi as u32, r.rbp as u32, r.rsp as u32
        );
        let _ = writeln!(
            o,
            "EIP={:08x} EFL={:08x} [{flag_text}] CPL={cpl} II={ii} A20=1 SMM=0 HLT={hlt}",
            r.rip as u32, fl as u32
        );
    }
    for (name, seg) in
        [("ES", &s.es), ("CS", &s.cs), ("SS", &s.ss), ("DS", &s.ds), ("FS", &s.fs), ("GS", &s.gs)]
    {
        dump_seg(&mut o, name, seg, cs64, lma, pe);
    }
    dump_seg(&mut o, "LDT", &s.ldt, cs64, lma, pe);
    dump_seg(&mut o, "TR", &s.tr, cs64, lma, pe);
    if cs64 {
        let _ = writeln!(o, "GDT=     {:016x} {:08x}", s.gdt.base, s.gdt.limit);
        let _ = writeln!(o, "IDT=     {:016x} {:08x}", s.idt.base, s.idt.limit);
        let _ = writeln!(
            o,
            "CR0={:08x} CR2={:016x} CR3={:016x} CR4={:08x}",
            s.cr0 as u32, s.cr2, s.cr3, s.cr4 as u32
        );
    } else {
        let _ = writeln!(o, "GDT=     {:08x} {:08x}", s.gdt.base as u32, s.gdt.limit);
        let _ = writeln!(o, "IDT=     {:08x} {:08x}", s.idt.base as u32, s.idt.limit);
        let _ = writeln!(
            o,
            "CR0={:08x} CR2={:08x} CR3={:08x} CR4={:08x}",
            s.cr0 as u32, s.cr2 as u32, s.cr3 as u32, s.cr4 as u32
        );
    }
    for (i, d) in st.db.iter().enumerate() {
        let _ = write!(o, "DR{i}={d:016x} ");
    }
    let _ = writeln!(o, "\nDR6={:016x} DR7={:016x}", st.dr6, st.dr7);
    let _ = writeln!(o, "EFER={:016x}", s.efer);
    let f = &st.fpu;
    let top = (f.fsw >> 11) & 7;
    let _ = writeln!(
        o,
        "FCW={:04x} FSW={:04x} [ST={top}] FTW={:02x} MXCSR={:08x}",
        f.fcw, f.fsw, f.ftwx, f.mxcsr
    );
    for (i, reg) in f.fpr.iter().enumerate() {
        let mant = u64::from_le_bytes(reg[0..8].try_into().unwrap_or_default());
        let exp = u16::from_le_bytes([reg[8], reg[9]]);
        let _ = write!(o, "FPR{i}={mant:016x} {exp:04x}{}", if i & 1 == 1 { "\n" } else { " " });
    }
    let n = if cs64 { 16 } else { 8 };
    for (i, x) in f.xmm.iter().take(n).enumerate() {
        let lo = u64::from_le_bytes(x[0..8].try_into().unwrap_or_default());
        let hi = u64::from_le_bytes(x[8..16].try_into().unwrap_or_default());
        let _ = write!(o, "XMM{i:02}={hi:016x} {lo:016x}{}", if i & 1 == 1 { "\n" } else { " " });
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_mode_dump_matches_qemu_layout() {
        let mut st = CpuState {
            regs: kvm_regs { rip: 0x100884, rflags: 0x46, rbx: 1, ..Default::default() },
            sregs: kvm_sregs::default(),
            fpu: kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() },
            dr6: 0xffff0ff0,
            dr7: 0x400,
            db: [0; 4],
            interrupt_shadow: false,
            mp_state: KVM_MP_STATE_HALTED,
        };
        let data = kvm_segment {
            selector: 0x10,
            limit: 0xffff_ffff,
            type_: 3,
            present: 1,
            s: 1,
            db: 1,
            g: 1,
            ..Default::default()
        };
        let s = &mut st.sregs;
        s.efer = 0x500;
        s.cr0 = 0x8000_0011;
        s.cs = kvm_segment {
            selector: 8,
            limit: 0xffff_ffff,
            type_: 0xb,
            present: 1,
            s: 1,
            l: 1,
            g: 1,
            ..Default::default()
        };
        (s.es, s.ss, s.ds, s.fs, s.gs) = (data, data, data, data, data);
        s.ldt = kvm_segment { limit: 0xffff, type_: 2, present: 1, ..Default::default() };
        s.tr = kvm_segment { limit: 0xffff, type_: 0xb, present: 1, ..Default::default() };
        let text = format(&st);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[4], "RIP=0000000000100884 RFL=00000046 [---Z-P-] CPL=0 II=0 A20=1 SMM=0 HLT=1");
        assert_eq!(lines[5], "ES =0010 0000000000000000 ffffffff 00c09300 DPL=0 DS   [-WA]");
        assert_eq!(lines[6], "CS =0008 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]");
        assert_eq!(lines[11], "LDT=0000 0000000000000000 0000ffff 00008200 DPL=0 LDT");
        assert_eq!(lines[12], "TR =0000 0000000000000000 0000ffff 00008b00 DPL=0 TSS64-busy");
        assert_eq!(
            lines[16],
            "DR0=0000000000000000 DR1=0000000000000000 DR2=0000000000000000 DR3=0000000000000000 "
        );
        assert_eq!(lines[17], "DR6=00000000ffff0ff0 DR7=0000000000000400");
        assert_eq!(lines[19], "FCW=037f FSW=0000 [ST=0] FTW=00 MXCSR=00001f80");
        assert_eq!(lines[20], "FPR0=0000000000000000 0000 FPR1=0000000000000000 0000");
        assert_eq!(
            lines.last().copied(),
            Some("XMM14=0000000000000000 0000000000000000 XMM15=0000000000000000 0000000000000000")
        );
        assert_eq!(lines.len(), 32);
    }
}
