//! One worker: a long-lived process of the user's Python running the embedded runner.
//!
//! The runner's source is sent over the worker's stdin right after start-up (so no file has to
//! exist on disk and no argument length limit applies); then the worker greets with `hello`
//! and serves `exec` requests. A reader thread turns the worker's stdout into frames, so a
//! request can wait with a timeout; a second thread keeps the tail of its stderr for crash
//! reports.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Error;
use super::protocol::{
    ExecRequest, ExecResult, Frame, Hello, PROTOCOL_VERSION, read_frame, write_frame,
};

/// The runner, embedded in the binary.
const RUNNER: &str = include_str!("python/runner.py");

/// Reads the runner's source from stdin and runs it as `__main__`. Compiling it costs ~25 ms, so
/// the code object is kept (marshal, per interpreter) in `NBMEMO_RUNNER_CACHE` when the parent
/// names a folder there (one folder per runner source hash).
const BOOTSTRAP: &str = r#"import sys, os, marshal
n = int.from_bytes(sys.stdin.buffer.read(8), 'little')
src = sys.stdin.buffer.read(n)
d = os.environ.pop('NBMEMO_RUNNER_CACHE', '')
p = os.path.join(d, 'runner-%s.marshal' % (sys.implementation.cache_tag or sys.version.split()[0])) if d else ''
code = None
if p:
    try:
        with open(p, 'rb') as f:
            code = marshal.load(f)
    except Exception:
        code = None
if code is None:
    code = compile(src, '<nbmemo runner>', 'exec')
    if p:
        try:
            t = '%s.%d.tmp' % (p, os.getpid())
            with open(t, 'wb') as f:
                marshal.dump(code, f)
            os.replace(t, p)
        except Exception:
            pass
exec(code, {'__name__': '__main__', '__builtins__': __builtins__})
"#;

/// `<user cache>/nbmemo/runner-<hash of the runner source>/`, created if needed; `None` when
/// there is no user cache folder or it cannot be created (the runner is then compiled each time).
fn runner_cache_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
    let hash = crate::hash::ContentHash::of(RUNNER.as_bytes()).short(16);
    let dir = base.join("nbmemo").join(format!("runner-{hash}"));
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir)
}

/// How long a worker may take to start and greet.
const HELLO_TIMEOUT: Duration = Duration::from_secs(60);

const STDERR_TAIL: usize = 40;

/// A running worker process.
pub struct Worker {
    child: Child,
    requests: ChildStdin,
    responses: Receiver<std::io::Result<Frame>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// What the worker said about itself.
    pub hello: Hello,
}

impl Worker {
    /// Starts a worker with `python`; `memory_limit` caps its address space (the runner sets
    /// `RLIMIT_AS` from `NBMEMO_MEMORY_LIMIT`, which is set or removed here accordingly).
    pub fn spawn(python: &Path, memory_limit: Option<u64>) -> Result<Worker, Error> {
        let mut command = Command::new(python);
        match memory_limit {
            Some(bytes) => command.env(crate::env_vars::NBMEMO_MEMORY_LIMIT, bytes.to_string()),
            None => command.env_remove(crate::env_vars::NBMEMO_MEMORY_LIMIT),
        };
        if let Some(dir) = runner_cache_dir() {
            command.env("NBMEMO_RUNNER_CACHE", dir);
        }
        // A process group of its own: the terminal's Ctrl-C goes to nbmemo, which stops the
        // workers itself (`interrupt`), instead of raising KeyboardInterrupt in their cells.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command
            .args(["-u", "-c", BOOTSTRAP])
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONUNBUFFERED", "1")
            .env("MPLBACKEND", "Agg")
            .env("NBMEMO_WORKER", "1")
            .env_remove("PYTHONSTARTUP")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                python: python.to_path_buf(),
                source,
            })?;
        super::interrupt::register(child.id());
        if super::interrupt::interrupted() {
            super::interrupt::unregister(child.id());
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Crashed("nbmemo was interrupted".into()));
        }
        let (Some(mut requests), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill();
            return Err(Error::Protocol(
                "the worker's pipes could not be opened".into(),
            ));
        };
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                tracing::debug!(target: "nbmemo::worker", "{line}");
                if let Ok(mut tail) = tail.lock() {
                    if tail.len() == STDERR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            }
        });
        let (sender, responses) = mpsc::channel();
        std::thread::spawn(move || {
            let mut stdout = BufReader::with_capacity(1 << 16, stdout);
            loop {
                match read_frame(&mut stdout) {
                    Ok(Some(frame)) => {
                        if sender.send(Ok(frame)).is_err() {
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let _ = sender.send(Err(err));
                        break;
                    }
                }
            }
        });
        let send_runner = requests
            .write_all(&(RUNNER.len() as u64).to_le_bytes())
            .and_then(|()| requests.write_all(RUNNER.as_bytes()))
            .and_then(|()| requests.flush());
        let mut worker = Worker {
            child,
            requests,
            responses,
            stderr_tail,
            hello: Hello {
                protocol: 0,
                pid: 0,
                python: super::protocol::PythonInfo {
                    implementation: String::new(),
                    version: String::new(),
                    platform: String::new(),
                    cache_tag: None,
                },
                cloudpickle: None,
                ipython: None,
                error: None,
                executable: None,
                site_dirs: Vec::new(),
            },
        };
        if send_runner.is_err() {
            return Err(Error::Handshake {
                python: python.to_path_buf(),
                detail: worker.death_report(),
            });
        }
        let frame = match worker.responses.recv_timeout(HELLO_TIMEOUT) {
            Ok(Ok(frame)) => frame,
            Ok(Err(err)) => {
                return Err(Error::Handshake {
                    python: python.to_path_buf(),
                    detail: format!("{err}; {}", worker.death_report()),
                });
            }
            Err(_) => {
                return Err(Error::Handshake {
                    python: python.to_path_buf(),
                    detail: worker.death_report(),
                });
            }
        };
        let hello: Hello =
            serde_json::from_slice(&frame.header).map_err(|err| Error::Handshake {
                python: python.to_path_buf(),
                detail: format!("unreadable hello: {err}"),
            })?;
        if hello.cloudpickle.is_none() {
            worker.kill();
            return Err(Error::NoCloudpickle {
                python: python.to_path_buf(),
                detail: hello.error.unwrap_or_default(),
            });
        }
        if hello.protocol != PROTOCOL_VERSION {
            worker.kill();
            return Err(Error::Handshake {
                python: python.to_path_buf(),
                detail: format!(
                    "the runner speaks protocol {}, expected {PROTOCOL_VERSION}",
                    hello.protocol
                ),
            });
        }
        worker.hello = hello;
        Ok(worker)
    }

    /// Runs one cell. A worker that dies or exceeds `timeout` is killed and the error says why;
    /// the caller must not reuse it.
    pub fn exec(
        &mut self,
        request: &ExecRequest,
        blobs: &[&[u8]],
        timeout: Option<Duration>,
    ) -> Result<(ExecResult, Vec<Vec<u8>>), Error> {
        let header = serde_json::to_vec(request).map_err(|err| Error::Protocol(err.to_string()))?;
        if write_frame(&mut self.requests, &header, blobs).is_err() {
            return Err(Error::Crashed(self.death_report()));
        }
        let received = match timeout {
            Some(timeout) => self.responses.recv_timeout(timeout),
            None => self
                .responses
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Ok(frame)) => {
                let result: ExecResult = serde_json::from_slice(&frame.header)
                    .map_err(|err| Error::Protocol(format!("unreadable result: {err}")))?;
                Ok((result, frame.blobs))
            }
            Ok(Err(err)) => {
                self.kill();
                Err(Error::Protocol(err.to_string()))
            }
            Err(RecvTimeoutError::Timeout) => {
                self.kill();
                Err(Error::Timeout(timeout.unwrap_or_default()))
            }
            Err(RecvTimeoutError::Disconnected) => Err(Error::Crashed(self.death_report())),
        }
    }

    /// Has the worker import `packages` before its next request (it answers nothing; one that
    /// fails to import is left for the cell that imports it to report).
    pub fn preload(&mut self, packages: &[String]) {
        let header = serde_json::json!({"type": "preload", "packages": packages}).to_string();
        let _ = write_frame(&mut self.requests, header.as_bytes(), &[]);
    }

    /// Forgets resident values.
    pub fn drop_resident(&mut self, ids: &[String]) {
        let header = serde_json::json!({"type": "drop", "resident": ids}).to_string();
        let _ = write_frame(&mut self.requests, header.as_bytes(), &[]);
    }

    /// Kills the process (idempotent).
    pub fn kill(&mut self) {
        // The whole group: processes the cell started go too.
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        super::interrupt::unregister(self.child.id());
    }

    /// Why the worker is gone: its exit status and the tail of its stderr.
    fn death_report(&mut self) -> String {
        // Give the process a moment to finish dying so its status is known.
        let mut status = None;
        for _ in 0..50 {
            if let Ok(Some(exit)) = self.child.try_wait() {
                status = Some(exit);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let how = match status {
            Some(exit) => describe_exit(exit),
            None => {
                self.kill();
                "stopped answering".to_string()
            }
        };
        let tail = self
            .stderr_tail
            .lock()
            .map(|tail| tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        if tail.trim().is_empty() {
            format!("the worker process {how}")
        } else {
            format!("the worker process {how}; its last output:\n{tail}")
        }
    }

    /// The interpreter the worker runs, as it reported it.
    pub fn executable(&self) -> Option<PathBuf> {
        self.hello.executable.as_ref().map(PathBuf::from)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = write_frame(&mut self.requests, br#"{"type":"shutdown"}"#, &[]);
        // A worker busy in a cell does not read: do not wait for it.
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            std::thread::sleep(Duration::from_millis(1));
            if !matches!(self.child.try_wait(), Ok(Some(_))) {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
        super::interrupt::unregister(self.child.id());
    }
}

fn describe_exit(exit: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = exit.signal() {
            let name = match signal {
                6 => " (SIGABRT)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                15 => " (SIGTERM)",
                _ => "",
            };
            return format!("was killed by signal {signal}{name}");
        }
    }
    match exit.code() {
        Some(code) => format!("exited with status {code}"),
        None => "exited".to_string(),
    }
}
