//! One connection to a Redis server, whose wait for a reply polls the socket
//! before it sleeps.
//!
//! The `redis` crate parses the URL, encodes the commands and parses the
//! replies (a [`Link`] implements its [`ConnectionLike`], so `Cmd::query`
//! and `Pipeline::query` run on one); the socket and the wait for a reply
//! are ours. A server on the same machine answers a small command within
//! tens of microseconds, and a thread that sleeps in `read` adds the
//! scheduler's wake-up to every round trip: on the 2-vCPU machine of the
//! README's Redis table, one RPUSH round trip took 60-76 us with a sleeping
//! read and 22 us with a polling one. So, with a non-zero `spin`, the
//! socket is non-blocking and a read polls it for up to `spin`, yielding the
//! core between tries, before it sleeps in the kernel (a blocking read
//! bounded by the timeout). With `spin` zero the socket stays blocking and
//! nothing polls.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use redis::{
    ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, RedisError, RedisResult, Value,
};

enum Stream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Stream {
    fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_nonblocking(on),
            #[cfg(unix)]
            Stream::Unix(s) => s.set_nonblocking(on),
        }
    }

    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
            #[cfg(unix)]
            Stream::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))
            }
        }
    }

    fn read_once(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.read(buf),
        }
    }

    fn write_once(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Stream::Unix(s) => s.write(buf),
        }
    }

    /// Runs `f` with the socket in blocking mode (so it sleeps in the
    /// kernel, bounded by the timeouts), then makes it non-blocking again.
    fn blocking<T>(&mut self, f: impl FnOnce(&mut Self) -> io::Result<T>) -> io::Result<T> {
        self.set_nonblocking(false)?;
        let r = f(self);
        self.set_nonblocking(true)?;
        r
    }
}

/// A blocking socket whose timeout expired reports `WouldBlock`; say what
/// it was instead.
fn timed_out(e: io::Error, what: &str, timeout: Duration) -> io::Error {
    if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{what} timed out after {timeout:?}"),
        )
    } else {
        e
    }
}

/// A connection to one Redis server (RESP2, no TLS).
pub(super) struct Link {
    stream: Stream,
    parser: redis::Parser,
    spin: Duration,
    timeout: Duration,
    db: i64,
    open: bool,
}

impl Link {
    /// Connects (bounded by `timeout`), authenticates when the URL carries
    /// a password and selects its database.
    pub(super) fn connect(
        info: &ConnectionInfo,
        timeout: Duration,
        spin: Duration,
    ) -> RedisResult<Link> {
        // RESP2 only: `RedisStorage::connect` refuses URLs that ask for RESP3.
        let settings = info.redis_settings();
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Stream::Tcp(connect_tcp(host, *port, timeout)?),
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "TLS and this address kind are not supported: use redis:// or unix://",
                )))
            }
        };
        stream.set_timeouts(timeout)?;
        let mut link = Link {
            stream,
            parser: redis::Parser::new(),
            spin: Duration::ZERO,
            timeout,
            db: settings.db(),
            open: true,
        };
        link.set_spin(spin)?;
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password).exec(&mut link)?;
        }
        if link.db != 0 {
            redis::cmd("SELECT").arg(link.db).exec(&mut link)?;
        }
        Ok(link)
    }

    /// How long a read polls before it sleeps (zero: never polls).
    pub(super) fn set_spin(&mut self, spin: Duration) -> io::Result<()> {
        self.stream.set_nonblocking(!spin.is_zero())?;
        self.spin = spin;
        Ok(())
    }

    pub(super) fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.stream.set_timeouts(timeout)?;
        self.timeout = timeout;
        Ok(())
    }

    fn send(&mut self, bytes: &[u8]) -> RedisResult<()> {
        let r = self.write_all(bytes);
        if r.is_err() {
            self.open = false;
        }
        Ok(r?)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut rest = bytes;
        let r = match write_rest(&mut self.stream, &mut rest) {
            // The send buffer is full (a large pipeline): wait for room in
            // the kernel rather than poll.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.spin.is_zero() => {
                self.stream.blocking(|s| write_rest(s, &mut rest))
            }
            r => r,
        };
        r.map_err(|e| timed_out(e, "sending", self.timeout))
    }

    fn recv(&mut self) -> RedisResult<Value> {
        let reader = Waiting {
            stream: &mut self.stream,
            spin: self.spin,
            timeout: self.timeout,
        };
        let r = self.parser.parse_value(reader);
        // An I/O or protocol error leaves the stream at an unknown place.
        if r.is_err() {
            self.open = false;
        }
        r
    }
}

/// Writes `rest` until it is empty or a write fails (`Interrupted` is
/// retried), leaving in `rest` what was not written.
fn write_rest(s: &mut Stream, rest: &mut &[u8]) -> io::Result<()> {
    while !rest.is_empty() {
        match s.write_once(rest) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the server accepts no more bytes",
                ))
            }
            Ok(n) => *rest = &rest[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                // Requests go out in one write each; never hold one back.
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host}:{port} resolves to no address"),
        )
    }))
}

/// The reply side of a [`Link`]: polls a non-blocking socket for up to
/// `spin`, then sleeps in a blocking read bounded by `timeout`.
struct Waiting<'a> {
    stream: &'a mut Stream,
    spin: Duration,
    timeout: Duration,
}

impl Read for Waiting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let timeout = self.timeout;
        if !self.spin.is_zero() {
            let mut start = None;
            loop {
                match self.stream.read_once(buf) {
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) => {}
                    r => return r,
                }
                let t0 = *start.get_or_insert_with(Instant::now);
                if t0.elapsed() >= self.spin {
                    break;
                }
                // Lets the server run meanwhile when it shares this core
                // (polling without yielding made a round trip to a server
                // pinned to the same core 1.6x slower than sleeping).
                std::thread::yield_now();
            }
            return self
                .stream
                .blocking(|s| read_blocking(s, buf))
                .map_err(|e| timed_out(e, "waiting for a reply", timeout));
        }
        read_blocking(self.stream, buf).map_err(|e| timed_out(e, "waiting for a reply", timeout))
    }
}

fn read_blocking(s: &mut Stream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read_once(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r,
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        self.send(cmd)?;
        self.recv()
    }

    fn req_packed_commands(
        &mut self,
        cmd: &[u8],
        offset: usize,
        count: usize,
    ) -> RedisResult<Vec<Value>> {
        self.send(cmd)?;
        let mut out = Vec::with_capacity(count);
        let mut failed = None;
        // Every reply is read, even after a failed command, so the next
        // request finds the stream at its own reply.
        for i in 0..offset + count {
            let v = self.recv()?;
            if i >= offset {
                out.push(v);
            } else if let Value::ServerError(e) = v {
                failed.get_or_insert(e);
            }
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        redis::cmd("PING").query::<String>(self).is_ok()
    }

    fn is_open(&self) -> bool {
        self.open
    }
}
