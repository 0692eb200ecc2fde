//! CSV: delimited text with an optional header line; every field is text, parsed to the column's
//! type.
//!
//! Records are split here rather than by the `csv` crate, which reads a quote that is never
//! closed to the end of the file as one value, so that the rows after it vanish. A quoted value
//! that reaches the end of the file, that is closed by a quote followed by something other than
//! a delimiter or a line end after spanning lines (the opening quote of a later value), or that
//! grows past [`MAX_RECORD`] is reported as a bad row on the line where it starts, and reading
//! goes on from the next line. A quoted value that spans lines and is closed properly is one
//! value, as CSV allows.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::DataType;

use super::chunked::{Chunk, Framer, Framing, Resume, decode_chunks};
use super::{BadRow, Builders, Cell, Decoder, Output, reuse, truncate};
use crate::infer::{header_names, infer_value, merge_types};
use crate::inputs::InputFile;
use crate::{IngestError, ReadOptions, Result};

/// The longest record read (a row, or a quoted value spanning lines): memory stays bounded when
/// a quote is never closed in a large file.
const MAX_RECORD: usize = 4 << 20;

/// The CSV decoder.
pub(super) struct CsvDecoder;

impl Decoder for CsvDecoder {
    fn infer_columns(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
    ) -> Result<Vec<(String, Option<DataType>)>> {
        let mut records = Records::new(file.open(Arc::default())?, 1, opts);
        let mut record = Record::default();
        let mut names: Option<Vec<String>> = None;
        let mut types: Vec<Option<DataType>> = Vec::new();
        let null = opts.csv.null_marker.as_deref();
        let mut seen = 0;
        while seen < opts.infer_rows {
            let Some(next) = records.next(&mut record, file)? else {
                break;
            };
            if let Err(m) = next {
                if names.is_none() && opts.csv.has_header {
                    return Err(header_error(file, m));
                }
                // A record that is not one is no evidence of the column types.
                continue;
            }
            if names.is_none() {
                let header: Vec<String> = record
                    .iter()
                    .map(|f| String::from_utf8_lossy(f).into_owned())
                    .collect();
                if opts.csv.has_header {
                    names = Some(header_names(&header)?);
                    types = vec![None; header.len()];
                    continue;
                }
                names = Some((1..=header.len()).map(|i| format!("column_{i}")).collect());
                types = vec![None; header.len()];
            }
            seen += 1;
            for (i, field) in record.iter().enumerate().take(types.len()) {
                let Ok(text) = std::str::from_utf8(field) else {
                    continue;
                };
                if text.is_empty() || Some(text) == null {
                    continue;
                }
                types[i] = Some(merge_types(types[i].take(), &infer_value(text)));
            }
        }
        let names =
            names.ok_or_else(|| IngestError::Input(format!("{} is empty", file.display())))?;
        Ok(names.into_iter().zip(types).collect())
    }

    fn decode(
        &self,
        file: &InputFile,
        opts: &ReadOptions,
        bytes: Arc<AtomicU64>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let before = bytes.load(Ordering::Relaxed);
        let mut records = Records::new(file.open(bytes.clone())?, 1, opts);
        let mut record = Record::default();
        let builders = out.builders();
        let map: Vec<usize> = if opts.csv.has_header {
            match records.next(&mut record, file)? {
                None => return Ok(()),
                Some(Err(m)) => return Err(header_error(file, m)),
                Some(Ok(_)) => {}
            }
            let header: Vec<String> = record
                .iter()
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            builders.positions(&header_names(&header)?, file)?
        } else {
            (0..builders.len()).collect()
        };
        if opts.threads > 1 {
            let (input, start) = records.rest();
            let framer = QuoteParity {
                quote: opts.csv.quote,
                quoted: false,
            };
            let decode_chunk = |chunk: &mut Chunk, out: &mut Output<'_>| {
                let bytes = std::mem::take(&mut chunk.bytes);
                let mut records = Records::over(bytes, chunk.line, opts);
                let framing = decode_records(&mut records, file, opts, &map, true, out);
                chunk.bytes = records.buf;
                framing
            };
            let resume = decode_chunks(file, input, start, framer, opts, decode_chunk, out)?;
            let Some(at) = resume else {
                return Ok(());
            };
            // A quote the framing could not follow: the rest on one thread, from the last
            // boundary known for sure (counting the bytes read again only once).
            bytes.store(before, Ordering::Relaxed);
            let mut input = file.open(bytes)?;
            std::io::copy(&mut input.by_ref().take(at.offset), &mut std::io::sink()).map_err(
                |source| IngestError::Io {
                    path: file.display(),
                    source,
                },
            )?;
            records = Records::new(input, at.line, opts);
        }
        decode_records(&mut records, file, opts, &map, false, out).map(|_| ())
    }
}

/// Decodes the records of `records` (whose fields go to the columns `map` gives) into batches
/// and bad rows. In a chunk (`chunked`), whose lines are all in memory, plain lines (no quote,
/// no carriage return but a last one) are split in place, without the record machine's copies;
/// and a record that is not one (a quote that does not close) makes the chunk
/// [`Framing::Doubtful`]: the rows after it depend on what follows.
fn decode_records(
    records: &mut Records,
    file: &InputFile,
    opts: &ReadOptions,
    map: &[usize],
    chunked: bool,
    out: &mut Output<'_>,
) -> Result<Framing> {
    let mut record = Record::default();
    let mut rows = Rows {
        builders: out.builders(),
        map,
        null: opts.csv.null_marker.as_deref(),
        batch_rows: opts.batch_rows,
        file,
        spare: Vec::new(),
    };
    loop {
        if chunked {
            records.plain_lines(&mut rows, out)?;
        }
        let Some(next) = records.next(&mut record, file)? else {
            break;
        };
        match next {
            Ok(line) => rows.add(record.iter(), record.len(), line, &record.raw, out)?,
            Err(_) if chunked => return Ok(Framing::Doubtful),
            Err(Malformed {
                line,
                field,
                problem,
            }) => {
                let column = map
                    .get(field)
                    .map(|&c| format!("column '{}': ", rows.builders.name(c)))
                    .unwrap_or_default();
                out.bad(BadRow {
                    file: file.display(),
                    line,
                    reason: format!("{column}{problem}"),
                    raw: truncate(String::from_utf8_lossy(&record.raw).into_owned()),
                })?;
            }
        }
    }
    let (cols, n) = rows.builders.finish();
    out.batch(cols, n)?;
    Ok(Framing::Exact)
}

/// Rows decoded into the column builders: each field parsed to its column's type, or the row
/// reported as bad.
struct Rows<'a> {
    builders: Builders,
    /// The column of each field.
    map: &'a [usize],
    null: Option<&'a str>,
    batch_rows: usize,
    file: &'a InputFile,
    /// The cells' buffer, reused from row to row (emptied, so it borrows nothing).
    spare: Vec<(usize, Cell<'static>)>,
}

impl Rows<'_> {
    /// Adds the record of `count` `fields` on `line` (its text: `raw`).
    fn add<'f>(
        &mut self,
        fields: impl Iterator<Item = &'f [u8]>,
        count: usize,
        line: u64,
        raw: &[u8],
        out: &mut Output<'_>,
    ) -> Result<()> {
        let mut row: Vec<(usize, Cell<'f>)> = reuse(std::mem::take(&mut self.spare));
        let builders = &self.builders;
        let parsed = if count != self.map.len() {
            Err(format!("expected {} fields, found {count}", self.map.len()))
        } else {
            fields.zip(self.map).try_for_each(|(field, &col)| {
                let text = std::str::from_utf8(field)
                    .map_err(|_| format!("column '{}': invalid UTF-8", builders.name(col)))?;
                let cell = if text.is_empty() || self.null == Some(text) {
                    Cell::Null
                } else {
                    builders.parse_text(col, text)?
                };
                row.push((col, cell));
                Ok(())
            })
        };
        let result = match parsed {
            Ok(()) => {
                self.builders.append(row.drain(..));
                if self.builders.rows == self.batch_rows {
                    let (cols, n) = self.builders.finish();
                    out.batch(cols, n)
                } else {
                    Ok(())
                }
            }
            Err(reason) => out.bad(BadRow {
                file: self.file.display(),
                line,
                reason,
                raw: truncate(String::from_utf8_lossy(raw).into_owned()),
            }),
        };
        self.spare = reuse(row);
        result
    }
}

/// CSV's record boundaries, as far as they can be told without parsing: line ends outside
/// quotes, counting every quote as opening or closing one. A stray quote in an unquoted value
/// misleads it; the chunk that ends inside a quote then shows it ([`Framing::Doubtful`]).
struct QuoteParity {
    quote: u8,
    quoted: bool,
}

impl Framer for QuoteParity {
    fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut last = None;
        for i in memchr::memchr2_iter(self.quote, b'\n', bytes) {
            if bytes[i] == self.quote {
                self.quoted = !self.quoted;
            } else if !self.quoted {
                last = Some(i + 1);
            }
        }
        last
    }

    fn give_up_after(&self) -> Option<usize> {
        Some(MAX_RECORD)
    }
}

/// A header line that is not a record refuses the file.
fn header_error(file: &InputFile, m: Malformed) -> IngestError {
    IngestError::Input(format!(
        "{}: line {}: header: {}",
        file.display(),
        m.line,
        m.problem
    ))
}

/// One record: its fields, and its text as read (for bad-row reports).
#[derive(Default)]
struct Record {
    data: Vec<u8>,
    ends: Vec<usize>,
    raw: Vec<u8>,
}

impl Record {
    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.raw.clear();
    }

    fn end_field(&mut self) {
        self.ends.push(self.data.len());
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let field = &self.data[start..end];
            start = end;
            field
        })
    }
}

/// A record that could not be read: where it starts, the field at fault (from 0) and why.
struct Malformed {
    line: u64,
    field: usize,
    problem: String,
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    /// At the start of a field.
    Start,
    /// In an unquoted field.
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// After a quote in a quoted field: the end of the field, or the first of two quotes.
    QuoteInQuoted,
}

/// Where the quoted field being read started.
struct OpenQuote {
    line: u64,
    field: usize,
    /// Where in the record's text the line after the quote's starts (reading goes on from
    /// there if the quote is never closed); `None` while the field is on its first line.
    next_line: Option<usize>,
}

/// The records of a CSV file, with the line each starts on.
struct Records {
    input: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    /// The line of the next byte of `buf`, from 1.
    line: u64,
    delimiter: u8,
    quote: u8,
    /// A `\n` right after a `\r` that ended a record belongs to that line end.
    after_cr: bool,
    /// Bytes taken from `input`.
    taken: u64,
}

impl Records {
    /// The records of `input`, whose first byte is on `line`.
    fn new(input: Box<dyn Read + Send>, line: u64, opts: &ReadOptions) -> Self {
        Records {
            input,
            buf: Vec::new(),
            pos: 0,
            line,
            delimiter: opts.csv.delimiter,
            quote: opts.csv.quote,
            after_cr: false,
            taken: 0,
        }
    }

    /// The records of a chunk of a file.
    fn over(bytes: Vec<u8>, line: u64, opts: &ReadOptions) -> Self {
        Records {
            buf: bytes,
            ..Records::new(Box::new(std::io::empty()), line, opts)
        }
    }

    /// The input not read yet, with the bytes already taken from it but not read, and where
    /// they start (after a whole record).
    fn rest(self) -> (Box<dyn Read + Send>, (Vec<u8>, Resume)) {
        let unread = self.buf[self.pos..].to_vec();
        let at = Resume {
            offset: self.taken - unread.len() as u64,
            line: self.line,
        };
        (self.input, (unread, at))
    }

    /// The next byte, `None` at the end of the file.
    fn byte(&mut self, file: &InputFile) -> Result<Option<u8>> {
        if self.pos == self.buf.len() {
            self.buf.resize(1 << 16, 0);
            let n = loop {
                match self.input.read(&mut self.buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(IngestError::Input(format!(
                            "cannot read {}: {e}",
                            file.display()
                        )));
                    }
                }
            };
            self.buf.truncate(n);
            self.pos = 0;
            self.taken += n as u64;
            if n == 0 {
                return Ok(None);
            }
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Ok(Some(b))
    }

    /// Reads the next record into `record`: `Ok(line)` for a record (empty lines are skipped),
    /// `Err` for one that is not a record (its text is in `record.raw`), `None` at the end.
    fn next(
        &mut self,
        record: &mut Record,
        file: &InputFile,
    ) -> Result<Option<std::result::Result<u64, Malformed>>> {
        record.clear();
        let mut state = State::Start;
        let mut open: Option<OpenQuote> = None;
        let mut start = self.line;
        loop {
            self.copy_plain_run(state, record);
            let Some(b) = self.byte(file)? else {
                if state == State::Quoted {
                    let q = open.take().expect("a quoted field has its quote");
                    return Ok(Some(Err(self.unclosed(record, q, "is never closed"))));
                }
                if record.raw.is_empty() && state == State::Start {
                    return Ok(None);
                }
                record.end_field();
                return Ok(Some(Ok(start)));
            };
            if std::mem::take(&mut self.after_cr) && b == b'\n' && record.raw.is_empty() {
                start = self.line;
                continue;
            }
            if record.raw.len() >= MAX_RECORD {
                let limit = format!("is not closed within {} MiB", MAX_RECORD >> 20);
                return Ok(Some(Err(match open.take() {
                    Some(q) if state == State::Quoted && q.next_line.is_some() => {
                        record.raw.push(b);
                        self.unclosed(record, q, &limit)
                    }
                    _ => self.skip_line(start, b, file)?,
                })));
            }
            let line_end = b == b'\n' || b == b'\r';
            match state {
                State::Quoted => {
                    if b == self.quote {
                        state = State::QuoteInQuoted;
                    } else {
                        record.data.push(b);
                    }
                }
                State::QuoteInQuoted if b == self.quote => {
                    record.data.push(b);
                    state = State::Quoted;
                }
                State::QuoteInQuoted
                    if b != self.delimiter
                        && !line_end
                        && open.as_ref().is_some_and(|q| q.next_line.is_some()) =>
                {
                    // A quote closed after spanning lines, yet followed by more text: it was
                    // the opening quote of a later value, and the first one is never closed.
                    record.raw.push(b);
                    let q = open.take().expect("a quoted field has its quote");
                    return Ok(Some(Err(self.unclosed(record, q, "is never closed"))));
                }
                _ if b == self.delimiter => {
                    record.end_field();
                    state = State::Start;
                }
                _ if line_end => {
                    if record.raw.is_empty() {
                        // An empty line is no record.
                        self.after_cr = b == b'\r';
                        start = self.line;
                        continue;
                    }
                    record.end_field();
                    self.after_cr = b == b'\r';
                    return Ok(Some(Ok(start)));
                }
                State::Start if b == self.quote => {
                    open = Some(OpenQuote {
                        line: self.line,
                        field: record.ends.len(),
                        next_line: None,
                    });
                    state = State::Quoted;
                }
                // Text right after a closing quote is kept, as the `csv` crate does.
                _ => {
                    record.data.push(b);
                    state = State::Unquoted;
                }
            }
            record.raw.push(b);
            if b == b'\n'
                && let Some(q) = open.as_mut()
                && q.next_line.is_none()
            {
                q.next_line = Some(record.raw.len());
            }
        }
    }

    /// Adds the plain lines at the reading position to `rows` — lines the buffer holds whole,
    /// without a quote or a carriage return (but one before the line end) — splitting them in
    /// place, as the record machine would read them. Stops before any other line.
    fn plain_lines(&mut self, rows: &mut Rows<'_>, out: &mut Output<'_>) -> Result<()> {
        loop {
            let rest = &self.buf[self.pos..];
            let Some(end) = memchr::memchr(b'\n', rest) else {
                return Ok(());
            };
            let mut text = &rest[..end];
            if let [line @ .., b'\r'] = text {
                text = line;
            }
            if text.len() >= MAX_RECORD || memchr::memchr2(self.quote, b'\r', text).is_some() {
                return Ok(());
            }
            if !text.is_empty() {
                let count = memchr::memchr_iter(self.delimiter, text).count() + 1;
                let fields = text.split(|b| *b == self.delimiter);
                rows.add(fields, count, self.line, text, out)?;
            }
            // (Also the `\n` of a `\r\n` that ended the record before: an empty line.)
            self.after_cr = false;
            self.pos += end + 1;
            self.line += 1;
        }
    }

    /// Copies the bytes of the buffer up to the next one that matters in `state` (in an
    /// unquoted field: a delimiter or a line end; in a quoted one: a quote or a line end) into
    /// the record at once, instead of byte by byte. Stops at [`MAX_RECORD`] so that the limit
    /// is checked where it always was.
    fn copy_plain_run(&mut self, state: State, record: &mut Record) {
        let rest = &self.buf[self.pos..];
        let rest = &rest[..rest.len().min(MAX_RECORD.saturating_sub(record.raw.len()))];
        let n = match state {
            State::Unquoted => memchr::memchr3(self.delimiter, b'\n', b'\r', rest),
            State::Quoted => memchr::memchr2(self.quote, b'\n', rest),
            State::Start | State::QuoteInQuoted => return,
        }
        .unwrap_or(rest.len());
        record.data.extend_from_slice(&rest[..n]);
        record.raw.extend_from_slice(&rest[..n]);
        self.pos += n;
    }

    /// The report of a quote that is never closed; reading goes on from the line after the
    /// quote's, so the rows it swallowed are read again.
    fn unclosed(&mut self, record: &mut Record, q: OpenQuote, why: &str) -> Malformed {
        if let Some(next) = q.next_line {
            let mut again = record.raw.split_off(next);
            again.extend_from_slice(&self.buf[self.pos..]);
            self.buf = again;
            self.pos = 0;
            self.line = q.line + 1;
            self.after_cr = false;
        }
        while record
            .raw
            .last()
            .is_some_and(|b| *b == b'\n' || *b == b'\r')
        {
            record.raw.pop();
        }
        Malformed {
            line: q.line,
            field: q.field,
            problem: format!("quoted field starts on this line and {why}"),
        }
    }

    /// The report of a line longer than [`MAX_RECORD`], skipped to its end.
    fn skip_line(&mut self, line: u64, mut b: u8, file: &InputFile) -> Result<Malformed> {
        while b != b'\n' {
            match self.byte(file)? {
                Some(next) => b = next,
                None => break,
            }
        }
        Ok(Malformed {
            line,
            field: usize::MAX,
            problem: format!("the row is longer than {} MiB", MAX_RECORD >> 20),
        })
    }
}
