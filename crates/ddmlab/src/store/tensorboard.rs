//! TensorBoard event files beside a run's `metrics.jsonl`: every metrics line's numbers as
//! scalars (`train/loss`, `train/lr`, `train/img_per_s`, a stage's own statistics) and the grids
//! a stage draws at its checkpoints as images, so that `tensorboard --logdir runs/` shows every
//! run.
//!
//! The file is TensorFlow's record format: per record its length (u64, little-endian), the
//! masked CRC-32C of those 8 bytes, the bytes of one `Event` protocol buffer, and their masked
//! CRC-32C (`((crc >> 15) | (crc << 17)) + 0xa282ead8`). The messages are the few fields of
//! `tensorflow/core/util/event.proto` and `summary.proto` a writer needs, encoded by prost.
//!
//! Each writer opens a new file (`events.out.tfevents.<seconds>.<host>.<pid>`) that starts with
//! the file-version event and, on a resumed run, a `SessionLog` START at the step it resumes
//! from: TensorBoard then drops what an interrupted attempt wrote past that step, as ddmlab
//! drops those lines of `metrics.jsonl`. A record cut short by a kill ends that file's reading.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;
use serde::Serialize;

use crate::error::{Error, IoContext, Result};

/// `tensorflow.Event` (the fields written here).
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
    #[prost(message, optional, tag = "7")]
    pub session_log: Option<SessionLog>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

/// `tensorflow.Summary.Value`: a scalar or an image under a tag.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<Image>,
}

/// `tensorflow.Summary.Image`: an encoded (PNG) image.
#[derive(Clone, PartialEq, Message)]
pub struct Image {
    #[prost(int32, tag = "1")]
    pub height: i32,
    #[prost(int32, tag = "2")]
    pub width: i32,
    /// 1 grey, 3 RGB, 4 RGBA.
    #[prost(int32, tag = "3")]
    pub colorspace: i32,
    #[prost(bytes = "vec", tag = "4")]
    pub encoded_image_string: Vec<u8>,
}

/// `tensorflow.SessionLog`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionLog {
    /// 1: START (a run starts or resumes at the event's step).
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The masked CRC-32C of TensorFlow's record files.
pub fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One record: length, its masked CRC, the data, its masked CRC.
pub fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Every event of an event file, in order. A record cut short at the end (a kill mid-write)
/// ends the list; a checksum that does not match is an error naming the file and the offset.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    let bytes = std::fs::read(path).at(path)?;
    let mut events = Vec::new();
    let mut at = 0;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        if u32_at(at + 8) != masked_crc(len_bytes) {
            return Err(Error::format(path, format!("record at byte {at}: the length's checksum does not match")));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let end = at + 12 + len + 4;
        if end > bytes.len() {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len];
        if u32_at(at + 12 + len) != masked_crc(data) {
            return Err(Error::format(path, format!("record at byte {at}: the data's checksum does not match")));
        }
        let event =
            Event::decode(data).map_err(|e| Error::format(path, format!("record at byte {at}: not an Event ({e})")))?;
        events.push(event);
        at = end;
    }
    Ok(events)
}

/// The event files of a run folder, oldest first.
pub fn event_files(run: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(run) {
        Ok(dir) => dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("events.out.tfevents.")))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).at(run),
    };
    files.sort();
    Ok(files)
}

/// The numbers of a metrics line as `(tag, value)`: every numeric field but `step` under
/// `prefix/`, nested tables flattened to their field names (a stage's statistics), in key
/// order.
pub fn scalars_of<T: Serialize>(prefix: &str, line: &T) -> Vec<(String, f64)> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, f64)>) {
        if let serde_json::Value::Object(map) = value {
            for (k, v) in map.iter().filter(|(k, _)| *k != "step") {
                match v.as_f64() {
                    Some(x) => out.push((format!("{prefix}/{k}"), x)),
                    None => walk(prefix, v, out),
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(prefix, &serde_json::to_value(line).expect("a metrics line serialises"), &mut out);
    out
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Appends events to a new event file in a run folder.
pub struct EventWriter {
    path: PathBuf,
    file: File,
}

impl EventWriter {
    /// A new event file in `dir` for a run starting (or resuming) at `step`.
    pub fn create(dir: &Path, step: usize) -> Result<EventWriter> {
        std::fs::create_dir_all(dir).at(dir)?;
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let secs = now() as u64;
        let mut name = format!("events.out.tfevents.{secs:010}.{host}.{}", std::process::id());
        // Two writers in one second (a stage stopped and resumed at once) get two files.
        let mut k = 1;
        while dir.join(&name).exists() {
            name = format!("events.out.tfevents.{secs:010}.{host}.{}.{k}", std::process::id());
            k += 1;
        }
        let path = dir.join(name);
        let file = File::create(&path).at(&path)?;
        let mut writer = EventWriter { path, file };
        writer.write(&Event { wall_time: now(), file_version: Some("brain.Event:2".into()), ..Default::default() })?;
        if step > 0 {
            let start = SessionLog { status: 1 };
            writer.write(&Event {
                wall_time: now(),
                step: step as i64,
                session_log: Some(start),
                ..Default::default()
            })?;
        }
        Ok(writer)
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &Event) -> Result<()> {
        self.file.write_all(&record(&event.encode_to_vec())).at(&self.path)?;
        self.file.flush().at(&self.path)
    }

    /// Scalars at `step`, one event.
    pub fn scalars(&mut self, step: usize, values: &[(String, f64)]) -> Result<()> {
        let value = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(tag, v)| Value { tag: tag.clone(), simple_value: Some(*v as f32), image: None })
            .collect();
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            summary: Some(Summary { value }),
            ..Default::default()
        })
    }

    /// The PNG file `png` as the image `tag` at `step`.
    pub fn image(&mut self, step: usize, tag: &str, png: &Path) -> Result<()> {
        let bytes = std::fs::read(png).at(png)?;
        let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
            .map_err(|e| Error::format(png, format!("not a PNG image ({e})")))?;
        let colorspace = match decoded.color().channel_count() {
            1 => 1,
            2 => 2,
            3 => 3,
            _ => 4,
        };
        let image = Image {
            height: decoded.height() as i32,
            width: decoded.width() as i32,
            colorspace,
            encoded_image_string: bytes,
        };
        let value = vec![Value { tag: tag.into(), simple_value: None, image: Some(image) }];
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            summary: Some(Summary { value }),
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The masked CRC-32C of TensorFlow's record reader, from a known value: the CRC-32C of
    /// "123456789" is 0xe3069283 (RFC 3720's check value).
    #[test]
    fn records_carry_tensorflows_masked_crc32c() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // Rotated right by 15 and offset by 0xa282ead8 (worked by hand: 0xc78ab0e5).
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &3u64.to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
    }

    /// A file-version event is the bytes TensorFlow writes for it: field 1 (double) and field 3
    /// (string) in protobuf's wire format.
    #[test]
    fn an_event_encodes_as_protobuf_wire_format() {
        let e = Event { wall_time: 1.5, file_version: Some("brain.Event:2".into()), ..Default::default() };
        let mut expect = vec![0x09];
        expect.extend_from_slice(&1.5f64.to_le_bytes());
        expect.extend_from_slice(&[0x1a, 13]);
        expect.extend_from_slice(b"brain.Event:2");
        assert_eq!(e.encode_to_vec(), expect);
        let scalar = Value { tag: "a".into(), simple_value: Some(2.0), image: None };
        let mut expect = vec![0x0a, 1, b'a', 0x15];
        expect.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(scalar.encode_to_vec(), expect);
    }

    #[test]
    fn a_written_file_reads_back_and_a_cut_record_ends_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = EventWriter::create(dir.path(), 7).unwrap();
        w.scalars(8, &[("train/loss".into(), 0.5), ("train/lr".into(), 1e-3), ("train/nan".into(), f64::NAN)]).unwrap();
        let png = dir.path().join("g.png");
        image::GrayImage::from_pixel(3, 2, image::Luma([200])).save(&png).unwrap();
        w.image(8, "samples", &png).unwrap();
        let path = w.path().to_path_buf();
        let events = read_events(&path).unwrap();
        assert_eq!(events.len(), 4);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        assert_eq!((events[1].step, events[1].session_log.as_ref().map(|s| s.status)), (7, Some(1)));
        let values = &events[2].summary.as_ref().unwrap().value;
        assert_eq!(values.len(), 2, "a non-finite value is left out");
        assert_eq!((values[0].tag.as_str(), values[0].simple_value), ("train/loss", Some(0.5)));
        let img = events[3].summary.as_ref().unwrap().value[0].image.as_ref().unwrap();
        assert_eq!((img.height, img.width, img.colorspace), (2, 3, 1));
        assert_eq!(img.encoded_image_string, std::fs::read(&png).unwrap());
        assert_eq!(event_files(dir.path()).unwrap(), vec![path.clone()]);

        // Killed mid-record: the complete records still read.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert_eq!(read_events(&path).unwrap().len(), 3);
        // A flipped byte is an error naming the file.
        let mut bad = bytes.clone();
        bad[30] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        let err = read_events(&path).unwrap_err().to_string();
        assert!(err.contains("checksum") && err.contains("events.out.tfevents"), "{err}");
    }

    #[test]
    fn a_metrics_line_gives_every_number_but_its_step() {
        #[derive(Serialize)]
        struct Stats {
            d_loss: f64,
        }
        #[derive(Serialize)]
        struct Line {
            step: usize,
            loss: f64,
            stats: Stats,
            kind: &'static str,
        }
        let tags = scalars_of("train", &Line { step: 3, loss: 0.25, stats: Stats { d_loss: 1.5 }, kind: "x" });
        assert_eq!(tags, vec![("train/loss".to_string(), 0.25), ("train/d_loss".to_string(), 1.5)]);
    }
}
