//! The write-ahead log of one streamed table: acknowledged records, fsync'd in groups, kept in
//! segment files until the Delta commit that holds them has landed.
//!
//! A segment is a sequence of frames: `len: u32 | crc32: u32 | seq: u64 | payload`, the CRC over
//! `seq | payload`, the payload a JSON header line and the batch as an Arrow IPC stream. A frame
//! cut short by a crash (never acknowledged: the fsync did not return) ends the log; it and
//! anything after it are cut off when the log is opened again.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;

use super::Header;

const FRAME_HEAD: usize = 4 + 4 + 8;

/// A frame's payload: its header and rows, encoded by the request that brings them.
pub(crate) fn encode(header: &Header, batch: &RecordBatch) -> std::io::Result<Vec<u8>> {
    let mut payload = serde_json::to_vec(header)?;
    payload.push(b'\n');
    let mut writer = StreamWriter::try_new(&mut payload, &batch.schema()).map_err(io)?;
    writer.write(batch).map_err(io)?;
    writer.finish().map_err(io)?;
    drop(writer);
    Ok(payload)
}

fn decode(payload: &[u8]) -> std::io::Result<(Header, RecordBatch)> {
    let end = payload
        .iter()
        .position(|b| *b == b'\n')
        .ok_or_else(|| io("a frame without a header"))?;
    let header: Header = serde_json::from_slice(&payload[..end])?;
    let mut reader = StreamReader::try_new(&payload[end + 1..], None).map_err(io)?;
    let batch = reader
        .next()
        .ok_or_else(|| io("a frame without rows"))?
        .map_err(io)?;
    Ok((header, batch))
}

fn io(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
}

/// The open log of one table.
pub(crate) struct Wal {
    dir: PathBuf,
    /// The segment being appended to, and its path.
    current: Option<(File, PathBuf)>,
    /// Segments no longer appended to, oldest first, waiting for their rows to be committed.
    closed: Vec<PathBuf>,
}

/// A record as read back from the log.
pub(crate) struct Logged {
    pub seq: u64,
    pub header: Header,
    pub batch: RecordBatch,
}

impl Wal {
    /// Opens the log in `dir` (creating it) and reads back every record it holds; every
    /// segment found is closed, so the next commit retires it.
    pub(crate) fn open(dir: &Path) -> std::io::Result<(Wal, Vec<Logged>)> {
        std::fs::create_dir_all(dir)?;
        let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect();
        segments.sort();
        let mut logged = Vec::new();
        for path in &segments {
            let valid = read_segment(path, &mut logged)?;
            let len = std::fs::metadata(path)?.len();
            if valid < len {
                tracing::warn!(
                    segment = %path.display(),
                    "cutting off {} bytes of an unacknowledged write at the end of the stream log",
                    len - valid
                );
                OpenOptions::new().write(true).open(path)?.set_len(valid)?;
            }
        }
        Ok((
            Wal {
                dir: dir.to_path_buf(),
                current: None,
                closed: segments,
            },
            logged,
        ))
    }

    /// Appends frames (`seq`, payload) and syncs them to disk: when this returns they survive
    /// a crash.
    pub(crate) fn append(&mut self, frames: &[(u64, Vec<u8>)]) -> std::io::Result<()> {
        let Some(&(first, _)) = frames.first() else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(frames.iter().map(|(_, p)| p.len() + FRAME_HEAD).sum());
        for (seq, payload) in frames {
            let len = u32::try_from(payload.len() + 8).map_err(|_| io("a record over 4 GiB"))?;
            let mut crc = crc32fast::Hasher::new();
            crc.update(&seq.to_le_bytes());
            crc.update(payload);
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&crc.finalize().to_le_bytes());
            bytes.extend_from_slice(&seq.to_le_bytes());
            bytes.extend_from_slice(payload);
        }
        if self.current.is_none() {
            let path = self.dir.join(format!("{first:020}.wal"));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // The new file's name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            self.current = Some((file, path));
        }
        let (file, _) = self.current.as_mut().expect("opened above");
        let written = file.write_all(&bytes).and_then(|()| file.sync_data());
        if written.is_err() {
            // What follows must not land after a torn frame, which ends a segment's reading.
            self.rotate();
        }
        written
    }

    /// Closes the current segment: the records in the closed segments (returned) are those
    /// a commit starting now takes.
    pub(crate) fn rotate(&mut self) -> Vec<PathBuf> {
        if let Some((_, path)) = self.current.take() {
            self.closed.push(path);
        }
        self.closed.clone()
    }

    /// Removes closed segments whose records have been committed.
    pub(crate) fn retire(&mut self, segments: &[PathBuf]) -> std::io::Result<()> {
        for path in segments {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.closed.retain(|p| !segments.contains(p));
        Ok(())
    }
}

/// Reads the frames of one segment into `out`; returns the length of its valid part.
fn read_segment(path: &Path, out: &mut Vec<Logged>) -> std::io::Result<u64> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut at = 0usize;
    while bytes.len() - at >= FRAME_HEAD {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let body = at + 8;
        if len < 8 || bytes.len() - body < len {
            break;
        }
        let framed = &bytes[body..body + len];
        if crc32fast::hash(framed) != crc {
            break;
        }
        let seq = u64::from_le_bytes(framed[..8].try_into().expect("8 bytes"));
        let Ok((header, batch)) = decode(&framed[8..]) else {
            break;
        };
        out.push(Logged { seq, header, batch });
        at = body + len;
    }
    Ok(at as u64)
}
