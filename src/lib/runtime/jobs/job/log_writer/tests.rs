//! Tests of [`super`]: the log file written off the runtime's threads.

use std::{
    io::Read as _,
    path::{Path, PathBuf},
    sync::{Arc, mpsc},
    time::Duration,
};

use bytes::Bytes;

use crate::core::jobs::{
    Stream,
    log::Entry,
    spec::JobSpec,
    state::{JobState, Outcome},
};
use crate::runtime::jobs::{Job, logfile};

fn job(path: PathBuf) -> Arc<Job> {
    let spec = JobSpec::command(vec!["true".to_owned()]);
    let job = Job::new("j".to_owned(), "test".to_owned(), JobState::new(spec, 1), 0);
    job.lock().file = Some(logfile::LogFile::create(path, 1 << 20));
    Arc::new(job)
}

fn out(byte: u8, len: usize) -> Entry {
    Entry::Log {
        step: 0,
        stream: Stream::Stdout,
        data: Bytes::from(vec![byte; len]),
    }
}

fn entries(path: &Path) -> Vec<Entry> {
    logfile::read(path, &mut logfile::FilePos::default(), 0, u64::MAX, 100).unwrap()
}

#[tokio::test]
async fn the_file_comes_with_the_first_output_and_ends_with_every_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs").join("j.log");
    let job = job(path.clone());
    let i = job.update(|s| s.start_next(2)).unwrap();
    tokio::task::yield_now().await;
    assert!(!path.exists(), "a step change alone makes no file");
    job.push_log(out(b'a', 5), Duration::from_secs(600)).await;
    job.push_log(out(b'b', 7), Duration::from_secs(600)).await;
    job.update(|s| s.finish_step(i, Outcome::Exited(0), 3));
    job.log_written(Duration::from_secs(600)).await;
    let got = entries(&path);
    assert_eq!(got.len(), 4, "running, a, b, completed: {got:?}");
    assert!(matches!(got[0], Entry::Step(0, _)));
    assert_eq!(got[1..3], [out(b'a', 5), out(b'b', 7)]);
    assert!(matches!(got[3], Entry::Step(0, _)));
    assert_eq!(job.lock().file.as_ref().unwrap().entries(), 4);
}

/// The first output fills the ring whole: it may drop nothing the file has
/// not taken (the step change before it), so the file's writer must already
/// run, or the output would wait out the stall and the file would end there.
#[tokio::test]
async fn a_first_output_as_large_as_the_ring_does_not_wait_for_a_writer_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let job = job(path.clone());
    let i = job.update(|s| s.start_next(2)).unwrap();
    job.push_log(out(b'a', 64 << 10), Duration::from_secs(30))
        .await;
    job.push_log(out(b'b', 64 << 10), Duration::from_secs(30))
        .await;
    job.update(|s| s.finish_step(i, Outcome::Exited(0), 3));
    job.log_written(Duration::from_secs(30)).await;
    let got = entries(&path);
    assert_eq!(
        got.len(),
        4,
        "running, a, b, completed: no stall ended the file"
    );
    assert_eq!(got[1..3], [out(b'a', 64 << 10), out(b'b', 64 << 10)]);
}

/// A log file nothing takes (a FIFO with no reader: opening it blocks, as a
/// hung NFS mount or a disk throttled to nothing would): pushing output
/// returns while the ring has room, the output past it waits for the file,
/// and the runtime, with a single thread, runs on meanwhile.
#[test]
fn a_stuck_disk_holds_back_the_job_output_not_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let (tx, rx) = mpsc::channel();
    let in_job = path.clone();
    let runtime = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let job = job(in_job);
            let i = job.update(|s| s.start_next(2)).unwrap();
            // 40 KiB of the 64 KiB ring: room, though the file has none of it.
            job.push_log(out(b'a', 40 << 10), Duration::from_secs(3600))
                .await;
            tx.send("first pushed").unwrap();
            let (j, t) = (Arc::clone(&job), tx.clone());
            let second = tokio::spawn(async move {
                j.push_log(out(b'b', 40 << 10), Duration::from_secs(3600))
                    .await;
                t.send("second pushed").unwrap();
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            tx.send("runtime ran").unwrap();
            second.await.unwrap();
            job.update(|s| s.finish_step(i, Outcome::Exited(0), 3));
            job.log_written(Duration::from_secs(3600)).await;
            tx.send("written").unwrap();
        });
    });
    // A hang here (the runtime stuck in the file's open) fails the test.
    let wait = Duration::from_secs(120);
    assert_eq!(rx.recv_timeout(wait), Ok("first pushed"));
    assert_eq!(rx.recv_timeout(wait), Ok("runtime ran"));
    assert!(
        rx.try_recv().is_err(),
        "the second output waited for the file: the ring would drop unwritten output"
    );
    // The disk comes back: everything reaches the file, in order.
    let mut fifo = std::fs::File::open(&path).unwrap();
    let mut got = Vec::new();
    fifo.read_to_end(&mut got).unwrap();
    assert_eq!(rx.recv_timeout(wait), Ok("second pushed"));
    assert_eq!(rx.recv_timeout(wait), Ok("written"));
    runtime.join().unwrap();
    let copy = dir.path().join("copy.log");
    std::fs::write(&copy, &got).unwrap();
    let read = entries(&copy);
    assert_eq!(read.len(), 4, "running, a, b, completed");
    assert_eq!(read[1..3], [out(b'a', 40 << 10), out(b'b', 40 << 10)]);
}

/// The log files of jobs that leave the history are deleted (off the
/// runtime's threads, so a while after), those of the jobs kept stay.
#[tokio::test]
async fn a_job_leaving_the_history_takes_its_log_file_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::runtime::jobs::JobsConfig {
        enabled: true,
        history: 2,
        ..crate::runtime::jobs::JobsConfig::default()
    };
    let jobs = crate::runtime::jobs::Jobs::new(
        config,
        crate::runtime::resources::Reservations::default(),
        ("id".to_owned(), "name".to_owned()),
        Some(dir.path().to_path_buf()),
        tokio_util::sync::CancellationToken::new(),
    );
    let mut files = Vec::new();
    for i in 0..3 {
        let spec = JobSpec::command(vec!["echo".to_owned(), format!("job {i}")])
            .normalize()
            .unwrap();
        let admitted = jobs
            .start(
                spec,
                "test".to_owned(),
                crate::core::membership::record::Amounts::default(),
                &crate::core::resources::request::GpuFilter::default(),
            )
            .unwrap();
        let (job, pin) = jobs.launch(admitted).await.unwrap();
        drop(pin);
        let mut changes = job.subscribe();
        while !job.lock().state.status().is_final() {
            changes.changed().await.unwrap();
        }
        job.log_written(Duration::from_secs(600)).await;
        let path = job.lock().file.as_ref().unwrap().path().to_path_buf();
        assert!(path.exists(), "job {i} printed: it has a file");
        files.push(path);
    }
    // Starting the third forgot the first (history 2: one finished kept,
    // besides the new one); its file goes on the blocking pool.
    for _ in 0..1000 {
        if !files[0].exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!files[0].exists(), "the forgotten job's file is deleted");
    assert!(files[1].exists() && files[2].exists());
}
