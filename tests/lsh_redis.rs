//! The LSH engine's Redis storage against a real `redis-server` on loopback.
//!
//! `SWANN_REDIS_URL` names a server for the shared tests (`.ci/redis.sh`
//! starts one and sets it); without it every test here prints why it skips
//! and passes. The restart test starts and kills its own `redis-server`
//! (`SWANN_REDIS_SERVER`, default `redis-server` on `PATH`) on a free
//! loopback port. Only 127.0.0.1 / localhost / [::1] are ever contacted.
#![cfg(feature = "redis")]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use swann::index::lsh::{Engine, Filter, LshHash, Neighbour, RedisStorage, Storage};
use swann::{Error, Metric};

fn shared_url(test: &str) -> Option<String> {
    match std::env::var("SWANN_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => {
            assert_loopback(&url);
            Some(url)
        }
        _ => {
            eprintln!(
                "SKIPPED {test}: SWANN_REDIS_URL is not set (run .ci/redis.sh, or start \
                 redis-server on 127.0.0.1 and export SWANN_REDIS_URL=redis://127.0.0.1:PORT/)"
            );
            None
        }
    }
}

/// Refuses any server that is not on this machine's loopback interface.
fn assert_loopback(url: &str) {
    let rest = url
        .strip_prefix("redis://")
        .unwrap_or_else(|| panic!("SWANN_REDIS_URL {url:?} is not a redis:// URL"));
    let host_port = rest.split('/').next().unwrap();
    let host_port = host_port.rsplit('@').next().unwrap();
    let ok = host_port.starts_with("127.0.0.1:")
        || host_port.starts_with("localhost:")
        || host_port.starts_with("[::1]:");
    assert!(ok, "refusing non-loopback Redis server {url:?}");
}

fn unique_ns(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("swann-test-{tag}-{}-{nanos}", std::process::id())
}

fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n * dim)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn raw(url: &str) -> redis::Connection {
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

fn all_keys(url: &str) -> Vec<String> {
    let mut c = raw(url);
    let mut cursor = 0u64;
    let mut out = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query(&mut c)
            .unwrap();
        out.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    out.sort();
    out.dedup();
    out
}

const DIM: usize = 16;

fn hashes() -> Vec<LshHash> {
    vec![
        LshHash::random_binary("a", DIM, 6, 1).unwrap(),
        LshHash::random_binary("b", DIM, 5, 2).unwrap(),
        LshHash::random_discretized("c", DIM, 3, 1.0, 3).unwrap(),
        LshHash::random_binary_tree("t", DIM, 8, 15, 4).unwrap(),
    ]
}

fn engines(url: &str, ns: &str) -> (Engine<String>, Engine<String, RedisStorage>) {
    let mem = Engine::builder(DIM)
        .hashes(hashes())
        .metric(Metric::L2)
        .filters([Filter::Unique, Filter::Nearest(8)])
        .build::<String>()
        .unwrap();
    let red = Engine::builder(DIM)
        .hashes(hashes())
        .metric(Metric::L2)
        .filters([Filter::Unique, Filter::Nearest(8)])
        .build_with_storage::<String, _>(RedisStorage::connect(url, ns).unwrap())
        .unwrap();
    (mem, red)
}

fn fill<S: Storage<String>>(e: &mut Engine<String, S>, xs: &[f32]) {
    let n = xs.len() / DIM;
    // Half one by one, half in one pipelined batch.
    for i in 0..n / 2 {
        e.store(&xs[i * DIM..(i + 1) * DIM], format!("item-{i}"))
            .unwrap();
    }
    let data: Vec<String> = (n / 2..n).map(|i| format!("item-{i}")).collect();
    e.store_batch(&xs[n / 2 * DIM..], &data).unwrap();
}

#[test]
fn redis_gives_the_same_results_as_memory() {
    let Some(url) = shared_url("redis_gives_the_same_results_as_memory") else {
        return;
    };
    let ns = unique_ns("same");
    let (mut mem, mut red) = engines(&url, &ns);
    let n = 600;
    let xs = data(n, DIM, 1);
    fill(&mut mem, &xs);
    fill(&mut red, &xs);
    let queries = data(40, DIM, 2);
    let check = |mem: &Engine<String>, red: &Engine<String, RedisStorage>| {
        for q in queries
            .chunks_exact(DIM)
            .chain(xs.chunks_exact(DIM).step_by(37))
        {
            let a: Vec<Neighbour<String>> = mem.neighbours(q).unwrap();
            let b = red.neighbours(q).unwrap();
            assert_eq!(a, b);
            assert_eq!(
                mem.candidate_count(q).unwrap(),
                red.candidate_count(q).unwrap()
            );
        }
        for h in ["a", "b", "c", "t"] {
            assert_eq!(
                mem.storage().bucket_keys(h).unwrap(),
                red.storage().bucket_keys(h).unwrap()
            );
        }
    };
    check(&mem, &red);
    // An exact duplicate of a stored vector finds it, at distance 0.
    let r = red.neighbours(&xs[5 * DIM..6 * DIM]).unwrap();
    assert_eq!((r[0].data.as_str(), r[0].distance), ("item-5", Some(0.0)));

    // Deletes agree, scanning and targeted.
    let item = |i: usize| format!("item-{i}");
    assert_eq!(mem.delete(&item(5)).unwrap(), 4);
    assert_eq!(red.delete(&item(5)).unwrap(), 4);
    let v9 = &xs[9 * DIM..10 * DIM];
    assert_eq!(red.delete_near(&item(9), v9).unwrap(), 4);
    assert_eq!(mem.delete_near(&item(9), v9).unwrap(), 4);
    check(&mem, &red);

    // Another process can rebuild the engine from the saved configuration.
    red.storage().save_config(&red.config()).unwrap();
    let other = RedisStorage::connect(&url, &ns).unwrap();
    let cfg = other.load_config().unwrap().expect("config was saved");
    let rebuilt = Engine::<String>::builder_from_config(cfg)
        .build_with_storage::<String, _>(other)
        .unwrap();
    check(&mem, &rebuilt);

    mem.clean_buckets("a").unwrap();
    red.clean_buckets("a").unwrap();
    assert!(red.storage().bucket_keys("a").unwrap().is_empty());
    check(&mem, &red);
    red.clean_all_buckets().unwrap();
    assert_eq!(red.candidate_count(v9).unwrap(), 0);
    // Only the configuration is left, and clear_namespace removes it.
    let prefix = format!("{ns}:");
    let left: Vec<String> = all_keys(&url)
        .into_iter()
        .filter(|k| k.starts_with(&prefix))
        .collect();
    assert_eq!(left, [format!("{ns}::config")]);
    red.storage().clear_namespace().unwrap();
    assert!(!all_keys(&url).iter().any(|k| k.starts_with(&prefix)));
}

#[test]
fn corrupt_entries_are_a_storage_error() {
    let Some(url) = shared_url("corrupt_entries_are_a_storage_error") else {
        return;
    };
    let ns = unique_ns("corrupt");
    let mut e = Engine::builder(DIM)
        .hash(LshHash::random_binary("a", DIM, 2, 1).unwrap())
        .build_with_storage::<u64, _>(RedisStorage::connect(&url, &ns).unwrap())
        .unwrap();
    let v = data(1, DIM, 3);
    e.store(&v, 1).unwrap();
    let key = e.hashes()[0].key(&v).unwrap();
    let mut c = raw(&url);
    redis::cmd("RPUSH")
        .arg(format!("{ns}:a:{key}"))
        .arg(&b"short"[..])
        .exec(&mut c)
        .unwrap();
    let err = e.neighbours(&v).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                backend: "redis",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("fewer than"), "{err}");
    e.storage().clear_namespace().unwrap();
    assert!(matches!(
        RedisStorage::connect(&url, "bad:ns"),
        Err(Error::InvalidParameter(_))
    ));
}

/// A `redis-server` of our own on a free loopback port, with an
/// append-only file synced on every write so a SIGKILL loses nothing.
struct PrivateServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    password: Option<&'static str>,
}

impl PrivateServer {
    fn start() -> PrivateServer {
        PrivateServer::start_with(None)
    }

    /// With `password`, the server requires it (`requirepass`) and also
    /// listens on a Unix socket in its directory.
    fn start_with(password: Option<&'static str>) -> PrivateServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = PrivateServer {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            password,
        };
        s.spawn();
        s
    }

    fn url(&self) -> String {
        match self.password {
            Some(p) => format!("redis://:{p}@127.0.0.1:{}/", self.port),
            None => format!("redis://127.0.0.1:{}/", self.port),
        }
    }

    fn socket(&self) -> std::path::PathBuf {
        self.dir.path().join("redis.sock")
    }

    fn spawn(&mut self) {
        let bin = std::env::var("SWANN_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let mut cmd = Command::new(&bin);
        if let Some(p) = self.password {
            cmd.args([
                "--requirepass",
                p,
                "--unixsocketperm",
                "700",
                "--unixsocket",
            ])
            .arg(self.socket());
        }
        let child = cmd
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--daemonize",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        self.child = Some(child);
        let start = Instant::now();
        loop {
            let ok = redis::Client::open(self.url())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "redis-server did not come up on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        self.kill();
    }
}

#[test]
fn redis_survives_a_restart_and_stays_in_its_namespace() {
    if shared_url("redis_survives_a_restart_and_stays_in_its_namespace").is_none() {
        return;
    }
    let mut server = PrivateServer::start();
    let url = server.url();
    // Someone else's data on the same server.
    let mut c = raw(&url);
    redis::cmd("SET")
        .arg("foreign")
        .arg("x")
        .exec(&mut c)
        .unwrap();
    redis::cmd("RPUSH")
        .arg("ns-other:a:0101")
        .arg("y")
        .exec(&mut c)
        .unwrap();
    redis::cmd("SET").arg("ns:").arg("z").exec(&mut c).unwrap();
    drop(c);

    let mut e = Engine::builder(DIM)
        .hash(LshHash::random_binary("a", DIM, 4, 1).unwrap())
        .hash(LshHash::random_binary("b", DIM, 4, 2).unwrap())
        .build_with_storage::<u64, _>(RedisStorage::connect(&url, "ns").unwrap())
        .unwrap();
    let xs = data(200, DIM, 5);
    e.store_batch(&xs, &(0..200).collect::<Vec<u64>>()).unwrap();
    let queries = data(10, DIM, 6);
    let before: Vec<_> = queries
        .chunks_exact(DIM)
        .map(|q| e.neighbours(q).unwrap())
        .collect();

    // Killed while the engine holds a connection: reads and writes fail
    // with a storage error that says what happened, and nothing panics.
    server.kill();
    let err = e.neighbours(&queries[..DIM]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Storage {
                backend: "redis",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("connect"), "{err}");
    assert!(matches!(
        e.store(&xs[..DIM], 999),
        Err(Error::Storage { .. })
    ));
    assert!(matches!(
        e.candidate_count(&queries[..DIM]),
        Err(Error::Storage { .. })
    ));

    // Back up (same data directory): the next calls reconnect by themselves.
    server.spawn();
    let after: Vec<_> = queries
        .chunks_exact(DIM)
        .map(|q| e.neighbours(q).unwrap())
        .collect();
    assert_eq!(before, after);

    // Restarted behind the engine's back, with no call in between: the
    // stale connection fails once and the read retries on a fresh one.
    server.kill();
    server.spawn();
    assert_eq!(e.neighbours(&queries[..DIM]).unwrap(), before[0]);
    e.store(&xs[..DIM], 1000).unwrap();
    assert!(e
        .neighbours(&xs[..DIM])
        .unwrap()
        .iter()
        .any(|n| n.data == 1000));

    // Every key is either ours (ns:...) or was there before.
    let foreign = ["foreign", "ns-other:a:0101", "ns:"];
    for k in all_keys(&url) {
        assert!(
            k.starts_with("ns:a:") || k.starts_with("ns:b:") || foreign.contains(&k.as_str()),
            "unexpected key {k:?}"
        );
    }
    // Cleaning removes our buckets and nothing else, not even the bare
    // prefix key "ns:", which is no bucket.
    e.clean_all_buckets().unwrap();
    let mut expected: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(all_keys(&url), expected);
}

/// Keys of database `db` that start with `prefix`.
fn keys_in_db(url: &str, db: i64, prefix: &str) -> Vec<String> {
    let mut c = raw(url);
    redis::cmd("SELECT").arg(db).exec(&mut c).unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut c)
        .unwrap();
    keys.sort();
    keys
}

#[test]
fn redis_connects_with_a_password_a_database_and_a_unix_socket() {
    if shared_url("redis_connects_with_a_password_a_database_and_a_unix_socket").is_none() {
        return;
    }
    let server = PrivateServer::start_with(Some("s3cret"));
    let port = server.port;
    let storage_err = |url: &str| match RedisStorage::connect(url, "ns") {
        Err(e @ Error::Storage { .. }) => e.to_string(),
        Err(e) => panic!("{url}: not a storage error: {e}"),
        Ok(_) => panic!("{url}: connected"),
    };
    // A missing or wrong password is refused, saying so.
    let e = storage_err(&format!("redis://127.0.0.1:{port}/"));
    assert!(e.contains("NOAUTH"), "{e}");
    let e = storage_err(&format!("redis://:wrong@127.0.0.1:{port}/"));
    assert!(e.contains("authentication failed"), "{e}");
    // RESP3 and TLS are refused before anything is sent.
    for url in [
        format!("redis://:s3cret@127.0.0.1:{port}/?protocol=resp3"),
        format!("rediss://:s3cret@127.0.0.1:{port}/"),
    ] {
        assert!(
            matches!(
                RedisStorage::connect(&url, "ns"),
                Err(Error::InvalidParameter(_))
            ),
            "{url}"
        );
    }

    // The same data through TCP into database 3 and through the socket
    // into database 5: each lands in its own database only, and both
    // engines answer like the in-memory one.
    let xs = data(300, DIM, 21);
    let queries = data(20, DIM, 22);
    let mut mem = Engine::builder(DIM)
        .hashes(hashes())
        .metric(Metric::L2)
        .filters([Filter::Unique, Filter::Nearest(8)])
        .build::<String>()
        .unwrap();
    fill(&mut mem, &xs);
    let urls = [
        (format!("redis://:s3cret@127.0.0.1:{port}/3"), 3),
        (
            format!("unix://{}?db=5&pass=s3cret", server.socket().display()),
            5,
        ),
    ];
    for (url, db) in &urls {
        let mut red = Engine::builder(DIM)
            .hashes(hashes())
            .metric(Metric::L2)
            .filters([Filter::Unique, Filter::Nearest(8)])
            .build_with_storage::<String, _>(RedisStorage::connect(url, "ns").unwrap())
            .unwrap();
        fill(&mut red, &xs);
        for q in queries.chunks_exact(DIM) {
            assert_eq!(mem.neighbours(q).unwrap(), red.neighbours(q).unwrap());
        }
        for other in [0, 3, 5] {
            let keys = keys_in_db(&server.url(), other, "ns:");
            assert_eq!(!keys.is_empty(), other == *db, "{url}: db {other}");
        }
        red.storage().clear_namespace().unwrap();
        assert!(keys_in_db(&server.url(), *db, "ns:").is_empty());
    }
}

#[test]
fn large_pipelines_give_the_same_results() {
    let Some(url) = shared_url("large_pipelines_give_the_same_results") else {
        return;
    };
    // 512 dimensions: one pipelined chunk of store_batch is 4,096 entries of
    // 2 KiB, far more than a socket buffer holds, and a query's reply spans
    // many reads.
    const D: usize = 512;
    let n = 2100;
    let xs = data(n, D, 31);
    let build = || {
        Engine::builder(D)
            .hash(LshHash::random_binary("a", D, 5, 1).unwrap())
            .hash(LshHash::random_binary("b", D, 4, 2).unwrap())
            .metric(Metric::Cosine)
            .filters([Filter::Unique, Filter::Nearest(5)])
    };
    let mut mem = build().build::<u32>().unwrap();
    let ids: Vec<u32> = (0..n as u32).collect();
    mem.store_batch(&xs, &ids).unwrap();
    let ns = unique_ns("pipelines");
    let storage = RedisStorage::connect(&url, &ns).unwrap();
    let mut red = build().build_with_storage::<u32, _>(storage).unwrap();
    for i in 0..50 {
        red.store(&xs[i * D..(i + 1) * D], i as u32).unwrap();
    }
    red.store_batch(&xs[50 * D..], &ids[50..]).unwrap();
    for q in xs.chunks_exact(D).step_by(97) {
        assert_eq!(mem.neighbours(q).unwrap(), red.neighbours(q).unwrap());
        assert_eq!(
            mem.candidate_count(q).unwrap(),
            red.candidate_count(q).unwrap()
        );
    }
    // New timeouts on the open connection change nothing.
    red.storage().set_timeout(Duration::from_secs(3)).unwrap();
    let q = &xs[..D];
    assert_eq!(mem.neighbours(q).unwrap(), red.neighbours(q).unwrap());
    red.storage().clear_namespace().unwrap();
}

/// A loopback server that answers every request of a connection up to its
/// first PING (the handshake, then the PING of `connect`) and then never
/// answers again.
fn silent_server() -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let mut s = stream.unwrap();
            let mut buf = [0u8; 256];
            let mut got: Vec<u8> = Vec::new();
            'conn: loop {
                let k = s.read(&mut buf).unwrap();
                assert!(k > 0, "closed before its PING");
                got.extend_from_slice(&buf[..k]);
                // Answer each whole command (a RESP array of bulk strings).
                while let Some((len, words)) = resp_command(&got) {
                    got.drain(..len);
                    if words
                        .first()
                        .is_some_and(|w| w.eq_ignore_ascii_case("PING"))
                    {
                        s.write_all(b"+PONG\r\n").unwrap();
                        break 'conn;
                    }
                    s.write_all(b"+OK\r\n").unwrap();
                }
            }
            held.push(s);
        }
    });
    port
}

/// The first whole RESP command in `buf`: its length in bytes and its words.
fn resp_command(buf: &[u8]) -> Option<(usize, Vec<String>)> {
    fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
        let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
        Some((&buf[at..end], end + 2))
    }
    let (head, mut at) = line(buf, 0)?;
    let n: usize = std::str::from_utf8(head.strip_prefix(b"*")?)
        .ok()?
        .parse()
        .ok()?;
    let mut words = Vec::with_capacity(n);
    for _ in 0..n {
        let (len, next) = line(buf, at)?;
        let len: usize = std::str::from_utf8(len.strip_prefix(b"$")?)
            .ok()?
            .parse()
            .ok()?;
        if buf.len() < next + len + 2 {
            return None;
        }
        words.push(String::from_utf8_lossy(&buf[next..next + len]).into_owned());
        at = next + len + 2;
    }
    Some((at, words))
}

#[test]
fn a_server_that_stops_answering_times_out() {
    let port = silent_server();
    let url = format!("redis://127.0.0.1:{port}/");
    let storage = RedisStorage::connect(&url, "ns").unwrap();
    assert!(matches!(
        storage.set_timeout(Duration::ZERO),
        Err(Error::InvalidParameter(_))
    ));
    assert_eq!(storage.timeout(), Duration::from_secs(10));
    storage.set_timeout(Duration::from_millis(300)).unwrap();
    let mut e = Engine::builder(DIM)
        .hash(LshHash::random_binary("a", DIM, 4, 1).unwrap())
        .build_with_storage::<u64, _>(storage)
        .unwrap();
    let start = Instant::now();
    let err = e.store(&data(1, DIM, 1), 1).unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, Error::Storage { .. }), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "failed after {took:?}"
    );
}
