//! `keyward run`: secrets reach the child's environment and nothing else
//! (argv, disk, logs); signals pass through; exit codes; `--watch` restarts
//! on a new version; `KEYWARD_*` scrubbed; a short-lived token for the child.

use crate::harness::*;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DUMP: &str = "import os, sys, json; print(json.dumps({'env': dict(os.environ), 'argv': sys.argv}))";

fn run(s: &Server, token: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["run"];
    all.extend_from_slice(args);
    s.cli(Some(token), &all, None)
}

/// Every file under `dir`, read as bytes: none may hold `needle`.
fn assert_on_no_disk(dir: &Path, needle: &str) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                assert!(!String::from_utf8_lossy(&bytes).contains(needle), "{} holds the secret", p.display());
            }
        }
    }
}

#[test]
fn secrets_reach_the_environment_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    let pw = format!("pw-{}", std::process::id() * 7919);
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": pw, "user": "bot", "api-key": "k1"})).0, 200);

    let o = run(
        &s,
        &admin,
        &[
            "--env",
            "DB_PASSWORD=apps/db#password",
            "--env-from",
            "apps/db",
            "--prefix",
            "DB_",
            "--",
            "python3",
            "-c",
            DUMP,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out: Value = serde_json::from_slice(&o.stdout).unwrap();
    let env = &out["env"];
    assert_eq!(env["DB_PASSWORD"], pw.as_str());
    assert_eq!((env["DB_USER"].clone(), env["DB_API_KEY"].clone()), (json!("bot"), json!("k1")));
    for v in ["KEYWARD_TOKEN", "KEYWARD_ADDR"] {
        assert!(env.get(v).is_none(), "{v} reached the command");
    }
    assert!(!out["argv"].to_string().contains(&pw), "the secret is in argv");
    assert!(!stderr(&o).contains(&pw));
    assert!(!s.log_text().contains(&pw), "the secret reached the server log");
    assert_on_no_disk(dir.path(), &pw);

    // An explicit --env wins over --env-from for the same variable.
    let o = run(
        &s,
        &admin,
        &["--env-from", "apps/db", "--prefix", "DB_", "--env", "DB_USER=apps/db#password", "--", "python3", "-c", DUMP],
    );
    let env = serde_json::from_slice::<Value>(&o.stdout).unwrap()["env"].clone();
    assert_eq!(env["DB_USER"], pw.as_str());

    // Kept on purpose.
    let o =
        run(&s, &admin, &["--env", "P=apps/db#password", "--keep-env", "KEYWARD_ADDR", "--", "python3", "-c", DUMP]);
    let env = serde_json::from_slice::<Value>(&o.stdout).unwrap()["env"].clone();
    assert_eq!(env["KEYWARD_ADDR"], s.addr.as_str());
    assert!(env.get("KEYWARD_TOKEN").is_none());

    // A short-lived token of the child's own, never the long-lived key.
    let o = run(&s, &admin, &["--env", "P=apps/db#password", "--token-ttl", "1m", "--", "python3", "-c", DUMP]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let env = serde_json::from_slice::<Value>(&o.stdout).unwrap()["env"].clone();
    let child_token = env["KEYWARD_TOKEN"].as_str().expect("a token for the child").to_string();
    assert_ne!(child_token, admin);
    assert_eq!(env["KEYWARD_ADDR"], s.addr.as_str());
    assert_eq!(s.http("GET", "/v1/secrets/apps/db", Some(&child_token), None).0, 200, "the child's token works");
}

#[test]
fn exit_codes_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "x"})).0, 200);
    let e = ["--env", "P=apps/db#password", "--"];
    let code = |args: &[&str]| {
        let all: Vec<&str> = e.iter().chain(args).copied().collect();
        run(&s, &admin, &all)
    };
    assert_eq!(code(&["sh", "-c", "exit 7"]).status.code(), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -9 $$"]).status.code(), Some(137), "128 + SIGKILL");
    let o = code(&["/nonexistent/bot"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("cannot start /nonexistent/bot"), "{}", stderr(&o));

    for (args, says) in [
        (vec!["--env", "P=apps/db#nope", "--", "true"], "apps/db has no field \"nope\""),
        (vec!["--env", "P=apps/none#x", "--", "true"], "no secret at apps/none"),
        (vec!["--env", "P=apps/db", "--", "true"], "name the field after a '#'"),
        (vec!["--env", "1P=apps/db#password", "--", "true"], "is not a variable name"),
        (vec!["--", "true"], "nothing to put in the environment"),
    ] {
        let o = run(&s, &admin, &args);
        assert_eq!(o.status.code(), Some(125), "{args:?}");
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
    }

    // An exchange account's secret fields: refused, pointing at the proxy.
    exchange_account(
        &s,
        "binance-main",
        "binance",
        json!({"api_key": "AK", "api_secret": "SK"}),
        "https://api.binance.com",
    );
    let (_, bot) = create_key(&s, json!({"name": "bot", "scopes": ["secret:read:*"]}));
    for args in [
        vec!["--env", "S=exchanges/binance-main#api_secret", "--", "true"],
        vec!["--env-from", "exchanges/binance-main", "--", "true"],
    ] {
        let o = run(&s, &bot, &args);
        assert_eq!(o.status.code(), Some(125));
        assert!(stderr(&o).contains("proxy") && stderr(&o).contains("api_secret"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("SK"));
    }
}

/// `keyward run` as a child of the test, its stdout lines on a channel.
struct Running {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl Running {
    fn start(s: &Server, token: &str, args: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .arg("run")
            .args(args)
            .env("KEYWARD_ADDR", &s.addr)
            .env("KEYWARD_TOKEN", token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        Running { child, lines }
    }

    fn wait_for(&self, want: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let done = l.contains(want);
                seen.push(l);
                if done {
                    return seen;
                }
            }
        }
        panic!("no {want:?} from the command; saw {seen:?}");
    }

    fn signal(&self, sig: &str) {
        assert!(
            Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap().success()
        );
    }

    fn code(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("keyward run did not exit");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HANDLER: &str = "
import signal, sys, time
def h(n, f):
    print(f'got {n}', flush=True)
    sys.exit(100 + n)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, h)
print('ready', flush=True)
while True:
    time.sleep(0.05)
";

#[test]
fn each_signal_reaches_the_command_and_its_code_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "x"})).0, 200);
    for (sig, n) in [("INT", 2), ("TERM", 15), ("HUP", 1), ("QUIT", 3)] {
        let mut r = Running::start(&s, &admin, &["--env", "P=apps/db#password", "--", "python3", "-c", HANDLER]);
        r.wait_for("ready");
        r.signal(sig);
        r.wait_for(&format!("got {n}"));
        assert_eq!(r.code(), Some(100 + n), "SIG{sig}");
    }
    // A command started through a shell: the signal reaches the whole group.
    let mut r = Running::start(
        &s,
        &admin,
        &["--env", "P=apps/db#password", "--", "sh", "-c", "python3 -c \"$1\"; exit $?", "sh", HANDLER],
    );
    r.wait_for("ready");
    r.signal("TERM");
    r.wait_for("got 15");
    assert!(r.code().is_some());
    // A command that does not catch TERM dies of it: 128 + 15.
    let mut r =
        Running::start(&s, &admin, &["--env", "P=apps/db#password", "--", "sh", "-c", "echo ready; exec sleep 30"]);
    r.wait_for("ready");
    r.signal("TERM");
    assert_eq!(r.code(), Some(143));
}

#[test]
fn watch_restarts_the_command_on_a_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path(), &[]);
    let admin = s.admin().to_string();
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "first"})).0, 200);
    let script = "
import os, signal, sys, time
def stop(n, f):
    print('stopping', flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print('value=' + os.environ['P'], flush=True)
while True:
    time.sleep(0.05)
";
    let args = [
        "--env",
        "P=apps/db#password",
        "--watch",
        "--watch-interval",
        "200ms",
        "--grace",
        "3s",
        "--",
        "python3",
        "-c",
        script,
    ];
    let mut r = Running::start(&s, &admin, &args);
    r.wait_for("value=first");
    assert_eq!(put(&s, &admin, "apps/db", json!({"password": "second"})).0, 200);
    let seen = r.wait_for("value=second");
    assert!(seen.iter().any(|l| l == "stopping"), "the old command was stopped gracefully first: {seen:?}");
    // Another unrelated write: no restart.
    assert_eq!(put(&s, &admin, "apps/other", json!({"x": "y"})).0, 200);
    std::thread::sleep(Duration::from_millis(700));
    assert!(r.lines.try_recv().is_err(), "restarted without a new version");
    r.signal("TERM");
    assert_eq!(r.code(), Some(0));
}
