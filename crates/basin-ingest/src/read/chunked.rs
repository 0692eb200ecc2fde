//! One file decoded on every core.
//!
//! A framing thread reads the file and cuts it into chunks that start and end on record
//! boundaries, counting the lines of each; workers decode the chunks with the format's own row
//! decoding (so validation, bad rows and their line numbers are the same); the rows are handed on
//! in file order. Memory stays bounded: the chunks' buffers are a fixed set of tokens, handed back
//! to the framer once their rows are handed on.
//!
//! A format's framing may be a guess (CSV's quote parity cannot know a quote that is never
//! closed). A worker that finds its chunk doubtful says so, and reading stops at that chunk:
//! the caller reads the rest of the file on one thread from there ([`Resume`]), so the result is
//! exactly that of reading the whole file on one thread.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use super::{Emit, Output};
use crate::inputs::InputFile;
use crate::{IngestError, ReadOptions, Result};

/// How much of a file a framer reads at a time.
const READ_BYTES: usize = 1 << 20;

/// A piece of a file that starts on a record boundary.
pub(super) struct Chunk {
    pub bytes: Vec<u8>,
    /// The line of its first byte, from 1.
    pub line: u64,
    /// Where it starts in the (decompressed) file.
    offset: u64,
}

/// Where one-thread reading takes over: a record boundary of the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Resume {
    /// Bytes of the (decompressed) file before it.
    pub offset: u64,
    /// Its line, from 1.
    pub line: u64,
}

/// Whether a chunk's rows can be trusted.
pub(super) enum Framing {
    Exact,
    /// The chunk may not end where a record ends: read again from its start on one thread.
    Doubtful,
}

/// How a format finds record boundaries.
pub(super) trait Framer: Send {
    /// Reads on through `bytes` (the file's next bytes) and returns the position just after the
    /// last record boundary in them.
    fn scan(&mut self, bytes: &[u8]) -> Option<usize>;
    /// The longest stretch without a boundary before one-thread reading takes over (`None`:
    /// wait for one, however long).
    fn give_up_after(&self) -> Option<usize>;
}

/// What the framer hands to the workers, and they to the one handing rows on.
type Work = (usize, Chunk);
type Done = (usize, Result<(Framing, Vec<Emit>, Chunk)>);

/// Decodes `input` (`file` from `start` on, whose first bytes are already in `start.0`) with
/// `opts.threads` workers running `decode` on chunks of about `opts.chunk_bytes`, handing the
/// rows to `out` in file order. Returns where one-thread reading must take over, if it must.
pub(super) fn decode_chunks(
    file: &InputFile,
    input: Box<dyn Read + Send>,
    start: (Vec<u8>, Resume),
    framer: impl Framer,
    opts: &ReadOptions,
    decode: impl Fn(&mut Chunk, &mut Output<'_>) -> Result<Framing> + Sync,
    out: &mut Output<'_>,
) -> Result<Option<Resume>> {
    // The buffers: a chunk in the making, chunks queued or decoding, decoded ones waiting for
    // their turn. A buffer goes back when its rows are handed on.
    let (threads, chunk_bytes, path) = (opts.threads, opts.chunk_bytes.max(1), file.display());
    let buffers = 2 * threads + 2;
    let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        free_tx.send(Vec::new()).expect("the channel has room");
    }
    let (work_tx, work_rx) = mpsc::sync_channel::<Work>(threads);
    // Shared by the workers only: when the last one stops, the framer cannot queue more.
    let work_rx = Arc::new(Mutex::new(work_rx));
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let stop = AtomicBool::new(false);
    let partitions = &out.partitions;

    std::thread::scope(|s| {
        let (read, at) = start;
        let input = Box::new(std::io::Cursor::new(read).chain(input));
        let framing = {
            let path = path.clone();
            s.spawn(move || frame(path, input, at, framer, chunk_bytes, free_rx, work_tx))
        };
        for _ in 0..threads {
            let (work_rx, done_tx, stop, decode, path) = (
                work_rx.clone(),
                done_tx.clone(),
                &stop,
                &decode,
                path.clone(),
            );
            s.spawn(move || {
                loop {
                    let next = work_rx.lock().map(|rx| rx.recv());
                    let Ok(Ok((seq, mut chunk))) = next else {
                        return;
                    };
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let mut emitted = Vec::new();
                    let mut sink = |e: Emit| {
                        emitted.push(e);
                        Ok(())
                    };
                    let mut out = Output {
                        partitions: partitions.clone(),
                        sink: &mut sink,
                    };
                    // A panic would leave its piece's turn open for ever: it fails the read.
                    let framing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        decode(&mut chunk, &mut out)
                    }))
                    .unwrap_or_else(|_| {
                        Err(IngestError::Input(format!(
                            "decoding {path} failed unexpectedly at line {}",
                            chunk.line
                        )))
                    });
                    let result = framing.map(|f| (f, emitted, chunk));
                    if done_tx.send((seq, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop((done_tx, work_rx));

        // Rows go on in file order; whatever stops it stops the framer and the workers too
        // (their channels close).
        let handed_on = (|| {
            let mut waiting = BTreeMap::new();
            let mut next = 0;
            for (seq, result) in &done_rx {
                waiting.insert(seq, result);
                while let Some(result) = waiting.remove(&next) {
                    let (framing, emitted, chunk) = result?;
                    if let Framing::Doubtful = framing {
                        return Ok(Some(Resume {
                            offset: chunk.offset,
                            line: chunk.line,
                        }));
                    }
                    for e in emitted {
                        (out.sink)(e)?;
                    }
                    let _ = free_tx.send(chunk.bytes);
                    next += 1;
                }
            }
            Ok(None)
        })();
        stop.store(true, Ordering::Relaxed);
        drop((free_tx, done_rx));
        let framed = framing.join().unwrap_or_else(|_| {
            Err(IngestError::Input(
                "the file's framing thread failed".into(),
            ))
        });
        match handed_on {
            Ok(None) => framed,
            other => other,
        }
    })
}

/// The framing thread: reads the file into buffers, cuts them after their last record boundary
/// once they hold `chunk_bytes`, and queues them. Returns where one-thread reading takes over
/// when no boundary comes within the framer's limit.
fn frame(
    path: String,
    mut input: Box<dyn Read + Send>,
    mut at: Resume,
    mut framer: impl Framer,
    chunk_bytes: usize,
    free: mpsc::Receiver<Vec<u8>>,
    work: mpsc::SyncSender<Work>,
) -> Result<Option<Resume>> {
    // The consumer has stopped: nothing more to do.
    let Ok(mut buf) = free.recv() else {
        return Ok(None);
    };
    buf.clear();
    let mut cut = None;
    let mut seq = 0;
    loop {
        let len = buf.len();
        buf.resize(len + READ_BYTES.min(chunk_bytes), 0);
        let n = loop {
            match input.read(&mut buf[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(IngestError::Io { path, source }),
            }
        };
        buf.truncate(len + n);
        if n == 0 {
            if !buf.is_empty() {
                let _ = work.send((seq, chunk(buf, &mut at)));
            }
            return Ok(None);
        }
        if let Some(c) = framer.scan(&buf[len..]) {
            cut = Some(len + c);
        }
        if buf.len() < chunk_bytes {
            continue;
        }
        match cut.take() {
            Some(c) => {
                let Ok(mut next) = free.recv() else {
                    return Ok(None);
                };
                next.clear();
                next.extend_from_slice(&buf[c..]);
                buf.truncate(c);
                let full = std::mem::replace(&mut buf, next);
                if work.send((seq, chunk(full, &mut at))).is_err() {
                    return Ok(None);
                }
                seq += 1;
            }
            None if framer
                .give_up_after()
                .is_some_and(|limit| buf.len() > chunk_bytes + limit) =>
            {
                return Ok(Some(at));
            }
            None => {}
        }
    }
}

/// Makes `bytes` the chunk starting at `at`, and moves `at` past it.
fn chunk(bytes: Vec<u8>, at: &mut Resume) -> Chunk {
    let chunk = Chunk {
        line: at.line,
        offset: at.offset,
        bytes,
    };
    at.offset += chunk.bytes.len() as u64;
    at.line += memchr::memchr_iter(b'\n', &chunk.bytes).count() as u64;
    chunk
}
