//! TFRecord framing of event files: length, masked CRC-32C of the length, data, masked CRC-32C of the data.
//!
//! A record is `u64 little-endian length`, `u32 LE masked_crc32c(length bytes)`, `data`,
//! `u32 LE masked_crc32c(data)`, with `masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8`
//! (wrapping) over CRC-32C (Castagnoli).

use std::io::{self, Read, Write};

/// The constant TFRecord adds to a rotated CRC.
const MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC-32C the way TFRecord does, so that CRCs of data holding CRCs stay well distributed.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Inverse of [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(MASK_DELTA).rotate_left(15)
}

/// The masked CRC-32C of `data`.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    mask_crc(crc32c::crc32c(data))
}

/// Frames `data` as one TFRecord.
pub fn encode_record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// Writes `data` as one TFRecord to `w` (a single `write_all`, so a buffered writer sees whole records).
pub fn write_record<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    w.write_all(&encode_record(data))
}

/// Reads one TFRecord from `r` and checks both CRCs.
///
/// Returns `Ok(None)` at a clean end of input (no byte of a new record), and an
/// [`io::ErrorKind::UnexpectedEof`] / [`io::ErrorKind::InvalidData`] error for a truncated or
/// corrupt record. Never allocates more than the input actually holds.
pub fn read_record<R: Read>(r: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; 12];
    let mut filled = 0;
    while filled < header.len() {
        match r.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated TFRecord header",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&header[..8]);
    let mut crc_bytes = [0u8; 4];
    crc_bytes.copy_from_slice(&header[8..]);
    if u32::from_le_bytes(crc_bytes) != masked_crc32c(&len_bytes) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TFRecord length CRC mismatch",
        ));
    }
    let len = u64::from_le_bytes(len_bytes);
    let mut data = Vec::new();
    r.by_ref().take(len).read_to_end(&mut data)?;
    if (data.len() as u64) != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "truncated TFRecord data",
        ));
    }
    let mut data_crc = [0u8; 4];
    r.read_exact(&mut data_crc)?;
    if u32::from_le_bytes(data_crc) != masked_crc32c(&data) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "TFRecord data CRC mismatch",
        ));
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::manual_rotate)] // spelled out as in the TFRecord format description
    fn crc32c_check_value_and_mask() {
        // The CRC-32C check value.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
        let c: u32 = 0xE306_9283;
        let expected = ((c >> 15) | (c << 17)).wrapping_add(0xa282_ead8);
        assert_eq!(masked_crc32c(b"123456789"), expected);
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
        assert_eq!(unmask_crc(mask_crc(c)), c);
        assert_eq!(unmask_crc(mask_crc(0)), 0);
        assert_eq!(unmask_crc(mask_crc(u32::MAX)), u32::MAX);
    }

    #[test]
    fn empty_record_layout() {
        let rec = encode_record(b"");
        assert_eq!(rec.len(), 16);
        assert_eq!(&rec[..8], &[0u8; 8]);
        assert_eq!(&rec[8..12], &masked_crc32c(&[0u8; 8]).to_le_bytes());
        assert_eq!(&rec[12..], &masked_crc32c(b"").to_le_bytes());
    }

    #[test]
    fn round_trip() {
        let payloads: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"hello".to_vec(),
            (0..=255u8).cycle().take(70_000).collect(),
        ];
        let mut buf = Vec::new();
        for p in &payloads {
            write_record(&mut buf, p).unwrap();
        }
        assert_eq!(&buf[..8], &0u64.to_le_bytes());
        let mut r = &buf[..];
        for p in &payloads {
            assert_eq!(read_record(&mut r).unwrap().as_deref(), Some(&p[..]));
        }
        assert_eq!(read_record(&mut r).unwrap(), None);
    }

    #[test]
    fn corrupt_and_truncated_records_are_errors() {
        let rec = encode_record(b"payload");

        let mut bad_data = rec.clone();
        bad_data[14] ^= 1;
        let err = read_record(&mut &bad_data[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let mut bad_len = rec.clone();
        bad_len[0] ^= 1;
        let err = read_record(&mut &bad_len[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        for cut in 1..rec.len() {
            let err = read_record(&mut &rec[..cut]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }

    #[test]
    fn huge_length_does_not_allocate() {
        let len = u64::MAX.to_le_bytes();
        let mut rec = len.to_vec();
        rec.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        rec.extend_from_slice(b"short");
        let err = read_record(&mut &rec[..]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
