use super::*;
use crate::core::jobs::{
    Status,
    spec::{JobSpec, StepSpec},
    state::Outcome,
};

fn job(id: &str) -> Arc<Job> {
    let spec = JobSpec {
        name: id.into(),
        steps: vec![StepSpec::new("s", vec!["true".into()])],
        workdir: None,
    }
    .normalize()
    .expect("valid spec");
    Arc::new(Job::new(
        id.into(),
        "alice".into(),
        JobState::new(spec, 1),
        1024,
    ))
}

fn finish(job: &Job) {
    job.update(|s| {
        let i = s.start_next(2).expect("a step");
        s.finish_step(i, Outcome::Exited(0), 3);
        s.start_next(3);
    });
}

fn lines_on_disk(dir: &Path) -> usize {
    let raw = std::fs::read_to_string(dir.join(FILE_NAME)).expect("journal");
    raw.lines().count() - 1
}

#[test]
fn records_round_trip_and_the_newest_line_of_a_job_wins() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let (done, running) = (job("000000000001"), job("000000000002"));
    finish(&done);
    store.save(&[Arc::clone(&done), Arc::clone(&running)], &[], Sync::Now);
    running.update(|s| s.start_next(4));
    store.save(&[Arc::clone(&done), Arc::clone(&running)], &[], Sync::Now);
    let loaded = Store::in_dir(dir.path()).load();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].0, "000000000001");
    assert_eq!(loaded[0].1, "alice");
    assert_eq!(loaded[0].2, done.lock().state);
    assert_eq!(loaded[0].2.status(), Status::Completed);
    assert_eq!(loaded[1].2.status(), Status::Running);
    assert_eq!(loaded[1].2, running.lock().state);
}

#[test]
fn a_save_appends_only_the_records_that_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let jobs: Vec<_> = (1..=10).map(|i| job(&format!("{i:012x}"))).collect();
    store.save(&jobs, &[], Sync::Now);
    assert_eq!(
        lines_on_disk(dir.path()),
        10,
        "the first save writes them all"
    );
    store.save(&jobs, &[], Sync::Now);
    assert_eq!(
        lines_on_disk(dir.path()),
        10,
        "nothing changed, nothing written"
    );
    finish(&jobs[3]);
    store.save(&jobs, &[], Sync::Now);
    assert_eq!(lines_on_disk(dir.path()), 11);
    let loaded = Store::in_dir(dir.path()).load();
    assert_eq!(loaded.len(), 10);
    assert_eq!(loaded[3].2.status(), Status::Completed);
    assert_eq!(loaded[4].2.status(), Status::Pending);
}

#[test]
fn a_forgotten_job_is_not_loaded_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let (old, new) = (job("000000000001"), job("000000000002"));
    store.save(&[Arc::clone(&old), Arc::clone(&new)], &[], Sync::Now);
    store.save(&[Arc::clone(&new)], &["000000000001".to_owned()], Sync::Now);
    let loaded = Store::in_dir(dir.path()).load();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].0, "000000000002");
}

#[test]
fn a_job_forgotten_after_a_save_listed_it_is_not_written_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let (old, new) = (job("000000000001"), job("000000000002"));
    let listed = [Arc::clone(&old), Arc::clone(&new)];
    store.save(&listed, &[], Sync::Now);
    // A change, then the job leaves the history: one save writes the forget
    // line, and a save that had listed the job before comes after it.
    finish(&old);
    old.forget();
    store.save(&[Arc::clone(&new)], &["000000000001".to_owned()], Sync::Now);
    store.save(&listed, &[], Sync::Now);
    let ids: Vec<_> = Store::in_dir(dir.path())
        .load()
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(ids, ["000000000002"]);
    // A rewrite of the journal leaves it out as well.
    drop(store);
    let store = Store::in_dir(dir.path());
    store.save(&listed, &[], Sync::Now);
    assert_eq!(Store::in_dir(dir.path()).load().len(), 1);
}

#[test]
fn the_journal_is_rewritten_once_it_holds_four_times_what_it_needs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let jobs = vec![job("000000000001")];
    let bound = COMPACT_FACTOR * (jobs.len() + SLACK_LINES);
    let mut most = 0;
    for t in 0..200 {
        jobs[0].update(|s| s.created_unix_ns = t);
        store.save(&jobs, &[], Sync::Now);
        most = most.max(lines_on_disk(dir.path()));
    }
    assert!(most > jobs.len(), "changes were appended");
    assert!(most <= bound + 1, "{most} lines, bound {bound}");
    let loaded = Store::in_dir(dir.path()).load();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].2.created_unix_ns, 199);
}

#[test]
fn a_partial_last_line_and_a_broken_line_are_skipped_the_rest_is_kept() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let jobs = vec![job("000000000001"), job("000000000002")];
    store.save(&jobs, &[], Sync::Now);
    finish(&jobs[0]);
    store.save(&jobs, &[], Sync::Now);
    let path = dir.path().join(FILE_NAME);
    let mut raw = std::fs::read(&path).expect("journal");
    // A line broken in the middle (not the last one), and a save cut short.
    let second = raw.iter().position(|&b| b == b'\n').expect("a header") + 1;
    raw.insert(second, b'#');
    raw.extend_from_slice(br#"{"id":"000000000001","actor":"al"#);
    std::fs::write(&path, raw).expect("write");
    let loaded = Store::in_dir(dir.path()).load();
    let ids: Vec<_> = loaded.iter().map(|r| r.0.as_str()).collect();
    // Job 2's line, then job 1's newest whole line (its first one is broken).
    assert_eq!(ids, ["000000000002", "000000000001"]);
    assert_eq!(
        loaded[1].2.status(),
        Status::Completed,
        "the newest whole line"
    );
}

#[test]
fn records_of_a_node_before_the_journal_are_read_once_and_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join(OLD_FILE_NAME);
    let done = job("000000000001");
    finish(&done);
    let mut data = br#"{"schema":"gsp.jobs-state.v1","jobs":["#.to_vec();
    done.encode_all(&mut data).expect("a kept job");
    data.extend_from_slice(b"]}");
    std::fs::write(&old, data).expect("write");
    let store = Store::in_dir(dir.path());
    let loaded = store.load();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].2.status(), Status::Completed);
    let again = Arc::new(Job::new(
        loaded[0].0.clone(),
        loaded[0].1.clone(),
        loaded[0].2.clone(),
        1024,
    ));
    store.save(&[again], &[], Sync::Now);
    assert!(!old.exists(), "jobs.json is gone once the journal holds it");
    assert_eq!(Store::in_dir(dir.path()).load().len(), 1);
}

#[test]
fn a_journal_without_a_header_is_set_aside() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(FILE_NAME), b"garbage\n").expect("write");
    assert!(Store::in_dir(dir.path()).load().is_empty());
    assert!(dir.path().join("jobs.jsonl.bad").exists());
}

#[test]
fn a_later_save_is_written_at_once_and_waits_for_one_sync() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let (a, b) = (job("000000000001"), job("000000000002"));
    // The first save writes the journal whole, synced.
    assert!(!store.save(&[Arc::clone(&a)], &[], Sync::Later));
    finish(&a);
    assert!(
        store.save(&[Arc::clone(&a), Arc::clone(&b)], &[], Sync::Later),
        "an appended change waits for a sync"
    );
    // Written through: a node killed now finds it when it starts again.
    let loaded = Store::in_dir(dir.path()).load();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].2.status(), Status::Completed);
    assert!(!store.sync(), "one sync covers every change before it");
    assert!(!store.sync(), "nothing left to sync");
    b.update(|s| s.start_next(5));
    assert!(
        !store.save(&[Arc::clone(&a), Arc::clone(&b)], &[], Sync::Now),
        "a save that syncs leaves nothing waiting"
    );
}

#[test]
fn an_append_on_the_async_path_declines_what_would_wait_for_the_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let a = job("000000000001");
    assert_eq!(
        store.append_if_free(&[Arc::clone(&a)], &[]),
        None,
        "the first save writes the journal whole"
    );
    assert!(!store.save(&[Arc::clone(&a)], &[], Sync::Now));
    a.update(|s| s.start_next(2));
    assert_eq!(store.append_if_free(&[Arc::clone(&a)], &[]), Some(true));
    assert_eq!(lines_on_disk(dir.path()), 2);
    // Changes until the journal is due to be rewritten whole: that one is
    // left to a save that may wait.
    let bound = COMPACT_FACTOR * (1 + SLACK_LINES);
    let mut appended = 1;
    while appended < 10 * bound {
        // A change every time (one that changes nothing is not saved).
        let t = i64::try_from(appended).expect("small");
        a.update(|s| s.created_unix_ns = t);
        if store.append_if_free(&[Arc::clone(&a)], &[]).is_none() {
            break;
        }
        appended += 1;
    }
    assert!(appended < 10 * bound, "appends stop");
    assert_eq!(lines_on_disk(dir.path()), bound + 1, "past the bound");
    assert!(
        !store.save(&[Arc::clone(&a)], &[], Sync::Later),
        "rewritten, synced"
    );
    assert_eq!(lines_on_disk(dir.path()), 1);
    let held = store.journal.lock().expect("lock");
    assert_eq!(
        std::thread::scope(|s| s.spawn(|| store.append_if_free(&[], &[])).join().ok()),
        Some(None),
        "a journal another save holds is not waited for"
    );
    drop(held);
}

/// A store holding one saved job, whose journal handle then stops taking
/// writes (as on EIO or a full disk): the next append fails.
fn journal_that_fails_appends() -> (tempfile::TempDir, Store, Arc<Job>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let first = job("000000000001");
    store.save(&[Arc::clone(&first)], &[], Sync::Now);
    let read_only = File::open(dir.path().join(FILE_NAME)).expect("journal");
    store.journal.lock().expect("journal lock").file = Some(read_only);
    (dir, store, first)
}

fn ids_on_disk(dir: &Path) -> Vec<String> {
    Store::in_dir(dir)
        .load()
        .into_iter()
        .map(|(id, _, _)| id)
        .collect()
}

#[test]
fn a_failed_append_is_made_good_by_the_same_save() {
    let (dir, store, first) = journal_that_fails_appends();
    let second = job("000000000002");
    store.save(&[first, second], &[], Sync::Now);
    assert_eq!(
        ids_on_disk(dir.path()),
        ["000000000001", "000000000002"],
        "the job whose save failed to append is on disk when save returns"
    );
}

#[test]
fn an_update_that_changes_nothing_is_neither_saved_nor_told() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::in_dir(dir.path());
    let done = job("000000000001");
    finish(&done);
    store.save(&[Arc::clone(&done)], &[], Sync::Now);
    let lines = lines_on_disk(dir.path());
    let mut readers = done.subscribe();
    readers.borrow_and_update();
    // What the runner asks once the last step is over: nothing left to start.
    assert_eq!(done.update(|s| s.start_next(9)), None);
    assert!(!readers.has_changed().expect("job alive"));
    store.save(&[Arc::clone(&done)], &[], Sync::Now);
    assert_eq!(
        lines_on_disk(dir.path()),
        lines,
        "an unchanged record was appended"
    );
    // A real change still is both.
    let running = job("000000000002");
    let mut readers = running.subscribe();
    readers.borrow_and_update();
    running.update(|s| s.start_next(4));
    assert!(readers.has_changed().expect("job alive"));
    store.save(&[Arc::clone(&done), Arc::clone(&running)], &[], Sync::Now);
    assert_eq!(lines_on_disk(dir.path()), lines + 1);
}

#[test]
fn a_failed_append_on_the_async_path_asks_for_a_save_at_once() {
    let (dir, store, first) = journal_that_fails_appends();
    let jobs = [first, job("000000000002")];
    // Not "saved, waiting for a sync": the writer would then wait for the
    // next change to write the journal anew, and until then the record of
    // the second job would be nowhere but in memory.
    assert_eq!(store.append_if_free(&jobs, &[]), None);
    // What the writer does with `None`.
    store.save(&jobs, &[], Sync::Later);
    assert_eq!(
        ids_on_disk(dir.path()),
        ["000000000001", "000000000002"],
        "both jobs on disk after the writer's save"
    );
}
