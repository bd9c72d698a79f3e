//! Storage: where recordings are read from and tables are written to. A local folder, or an
//! object store named by URL (`s3://bucket/prefix`, `gs://bucket/prefix`,
//! `az://container/prefix`) through the `object_store` crate on a tokio runtime that lives in
//! this module alone: ingest and the sinks call plain blocking functions.
//!
//! In: a location and keys relative to it (`calls/call_date=2026-11-20/part-x.parquet`). Out:
//! bytes, listings, and writes that a reader sees whole or not at all: on a disk through a
//! temporary, fsync and rename; on an object store a PUT is atomic already. Where a lock needs
//! more (a file that must not exist yet, or must not have changed since it was read), the
//! store's conditional puts do it: `If-None-Match: *` and `If-Match: <etag>` on S3.
//!
//! Credentials, region and endpoint come from the standard environment variables of each
//! store (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`
//! (an S3-compatible store: MinIO, Ceph, OSS, SeaweedFS), `AWS_ALLOW_HTTP`;
//! `GOOGLE_SERVICE_ACCOUNT`...; `AZURE_STORAGE_ACCOUNT_NAME`...).

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

#[derive(Debug, thiserror::Error)]
#[error("{url}: {reason}")]
pub struct StorageError {
    pub url: String,
    pub reason: String,
}

/// A folder or an object-store prefix.
#[derive(Clone)]
pub struct Storage {
    root: Root,
}

#[derive(Clone)]
enum Root {
    Local(PathBuf),
    Object { url: String, store: Arc<dyn ObjectStore>, prefix: ObjectPath },
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe(""))
    }
}

/// One stored file.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Relative to the storage root, `/`-separated.
    pub key: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// What a conditional write compares against: the version of the object as it was read.
#[derive(Debug, Clone, PartialEq)]
pub struct Version(UpdateVersion);

/// Whether `text` names an object store rather than a local path.
pub fn is_url(text: &str) -> bool {
    ["s3://", "s3a://", "gs://", "az://", "abfs://", "abfss://"].iter().any(|scheme| text.starts_with(scheme))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("callqa-io")
            .enable_all()
            .build()
            .expect("a tokio runtime starts")
    })
}

fn block_on<F: Future>(future: F) -> F::Output {
    runtime().block_on(future)
}

fn io_error(e: object_store::Error) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, e.to_string()),
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::Error::new(io::ErrorKind::AlreadyExists, e.to_string())
        }
        e => io::Error::other(e.to_string()),
    }
}

impl Storage {
    pub fn local(path: impl Into<PathBuf>) -> Storage {
        Storage { root: Root::Local(path.into()) }
    }

    /// A local path, or an object store from its URL and the environment's settings.
    pub fn parse(text: &str) -> Result<Storage, StorageError> {
        if !is_url(text) {
            return Ok(Storage::local(text));
        }
        let fail = |reason: String| StorageError { url: text.into(), reason };
        let url = url::Url::parse(text).map_err(|e| fail(e.to_string()))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "s3" | "s3a" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    // Native S3 conditional writes (If-None-Match / If-Match); an explicit
                    // AWS_CONDITIONAL_PUT in the environment still wins.
                    .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
                    .with_url(text)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            ),
            "gs" => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(text)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            ),
            _ => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(text)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            ),
        };
        let prefix = ObjectPath::from(url.path().trim_matches('/'));
        Ok(Storage { root: Root::Object { url: text.trim_end_matches('/').into(), store, prefix } })
    }

    /// The folder, when this is one.
    pub fn local_root(&self) -> Option<&Path> {
        match &self.root {
            Root::Local(path) => Some(path),
            Root::Object { .. } => None,
        }
    }

    /// A key as a user would name it: the local path, or the object's URL.
    pub fn describe(&self, key: &str) -> String {
        match &self.root {
            Root::Local(path) if key.is_empty() => path.display().to_string(),
            Root::Local(path) => path.join(key).display().to_string(),
            Root::Object { url, .. } if key.is_empty() => url.clone(),
            Root::Object { url, .. } => format!("{url}/{key}"),
        }
    }

    fn object_path(&self, key: &str) -> Option<ObjectPath> {
        let Root::Object { prefix, .. } = &self.root else { return None };
        let joined = match prefix.as_ref() {
            "" => key.to_string(),
            p => format!("{p}/{key}"),
        };
        Some(ObjectPath::from(joined.trim_matches('/')))
    }

    /// Write `bytes` to `key` so that a reader sees the old content or the new, never half.
    pub fn write(&self, key: &str, bytes: Vec<u8>) -> io::Result<()> {
        match &self.root {
            Root::Local(root) => write_local(&root.join(key), &bytes),
            Root::Object { store, .. } => {
                let path = self.object_path(key).expect("an object store");
                crate::sinks::test_pause();
                block_on(store.put(&path, PutPayload::from(bytes))).map(|_| ()).map_err(io_error)
            }
        }
    }

    /// Write `key` only if nothing is there: its version, or `None` when something was.
    pub fn create(&self, key: &str, bytes: Vec<u8>) -> io::Result<Option<Version>> {
        self.put_with(key, bytes, PutMode::Create)
    }

    /// Replace `key` only if it is still at `version`: its new version, or `None` when it changed.
    pub fn replace(&self, key: &str, bytes: Vec<u8>, version: &Version) -> io::Result<Option<Version>> {
        self.put_with(key, bytes, PutMode::Update(version.0.clone()))
    }

    fn put_with(&self, key: &str, bytes: Vec<u8>, mode: PutMode) -> io::Result<Option<Version>> {
        let Root::Object { store, .. } = &self.root else {
            return Err(io::Error::other("conditional writes are for object stores; folders use flock"));
        };
        let path = self.object_path(key).expect("an object store");
        let options = PutOptions { mode, ..Default::default() };
        match block_on(store.put_opts(&path, PutPayload::from(bytes), options)) {
            Ok(result) => Ok(Some(Version(UpdateVersion { e_tag: result.e_tag, version: result.version }))),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    pub fn read(&self, key: &str) -> io::Result<Bytes> {
        self.read_versioned(key).map(|(bytes, _)| bytes)
    }

    /// The content of `key` and the version a [`Storage::replace`] compares with.
    pub fn read_versioned(&self, key: &str) -> io::Result<(Bytes, Option<Version>)> {
        match &self.root {
            Root::Local(root) => Ok((Bytes::from(std::fs::read(root.join(key))?), None)),
            Root::Object { store, .. } => {
                let path = self.object_path(key).expect("an object store");
                block_on(async {
                    let got = store.get(&path).await?;
                    let version = UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                    Ok((got.bytes().await?, Some(Version(version))))
                })
                .map_err(io_error)
            }
        }
    }

    /// The files under `prefix` (a folder key, or "" for all), sorted by key. Dot-prefixed
    /// names (temporaries) are included: callers choose.
    pub fn list(&self, prefix: &str) -> io::Result<Vec<Entry>> {
        let mut entries: Vec<Entry> = match &self.root {
            Root::Local(root) => walkdir::WalkDir::new(root.join(prefix))
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| {
                    let metadata = e.metadata().ok()?;
                    let key = e.path().strip_prefix(root).ok()?.to_string_lossy().into_owned();
                    let modified = metadata.modified().ok().map(DateTime::<Utc>::from).unwrap_or_default();
                    Some(Entry { key, size: metadata.len(), modified })
                })
                .collect(),
            Root::Object { store, prefix: root, .. } => {
                let path = self.object_path(prefix).expect("an object store");
                let listed: Vec<object_store::ObjectMeta> =
                    block_on(store.list(Some(&path)).try_collect()).map_err(io_error)?;
                let strip = match root.as_ref() {
                    "" => String::new(),
                    r => format!("{r}/"),
                };
                listed
                    .into_iter()
                    .map(|meta| Entry {
                        key: meta.location.as_ref().strip_prefix(&strip).unwrap_or(meta.location.as_ref()).to_string(),
                        size: meta.size,
                        modified: meta.last_modified,
                    })
                    .collect()
            }
        };
        entries.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(entries)
    }

    /// Remove `key`; one already gone is no error.
    pub fn remove(&self, key: &str) -> io::Result<()> {
        let result = match &self.root {
            Root::Local(root) => std::fs::remove_file(root.join(key)),
            Root::Object { store, .. } => {
                block_on(store.delete(&self.object_path(key).expect("an object store"))).map_err(io_error)
            }
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    pub fn exists(&self, key: &str) -> io::Result<bool> {
        match &self.root {
            Root::Local(root) => Ok(root.join(key).exists()),
            Root::Object { store, .. } => {
                match block_on(store.head(&self.object_path(key).expect("an object store"))) {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(io_error(e)),
                }
            }
        }
    }
}

/// Where a file is written before its rename: beside it, dot-prefixed (which Hive-style
/// readers ignore). A partition file's goes in its table's folder instead, so a partition
/// folder only ever holds finished files and `callqa compact` can swap the whole folder
/// while a commit is writing into it (the rename lands in whichever folder is in place).
fn temporary_path(path: &Path) -> PathBuf {
    let dir = path.parent().expect("output files live in a folder");
    let name = path.file_name().expect("a file").to_string_lossy();
    match (dir.file_name().and_then(|n| n.to_str()), dir.parent()) {
        (Some(partition), Some(table)) if partition.starts_with("call_date=") => {
            table.join(format!(".{partition}.{name}.tmp"))
        }
        _ => dir.join(format!(".{name}.tmp")),
    }
}

/// Write one local file atomically: a temporary, synced, renamed over `path`, folders synced.
fn write_local(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_local_with(path, |file| {
        io::Write::write_all(file, bytes)?;
        Ok(())
    })
}

/// [`write_local`] with the content written by `write` into the temporary file.
pub fn write_local_with(path: &Path, write: impl FnOnce(&mut std::fs::File) -> io::Result<()>) -> io::Result<()> {
    let dir = path.parent().expect("output files live in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        write(&mut file)?;
        file.sync_all()?;
        crate::sinks::test_pause();
        std::fs::rename(&tmp, path)?;
        // The rename itself survives a power cut only once the folders are synced.
        for folder in [dir, tmp.parent().expect("a folder")] {
            std::fs::File::open(folder)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// The store and key of one object's URL (`s3://bucket/a/b.wav` -> `s3://bucket`, `a/b.wav`),
/// the store built once per bucket: reading thousands of recordings reuses its connections.
pub fn object(url: &str) -> Result<(Storage, String), StorageError> {
    static STORES: OnceLock<std::sync::Mutex<std::collections::HashMap<String, Storage>>> = OnceLock::new();
    let fail = |reason: String| StorageError { url: url.into(), reason };
    let parsed = url::Url::parse(url).map_err(|e| fail(e.to_string()))?;
    let root = format!("{}://{}", parsed.scheme(), parsed.host_str().ok_or_else(|| fail("no bucket".into()))?);
    let key = parsed.path().trim_start_matches('/').to_string();
    let mut stores = STORES.get_or_init(Default::default).lock().expect("not poisoned");
    let storage = match stores.get(&root) {
        Some(storage) => storage.clone(),
        None => {
            let storage = Storage::parse(&root)?;
            stores.insert(root, storage.clone());
            storage
        }
    };
    Ok((storage, key))
}
