//! Reader for the IDX format of MNIST and Fashion-MNIST, raw or gzipped.
//!
//! An IDX file is a big-endian header (two zero bytes, a type code, the number of dimensions,
//! then one u32 per dimension) followed by the values. Only the unsigned-byte type (0x08) is
//! read here, which is what every MNIST-family file uses. A gzipped file is recognised by its
//! magic bytes, not by its name.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, IoContext, Result};

/// The decoded contents of one IDX file of unsigned bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct IdxArray {
    /// The dimensions from the header, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Read an IDX file (raw or gzipped) into memory, checking that its length matches its header.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_gunzipped(path)?;
    parse_idx(&bytes).map_err(|msg| Error::format(path, msg))
}

/// A file's bytes, gunzipped when they are a gzip stream (the data sets ship both ways).
pub fn read_gunzipped(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).at(path)?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(&raw[..])
        .read_to_end(&mut out)
        .map_err(|e| Error::format(path, format!("corrupt gzip stream ({e})")))?;
    Ok(out)
}

/// Parse IDX bytes; the error is a message without the path.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!("not an IDX file: {} bytes, expected a 4-byte magic number at least", bytes.len()));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "not an IDX file: magic starts with {:#04x} {:#04x}, expected 0x00 0x00",
            bytes[0], bytes[1]
        ));
    }
    if bytes[2] != 0x08 {
        return Err(format!("IDX type code {:#04x} is not supported, expected 0x08 (unsigned byte)", bytes[2]));
    }
    let ndim = bytes[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(format!("IDX header has {ndim} dimensions, expected 1 to 4"));
    }
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(format!("truncated IDX header: {} bytes, expected at least {header}", bytes.len()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let got = bytes.len() - header;
    // Four u32 dimensions can overflow a usize product (and wrap to the file's length in a
    // release build): check the product rather than trust it.
    let Some(expected) = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)) else {
        return Err(format!("header says dims {dims:?}: more values than memory can hold, file holds {got}"));
    };
    if got != expected {
        let what = if got < expected { "truncated" } else { "trailing bytes" };
        return Err(format!("{what}: header says dims {dims:?} = {expected} values, file holds {got}"));
    }
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Encode an array as raw IDX bytes (used by tests and by anyone writing a small data set).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idx_round_trips_through_encode_and_parse() {
        let data: Vec<u8> = (0..24).collect();
        let arr = parse_idx(&encode_idx(&[2, 3, 4], &data)).unwrap();
        assert_eq!(arr.dims, vec![2, 3, 4]);
        assert_eq!(arr.data, data);
    }

    #[test]
    fn truncated_idx_is_rejected_with_counts() {
        let mut bytes = encode_idx(&[2, 3, 4], &[0; 24]);
        bytes.truncate(bytes.len() - 5);
        let err = parse_idx(&bytes).unwrap_err();
        assert!(err.contains("truncated") && err.contains("24") && err.contains("19"), "{err}");
    }

    /// Dims 65536^4 = 2^64 wrap to 0 in an unchecked release-build product, which an empty body
    /// then "matched": a set claiming 65536 images with no pixels.
    #[test]
    fn dims_whose_product_overflows_are_rejected_not_wrapped() {
        let mut bytes = vec![0, 0, 0x08, 4];
        for _ in 0..4 {
            bytes.extend(65536u32.to_be_bytes());
        }
        let err = parse_idx(&bytes).unwrap_err();
        assert!(err.contains("65536") && err.contains("more values than memory"), "{err}");
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let err = parse_idx(b"\x89PNG\r\n\x1a\n....").unwrap_err();
        assert!(err.contains("not an IDX file"), "{err}");
    }
}
