//! `scripts/gpu-check.sh`, the hardware check, run against the mock NVML and
//! the stand-ins for `nvidia-smi` and `libcuda.so.1` next to it: it passes
//! where gsp and the devices agree, and fails, naming the mismatch, where
//! they do not.

use std::process::{Command, Output};

use super::{GIB, gpu, mock_nvml};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mock_nvml");

/// The stand-in CUDA driver, compiled once per test binary.
fn fake_libcuda() -> &'static std::path::Path {
    static LIB: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    LIB.get_or_init(|| {
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let out = dir.join("libcuda-fake.so.1");
        let tmp = dir.join(format!("libcuda-fake.{}.so", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_owned());
        let status = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o"])
            .arg(&tmp)
            .arg(format!("{DIR}/fake_libcuda.c"))
            .status()
            .unwrap_or_else(|e| panic!("{cc} builds the stand-in libcuda: {e}"));
        assert!(status.success(), "{cc} failed on fake_libcuda.c");
        std::fs::rename(&tmp, &out).unwrap();
        out
    })
}

/// Runs the script over `devices`, with `smi` as its nvidia-smi.
fn check(devices: &[String], smi: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let nvml = dir.path().join("nvml.txt");
    std::fs::write(&nvml, devices.join("\n") + "\n").unwrap();
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gpu-check.sh"))
        .env("GSP_BIN", env!("CARGO_BIN_EXE_gsp"))
        .env("GSP_MOCK_NVML", &nvml)
        .env("GSP_NVML_LIBRARY", mock_nvml())
        .env("GSP_CHECK_LIBCUDA", fake_libcuda())
        .env("NVIDIA_SMI", smi)
        .output()
        .unwrap();
    drop(dir);
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn devices() -> Vec<String> {
    vec![
        "driver 550.54.15".to_owned(),
        gpu(
            0,
            "GPU-aaaaaaaa-0000-4000-8000-000000000000",
            80,
            1,
            "NVIDIA H100 80GB HBM3",
        ),
        gpu(
            1,
            "GPU-bbbbbbbb-0000-4000-8000-000000000001",
            80,
            1,
            "NVIDIA H100 80GB HBM3",
        ),
        gpu(
            2,
            "GPU-cccccccc-0000-4000-8000-000000000002",
            80,
            0,
            "NVIDIA A100-SXM4-80GB",
        ),
        format!(
            "mig 2 MIG-dddddddd-0000-4000-8000-000000000000 {} 0 MIG 1g.10gb",
            10 * GIB
        ),
        format!(
            "mig 2 MIG-eeeeeeee-0000-4000-8000-000000000001 {} 0 MIG 1g.10gb",
            10 * GIB
        ),
        // A process gsp did not start: device 1 is busy and gets no job.
        format!("proc 1 999999 {GIB}"),
    ]
}

#[test]
fn passes_where_gsp_and_the_devices_agree() {
    let o = check(&devices(), &format!("{DIR}/fake-nvidia-smi"));
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("every check passed (4 devices, 3 jobs bound)"),
        "{t}"
    );
}

#[test]
fn fails_naming_what_differs() {
    // An nvidia-smi that reports another model for device 0.
    let dir = tempfile::tempdir().unwrap();
    let smi = dir.path().join("nvidia-smi");
    std::fs::write(
        &smi,
        format!("#!/bin/sh\n{DIR}/fake-nvidia-smi \"$@\" | sed 's/^0, \\(GPU-[^,]*\\), NVIDIA H100 80GB HBM3/0, \\1, Tesla V100/'\n"),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&smi).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&smi, perms).unwrap();
    let o = check(&devices(), smi.to_str().unwrap());
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(
        t.contains(
            "MISMATCH: GPU 0: model 'NVIDIA H100 80GB HBM3' in gsp, 'Tesla V100' in nvidia-smi"
        ),
        "{t}"
    );
}
