//! Faults below the lake: an object store that fails, delays or cuts off the operations a test
//! chooses, under the URL scheme `faulty://`, over the local file system. delta-rs resolves a
//! table location through its object-store factories, so a hub whose storage root is a
//! [`Faults::root`] URL has every read and write of the real write path (data files, the Delta
//! log, listings) pass through the faults.
//!
//! ```ignore
//! let faults = Faults::new();
//! let root = faults.root(dir);                 // faulty://f1/<dir>/
//! faults.inject(Op::Put, ".parquet", Fault::Fail);
//! faults.clear();
//! ```

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::DeltaResult;
use deltalake::logstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    UploadPart, local::LocalFileSystem, path::Path,
};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use futures::stream::{self, BoxStream, StreamExt};
use url::Url;

/// The operations a fault applies to. `Get` covers reads of whole objects, ranges and heads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put,
    Get,
    List,
    Copy,
    Rename,
    Delete,
}

/// What happens to a matching operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It fails with an I/O error, touching nothing.
    Fail,
    /// It waits this long, then runs.
    Delay(Duration),
    /// It fails after this many bytes: a read's stream (or a listing's entries) stops with an
    /// error part-way; a multipart upload fails at the part that crosses the limit; a single
    /// put (atomic on every store) and a copy or rename fail as a whole.
    CutOffAfter(u64),
}

#[derive(Debug)]
struct Rule {
    op: Op,
    path_contains: String,
    fault: Fault,
    /// How many more operations it applies to; `None`: until cleared.
    times: Option<usize>,
}

/// The faults of one `faulty://` root; cheap to clone.
#[derive(Clone, Debug)]
pub struct Faults {
    id: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    hits: Arc<AtomicUsize>,
    /// Parts of multipart uploads refused after a cut-off (as against puts that failed whole).
    cut_parts: Arc<AtomicUsize>,
}

fn registry() -> &'static Mutex<HashMap<String, Faults>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, Faults>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let url = Url::parse("faulty://").unwrap();
        object_store_factories().insert(url.clone(), Arc::new(FaultyFactory));
        logstore_factories().insert(url, Arc::new(FaultyFactory));
        Mutex::default()
    })
}

impl Faults {
    /// A new set of faults (none yet), with the `faulty://` scheme registered.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Faults {
        static NEXT: AtomicUsize = AtomicUsize::new(1);
        let faults = Faults {
            id: format!("f{}", NEXT.fetch_add(1, Ordering::SeqCst)),
            rules: Default::default(),
            hits: Default::default(),
            cut_parts: Default::default(),
        };
        registry()
            .lock()
            .unwrap()
            .insert(faults.id.clone(), faults.clone());
        faults
    }

    /// The storage URL of the local directory `dir` (absolute) under these faults.
    pub fn root(&self, dir: &FsPath) -> String {
        format!("faulty://{}{}/", self.id, dir.display())
    }

    /// Applies `fault` to every `op` on a path containing `path_contains`, until cleared.
    pub fn inject(&self, op: Op, path_contains: &str, fault: Fault) {
        self.add(op, path_contains, fault, None)
    }

    /// Applies `fault` to the next `times` matching operations only.
    pub fn inject_times(&self, op: Op, path_contains: &str, fault: Fault, times: usize) {
        self.add(op, path_contains, fault, Some(times))
    }

    fn add(&self, op: Op, path_contains: &str, fault: Fault, times: Option<usize>) {
        self.rules.lock().unwrap().push(Rule {
            op,
            path_contains: path_contains.to_string(),
            fault,
            times,
        });
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many operations met a fault so far (a test checks its fault was really hit).
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// How many parts of multipart uploads a [`Fault::CutOffAfter`] refused.
    pub fn cut_parts(&self) -> usize {
        self.cut_parts.load(Ordering::SeqCst)
    }

    /// The fault for `op` on `path`, if any (counting it).
    fn take(&self, op: Op, path: &Path) -> Option<Fault> {
        let mut rules = self.rules.lock().unwrap();
        let at = rules
            .iter()
            .position(|r| r.op == op && path.as_ref().contains(&r.path_contains))?;
        let fault = rules[at].fault;
        if let Some(n) = &mut rules[at].times {
            *n -= 1;
            if *n == 0 {
                rules.remove(at);
            }
        }
        self.hits.fetch_add(1, Ordering::SeqCst);
        Some(fault)
    }
}

/// An I/O error as the local file system reports one.
fn injected(op: Op, path: &Path) -> object_store::Error {
    object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(std::io::Error::other(format!(
            "injected fault: {op:?} {path}"
        ))),
    }
}

/// Runs the fault before an operation that cannot fail part-way: fail or wait.
async fn before(fault: Option<Fault>, op: Op, path: &Path) -> object_store::Result<()> {
    match fault {
        None => Ok(()),
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(Fault::Fail | Fault::CutOffAfter(_)) => Err(injected(op, path)),
    }
}

/// The local file system with faults.
#[derive(Debug)]
struct FaultyStore {
    inner: LocalFileSystem,
    faults: Faults,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({})", self.faults.id)
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        before(self.faults.take(Op::Put, location), Op::Put, location).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let fault = self.faults.take(Op::Put, location);
        if let Some(Fault::Fail) = fault {
            return Err(injected(Op::Put, location));
        }
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(FaultyUpload {
            inner,
            fault,
            location: location.clone(),
            sent: 0,
            cut: self.faults.cut_parts.clone(),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let fault = self.faults.take(Op::Get, location);
        let Some(Fault::CutOffAfter(limit)) = fault else {
            before(fault, Op::Get, location).await?;
            return self.inner.get_opts(location, options).await;
        };
        let result = self.inner.get_opts(location, options).await?;
        let (meta, range, attributes) = (
            result.meta.clone(),
            result.range.clone(),
            result.attributes.clone(),
        );
        let error_at = location.clone();
        let mut left = limit;
        let cut = result.into_stream().flat_map(move |chunk| {
            let items: Vec<object_store::Result<Bytes>> = match chunk {
                Ok(bytes) if (bytes.len() as u64) <= left => {
                    left -= bytes.len() as u64;
                    vec![Ok(bytes)]
                }
                Ok(bytes) => {
                    let head = bytes.slice(..left as usize);
                    left = 0;
                    vec![Ok(head), Err(injected(Op::Get, &error_at))]
                }
                Err(e) => vec![Err(e)],
            };
            stream::iter(items)
        });
        // Nothing after the error.
        let cut = cut
            .scan(false, |failed, item| {
                let out = (!*failed).then_some(item);
                if let Some(Err(_)) = &out {
                    *failed = true;
                }
                futures::future::ready(out)
            })
            .boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(cut),
            meta,
            range,
            attributes,
        })
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let mut out = Vec::with_capacity(ranges.len());
        for range in ranges {
            let options = GetOptions {
                range: Some(range.clone().into()),
                ..Default::default()
            };
            out.push(self.get_opts(location, options).await?.bytes().await?);
        }
        Ok(out)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let faults = self.faults.clone();
        let checked = locations
            .then(move |location| {
                let faults = faults.clone();
                async move {
                    let location = location?;
                    before(faults.take(Op::Delete, &location), Op::Delete, &location).await?;
                    Ok(location)
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.listing(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.listing(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let at = prefix.cloned().unwrap_or_default();
        before(self.faults.take(Op::List, &at), Op::List, &at).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        before(self.faults.take(Op::Copy, to), Op::Copy, to).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        before(self.faults.take(Op::Rename, to), Op::Rename, to).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

impl FaultyStore {
    /// A listing in path order, as S3 and other object stores give it (delta-rs relies on that
    /// for every scheme but `file`; the local file system lists in directory order), with the
    /// fault for listing `prefix` applied.
    fn listing(
        &self,
        prefix: Option<&Path>,
        inner: BoxStream<'static, object_store::Result<ObjectMeta>>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let at = prefix.cloned().unwrap_or_default();
        let fault = self.faults.take(Op::List, &at);
        let sorted = stream::once(async move {
            let mut entries: Vec<_> = inner.collect().await;
            entries.sort_by(|a, b| match (a, b) {
                (Ok(a), Ok(b)) => a.location.cmp(&b.location),
                (Ok(_), Err(_)) => std::cmp::Ordering::Less,
                (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
                (Err(_), Err(_)) => std::cmp::Ordering::Equal,
            });
            if let Some(Fault::Delay(d)) = fault {
                tokio::time::sleep(d).await;
            }
            stream::iter(entries)
        })
        .flatten();
        match fault {
            None | Some(Fault::Delay(_)) => sorted.boxed(),
            Some(Fault::Fail) => stream::once(async move { Err(injected(Op::List, &at)) }).boxed(),
            Some(Fault::CutOffAfter(entries)) => sorted
                .take(entries as usize)
                .chain(stream::once(async move { Err(injected(Op::List, &at)) }))
                .boxed(),
        }
    }
}

/// A multipart upload that fails at the part crossing a cut-off, or waits before each part.
#[derive(Debug)]
struct FaultyUpload {
    inner: Box<dyn MultipartUpload>,
    fault: Option<Fault>,
    location: Path,
    sent: u64,
    cut: Arc<AtomicUsize>,
}

#[async_trait]
impl MultipartUpload for FaultyUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.sent += data.content_length() as u64;
        match self.fault {
            Some(Fault::CutOffAfter(limit)) if self.sent > limit => {
                self.cut.fetch_add(1, Ordering::SeqCst);
                let error = injected(Op::Put, &self.location);
                Box::pin(async move { Err(error) })
            }
            Some(Fault::Delay(d)) => {
                let part = self.inner.put_part(data);
                Box::pin(async move {
                    tokio::time::sleep(d).await;
                    part.await
                })
            }
            _ => self.inner.put_part(data),
        }
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        self.inner.complete().await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.inner.abort().await
    }
}

/// Resolves `faulty://<id>/<path>` for delta-rs: the local file system with the faults `<id>`.
struct FaultyFactory;

impl ObjectStoreFactory for FaultyFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        let id = url.host_str().unwrap_or_default();
        let faults = registry().lock().unwrap().get(id).cloned().ok_or_else(|| {
            deltalake::DeltaTableError::InvalidTableLocation(format!(
                "{url}: no faults named '{id}' in this process"
            ))
        })?;
        let store = FaultyStore {
            inner: LocalFileSystem::new(),
            faults,
        };
        let path = Path::from_url_path(url.path())?;
        Ok((Arc::new(store), path))
    }
}

impl LogStoreFactory for FaultyFactory {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
