//! Buckets in a Redis server (NearPy's `RedisStorage`), behind the `redis`
//! cargo feature.
//!
//! Layout: bucket `key` of hash `hash` is the Redis list
//! `{namespace}:{hash}:{key}`; each element is one entry, the vector as
//! little-endian `f32` bytes followed by the payload in `postcard`'s compact
//! binary encoding. (NearPy pickles a dict per entry.) An engine
//! configuration saved with [`RedisStorage::save_config`] lives at
//! `{namespace}::config`, which no bucket name can equal (hash names are not
//! empty). Nothing is ever written or deleted outside `{namespace}:`.
//!
//! Batches go out pipelined: [`Storage::store_batch`] sends chunks of RPUSHes
//! in one round trip each; a query reads all its buckets (every hash) with one
//! pipelined LRANGE round trip.
//!
//! Round trips: the storage keeps one connection of the `redis` crate's
//! (`redis::Connection`, blocking, with read and write timeouts), so a
//! request costs one network round trip and a waiting thread sleeps in the
//! kernel: no core is spent polling for a reply that, over a real network,
//! takes far longer than any poll would.
//!
//! Failures: when the connection breaks (server restarted, network error,
//! no reply within the timeout), the connection is dropped and the call
//! fails with [`Error::Storage`]; the next call reconnects. Reads (queries,
//! counts, key listings) are idempotent, so they reconnect and retry once by
//! themselves before failing; writes are not retried, because a write whose
//! reply was lost may have been applied and a retry would duplicate it.

use std::borrow::Cow;
use std::time::Duration;

use parking_lot::Mutex;
use redis::ConnectionLike as _;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::hash::{check_name, BucketKey};
use super::storage::{BucketContents, BucketRef, Storage, StoreEntry};
use super::{EngineConfig, Payload};
use crate::error::{Error, Result};

const BACKEND: &str = "redis";
/// Commands per pipelined round trip in `store_batch` (bounds the memory of
/// one request and of the server's reply buffer).
const STORE_CHUNK: usize = 4096;
/// See [`RedisStorage::set_timeout`].
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An engine [`Storage`] in a Redis server.
///
/// Bucket `key` of hash `hash` is the Redis list `{namespace}:{hash}:{key}`;
/// each element is one entry: the vector as little-endian `f32` bytes, then
/// the payload in `postcard`'s binary encoding. Batches are pipelined (one
/// round trip per query, whatever the number of hashes). A
/// broken connection, or no reply within [`RedisStorage::timeout`], fails
/// the call with [`Error::Storage`], and the connection is replaced on the
/// next call; reads retry once on a fresh connection by themselves, writes
/// do not (a write whose reply was lost may have been applied). Nothing
/// outside `{namespace}:` is ever written or deleted.
///
/// ```no_run
/// use swann::index::lsh::{Engine, LshHash, RedisStorage};
///
/// let storage = RedisStorage::connect("redis://127.0.0.1:6379/", "photos")?;
/// let mut engine = Engine::builder(128)
///     .hash(LshHash::random_binary("rbp", 128, 10, 7)?)
///     .build_with_storage::<String, _>(storage)?;
/// engine.store(&[0.5; 128], "cat.jpg".to_string())?;
/// # Ok::<(), swann::Error>(())
/// ```
pub struct RedisStorage {
    client: redis::Client,
    conn: Mutex<Conn>,
    namespace: String,
}

/// The open connection, if any, and the settings for the next one.
struct Conn {
    link: Option<redis::Connection>,
    timeout: Duration,
}

impl std::fmt::Debug for RedisStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStorage")
            .field("server", &self.client.get_connection_info().addr())
            .field("namespace", &self.namespace)
            .finish()
    }
}

fn redis_err(what: &str, e: redis::RedisError) -> Error {
    Error::Storage {
        backend: BACKEND,
        message: format!("{what}: {e}"),
    }
}

fn corrupt(message: String) -> Error {
    Error::Storage {
        backend: BACKEND,
        message,
    }
}

/// Bounds every wait of `link` for the server (taking a request, sending a
/// reply) by `timeout`.
fn set_timeouts(link: &mut redis::Connection, timeout: Duration) -> redis::RedisResult<()> {
    link.set_read_timeout(Some(timeout))?;
    link.set_write_timeout(Some(timeout))
}

/// Whether `e` means the connection is unusable (so it must be replaced).
fn is_connection_error(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
}

impl RedisStorage {
    /// Connects to the server at `url` and uses the key prefix `namespace:`
    /// (1 to 64 characters from `A-Z a-z 0-9 _ . -`).
    ///
    /// `url` is `redis://[[user]:password@]host:port/db` or, for a Unix
    /// socket, `unix:///path/to/socket?db=N&user=U&pass=P` (the parts in
    /// brackets and the query are optional). A password is sent with AUTH
    /// and a database other than 0 is selected on every connection. TLS
    /// (`rediss://`) and RESP3 are not supported.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a bad or unsupported URL or a bad
    /// namespace; [`Error::Storage`] when the server cannot be reached or
    /// refuses the connection (a wrong or missing password, say).
    pub fn connect(url: &str, namespace: &str) -> Result<Self> {
        check_name("namespace", namespace)?;
        let client = redis::Client::open(url)
            .map_err(|e| Error::InvalidParameter(format!("bad Redis URL {url:?}: {e}")))?;
        if client.get_connection_info().redis_settings().protocol() != redis::ProtocolVersion::RESP2
        {
            return Err(Error::InvalidParameter(format!(
                "Redis URL {url:?} asks for RESP3; the storage speaks RESP2 (drop `protocol=...`)"
            )));
        }
        let storage = RedisStorage {
            client,
            conn: Mutex::new(Conn {
                link: None,
                timeout: DEFAULT_TIMEOUT,
            }),
            namespace: namespace.to_string(),
        };
        storage.with_conn(false, |c| redis::cmd("PING").query::<String>(c))?;
        Ok(storage)
    }

    /// The key prefix (without the trailing `:`).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn bucket_key(&self, hash: &str, key: &BucketKey) -> String {
        format!("{}:{}:{}", self.namespace, hash, key.as_str())
    }

    fn config_key(&self) -> String {
        format!("{}::config", self.namespace)
    }

    /// The bound on connecting over TCP and on each wait for the server to
    /// take a request or send a reply (default 10 s). A call that runs into
    /// it fails with [`Error::Storage`] and drops the connection.
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a zero timeout; [`Error::Storage`]
    /// when the open connection's socket refuses the new timeouts (the
    /// connection is then dropped, and the next call opens a new one).
    pub fn set_timeout(&self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return Err(Error::InvalidParameter(
                "the Redis timeout must be positive".into(),
            ));
        }
        let mut conn = self.conn.lock();
        conn.timeout = timeout;
        if let Some(link) = conn.link.as_mut() {
            if let Err(e) = set_timeouts(link, timeout) {
                conn.link = None;
                return Err(redis_err("cannot set the socket's timeouts", e));
            }
        }
        Ok(())
    }

    /// The timeout in effect (see [`RedisStorage::set_timeout`]).
    pub fn timeout(&self) -> Duration {
        self.conn.lock().timeout
    }

    fn open(&self, timeout: Duration) -> Result<redis::Connection> {
        let mut link = self
            .client
            .get_connection_with_timeout(timeout)
            .map_err(|e| redis_err("cannot connect", e))?;
        set_timeouts(&mut link, timeout).map_err(|e| redis_err("cannot connect", e))?;
        Ok(link)
    }

    /// Runs `f` on the connection, (re)connecting first when there is none.
    /// A connection error drops the connection; `retry` allows one more try
    /// on a fresh connection (for idempotent requests only).
    fn with_conn<T>(
        &self,
        retry: bool,
        mut f: impl FnMut(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let mut guard = self.conn.lock();
        let conn = &mut *guard;
        let attempts = if retry { 2 } else { 1 };
        let mut last = None;
        for _ in 0..attempts {
            if conn.link.is_none() {
                match self.open(conn.timeout) {
                    Ok(c) => conn.link = Some(c),
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                }
            }
            let link = conn.link.as_mut().expect("connected just above");
            match f(link) {
                Ok(v) => return Ok(v),
                Err(e) if e.is_timeout() => {
                    conn.link = None;
                    last = Some(redis_err(
                        &format!("no reply within {:?} (timed out)", conn.timeout),
                        e,
                    ));
                }
                Err(e) if is_connection_error(&e) || !link.is_open() => {
                    conn.link = None;
                    last = Some(redis_err("connection lost", e));
                }
                Err(e) => return Err(redis_err("command failed", e)),
            }
        }
        Err(last.expect("at least one attempt was made"))
    }

    /// Every key matching `pattern` (SCAN, never KEYS, so a large database is
    /// not blocked).
    fn scan(&self, pattern: &str) -> Result<Vec<String>> {
        self.with_conn(true, |c| {
            let mut cursor: u64 = 0;
            let mut out = Vec::new();
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(c)?;
                out.extend(keys);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            out.sort();
            out.dedup(); // SCAN may return a key more than once
            Ok(out)
        })
    }

    fn delete_keys(&self, keys: &[String]) -> Result<()> {
        for chunk in keys.chunks(1000) {
            self.with_conn(false, |c| redis::cmd("UNLINK").arg(chunk).exec(c))?;
        }
        Ok(())
    }

    /// Saves an engine configuration next to the buckets, so another process
    /// can rebuild the same engine with [`RedisStorage::load_config`].
    ///
    /// # Errors
    /// [`Error::Storage`] when the configuration does not encode or the server
    /// fails.
    pub fn save_config(&self, config: &EngineConfig) -> Result<()> {
        let bytes = postcard::to_stdvec(config)
            .map_err(|e| corrupt(format!("cannot encode the engine config: {e}")))?;
        let key = self.config_key();
        self.with_conn(false, |c| redis::cmd("SET").arg(&key).arg(&bytes).exec(c))
    }

    /// The configuration saved by [`RedisStorage::save_config`], if any.
    ///
    /// # Errors
    /// [`Error::Storage`] when the server fails or the stored configuration
    /// does not decode.
    pub fn load_config(&self) -> Result<Option<EngineConfig>> {
        let key = self.config_key();
        let bytes: Option<Vec<u8>> =
            self.with_conn(true, |c| redis::cmd("GET").arg(&key).query(c))?;
        bytes
            .map(|b| {
                postcard::from_bytes::<EngineConfig>(&b)
                    .map_err(|e| corrupt(format!("stored engine config does not decode: {e}")))
            })
            .transpose()
    }

    /// The keys of every non-empty bucket of `hash`, sorted (the same for
    /// every payload type, hence also here outside the [`Storage`] trait).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for a hash name that is not 1 to 64
    /// characters from `A-Z a-z 0-9 _ . -`; [`Error::Storage`] when the server
    /// fails.
    pub fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>> {
        check_name("hash name", hash)?;
        let prefix = format!("{}:{}:", self.namespace, hash);
        let mut keys: Vec<BucketKey> = self
            .scan(&format!("{prefix}*"))?
            .into_iter()
            .filter_map(|k| k.strip_prefix(&prefix).map(BucketKey::new))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Removes every key of this namespace, configuration included.
    ///
    /// # Errors
    /// [`Error::Storage`] when the server fails (keys removed before the
    /// failure stay removed).
    pub fn clear_namespace(&self) -> Result<()> {
        let keys = self.scan(&format!("{}:*", self.namespace))?;
        self.delete_keys(&keys)
    }
}

fn encode<D: Serialize>(vector: &[f32], data: &D) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(vector.len() * 4 + 16);
    for x in vector {
        out.extend_from_slice(&x.to_le_bytes());
    }
    postcard::to_extend(data, out).map_err(|e| corrupt(format!("cannot encode a payload: {e}")))
}

fn decode_into<D: DeserializeOwned>(
    record: &[u8],
    dim: usize,
    vectors: &mut Vec<f32>,
    data: &mut Vec<D>,
    key: &str,
) -> Result<()> {
    let vbytes = dim * 4;
    if record.len() < vbytes {
        return Err(corrupt(format!(
            "entry of {key} has {} bytes, fewer than a {dim}-dimensional vector",
            record.len()
        )));
    }
    let (v, payload) = record.split_at(vbytes);
    vectors.extend(
        v.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))),
    );
    let (d, rest) = postcard::take_from_bytes::<D>(payload).map_err(|e| {
        corrupt(format!(
            "entry of {key} has a payload that does not decode: {e}"
        ))
    })?;
    if !rest.is_empty() {
        return Err(corrupt(format!(
            "entry of {key} has {} bytes after its payload",
            rest.len()
        )));
    }
    data.push(d);
    Ok(())
}

impl<D: Payload + Serialize + DeserializeOwned> Storage<D> for RedisStorage {
    fn store_batch(&mut self, entries: &[StoreEntry<'_, D>]) -> Result<()> {
        let mut pipe = redis::pipe();
        let mut queued = 0;
        for e in entries {
            let record = encode(e.vector, e.data)?;
            for b in e.buckets {
                pipe.cmd("RPUSH")
                    .arg(self.bucket_key(b.hash, b.key))
                    .arg(&record)
                    .ignore();
                queued += 1;
            }
            if queued >= STORE_CHUNK {
                self.with_conn(false, |c| pipe.exec(c))?;
                pipe.clear();
                queued = 0;
            }
        }
        if queued > 0 {
            self.with_conn(false, |c| pipe.exec(c))?;
        }
        Ok(())
    }

    fn get_buckets<'s>(
        &'s self,
        buckets: &[BucketRef<'_>],
        dim: usize,
    ) -> Result<Vec<BucketContents<'s, D>>> {
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = buckets
            .iter()
            .map(|b| self.bucket_key(b.hash, b.key))
            .collect();
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("LRANGE").arg(k).arg(0).arg(-1);
        }
        let lists: Vec<Vec<Vec<u8>>> = self.with_conn(true, |c| pipe.query(c))?;
        let mut out = Vec::with_capacity(lists.len());
        for (records, key) in lists.iter().zip(&keys) {
            let mut vectors = Vec::with_capacity(records.len() * dim);
            let mut data = Vec::with_capacity(records.len());
            for r in records {
                decode_into(r, dim, &mut vectors, &mut data, key)?;
            }
            out.push(BucketContents {
                vectors: Cow::Owned(vectors),
                data: Cow::Owned(data),
                rows: None,
            });
        }
        Ok(out)
    }

    fn count(&self, buckets: &[BucketRef<'_>]) -> Result<usize> {
        if buckets.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for b in buckets {
            pipe.cmd("LLEN").arg(self.bucket_key(b.hash, b.key));
        }
        let lens: Vec<usize> = self.with_conn(true, |c| pipe.query(c))?;
        Ok(lens.iter().sum())
    }

    fn bucket_keys(&self, hash: &str) -> Result<Vec<BucketKey>> {
        RedisStorage::bucket_keys(self, hash)
    }

    fn delete(
        &mut self,
        hash: &str,
        keys: Option<&[BucketKey]>,
        data: &D,
        dim: usize,
    ) -> Result<Vec<(BucketKey, usize)>> {
        let keys: Vec<BucketKey> = match keys {
            Some(k) => k.to_vec(),
            None => RedisStorage::bucket_keys(self, hash)?,
        };
        let mut removed = Vec::new();
        for key in keys {
            let rkey = self.bucket_key(hash, &key);
            let records: Vec<Vec<u8>> = self.with_conn(true, |c| {
                redis::cmd("LRANGE").arg(&rkey).arg(0).arg(-1).query(c)
            })?;
            // The distinct records whose payload matches; LREM removes each
            // by value, so entries pushed meanwhile by others are untouched.
            let mut doomed: Vec<&[u8]> = Vec::new();
            for r in &records {
                let (mut v, mut d) = (Vec::new(), Vec::new());
                decode_into::<D>(r, dim, &mut v, &mut d, &rkey)?;
                if d[0] == *data && !doomed.contains(&r.as_slice()) {
                    doomed.push(r);
                }
            }
            if doomed.is_empty() {
                continue;
            }
            let mut pipe = redis::pipe();
            for r in &doomed {
                pipe.cmd("LREM").arg(&rkey).arg(0).arg(*r);
            }
            let counts: Vec<usize> = self.with_conn(false, |c| pipe.query(c))?;
            let n: usize = counts.iter().sum();
            if n > 0 {
                removed.push((key, n));
            }
        }
        removed.sort();
        Ok(removed)
    }

    fn clean_buckets(&mut self, hash: &str) -> Result<()> {
        check_name("hash name", hash)?;
        let keys = self.scan(&format!("{}:{}:*", self.namespace, hash))?;
        self.delete_keys(&keys)
    }

    fn clean_all_buckets(&mut self) -> Result<()> {
        // Only keys shaped like buckets, `{namespace}:{hash}:{key}` with a
        // valid hash name and a non-empty key: not the saved configuration
        // (`{namespace}::config`), nor anything else someone put under the prefix.
        let prefix = format!("{}:", self.namespace);
        let keys: Vec<String> = self
            .scan(&format!("{prefix}*"))?
            .into_iter()
            .filter(|k| {
                let rest = &k[prefix.len()..];
                match rest.split_once(':') {
                    Some((hash, key)) => check_name("hash name", hash).is_ok() && !key.is_empty(),
                    None => false,
                }
            })
            .collect();
        self.delete_keys(&keys)
    }
}
