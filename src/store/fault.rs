//! Failure injection for the atomic writer, so tests can fail or crash it at
//! each step. Only with the `fault-injection` feature (the crate's own
//! tests turn it on); without it every check is an empty inline function.
//! Not part of the supported API.
//!
//! A fault is armed per thread: only a `write_atomic` running on the thread
//! that armed it sees it, so tests running in parallel do not disturb each
//! other. Checking an unarmed point costs one thread-local read.

#[cfg(feature = "fault-injection")]
use std::cell::Cell;
use std::io;

/// The steps of [`FileWriter::write_atomic`](super::FileWriter::write_atomic), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// Before the temporary file is created.
    CreateTemp,
    /// After the temporary file is created, before anything is written.
    WriteStart,
    /// After the header, the table and about half of the sections are written
    /// and flushed to the temporary file.
    WriteMidway,
    /// After everything is written, before the temporary file is synced.
    SyncFile,
    /// After the temporary file is synced, before it is renamed over the target.
    Rename,
    /// After the rename, before the directory is synced.
    SyncDir,
}

impl FaultPoint {
    /// Every point, in the order the writer reaches them.
    #[cfg(feature = "fault-injection")]
    pub const ALL: [FaultPoint; 6] = [
        FaultPoint::CreateTemp,
        FaultPoint::WriteStart,
        FaultPoint::WriteMidway,
        FaultPoint::SyncFile,
        FaultPoint::Rename,
        FaultPoint::SyncDir,
    ];

    /// Lowercase name.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    pub fn name(self) -> &'static str {
        match self {
            FaultPoint::CreateTemp => "create-temp",
            FaultPoint::WriteStart => "write-start",
            FaultPoint::WriteMidway => "write-midway",
            FaultPoint::SyncFile => "sync-file",
            FaultPoint::Rename => "rename",
            FaultPoint::SyncDir => "sync-dir",
        }
    }

    /// The point with this name.
    #[cfg(feature = "fault-injection")]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// What happens when the writer reaches the armed point.
#[cfg(feature = "fault-injection")]
#[derive(Clone, Copy, Debug)]
pub enum FaultAction {
    /// The step fails with an I/O error.
    Fail,
    /// The function is called (a crash test's child pauses there to be killed).
    Call(fn(FaultPoint)),
}

#[cfg(feature = "fault-injection")]
thread_local! {
    static ARMED: Cell<Option<(FaultPoint, FaultAction)>> = const { Cell::new(None) };
}

/// Arms `point` on this thread until [`disarm`] (one arm at a time).
#[cfg(feature = "fault-injection")]
pub fn arm(point: FaultPoint, action: FaultAction) {
    ARMED.with(|a| a.set(Some((point, action))));
}

/// Disarms this thread's fault.
#[cfg(feature = "fault-injection")]
pub fn disarm() {
    ARMED.with(|a| a.set(None));
}

/// Called by the writer at each step (nothing without the feature).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub(crate) fn hit(_point: FaultPoint) -> io::Result<()> {
    Ok(())
}

/// Called by the writer at each step.
#[cfg(feature = "fault-injection")]
pub(crate) fn hit(point: FaultPoint) -> io::Result<()> {
    match ARMED.with(|a| a.get()) {
        Some((p, FaultAction::Fail)) if p == point => Err(io::Error::other(format!(
            "injected fault at {}",
            point.name()
        ))),
        Some((p, FaultAction::Call(f))) if p == point => {
            f(point);
            Ok(())
        }
        _ => Ok(()),
    }
}
