//! Running the service binaries as separate processes in tests: a temporary directory, a
//! process killed (and reaped) when dropped with its output in a log file.

#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test support: each test binary uses part of it, and failing loudly is the point"
)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A directory removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("agentcube-e2e-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running binary, killed (and reaped) when dropped; its output goes to a log file in `dir`.
pub(crate) struct Proc {
    pub(crate) name: &'static str,
    pub(crate) child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `bin` with `args` and `env`, and no other `AGENTCUBE_*` variable: only what the
    /// test gives configures the service.
    pub(crate) fn spawn(
        name: &'static str,
        bin: &str,
        args: &[&str],
        env: &[(&str, &str)],
        dir: &Path,
    ) -> Self {
        let log = dir.join(format!("{name}-{}.log", uuid::Uuid::new_v4()));
        let out = File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = command(bin, args, env)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({bin}): {e}"));
        Self { name, child, log }
    }

    /// The process's output so far (for failure messages).
    pub(crate) fn output(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("---- {} output ----\n{text}", self.name)
    }

    /// The process id.
    pub(crate) fn id(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bin` with `args`, logging at `info`, its stdin closed, and no `AGENTCUBE_*` variable (nor
/// `WORKLOAD_MANAGER_URL`) but those of `env`: only what the test gives configures the service.
pub(crate) fn command(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(bin);
    command
        .args(args)
        .stdin(Stdio::null())
        .env("RUST_LOG", "info");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("AGENTCUBE_") || key == "WORKLOAD_MANAGER_URL" {
            command.env_remove(key.as_ref());
        }
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `bin` (configured as [`command`] does) to its end; its output. A binary still running
/// after [`RUN_TO_END_LIMIT`] (a server that started where it should have refused its
/// configuration) is killed and the test fails, instead of waiting for it forever.
pub(crate) fn run_to_end(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut child = command(bin, args, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    // Read on threads of their own, so that a chatty binary never blocks on a full pipe.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).unwrap();
            }
            bytes
        })
    };
    let stdout = read(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = read(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + RUN_TO_END_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{bin} {args:?} was still running after {RUN_TO_END_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// How long [`run_to_end`] waits for a binary to end.
pub(crate) const RUN_TO_END_LIMIT: Duration = Duration::from_secs(60);

/// The output of every process, for a failure message.
pub(crate) fn outputs<'a>(procs: impl IntoIterator<Item = &'a Proc>) -> String {
    procs
        .into_iter()
        .map(Proc::output)
        .collect::<Vec<_>>()
        .join("\n")
}
