use bytes::Bytes;

use super::{
    Status, Stream,
    log::{Cursor, Entry, LOG_ENTRY_OVERHEAD, LogRing, STEP_ENTRY_BYTES},
    spec::{JobSpec, SpecError, StepSpec},
    state::{EXIT_CANCELLED, EXIT_NOT_FOUND, EXIT_TIMEOUT, JobState, Outcome},
};

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn pipeline(steps: &[(&str, &str, bool)]) -> JobSpec {
    JobSpec {
        name: "build".into(),
        steps: steps
            .iter()
            .map(|(name, cmd, keep_going)| StepSpec {
                continue_on_error: *keep_going,
                ..StepSpec::new(*name, argv(cmd))
            })
            .collect(),
        workdir: None,
    }
    .normalize()
    .expect("valid spec")
}

fn statuses(j: &JobState) -> Vec<Status> {
    j.steps.iter().map(|s| s.status).collect()
}

#[test]
fn a_failed_step_stops_the_pipeline_and_the_rest_are_cancelled() {
    let mut j = JobState::new(
        pipeline(&[
            ("a", "true", false),
            ("b", "false", false),
            ("c", "true", false),
        ]),
        10,
    );
    assert_eq!(j.status(), Status::Pending);
    assert_eq!(j.start_next(11), Some(0));
    assert_eq!(j.status(), Status::Running);
    j.finish_step(0, Outcome::Exited(0), 12);
    assert_eq!(j.start_next(12), Some(1));
    j.finish_step(1, Outcome::Exited(3), 13);
    assert_eq!(j.start_next(13), None);
    assert_eq!(
        statuses(&j),
        [Status::Completed, Status::Failed, Status::Cancelled]
    );
    assert_eq!(j.status(), Status::Failed);
    assert_eq!(j.exit_code(), 1, "a failed pipeline exits 1");
    assert_eq!(j.steps[1].exit_code, Some(3));
    assert_eq!(j.steps[1].error, "exited with code 3");
    assert_eq!(j.steps[2].error, "not run: step 'b' failed");
    assert_eq!(j.ended_unix_ns, 13);
}

#[test]
fn continue_on_error_runs_on_and_completes() {
    let mut j = JobState::new(pipeline(&[("a", "false", true), ("b", "true", false)]), 0);
    assert_eq!(j.start_next(1), Some(0));
    j.finish_step(0, Outcome::Exited(1), 2);
    assert_eq!(j.start_next(2), Some(1));
    j.finish_step(1, Outcome::Exited(0), 3);
    assert_eq!(j.start_next(3), None);
    assert_eq!(statuses(&j), [Status::Failed, Status::Completed]);
    assert_eq!(j.status(), Status::Completed);
    assert_eq!(j.exit_code(), 0);
}

#[test]
fn a_one_step_job_exits_with_its_process_code() {
    let mut j = JobState::new(JobSpec::command(argv("sh -c exit")).normalize().unwrap(), 0);
    j.start_next(1);
    j.finish_step(0, Outcome::Exited(42), 2);
    j.start_next(2);
    assert_eq!(j.exit_code(), 42);
    let mut t = JobState::new(JobSpec::command(argv("sleep 9")).normalize().unwrap(), 0);
    t.start_next(1);
    t.finish_step(0, Outcome::TimedOut, 2);
    t.start_next(2);
    assert_eq!((t.status(), t.exit_code()), (Status::Failed, EXIT_TIMEOUT));
    let mut n = JobState::new(JobSpec::command(argv("nope")).normalize().unwrap(), 0);
    n.start_next(1);
    n.finish_step(
        0,
        Outcome::NotStarted("No such file".into(), EXIT_NOT_FOUND),
        2,
    );
    n.start_next(2);
    assert_eq!((n.status(), n.exit_code()), (Status::Failed, 127));
    assert_eq!(n.steps[0].error, "cannot start: No such file");
}

#[test]
fn cancelling_stops_the_running_step_and_skips_the_rest() {
    let mut j = JobState::new(
        pipeline(&[("a", "sleep 9", false), ("b", "true", false)]),
        0,
    );
    j.start_next(1);
    assert!(j.cancel("admin-token from 127.0.0.1"));
    assert!(!j.cancel("someone else"), "one cancellation at a time");
    j.finish_step(0, Outcome::Cancelled, 2);
    assert_eq!(j.start_next(2), None);
    assert_eq!(statuses(&j), [Status::Cancelled, Status::Cancelled]);
    assert_eq!(j.status(), Status::Cancelled);
    assert_eq!(j.exit_code(), EXIT_CANCELLED);
    assert_eq!(j.steps[0].error, "cancelled by admin-token from 127.0.0.1");
    assert!(!j.cancel("late"), "a finished job cannot be cancelled");
}

#[test]
fn a_restart_fails_the_running_step() {
    let mut j = JobState::new(
        pipeline(&[("a", "sleep 9", false), ("b", "true", false)]),
        0,
    );
    j.start_next(1);
    j.interrupted("node restarted", 5);
    assert_eq!(statuses(&j), [Status::Failed, Status::Cancelled]);
    assert_eq!(j.steps[0].error, "node restarted");
    assert_eq!(j.status(), Status::Failed);
}

#[test]
fn specs_are_checked_before_anything_runs() {
    let no_steps = JobSpec {
        name: "x".into(),
        steps: vec![],
        workdir: None,
    };
    assert_eq!(no_steps.normalize(), Err(SpecError::NoSteps));
    assert!(matches!(
        JobSpec::command(vec![]).normalize(),
        Err(SpecError::EmptyArgv(_))
    ));
    assert!(matches!(
        JobSpec::command(vec![String::new()]).normalize(),
        Err(SpecError::EmptyArgv(_))
    ));
    let mut bad_env = JobSpec::command(argv("env"));
    bad_env.steps[0].env.insert("A=B".into(), "1".into());
    assert!(matches!(bad_env.normalize(), Err(SpecError::BadEnvKey(_, k)) if k == "A=B"));
    let dup = JobSpec {
        name: String::new(),
        steps: vec![
            StepSpec::new("x", argv("true")),
            StepSpec::new("x", argv("true")),
        ],
        workdir: None,
    };
    assert_eq!(dup.normalize(), Err(SpecError::DuplicateName("x".into())));
    let huge = JobSpec::command(vec!["echo".into(), "y".repeat(300 * 1024)]);
    assert!(matches!(huge.normalize(), Err(SpecError::TooLarge(_))));
    let named = JobSpec {
        name: String::new(),
        steps: vec![StepSpec::new("", argv("make all"))],
        workdir: None,
    }
    .normalize()
    .unwrap();
    assert_eq!(
        (named.name.as_str(), named.steps[0].name.as_str()),
        ("make", "step-1")
    );
}

fn log(step: u32, s: &str) -> Entry {
    Entry::Log {
        step,
        stream: Stream::Stdout,
        data: Bytes::from(s.to_owned()),
    }
}

/// An output entry of 1 KiB against the ring's bound, and how many of them
/// a 64 KiB ring keeps.
const PER_KIB: usize = 1024 + LOG_ENTRY_OVERHEAD;
const KEPT: usize = (64 * 1024) / PER_KIB;

#[test]
fn the_log_ring_keeps_the_newest_and_tells_a_late_reader_what_it_missed() {
    let mut ring = LogRing::new(0);
    let kib = "x".repeat(1024);
    let mut early = Cursor::default();
    ring.push(log(0, &kib));
    let first = ring.read(&mut early, usize::MAX);
    assert_eq!((first.gap, first.entries.len()), (0, 1));
    for _ in 0..100 {
        ring.push(log(0, &kib));
    }
    // 101 KiB pushed into a 64 KiB ring: the newest KEPT (60) entries stay.
    let gone = (101 - KEPT) as u64 * 1024;
    assert_eq!(ring.total(), 101 * 1024);
    assert_eq!(ring.dropped(), gone);
    let read = ring.read(&mut early, usize::MAX);
    assert_eq!(read.gap, gone - 1024, "the reader had the first KiB");
    assert_eq!(read.entries.len(), KEPT);
    assert!(ring.is_read(&early));
    let mut late = Cursor::default();
    let read = ring.read(&mut late, 10 * PER_KIB);
    assert_eq!(read.gap, gone);
    assert_eq!(read.entries.len(), 10, "reads are bounded");
    assert!(!ring.is_read(&late));
}

#[test]
fn a_byte_at_a_time_is_bounded_by_memory_not_only_by_bytes() {
    let mut ring = LogRing::new(64 * 1024);
    for _ in 0..100_000 {
        ring.push(log(0, "x"));
    }
    let kept = (64 * 1024) / (1 + LOG_ENTRY_OVERHEAD);
    let mut c = Cursor::default();
    let read = ring.read(&mut c, usize::MAX);
    assert_eq!(read.entries.len(), kept, "not 65,536 one-byte entries");
    assert_eq!(read.gap, 100_000 - kept as u64);
}

#[test]
fn output_larger_than_the_ring_keeps_its_tail() {
    let mut ring = LogRing::new(64 * 1024);
    let mut data = vec![b'a'; 10];
    data.extend(vec![b'z'; 64 * 1024]);
    ring.push(Entry::Log {
        step: 0,
        stream: Stream::Stderr,
        data: Bytes::from(data),
    });
    assert_eq!(ring.dropped(), 10);
    let mut c = Cursor::default();
    let read = ring.read(&mut c, usize::MAX);
    assert_eq!(read.gap, 10);
    let Entry::Log { data, .. } = &read.entries[0] else {
        panic!("a log entry")
    };
    assert!(data.iter().all(|&b| b == b'z'));
}

#[test]
fn the_ring_says_when_a_push_would_drop_what_a_reader_has_not_read() {
    let mut ring = LogRing::new(64 * 1024);
    let kib = "x".repeat(1024);
    let mut reader = Cursor::default();
    for _ in 0..KEPT {
        ring.push(log(0, &kib));
    }
    assert!(
        ring.would_drop_unread(&reader, 2 * PER_KIB),
        "the reader read nothing"
    );
    ring.read(&mut reader, PER_KIB);
    assert!(
        !ring.would_drop_unread(&reader, PER_KIB),
        "the oldest KiB was read, and only one is to go"
    );
    assert!(ring.would_drop_unread(&reader, 2 * PER_KIB));
    let mut caught_up = reader;
    ring.read(&mut caught_up, usize::MAX);
    assert!(!ring.would_drop_unread(&caught_up, 64 * 1024));
}

#[test]
fn a_steps_change_never_drops_output_a_reader_has_not_read() {
    let mut ring = LogRing::new(64 * 1024);
    let kib = "x".repeat(1024);
    for _ in 0..KEPT {
        ring.push(log(0, &kib));
    }
    let step =
        JobState::new(JobSpec::command(argv("true")).normalize().unwrap(), 0).steps[0].clone();
    ring.push(Entry::Step(0, step));
    assert_eq!(ring.dropped(), 0, "a full ring keeps its output");
    let mut reader = Cursor::default();
    let read = ring.read(&mut reader, usize::MAX);
    assert_eq!((read.gap, read.entries.len()), (0, KEPT + 1));
    // The next output makes room again, dropping the oldest entries it must.
    ring.push(log(0, &kib));
    let over = KEPT * PER_KIB + STEP_ENTRY_BYTES + PER_KIB - 64 * 1024;
    assert_eq!(ring.dropped(), over.div_ceil(PER_KIB) as u64 * 1024);
}

#[test]
fn clearing_a_finished_jobs_output_keeps_its_steps_and_marks_the_gap() {
    let mut ring = LogRing::new(0);
    ring.push(log(0, "hello\n"));
    ring.push(Entry::Step(
        0,
        JobState::new(JobSpec::command(argv("true")).normalize().unwrap(), 0).steps[0].clone(),
    ));
    ring.clear_output();
    assert_eq!(ring.dropped(), 6);
    let mut c = Cursor::default();
    let read = ring.read(&mut c, usize::MAX);
    assert_eq!(read.gap, 6);
    assert!(matches!(read.entries.as_slice(), [Entry::Step(0, _)]));
}
