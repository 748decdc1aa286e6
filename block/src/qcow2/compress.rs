//! Compressed clusters: raw deflate as QEMU writes them (zlib compression type).

use crate::error::{BlockError, Result};
use miniz_oxide::inflate::TINFLStatus;
use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

/// Inflates `input` into exactly `out.len()` bytes; QEMU accepts trailing garbage after
/// the deflate stream but requires the whole cluster to be produced.
pub fn inflate_cluster(input: &[u8], out: &mut [u8]) -> Result<()> {
    let mut dec = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (status, _, written) = decompress(&mut dec, input, out, 0, flags);
    let ok = written == out.len()
        && matches!(status, TINFLStatus::Done | TINFLStatus::HasMoreOutput | TINFLStatus::NeedsMoreInput);
    if ok { Ok(()) } else { Err(BlockError::Invalid("Could not decompress a compressed cluster".into())) }
}

/// Deflates a cluster; `None` when compression does not save at least one sector.
pub fn deflate_cluster(data: &[u8]) -> Option<Vec<u8>> {
    let c = miniz_oxide::deflate::compress_to_vec(data, 6);
    (c.len() + 512 <= data.len()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i / 300) as u8).collect();
        let c = deflate_cluster(&data).unwrap();
        let mut out = vec![0u8; 65536];
        inflate_cluster(&c, &mut out).unwrap();
        assert_eq!(out, data);
        assert!(inflate_cluster(&[0xff; 100], &mut out).is_err());
        let mut short = c.clone();
        short.truncate(c.len() / 2);
        assert!(inflate_cluster(&short, &mut out).is_err());
    }
}
