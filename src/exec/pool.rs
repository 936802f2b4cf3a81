//! Worker slots: one thread per slot, each with at most one live worker, started lazily.
//!
//! The scheduler hands a [`Job`] to a specific slot (so a cell that needs values kept in one
//! worker's memory runs there) and receives [`Completion`]s on one channel. A worker that
//! crashes or times out is dropped; the slot starts a fresh one for its next job and bumps its
//! generation, so the scheduler knows the resident values of that slot are gone.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::{ExecRequest, ExecResult, Hello};
use super::{Error, Worker};

/// One cell to run.
pub struct Job {
    /// The cell's index among code cells.
    pub cell: usize,
    /// The request (inputs refer to `blobs` by position).
    pub request: ExecRequest,
    /// Input pickles.
    pub blobs: Vec<Arc<Vec<u8>>>,
    /// Per-cell timeout.
    pub timeout: Option<Duration>,
}

/// A finished job.
pub struct Completion {
    /// The slot that ran it.
    pub slot: usize,
    /// The worker generation of that slot when the job ran.
    pub generation: u64,
    /// The cell.
    pub cell: usize,
    /// When the cell was sent to the worker.
    pub started: Instant,
    /// When the result arrived.
    pub finished: Instant,
    /// The worker's hello, when this job started a new worker.
    pub hello: Option<Hello>,
    /// The result and its blobs, or why there is none.
    pub outcome: Result<(ExecResult, Vec<Vec<u8>>), Error>,
}

enum Message {
    Run(Box<Job>),
    Drop(Vec<String>),
    /// Start the slot's worker now, so the first cell sent to it does not wait for Python, and
    /// have it import these packages while it waits.
    Warm(Vec<String>),
}

/// A fixed number of worker slots.
pub struct Pool {
    senders: Vec<Sender<Message>>,
    threads: Vec<JoinHandle<()>>,
    /// Completions, in the order they happen.
    pub completions: Receiver<Completion>,
}

impl Pool {
    /// A pool of `slots` slots running `python`. No process starts until a job arrives, except
    /// `started`, already running workers that the first slots use (one each; extra ones are
    /// stopped).
    pub fn new(
        python: PathBuf,
        memory_limit: Option<u64>,
        slots: usize,
        started: Vec<Worker>,
    ) -> Pool {
        let mut started = started.into_iter();
        let (done, completions) = mpsc::channel();
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for slot in 0..slots.max(1) {
            let (sender, receiver) = mpsc::channel::<Message>();
            let done = done.clone();
            let python = python.clone();
            let worker = started.next();
            threads.push(std::thread::spawn(move || {
                slot_loop(slot, &python, memory_limit, worker, &receiver, &done)
            }));
            senders.push(sender);
        }
        Pool {
            senders,
            threads,
            completions,
        }
    }

    /// The number of slots.
    pub fn slots(&self) -> usize {
        self.senders.len()
    }

    /// Sends a job to a slot (which must be idle).
    pub fn submit(&self, slot: usize, job: Job) {
        if let Some(sender) = self.senders.get(slot) {
            let _ = sender.send(Message::Run(Box::new(job)));
        }
    }

    /// Starts the workers of the first `slots` slots in the background; those but the first
    /// (which gets the first cell at once) also import `preload` while they wait for a cell.
    pub fn warm(&self, slots: usize, preload: &[String]) {
        for (slot, sender) in self.senders.iter().take(slots).enumerate() {
            let packages = if slot == 0 {
                Vec::new()
            } else {
                preload.to_vec()
            };
            let _ = sender.send(Message::Warm(packages));
        }
    }

    /// Asks a slot's worker to forget resident values.
    pub fn drop_resident(&self, slot: usize, ids: Vec<String>) {
        if let Some(sender) = self.senders.get(slot) {
            let _ = sender.send(Message::Drop(ids));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.senders.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn slot_loop(
    slot: usize,
    python: &std::path::Path,
    memory_limit: Option<u64>,
    mut worker: Option<Worker>,
    jobs: &Receiver<Message>,
    done: &Sender<Completion>,
) {
    let mut generation = u64::from(worker.is_some());
    let mut warm_hello = None;
    while let Ok(message) = jobs.recv() {
        let job = match message {
            Message::Run(job) => *job,
            Message::Drop(ids) => {
                if let Some(worker) = worker.as_mut() {
                    worker.drop_resident(&ids);
                }
                continue;
            }
            Message::Warm(packages) => {
                if worker.is_none() {
                    // A failure shows again, with its message, when a job comes.
                    if let Ok(fresh) = Worker::spawn(python, memory_limit) {
                        generation += 1;
                        warm_hello = Some(fresh.hello.clone());
                        worker = Some(fresh);
                    }
                }
                if let Some(live) = worker.as_mut()
                    && !packages.is_empty()
                {
                    live.preload(&packages);
                }
                continue;
            }
        };
        let started = Instant::now();
        let mut hello = warm_hello.take();
        if worker.is_none() {
            match Worker::spawn(python, memory_limit) {
                Ok(fresh) => {
                    generation += 1;
                    hello = Some(fresh.hello.clone());
                    worker = Some(fresh);
                }
                Err(err) => {
                    let _ = done.send(Completion {
                        slot,
                        generation,
                        cell: job.cell,
                        started,
                        finished: Instant::now(),
                        hello: None,
                        outcome: Err(err),
                    });
                    continue;
                }
            }
        }
        let Some(live) = worker.as_mut() else {
            continue;
        };
        let blobs: Vec<&[u8]> = job.blobs.iter().map(|blob| blob.as_slice()).collect();
        let started = Instant::now();
        let outcome = live.exec(&job.request, &blobs, job.timeout);
        let finished = Instant::now();
        if outcome.is_err() {
            // Crashed, timed out or confused: never reuse it.
            if let Some(mut dead) = worker.take() {
                dead.kill();
            }
        }
        let completion = Completion {
            slot,
            generation,
            cell: job.cell,
            started,
            finished,
            hello,
            outcome,
        };
        if done.send(completion).is_err() {
            break;
        }
    }
}
