//! Readers and writers for MNIST-family IDX files (u8 images and labels), plain or gzip-compressed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::{Compression, GzBuilder};

use super::DataError;

/// Magic number of an IDX file of u8 values with 3 dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 values with 1 dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Cap on the up-front allocation, so a lying header cannot reserve absurd memory.
const MAX_PREALLOC: usize = 256 << 20;

/// Open a file, transparently gunzipping it when it starts with the gzip magic 0x1f 0x8b.
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    let head = std::io::Cursor::new(magic[..got].to_vec());
    let chained = head.chain(reader);
    if got == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(chained)))
    } else {
        Ok(Box::new(chained))
    }
}

/// Read exactly `buf.len()` bytes; returns how many were read before EOF.
fn read_full(r: &mut dyn Read, buf: &mut [u8], path: &Path) -> Result<usize, DataError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(got)
}

/// Reads the magic number and `ndims` big-endian u32 dimensions, then exactly the announced data.
fn read_idx(
    path: &Path,
    kind: &'static str,
    magic: u32,
    ndims: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let mut r = open_maybe_gz(path)?;
    let header_len = 4 * (1 + ndims);
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut *r, &mut header, path)?;
    if got >= 4 {
        let found = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        if found != magic {
            return Err(DataError::IdxMagic {
                path: path.to_path_buf(),
                kind,
                expected: magic,
                found,
            });
        }
    }
    if got < header_len {
        return Err(DataError::IdxDimensions {
            path: path.to_path_buf(),
            reason: format!("file ends inside the header ({got} of {header_len} header bytes)"),
        });
    }
    let dims: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| DataError::IdxDimensions {
            path: path.to_path_buf(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let mut data = Vec::with_capacity(expected.min(MAX_PREALLOC));
    r.by_ref()
        .take(expected as u64)
        .read_to_end(&mut data)
        .map_err(|e| DataError::io(path, e))?;
    if data.len() < expected {
        return Err(DataError::IdxTruncated {
            path: path.to_path_buf(),
            expected: expected as u64,
            found: data.len() as u64,
        });
    }
    let mut extra = [0u8; 1];
    if read_full(&mut *r, &mut extra, path)? != 0 {
        return Err(DataError::IdxTrailingData {
            path: path.to_path_buf(),
            expected: expected as u64,
        });
    }
    Ok((dims, data))
}

/// Read an IDX image file (magic 0x00000803, dims n, h, w as big-endian u32, then n·h·w bytes),
/// plain or gzip-compressed (detected by content). Returns `(n, h, w, pixels)`, pixels row-major.
pub fn read_idx_images(
    path: impl AsRef<Path>,
) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let path = path.as_ref();
    let (dims, data) = read_idx(path, "image", IDX_IMAGES_MAGIC, 3)?;
    let (n, h, w) = match dims[..] {
        [n, h, w] => (n, h, w),
        _ => {
            return Err(DataError::IdxDimensions {
                path: path.to_path_buf(),
                reason: "expected 3 dimensions".into(),
            })
        }
    };
    if n > 0 && (h == 0 || w == 0) {
        return Err(DataError::IdxDimensions {
            path: path.to_path_buf(),
            reason: format!("{n} images of size {h}x{w}"),
        });
    }
    Ok((n, h, w, data))
}

/// Read an IDX label file (magic 0x00000801, dim n as big-endian u32, then n bytes),
/// plain or gzip-compressed (detected by content).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let path = path.as_ref();
    let (_, data) = read_idx(path, "label", IDX_LABELS_MAGIC, 1)?;
    Ok(data)
}

fn dim_u32(path: &Path, d: usize) -> Result<[u8; 4], DataError> {
    u32::try_from(d)
        .map(u32::to_be_bytes)
        .map_err(|_| DataError::IdxDimensions {
            path: path.to_path_buf(),
            reason: format!("dimension {d} does not fit in a u32"),
        })
}

fn write_gz(path: &Path, header: &[u8], data: &[u8]) -> Result<(), DataError> {
    let file = File::create(path).map_err(|e| DataError::io(path, e))?;
    // mtime 0 and no file name: the output depends only on the data.
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(BufWriter::new(file), Compression::best());
    let io = |e| DataError::io(path, e);
    gz.write_all(header).map_err(io)?;
    gz.write_all(data).map_err(io)?;
    let mut inner = gz.finish().map_err(io)?;
    inner.flush().map_err(io)?;
    Ok(())
}

/// Write `n` images of `h`×`w` u8 pixels (row-major, `pixels.len() == n*h*w`) as a gzipped IDX file.
/// The output is deterministic (gzip mtime 0, maximum compression).
pub fn write_idx_images_gz(
    path: impl AsRef<Path>,
    n: usize,
    h: usize,
    w: usize,
    pixels: &[u8],
) -> Result<(), DataError> {
    let path = path.as_ref();
    let expected = n.checked_mul(h).and_then(|v| v.checked_mul(w));
    if expected != Some(pixels.len()) {
        return Err(DataError::IdxDimensions {
            path: path.to_path_buf(),
            reason: format!(
                "{n}x{h}x{w} images need {expected:?} bytes, {} given",
                pixels.len()
            ),
        });
    }
    let mut header = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
    for d in [n, h, w] {
        header.extend_from_slice(&dim_u32(path, d)?);
    }
    write_gz(path, &header, pixels)
}

/// Write labels as a gzipped IDX label file (deterministic: gzip mtime 0).
pub fn write_idx_labels_gz(path: impl AsRef<Path>, labels: &[u8]) -> Result<(), DataError> {
    let path = path.as_ref();
    let mut header = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
    header.extend_from_slice(&dim_u32(path, labels.len())?);
    write_gz(path, &header, labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_images(n: u32, h: u32, w: u32, data: &[u8]) -> Vec<u8> {
        let mut v = IDX_IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, h, w] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn round_trip_gz() {
        let dir = tempfile::tempdir().unwrap();
        let px: Vec<u8> = (0..3 * 4 * 5).map(|v| v as u8).collect();
        let ip = dir.path().join("imgs.idx"); // no .gz extension on purpose: detected by magic
        write_idx_images_gz(&ip, 3, 4, 5, &px).unwrap();
        let raw = std::fs::read(&ip).unwrap();
        assert_eq!(&raw[..2], &[0x1f, 0x8b]);
        assert_eq!(read_idx_images(&ip).unwrap(), (3, 4, 5, px.clone()));
        let lp = dir.path().join("labels.gz");
        write_idx_labels_gz(&lp, &[1, 2, 9]).unwrap();
        assert_eq!(read_idx_labels(&lp).unwrap(), vec![1, 2, 9]);
        // deterministic bytes
        let lp2 = dir.path().join("labels2.gz");
        write_idx_labels_gz(&lp2, &[1, 2, 9]).unwrap();
        assert_eq!(std::fs::read(&lp).unwrap(), std::fs::read(&lp2).unwrap());
    }

    #[test]
    fn plain_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.gz"); // .gz extension but plain content
        std::fs::write(&p, plain_images(2, 1, 2, &[1, 2, 3, 4])).unwrap();
        assert_eq!(read_idx_images(&p).unwrap(), (2, 1, 2, vec![1, 2, 3, 4]));
        let l = dir.path().join("labels");
        let mut v = IDX_LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&2u32.to_be_bytes());
        v.extend_from_slice(&[7, 8]);
        std::fs::write(&l, v).unwrap();
        assert_eq!(read_idx_labels(&l).unwrap(), vec![7, 8]);
    }

    #[test]
    fn wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.gz");
        write_idx_labels_gz(&p, &[1, 2]).unwrap();
        let err = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IdxMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("labels.gz"), "{err}");
    }

    #[test]
    fn truncated_data_and_header() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, plain_images(2, 2, 2, &[0; 5])).unwrap();
        let err = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IdxTruncated {
                    expected: 8,
                    found: 5,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains(&p.display().to_string()));
        std::fs::write(&p, &plain_images(2, 2, 2, &[])[..10]).unwrap();
        assert!(matches!(
            read_idx_images(&p).unwrap_err(),
            DataError::IdxDimensions { .. }
        ));
        std::fs::write(&p, [0u8]).unwrap();
        assert!(matches!(
            read_idx_images(&p).unwrap_err(),
            DataError::IdxDimensions { .. }
        ));
        std::fs::write(&p, []).unwrap();
        assert!(matches!(
            read_idx_labels(&p).unwrap_err(),
            DataError::IdxDimensions { .. }
        ));
    }

    #[test]
    fn truncated_gzip_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("imgs.gz");
        let px = vec![7u8; 1000];
        write_idx_images_gz(&p, 10, 10, 10, &px).unwrap();
        let raw = std::fs::read(&p).unwrap();
        std::fs::write(&p, &raw[..raw.len() - 12]).unwrap();
        let err = read_idx_images(&p).unwrap_err();
        assert!(err.to_string().contains("imgs.gz"), "{err}");
    }

    #[test]
    fn trailing_bytes_and_bad_dims() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        std::fs::write(&p, plain_images(1, 1, 2, &[1, 2, 3])).unwrap();
        assert!(matches!(
            read_idx_images(&p).unwrap_err(),
            DataError::IdxTrailingData { .. }
        ));
        std::fs::write(&p, plain_images(3, 0, 2, &[])).unwrap();
        assert!(matches!(
            read_idx_images(&p).unwrap_err(),
            DataError::IdxDimensions { .. }
        ));
        std::fs::write(&p, plain_images(u32::MAX, u32::MAX, u32::MAX, &[])).unwrap();
        let err = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::IdxDimensions { .. } | DataError::IdxTruncated { .. }
            ),
            "{err}"
        );
        assert!(write_idx_images_gz(dir.path().join("w"), 2, 2, 2, &[0; 7]).is_err());
    }

    #[test]
    fn missing_file() {
        let err = read_idx_labels("/nonexistent/dir/labels").unwrap_err();
        assert!(matches!(err, DataError::Missing { .. }), "{err}");
    }
}
