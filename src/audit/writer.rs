//! The one writer per node. Callers hand events to a queue and wait; the
//! writer takes everything waiting (up to a batch), links it onto the
//! node's chain and commits it in one transaction (group commit), then
//! answers every caller. If the commit fails, every caller of that batch
//! gets `Unavailable` and the writer re-reads its head from the database
//! before the next batch, so the chain never forks.
//!
//! Rows of the requests being audited (a token, an idempotency record) can
//! ride in the same transaction ([`AuditSink::commit_joined`], ADR 0008):
//! a request then waits for one group commit for its rows and its events.
//!
//! A node may run several writers side by side (`lanes`), each with a chain
//! of its own (`<node>`, `<node>#1`, `<node>#2`, ...), so that while one
//! lane waits for its commit to become durable the next can already write:
//! on PostgreSQL commits then overlap instead of queueing behind each other.
//! A request's events always go to one lane, in one commit.
//!
//! Two processes must not share a node id; if they do, the primary key on
//! (node, seq) refuses the second writer's records rather than fork the chain.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::record::{AuditRecord, GENESIS_HASH};
use super::seal::{Checkpoint, CheckpointSealer};
use super::syslog::SyslogForwarder;
use super::{AuditError, AuditEvent, AuditSink, Outcome};
use crate::clock::Clock;
use crate::store::AuditStore;
use crate::store::joined::{JoinedOutcome, JoinedRows};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Most events in one transaction.
    pub max_batch: usize,
    /// Events waiting for the writer before callers are told `Unavailable`.
    pub queue: usize,
    /// A checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or this long after the last one, whichever comes first.
    pub checkpoint_interval: Duration,
    /// Writers side by side, each with its own chain (at least one).
    pub lanes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            max_batch: 512,
            queue: 8192,
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(60),
            lanes: 1,
        }
    }
}

type Ack = oneshot::Sender<Result<(), AuditError>>;
type JoinedAck = oneshot::Sender<Result<JoinedOutcome, AuditError>>;

enum Command {
    /// One request's events, committed together.
    Record(Vec<AuditEvent>, Ack),
    /// One request's rows and events, committed together or not at all.
    Joined(Box<JoinedRows>, Vec<AuditEvent>, JoinedAck),
    /// Seals a checkpoint at the current head (if it moved) and answers.
    Checkpoint(Ack),
    /// Ends the task once everything before it is written; later events
    /// are refused (`Unavailable`).
    Shutdown(oneshot::Sender<()>),
}

/// The handle callers use; cheap to clone. Implements [`AuditSink`].
#[derive(Clone)]
pub struct AuditWriter {
    /// One queue per lane.
    lanes: Arc<[mpsc::Sender<Command>]>,
    /// Round robin over the lanes.
    next: Arc<AtomicUsize>,
    clock: Arc<dyn Clock>,
}

/// The writer tasks; `stop` records the end of logging and a last checkpoint.
pub struct WriterTask {
    handle: AuditWriter,
    tasks: Vec<JoinHandle<()>>,
}

/// The chain a lane writes: the node's own id for the first, `<node>#<n>`
/// for the others (`#` is not allowed in a configured node id).
fn lane_chain_id(node_id: &str, lane: usize) -> String {
    if lane == 0 {
        node_id.to_owned()
    } else {
        format!("{node_id}#{lane}")
    }
}

impl AuditWriter {
    /// Starts the writer's lanes for `node_id` and records `audit.start` on
    /// each: if that cannot be made durable, the service must not start.
    pub async fn start(
        store: Arc<dyn AuditStore>,
        sealer: Arc<dyn CheckpointSealer>,
        clock: Arc<dyn Clock>,
        node_id: &str,
        config: WriterConfig,
    ) -> Result<WriterTask, AuditError> {
        Self::start_forwarding(store, sealer, clock, node_id, config, None).await
    }

    /// As [`AuditWriter::start`], also handing every committed record to a
    /// syslog forwarder (which never holds the writer up).
    pub async fn start_forwarding(
        store: Arc<dyn AuditStore>,
        sealer: Arc<dyn CheckpointSealer>,
        clock: Arc<dyn Clock>,
        node_id: &str,
        config: WriterConfig,
        forward: Option<SyslogForwarder>,
    ) -> Result<WriterTask, AuditError> {
        let lanes = config.lanes.max(1);
        let mut senders = Vec::with_capacity(lanes);
        let mut tasks = Vec::with_capacity(lanes);
        for lane in 0..lanes {
            let (commands, receiver) = mpsc::channel(config.queue.max(1));
            let chain = Chain {
                store: store.clone(),
                sealer: sealer.clone(),
                clock: clock.clone(),
                node_id: lane_chain_id(node_id, lane).into(),
                config,
                head: None,
                since_checkpoint: 0,
                last_checkpoint: Instant::now(),
                forward: forward.clone(),
            };
            tasks.push(tokio::spawn(chain.run(receiver)));
            senders.push(commands);
        }
        let handle = AuditWriter {
            lanes: senders.into(),
            next: Arc::default(),
            clock,
        };
        let started = WriterTask { handle, tasks };
        // Every chain starts with the start of logging.
        for lane in 0..lanes {
            let event =
                AuditEvent::system("audit.start", started.handle.clock.now(), Outcome::Success);
            started
                .handle
                .ask(lane, |ack| Command::Record(vec![event], ack))
                .await?;
        }
        Ok(started)
    }

    /// Seals a checkpoint at the current head of every lane now.
    pub async fn checkpoint(&self) -> Result<(), AuditError> {
        for lane in 0..self.lanes.len() {
            self.ask(lane, Command::Checkpoint).await?;
        }
        Ok(())
    }

    /// The lane the next request's events go to.
    fn pick(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()
    }

    /// Sends a command to one lane and waits for its answer.
    async fn ask<T>(
        &self,
        lane: usize,
        command: impl FnOnce(oneshot::Sender<Result<T, AuditError>>) -> Command,
    ) -> Result<T, AuditError> {
        let (ack, answer) = oneshot::channel();
        self.lanes[lane]
            .send(command(ack))
            .await
            .map_err(|_| AuditError::Unavailable)?;
        answer.await.map_err(|_| AuditError::Unavailable)?
    }
}

#[async_trait]
impl AuditSink for AuditWriter {
    async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.record_all(vec![event]).await
    }

    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        self.ask(self.pick(), |ack| Command::Record(events, ack))
            .await
    }

    fn joins_rows(&self) -> bool {
        true
    }

    async fn commit_joined(
        &self,
        rows: JoinedRows,
        events: Vec<AuditEvent>,
    ) -> Result<JoinedOutcome, AuditError> {
        self.ask(self.pick(), |ack| {
            Command::Joined(Box::new(rows), events, ack)
        })
        .await
    }
}

impl WriterTask {
    pub fn handle(&self) -> AuditWriter {
        self.handle.clone()
    }

    /// Records `audit.stop` on every lane, seals the heads and ends the
    /// tasks; handles still held elsewhere get `Unavailable` from then on.
    /// Stopping is best effort: a failure is logged.
    pub async fn stop(self) {
        let handle = &self.handle;
        for lane in 0..handle.lanes.len() {
            let event = AuditEvent::system("audit.stop", handle.clock.now(), Outcome::Success);
            let recorded = handle
                .ask(lane, |ack| Command::Record(vec![event], ack))
                .await;
            if recorded.is_err() || handle.ask(lane, Command::Checkpoint).await.is_err() {
                tracing::error!("the audit trail could not record its stop");
            }
            let (done, finished) = oneshot::channel();
            if handle.lanes[lane]
                .send(Command::Shutdown(done))
                .await
                .is_ok()
            {
                let _ = finished.await;
            }
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Answers a command the writer will not carry out.
fn refuse(command: Command) {
    match command {
        Command::Record(_, ack) | Command::Checkpoint(ack) => {
            let _ = ack.send(Err(AuditError::Unavailable));
        }
        Command::Joined(_, _, ack) => {
            let _ = ack.send(Err(AuditError::Unavailable));
        }
        Command::Shutdown(done) => {
            let _ = done.send(());
        }
    }
}

/// One request's part of a batch.
struct Entry {
    rows: Option<JoinedRows>,
    events: Vec<AuditEvent>,
}

/// Whom to answer once the batch is committed.
enum Answer {
    Plain(Ack),
    /// The caller of the entry at this index.
    Joined(usize, JoinedAck),
}

/// The state the writer task owns.
struct Chain {
    store: Arc<dyn AuditStore>,
    sealer: Arc<dyn CheckpointSealer>,
    clock: Arc<dyn Clock>,
    node_id: Arc<str>,
    config: WriterConfig,
    /// The last committed record; `None` means "read it from the database".
    head: Option<(u64, [u8; 32])>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    forward: Option<SyslogForwarder>,
}

impl Chain {
    async fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(self.config.checkpoint_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = receiver.recv() => {
                    let Some(command) = command else { break };
                    let mut batch = vec![command];
                    while batch.len() < self.config.max_batch {
                        match receiver.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    if let Some(done) = self.process(batch).await {
                        receiver.close();
                        // Anything that got in before the close is refused.
                        while let Ok(late) = receiver.try_recv() {
                            refuse(late);
                        }
                        let _ = done.send(());
                        break;
                    }
                }
                _ = tick.tick() => {
                    if self.since_checkpoint > 0
                        && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval
                        && self.commit(Vec::new(), true).await.is_err()
                    {
                        tracing::error!("the audit trail could not seal a checkpoint");
                    }
                }
            }
        }
    }

    /// Commits a batch and answers it; returns the shutdown request, if
    /// the batch held one (what follows it in the batch is refused).
    async fn process(&mut self, batch: Vec<Command>) -> Option<oneshot::Sender<()>> {
        let mut entries = Vec::with_capacity(batch.len());
        let mut answers = Vec::with_capacity(batch.len());
        let mut seal = false;
        let mut shutdown = None;
        for command in batch {
            match command {
                _ if shutdown.is_some() => refuse(command),
                Command::Record(events, ack) => {
                    answers.push(Answer::Plain(ack));
                    entries.push(Entry { rows: None, events });
                }
                Command::Joined(rows, events, ack) => {
                    answers.push(Answer::Joined(entries.len(), ack));
                    entries.push(Entry {
                        rows: Some(*rows),
                        events,
                    });
                }
                Command::Checkpoint(ack) => {
                    seal = true;
                    answers.push(Answer::Plain(ack));
                }
                Command::Shutdown(done) => shutdown = Some(done),
            }
        }
        let result = self.commit(entries, seal).await;
        if result.is_err() {
            tracing::error!("audit events could not be committed; their requests fail");
        }
        for answer in answers {
            // A caller that gave up waiting is no one's concern here.
            match answer {
                Answer::Plain(ack) => {
                    let _ = ack.send(
                        result
                            .as_ref()
                            .map(|_| ())
                            .map_err(|_| AuditError::Unavailable),
                    );
                }
                Answer::Joined(index, ack) => {
                    let _ = ack.send(match &result {
                        Ok(outcomes) => Ok(outcomes[index]),
                        Err(_) => Err(AuditError::Unavailable),
                    });
                }
            }
        }
        shutdown
    }

    /// Writes the entries' rows, links the events of those whose rows went
    /// in and commits it all, sealing a checkpoint when one is due or
    /// `force_seal` asks for it. Returns each entry's outcome. On failure
    /// nothing of the batch is kept.
    async fn commit(
        &mut self,
        entries: Vec<Entry>,
        force_seal: bool,
    ) -> Result<Vec<JoinedOutcome>, AuditError> {
        let (mut seq, mut prev) = match self.head {
            Some(head) => head,
            None => self.resume().await?,
        };
        let mut outcomes = vec![JoinedOutcome::Written; entries.len()];
        let joined = entries
            .iter()
            .any(|e| e.rows.as_ref().is_some_and(|r| !r.is_empty()));
        // Rows first: only the events of requests whose rows went in are
        // linked onto the chain.
        let tx = if joined {
            let mut tx = self
                .store
                .begin_joined()
                .await
                .map_err(|e| self.failed(&e))?;
            let with_rows: Vec<(usize, &JoinedRows)> = entries
                .iter()
                .enumerate()
                .filter_map(|(i, e)| e.rows.as_ref().map(|r| (i, r)))
                .collect();
            let units: Vec<&JoinedRows> = with_rows.iter().map(|(_, r)| *r).collect();
            let written = tx.insert_rows(&units).await.map_err(|e| self.failed(&e))?;
            for ((i, _), outcome) in with_rows.iter().zip(written) {
                outcomes[*i] = outcome;
            }
            Some(tx)
        } else {
            None
        };
        let records: Vec<AuditRecord> = entries
            .into_iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| **outcome == JoinedOutcome::Written)
            .flat_map(|(entry, _)| entry.events)
            .map(|event| {
                seq += 1;
                let record = AuditRecord::link(&self.node_id, seq, prev, event);
                prev = record.record_hash;
                record
            })
            .collect();
        let pending = self.since_checkpoint + records.len() as u64;
        let due = pending >= self.config.checkpoint_every
            || (force_seal && pending > 0)
            || (pending > 0 && self.last_checkpoint.elapsed() >= self.config.checkpoint_interval);
        let checkpoint = if due && seq > 0 {
            let at_us = self.clock.now().timestamp_micros();
            let sealed = Checkpoint::seal(self.sealer.as_ref(), &self.node_id, seq, prev, at_us)
                .await
                .map_err(|_| AuditError::Unavailable)?;
            Some(sealed)
        } else {
            None
        };
        let written = match tx {
            Some(mut tx) => match tx.append_audit(&records, checkpoint.as_ref()).await {
                Ok(()) => tx.commit().await,
                Err(e) => Err(e),
            },
            None if records.is_empty() && checkpoint.is_none() => return Ok(outcomes),
            None => self.store.append_audit(&records, checkpoint.as_ref()).await,
        };
        if let Err(error) = written {
            return Err(self.failed(&error));
        }
        self.head = Some((seq, prev));
        if let Some(forward) = &self.forward {
            forward.offer(&records);
        }
        if checkpoint.is_some() {
            self.since_checkpoint = 0;
            self.last_checkpoint = Instant::now();
        } else {
            self.since_checkpoint = pending;
        }
        Ok(outcomes)
    }

    /// A write that failed: the commit may or may not have happened, so the
    /// head is read from the database next time.
    fn failed(&mut self, error: &crate::store::StoreError) -> AuditError {
        tracing::error!(%error, "audit append failed");
        self.head = None;
        AuditError::Unavailable
    }

    /// Reads where this node's chain ends.
    async fn resume(&mut self) -> Result<(u64, [u8; 32]), AuditError> {
        let head = self
            .store
            .audit_head(&self.node_id)
            .await
            .map_err(|error| {
                tracing::error!(%error, "cannot read the audit chain head");
                AuditError::Unavailable
            })?;
        let last = head.last.unwrap_or((0, GENESIS_HASH));
        self.since_checkpoint = last.0 - head.last_checkpoint_seq.unwrap_or(0).min(last.0);
        self.head = Some(last);
        Ok(last)
    }
}
