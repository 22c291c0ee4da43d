//! The process-wide dispatch: `SWANN_ISA` and `pin`.
//!
//! These live in their own test binary because they change what `active()`
//! returns for the whole process. The environment-variable cases run this
//! same test binary again as a child process (the variable is read once, the
//! first time `active()` is called, so it has to be set before the process
//! starts).

use swann::kernels::{self, Isa, IsaError, KernelTable};

/// Set in the child's environment; without it `child_probe` does nothing.
const CHILD_MARKER: &str = "SWANN_KERNELS_DISPATCH_CHILD";

/// Runs in the child: reports which ISA `active()` resolved to.
#[test]
fn child_probe() {
    if std::env::var_os(CHILD_MARKER).is_none() {
        return;
    }
    let t = kernels::active();
    // The free functions go through the same table and still compute.
    assert_eq!(kernels::dot(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]), 32.0);
    println!("ACTIVE_ISA={}", t.isa());
}

/// Runs `child_probe` in a fresh process with `SWANN_ISA=value`; returns
/// (the ISA it reported, its standard error).
#[cfg(not(target_arch = "aarch64"))]
fn run_child(value: &str) -> (String, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args(["--exact", "child_probe", "--nocapture", "--test-threads=1"])
        .env(CHILD_MARKER, "1")
        .env("SWANN_ISA", value)
        .output()
        .expect("run the test binary again");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child with SWANN_ISA={value} failed: {stdout}\n{stderr}"
    );
    // The harness may print "test child_probe ... " on the same line.
    let isa = stdout
        .split("ACTIVE_ISA=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("child printed no ISA:\n{stdout}\n{stderr}"))
        .to_string();
    (isa, stderr)
}

// Under the aarch64 emulation used for the NEON tests the binary cannot start
// itself again (it is not a native executable there), so these are x86-only.
#[cfg(not(target_arch = "aarch64"))]
#[test]
fn swann_isa_scalar_pins_scalar() {
    let (isa, stderr) = run_child("scalar");
    assert_eq!(isa, "scalar");
    assert!(!stderr.contains("ignoring SWANN_ISA"), "{stderr}");
}

#[cfg(not(target_arch = "aarch64"))]
#[test]
fn swann_isa_bogus_warns_and_falls_back() {
    let (isa, stderr) = run_child("bogus");
    assert_eq!(isa, Isa::detected().name());
    assert!(stderr.contains("ignoring SWANN_ISA=\"bogus\""), "{stderr}");
}

#[cfg(not(target_arch = "aarch64"))]
#[test]
fn swann_isa_unrunnable_warns_and_falls_back() {
    // An ISA this machine cannot run (NEON on x86-64; on a CPU with every x86
    // ISA there is always NEON): a warning, the detected ISA, no crash.
    let missing = Isa::ALL
        .into_iter()
        .find(|isa| !isa.is_available())
        .expect("some ISA is not available on any machine");
    let (isa, stderr) = run_child(missing.name());
    assert_eq!(isa, Isa::detected().name());
    assert!(stderr.contains("ignoring SWANN_ISA"), "{stderr}");
}

#[cfg(not(target_arch = "aarch64"))]
#[test]
fn swann_isa_each_available_isa() {
    for &want in Isa::available() {
        let (isa, _) = run_child(&want.name().to_uppercase());
        assert_eq!(isa, want.name());
    }
}

#[test]
fn pin_switches_and_refuses_what_cannot_run() {
    for &isa in Isa::available() {
        let t = kernels::pin(isa).expect("available ISAs can be pinned");
        assert_eq!(t.isa(), isa);
        assert_eq!(kernels::active().isa(), isa);
        assert_eq!(kernels::l2sq(&[1.0, 2.0], &[4.0, 6.0]), 25.0);
    }
    let before = kernels::active().isa();
    for isa in Isa::ALL {
        if isa.is_available() {
            continue;
        }
        let err = kernels::pin(isa).unwrap_err();
        if isa.is_compiled() {
            assert_eq!(err, IsaError::NotSupported(isa));
        } else {
            assert_eq!(err, IsaError::NotCompiled(isa));
        }
        assert_eq!(
            kernels::active().isa(),
            before,
            "a refused pin changes nothing"
        );
    }
    kernels::pin(Isa::detected()).unwrap();
    assert!(std::ptr::eq(
        kernels::active(),
        KernelTable::for_isa(Isa::detected()).unwrap()
    ));
}

#[test]
fn isa_names_round_trip() {
    for isa in Isa::ALL {
        assert_eq!(isa.name().parse::<Isa>().unwrap(), isa);
        assert_eq!(isa.to_string(), isa.name());
    }
    assert!(matches!("sse9".parse::<Isa>(), Err(IsaError::Unknown(_))));
}
