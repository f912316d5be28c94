//! `EventWriter`: appends TensorBoard events (scalars, text, images, any summary values) to a new event file, without panicking.
//!
//! Every `add_*` call writes one whole TFRecord and flushes it to the operating system, so a
//! crash of this process loses nothing already logged; [`EventWriter::flush`] additionally
//! `fsync`s the file. File names are unique even when several writers (in this process or
//! others) open the same directory in the same second.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use image::ImageEncoder;
use prost::Message;

use super::proto::{
    event, summary, summary_metadata, DataType, Event, Summary, SummaryMetadata, TensorProto,
    TensorShapeProto,
};
use super::record;

/// What the first event of every file says.
pub const FILE_VERSION: &str = "brain.Event:2";

/// Errors of the TensorBoard writer.
#[derive(Debug, thiserror::Error)]
pub enum TensorBoardError {
    /// Creating, writing, flushing or syncing an event file (or its directory) failed.
    #[error("TensorBoard event file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Encoding an image as PNG failed.
    #[error("encoding PNG for TensorBoard image {tag:?}: {source}")]
    Png {
        tag: String,
        #[source]
        source: image::ImageError,
    },
    /// Image dimensions or pixel buffer are inconsistent or out of range.
    #[error("invalid TensorBoard image {tag:?}: {reason}")]
    InvalidImage { tag: String, reason: String },
}

impl TensorBoardError {
    fn io(path: &Path, source: io::Error) -> Self {
        TensorBoardError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Process-wide counter that keeps file names of this process apart.
static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes one TensorBoard event file.
#[derive(Debug)]
pub struct EventWriter {
    file: BufWriter<File>,
    path: PathBuf,
}

impl EventWriter {
    /// Creates `dir` (and parents) and a new event file in it whose name is unique even when
    /// two writers open the same dir in the same second
    /// (`events.out.tfevents.<secs>.<host>.<pid>.<counter>.<nanos>`), then writes the
    /// file_version event `"brain.Event:2"`.
    pub fn create(dir: &Path) -> Result<Self, TensorBoardError> {
        fs::create_dir_all(dir).map_err(|e| TensorBoardError::io(dir, e))?;
        let host = host_name();
        let pid = std::process::id();
        let mut attempts = 0u32;
        let (file, path) = loop {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!(
                "events.out.tfevents.{}.{host}.{pid}.{n}.{:09}",
                now.as_secs(),
                now.subsec_nanos()
            );
            let path = dir.join(name);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => break (file, path),
                // Another process with a recycled pid and the same nanos: try the next name.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1;
                }
                Err(e) => return Err(TensorBoardError::io(&path, e)),
            }
        };
        let mut writer = EventWriter {
            file: BufWriter::new(file),
            path,
        };
        writer.write_event(Event {
            wall_time: wall_time(),
            step: 0,
            what: Some(event::What::FileVersion(FILE_VERSION.to_string())),
        })?;
        Ok(writer)
    }

    /// The event file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs a scalar (`simple_value`, stored as `f32`).
    pub fn add_scalar(&mut self, tag: &str, value: f64, step: i64) -> Result<(), TensorBoardError> {
        self.add_values(vec![scalar_value(tag, value)], step)
    }

    /// Logs a text summary (text plugin, scalar string tensor; TensorBoard renders it as Markdown).
    pub fn add_text(&mut self, tag: &str, text: &str, step: i64) -> Result<(), TensorBoardError> {
        self.add_values(vec![text_value(tag, text)], step)
    }

    /// Logs an already PNG-encoded image of the given size and number of channels.
    pub fn add_image_png(
        &mut self,
        tag: &str,
        png: &[u8],
        height: u32,
        width: u32,
        channels: u32,
        step: i64,
    ) -> Result<(), TensorBoardError> {
        let value = png_image_value(tag, png, height, width, channels)?;
        self.add_values(vec![value], step)
    }

    /// Encodes `rgb` (row-major, `width * height * 3` bytes) as PNG and logs it.
    pub fn add_image_rgb8(
        &mut self,
        tag: &str,
        width: u32,
        height: u32,
        rgb: &[u8],
        step: i64,
    ) -> Result<(), TensorBoardError> {
        let png = encode_png_rgb8(tag, width, height, rgb)?;
        self.add_image_png(tag, &png, height, width, 3, step)
    }

    /// Logs any summary values (e.g. the hparams values of [`super::hparams`]) as one event.
    pub fn add_values(
        &mut self,
        values: Vec<summary::Value>,
        step: i64,
    ) -> Result<(), TensorBoardError> {
        self.write_event(Event {
            wall_time: wall_time(),
            step,
            what: Some(event::What::Summary(Summary { value: values })),
        })
    }

    /// Writes buffered bytes to the OS and syncs the file's data to disk.
    pub fn flush(&mut self) -> Result<(), TensorBoardError> {
        self.file
            .flush()
            .map_err(|e| TensorBoardError::io(&self.path, e))?;
        self.file
            .get_ref()
            .sync_data()
            .map_err(|e| TensorBoardError::io(&self.path, e))
    }

    /// Writes one event as a record and hands it to the OS.
    fn write_event(&mut self, event: Event) -> Result<(), TensorBoardError> {
        let data = event.encode_to_vec();
        record::write_record(&mut self.file, &data)
            .and_then(|()| self.file.flush())
            .map_err(|e| TensorBoardError::io(&self.path, e))
    }
}

/// A scalar summary value (`simple_value`, stored as `f32`).
pub fn scalar_value(tag: &str, value: f64) -> summary::Value {
    summary::Value {
        tag: tag.to_string(),
        value: Some(summary::value::Value::SimpleValue(value as f32)),
        ..Default::default()
    }
}

/// A text summary value: plugin `"text"` (content = empty `TextPluginData`, version 0) and a
/// scalar `DT_STRING` tensor holding the UTF-8 text.
pub fn text_value(tag: &str, text: &str) -> summary::Value {
    summary::Value {
        tag: tag.to_string(),
        metadata: Some(plugin_metadata("text", Vec::new())),
        value: Some(summary::value::Value::Tensor(TensorProto {
            dtype: DataType::DtString as i32,
            tensor_shape: Some(TensorShapeProto::default()),
            string_val: vec![text.as_bytes().to_vec()],
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// An image summary value from PNG bytes.
pub fn png_image_value(
    tag: &str,
    png: &[u8],
    height: u32,
    width: u32,
    channels: u32,
) -> Result<summary::Value, TensorBoardError> {
    let to_i32 = |what: &str, v: u32| {
        i32::try_from(v).map_err(|_| TensorBoardError::InvalidImage {
            tag: tag.to_string(),
            reason: format!("{what} {v} does not fit in an i32"),
        })
    };
    Ok(summary::Value {
        tag: tag.to_string(),
        value: Some(summary::value::Value::Image(summary::Image {
            height: to_i32("height", height)?,
            width: to_i32("width", width)?,
            colorspace: to_i32("channels", channels)?,
            encoded_image_string: png.to_vec(),
        })),
        ..Default::default()
    })
}

/// `SummaryMetadata` naming a plugin and its content.
pub fn plugin_metadata(plugin_name: &str, content: Vec<u8>) -> SummaryMetadata {
    SummaryMetadata {
        plugin_data: Some(summary_metadata::PluginData {
            plugin_name: plugin_name.to_string(),
            content,
        }),
        ..Default::default()
    }
}

/// PNG-encodes an RGB8 buffer after checking its size (the encoder itself would panic on a mismatch).
fn encode_png_rgb8(
    tag: &str,
    width: u32,
    height: u32,
    rgb: &[u8],
) -> Result<Vec<u8>, TensorBoardError> {
    let invalid = |reason: String| TensorBoardError::InvalidImage {
        tag: tag.to_string(),
        reason,
    };
    if width == 0 || height == 0 {
        return Err(invalid(format!("empty image {width}x{height}")));
    }
    let expected = (width as u64)
        .checked_mul(height as u64)
        .and_then(|n| n.checked_mul(3));
    if expected != Some(rgb.len() as u64) {
        return Err(invalid(format!(
            "{width}x{height} RGB8 needs {} bytes, got {}",
            expected.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            rgb.len()
        )));
    }
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(rgb, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|source| TensorBoardError::Png {
            tag: tag.to_string(),
            source,
        })?;
    Ok(png)
}

/// Seconds since the UNIX epoch (0 if the clock is before it).
fn wall_time() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// This machine's host name, reduced to characters that are safe in a file name.
fn host_name() -> String {
    let raw = fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let clean: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if clean.is_empty() || clean.chars().all(|c| c == '.') {
        "localhost".to_string()
    } else {
        clean
    }
}

/// Reads every event of an event file (used by tests; checks the record CRCs).
pub fn read_events(path: &Path) -> Result<Vec<Event>, TensorBoardError> {
    let mut file = io::BufReader::new(File::open(path).map_err(|e| TensorBoardError::io(path, e))?);
    let mut events = Vec::new();
    while let Some(data) =
        record::read_record(&mut file).map_err(|e| TensorBoardError::io(path, e))?
    {
        let event = Event::decode(&data[..]).map_err(|e| {
            TensorBoardError::io(path, io::Error::new(io::ErrorKind::InvalidData, e))
        })?;
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn summary_values(event: &Event) -> &[summary::Value] {
        match &event.what {
            Some(event::What::Summary(s)) => &s.value,
            other => panic!("not a summary: {other:?}"),
        }
    }

    #[test]
    fn writes_file_version_scalars_text_and_image() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        let mut w = EventWriter::create(&sub).unwrap();
        assert!(w.path().starts_with(&sub));
        let name = w.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with("events.out.tfevents."), "{name}");
        w.add_scalar("loss", 0.25, 1).unwrap();
        w.add_text("notes", "**hi**", 2).unwrap();
        let rgb: Vec<u8> = (0..18).collect();
        w.add_image_rgb8("img", 3, 2, &rgb, 3).unwrap();

        // Flushed to the OS on every add: readable before flush()/drop.
        let events = read_events(w.path()).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(
            events[0].what,
            Some(event::What::FileVersion("brain.Event:2".into()))
        );

        let v = &summary_values(&events[1])[0];
        assert_eq!(events[1].step, 1);
        assert_eq!(v.tag, "loss");
        assert_eq!(v.value, Some(summary::value::Value::SimpleValue(0.25)));

        let v = &summary_values(&events[2])[0];
        let md = v.metadata.as_ref().unwrap().plugin_data.as_ref().unwrap();
        assert_eq!(md.plugin_name, "text");
        match &v.value {
            Some(summary::value::Value::Tensor(t)) => {
                assert_eq!(t.dtype, DataType::DtString as i32);
                assert_eq!(t.string_val, vec![b"**hi**".to_vec()]);
            }
            other => panic!("{other:?}"),
        }

        let v = &summary_values(&events[3])[0];
        match &v.value {
            Some(summary::value::Value::Image(img)) => {
                assert_eq!((img.width, img.height, img.colorspace), (3, 2, 3));
                let decoded = image::load_from_memory(&img.encoded_image_string).unwrap();
                assert_eq!((decoded.width(), decoded.height()), (3, 2));
                assert_eq!(decoded.to_rgb8().into_raw(), rgb);
            }
            other => panic!("{other:?}"),
        }
        w.flush().unwrap();
    }

    #[test]
    fn names_are_unique_in_one_directory() {
        let dir = tempfile::tempdir().unwrap();
        let writers: Vec<EventWriter> = (0..50)
            .map(|_| EventWriter::create(dir.path()).unwrap())
            .collect();
        let names: HashSet<_> = writers.iter().map(|w| w.path().to_path_buf()).collect();
        assert_eq!(names.len(), 50);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 50);
    }

    #[test]
    fn errors_instead_of_panics() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not_a_dir");
        fs::write(&file, b"x").unwrap();
        let err = EventWriter::create(&file.join("sub")).unwrap_err();
        assert!(matches!(err, TensorBoardError::Io { .. }), "{err}");
        assert!(err.to_string().contains("not_a_dir"), "{err}");

        let mut w = EventWriter::create(dir.path()).unwrap();
        let err = w.add_image_rgb8("img", 3, 2, &[0; 17], 0).unwrap_err();
        assert!(
            matches!(err, TensorBoardError::InvalidImage { .. }),
            "{err}"
        );
        let err = w.add_image_rgb8("img", 0, 2, &[], 0).unwrap_err();
        assert!(
            matches!(err, TensorBoardError::InvalidImage { .. }),
            "{err}"
        );
        let err = w
            .add_image_rgb8("img", u32::MAX, u32::MAX, &[0; 3], 0)
            .unwrap_err();
        assert!(
            matches!(err, TensorBoardError::InvalidImage { .. }),
            "{err}"
        );
        let err = w.add_image_png("img", b"", u32::MAX, 1, 3, 0).unwrap_err();
        assert!(
            matches!(err, TensorBoardError::InvalidImage { .. }),
            "{err}"
        );
        // Nothing but the file_version event was written.
        assert_eq!(read_events(w.path()).unwrap().len(), 1);
    }
}
