//! Tests of [`super`]: the log file's format, its writer, and its record.
use super::*;
use crate::runtime::jobs::{job::log_writer::Writer, logfile::Wrote};

fn log(s: &str) -> Entry {
    Entry::Log {
        step: 1,
        stream: Stream::Stderr,
        data: Bytes::from(s.to_owned()),
    }
}

#[test]
fn entries_read_back_in_order_and_the_cap_ends_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let mut w = Writer::new(path.clone());
    let all = [log("hello"), log("world"), log("again"), log("over")];
    let wrote = w.write(&all, 9 * 3 + 15);
    assert_eq!(
        wrote,
        Wrote {
            entries: 3,
            bytes: 9 * 3 + 15,
            ended: true
        },
        "the fourth would pass the cap"
    );
    let mut pos = FilePos::default();
    let got = read(&path, &mut pos, 1, 3, 10).unwrap();
    assert_eq!(got, [log("world"), log("again")]);
    let (again, bytes) = LogFile::existing(path).unwrap();
    assert_eq!((again.entries(), bytes), (3, 15));
}

fn step(i: u32) -> Entry {
    let spec = crate::core::jobs::spec::JobSpec::command(vec!["true".to_owned()]);
    let state = crate::core::jobs::state::JobState::new(spec, 1);
    Entry::Step(i, state.steps[0].clone())
}

#[test]
fn the_writer_takes_the_ring_from_the_first_entry_and_the_cursor_follows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs").join("j.log");
    let mut f = LogFile::create(path.clone(), 1 << 20);
    let mut ring = LogRing::new(64 * 1024);
    ring.push(step(0));
    ring.push(step(1));
    ring.push(log("out"));
    assert!(f.behind().is_some(), "the ring keeps what is not written");
    assert!(f.start(), "the first output starts the writer");
    assert!(!f.start(), "once");
    let batch = f.next_batch(&ring, 1 << 20).unwrap();
    assert_eq!(batch.entries, [step(0), step(1), log("out")]);
    let mut w = Writer::new(path.clone());
    let wrote = w.write(&batch.entries, batch.room);
    assert!(
        path.exists(),
        "the first write creates it, and its directory"
    );
    assert!(f.wrote(&batch.entries, &wrote));
    assert_eq!(f.entries(), 3);
    assert!(ring.is_read(f.behind().unwrap()));
    ring.push(log("more"));
    let batch = f.next_batch(&ring, 1 << 20).unwrap();
    assert_eq!(batch.entries, [log("more")], "from where it was");
    let got = read(&path, &mut FilePos::default(), 0, 3, 10).unwrap();
    assert_eq!(got, [step(0), step(1), log("out")]);
    assert_eq!(f.remove().as_deref(), Some(path.as_path()));
    assert!(f.removed() && f.behind().is_none());
    let late = Wrote {
        entries: 1,
        bytes: 9 + 4,
        ended: false,
    };
    assert!(
        !f.wrote(&batch.entries, &late),
        "a deleted file takes no more"
    );
}

#[test]
fn a_ring_that_dropped_unwritten_output_ends_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = LogFile::create(dir.path().join("j.log"), 1 << 20);
    let mut ring = LogRing::new(64 * 1024);
    f.start();
    ring.push(log(&"x".repeat(40 * 1024)));
    ring.push(log(&"y".repeat(40 * 1024)));
    assert!(f.next_batch(&ring, 1 << 20).is_none());
    assert!(f.behind().is_none(), "the file ends rather than skip");
}

#[test]
fn a_job_that_printed_nothing_leaves_no_file_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    let mut f = LogFile::create(path.clone(), 1 << 20);
    // Another job's file by that name is not this job's to delete.
    std::fs::write(&path, b"not mine").unwrap();
    assert_eq!(f.remove(), None, "no file of its own to delete");
}
