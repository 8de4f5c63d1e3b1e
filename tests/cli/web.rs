//! The web view in a real browser: headless Chromium (Debian's `chromium`)
//! loads a node's side port, shows every member, and shows a member killed
//! with SIGKILL as dead within seconds. Screenshots go to
//! `target/web-view.png` (desktop) and `target/web-view-phone.png`.
//!
//! Without a Chromium on the machine the test says it skipped, unless
//! `GSP_BROWSER_REQUIRED=1` (set by `.ci/run`, which installs it) makes
//! that a failure.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use crate::common::{
    procs::{Killed, spawn_node_logged, wait_for_members},
    run_gsp, stderr,
};

const LIMIT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// The browser, or `None` after saying the test skipped (a failure under
/// `GSP_BROWSER_REQUIRED`).
#[allow(clippy::print_stderr, reason = "a skipped test says so")]
fn browser() -> Option<PathBuf> {
    let found = chromium();
    if found.is_none() {
        assert!(
            std::env::var_os("GSP_BROWSER_REQUIRED").is_none(),
            "GSP_BROWSER_REQUIRED is set but no chromium is on PATH"
        );
        eprintln!("skipped: no chromium on PATH (apt-get install chromium)");
    }
    found
}

/// The side port's address, from the node's start-up log line.
fn http_address(log: &crate::common::procs::Log) -> String {
    let l = log.lock().unwrap();
    let found = l
        .split("http=Some(")
        .nth(1)
        .and_then(|r| r.split(')').next());
    found
        .unwrap_or_else(|| panic!("no http address in the log:\n{l}"))
        .to_owned()
}

/// Chromium with a throwaway profile; `args` follow, then `url`.
fn browse(browser: &Path, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The page's DOM once its first refresh had time to land.
fn dom(browser: &Path, profile: &Path, url: &str) -> String {
    browse(
        browser,
        profile,
        &["--virtual-time-budget=3000", "--dump-dom"],
        url,
    )
}

/// The member table's row of `name`, as text.
fn member_row<'a>(dom: &'a str, name: &str) -> Option<&'a str> {
    let table = dom
        .split("id=\"members\"")
        .nth(1)?
        .split("</table>")
        .next()?;
    table.split("<tr").find(|r| {
        r.contains(&format!("<td>{name}</td>"))
            || r.contains(&format!("<td>{name} (this node)</td>"))
    })
}

#[test]
fn web_view_shows_members_and_a_killed_one_dead() {
    let Some(browser) = browser() else {
        return;
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let profile = tempfile::tempdir().unwrap();
    let (a, a_addr, log) = spawn_node_logged(
        dirs[0].path(),
        &[
            "--name",
            "web-a",
            "--gossip-interval",
            "0.1",
            "--http-listen",
            "127.0.0.1:0",
            "--exec",
        ],
        &[],
    );
    let _a = Killed(a);
    let http = http_address(&log);
    let mut others = Vec::new();
    for (i, dir) in dirs.iter().enumerate().skip(1) {
        let name = format!("web-{}", ["a", "b", "c"][i]);
        let (child, _, _) = spawn_node_logged(
            dir.path(),
            &[
                "--name",
                &name,
                "--gossip-interval",
                "0.1",
                "--join",
                &a_addr,
            ],
            &[],
        );
        others.push(Killed(child));
    }
    wait_for_members(&a_addr, 3, &[]);
    let url = format!("http://{http}/");
    // A job on web-a and a broadcast from it, for the page to show.
    let ran = run_gsp(
        &[
            "run", "--addr", &a_addr, "--node", "web-a", "--", "echo", "hi",
        ],
        LIMIT,
    );
    assert!(ran.status.success(), "{}", stderr(&ran));
    let sent = run_gsp(&["send", "--addr", &a_addr, "-m", "hello"], LIMIT);
    assert!(sent.status.success(), "{}", stderr(&sent));

    let page = dom(&browser, profile.path(), &url);
    assert!(
        page.contains("data-members=\"3\""),
        "not 3 members:\n{page}"
    );
    for name in ["web-a", "web-b", "web-c"] {
        let row = member_row(&page, name).unwrap_or_else(|| panic!("no row for {name}:\n{page}"));
        assert!(row.contains(">alive<"), "{name} not alive: {row}");
    }
    let jobs = page.split("id=\"jobs\"").nth(1).unwrap_or_default();
    assert!(
        jobs.contains("<td>echo hi</td>") && jobs.contains(">completed<"),
        "job not shown:\n{page}"
    );
    let broadcasts = page.split("id=\"broadcasts\"").nth(1).unwrap_or_default();
    assert!(
        broadcasts.contains(">3 / 3<") && broadcasts.contains(">converged<"),
        "broadcast not shown:\n{page}"
    );
    browse(
        &browser,
        profile.path(),
        &[
            "--virtual-time-budget=3000",
            "--window-size=1280,720",
            &format!("--screenshot={}", shot("web-view.png").display()),
        ],
        &url,
    );
    browse(
        &browser,
        profile.path(),
        &[
            "--virtual-time-budget=3000",
            "--window-size=390,844",
            &format!("--screenshot={}", shot("web-view-phone.png").display()),
        ],
        &url,
    );

    // SIGKILL web-c: no leave message, only the failure detector.
    let mut killed = others.pop().unwrap();
    killed.0.kill().unwrap();
    killed.0.wait().unwrap();
    let start = Instant::now();
    loop {
        let page = dom(&browser, profile.path(), &url);
        if member_row(&page, "web-c").is_some_and(|r| r.contains(">dead<")) {
            eprintln!(
                "web-c shown dead {:.1} s after kill -9",
                start.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "web-c not shown dead 30 s after kill -9:\n{page}"
        );
    }
}

/// Where a screenshot goes: `target/` of this checkout (or `CARGO_TARGET_DIR`).
fn shot(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
        PathBuf::from,
    );
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Under `--require-token-for-reads` the page asks for the token, and
/// `#token=...` in the address (which never reaches the server) passes it.
#[test]
fn web_view_asks_for_the_token_when_reads_need_it() {
    let Some(browser) = browser() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (node, _, log) = spawn_node_logged(
        dir.path(),
        &[
            "--name",
            "locked",
            "--http-listen",
            "127.0.0.1:0",
            "--admin-token",
            "s3cret",
            "--require-token-for-reads",
        ],
        &[],
    );
    let _node = Killed(node);
    let http = http_address(&log);
    let page = dom(&browser, profile.path(), &format!("http://{http}/"));
    let login = page.split("id=\"login\"").nth(1).unwrap_or_default();
    assert!(login.contains("display: block"), "no token prompt:\n{page}");
    assert!(
        !page.contains("data-members="),
        "members shown without the token:\n{page}"
    );
    let page = dom(
        &browser,
        profile.path(),
        &format!("http://{http}/#token=s3cret"),
    );
    assert!(
        page.contains("data-members=\"1\""),
        "not shown with the token:\n{page}"
    );
    assert!(member_row(&page, "locked").is_some(), "{page}");
}
