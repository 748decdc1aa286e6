//! The process's stdin/stdout as a monitor's byte stream.
//!
//! When stdin is a terminal it is put in the mode QEMU's stdio chardev uses: no local echo, no
//! line buffering, no CR/NL translation on input, 8-bit (the monitor echoes and edits lines
//! itself); Ctrl-C still kills the process unless `signal=off`. [`restore_terminal`] puts the
//! saved settings back; the VMM calls it on every exit path ([`Running`](super::Running) does on
//! drop).
//!
//! Reads and writes go through tokio's stdin/stdout (blocking calls on helper threads), so the
//! descriptors stay in blocking mode and other users of the terminal (stderr messages) are not
//! affected.

use std::sync::Mutex;

static SAVED: Mutex<Option<libc::termios>> = Mutex::new(None);

/// Puts a terminal on stdin into raw mode (if stdin is a terminal). `signal`: keep Ctrl-C and
/// friends generating signals.
pub fn set_raw_terminal(signal: bool) {
    // SAFETY: isatty only inspects the descriptor.
    if unsafe { libc::isatty(0) } != 1 {
        return;
    }
    // SAFETY: termios is plain data; all-zero is a valid value that tcgetattr overwrites.
    let mut tty: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr writes into the struct we own.
    if unsafe { libc::tcgetattr(0, &mut tty) } != 0 {
        return;
    }
    if let Ok(mut saved) = SAVED.lock()
        && saved.is_none()
    {
        *saved = Some(tty);
    }
    tty.c_iflag &= !(libc::IGNBRK
        | libc::BRKINT
        | libc::PARMRK
        | libc::ISTRIP
        | libc::INLCR
        | libc::IGNCR
        | libc::ICRNL
        | libc::IXON);
    tty.c_oflag |= libc::OPOST;
    tty.c_lflag &= !(libc::ECHO | libc::ECHONL | libc::ICANON | libc::IEXTEN);
    tty.c_cflag &= !(libc::CSIZE | libc::PARENB);
    tty.c_cflag |= libc::CS8;
    tty.c_cc[libc::VMIN] = 1;
    tty.c_cc[libc::VTIME] = 0;
    if !signal {
        tty.c_lflag &= !libc::ISIG;
    }
    // SAFETY: tcsetattr reads the struct we own.
    unsafe { libc::tcsetattr(0, libc::TCSANOW, &tty) };
}

/// Restores the terminal settings saved by [`set_raw_terminal`], if any.
pub fn restore_terminal() {
    if let Ok(mut saved) = SAVED.lock()
        && let Some(tty) = saved.take()
    {
        // SAFETY: tcsetattr reads the struct we own.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &tty) };
    }
}

/// The stdin/stdout pair.
pub fn streams() -> (tokio::io::Stdin, tokio::io::Stdout) {
    (tokio::io::stdin(), tokio::io::stdout())
}
