//! QMP (QEMU Machine Protocol): wire-level JSON decoding and encoding, sessions and commands.
pub mod json_out;
pub mod json_stream;
