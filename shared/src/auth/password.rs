//! Argon2id password hashing on a fixed pool of worker threads, fed by a bounded queue.
//!
//! Each hash takes 19 MiB and tens of milliseconds of one core, so hashes run on one worker
//! thread per core, outside the async executor: a burst of logins queues for a worker instead
//! of starving the executor. Each worker allocates its 19 MiB of Argon2 memory once and reuses
//! it for every hash it runs, so memory is bounded by the number of workers: allocating it per
//! hash let glibc keep every freed block in the arena of the thread that ran it.
//!
//! The queue holds at most `queue_max` jobs waiting for a worker (`PASSWORD_QUEUE_MAX`, by
//! default [`DEFAULT_QUEUE_PER_WORKER`] per worker): past that, a job is refused at once with
//! [`PasswordError::Busy`], which the handlers answer with 503 and `Retry-After`, rather than
//! making every later login wait behind it. A job whose requester is gone (the client closed
//! its connection, so its handler's future was dropped, and with it the receiving end of the
//! job's reply) is never run: a worker that takes it skips it, and a full queue first drops
//! such jobs to make room. So a burst of abandoned logins costs no hashing and no waiting to
//! the logins behind it.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::oneshot;

use crate::error::ApiError;
use crate::validation::MAX_PASSWORD_CHARS;

/// OWASP's minimum for Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// Jobs that may wait for a worker, per worker, when `PASSWORD_QUEUE_MAX` is not set: at about
/// 20 ms a hash, a full queue is some 0.7 s of work, and the bench's 64 concurrent logins on
/// two cores never fill it.
pub const DEFAULT_QUEUE_PER_WORKER: usize = 32;

/// The `Retry-After` of a login or registration refused because the queue was full: a full
/// queue drains in well under a second.
pub const BUSY_RETRY_AFTER_SECS: u64 = 1;

/// An Argon2id hash, with the parameters of every hash [`Passwords::hash`] makes, of 64 random
/// hexadecimal digits that were thrown away: verified against when no account's hash is to be
/// checked (an unknown username, an overlong password), so that the answer costs what a wrong
/// password costs. A constant, so its first use costs no extra hash.
const DECOY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$bjr3/6Rizsow8cyWnSX8Xw$4HeqbClPC80grLgkDZWN0MPvEHU+iU96dXUtixC31VU";

/// What is verified against [`DECOY_HASH`] in place of a password that is never hashed (one
/// longer than register accepts).
const STAND_IN_PASSWORD: &str = "stand-in for a password that is never hashed";

/// Hashing failed, or no worker could run it.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(#[from] argon2::password_hash::Error),
    #[error("the password hashing workers are gone")]
    Closed,
    /// The queue is full: try again shortly.
    #[error("the password hashing queue is full")]
    Busy,
}

impl From<argon2::Error> for PasswordError {
    fn from(error: argon2::Error) -> PasswordError {
        PasswordError::Hash(error.into())
    }
}

impl From<argon2::password_hash::phc::Error> for PasswordError {
    fn from(error: argon2::password_hash::phc::Error) -> PasswordError {
        PasswordError::Hash(error.into())
    }
}

impl From<PasswordError> for ApiError {
    /// A full queue is the service over capacity (503 with `Retry-After`); anything else is
    /// unexpected.
    fn from(error: PasswordError) -> ApiError {
        match error {
            PasswordError::Busy => ApiError::Overloaded {
                retry_after: BUSY_RETRY_AFTER_SECS,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Hashes and verifies passwords; cheap to clone, all clones share one pool of workers, which
/// stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Passwords {
    pool: Arc<Pool>,
}

/// The workers' queue, closed when the last [`Passwords`] goes.
#[derive(Debug)]
struct Pool {
    queue: Arc<Queue>,
    workers: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

/// What the pool has done since it started, and what waits now: for monitoring and for tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordStats {
    /// Worker threads.
    pub workers: usize,
    /// Most jobs that may wait for a worker.
    pub queue_max: usize,
    /// Jobs waiting for a worker now.
    pub queued: usize,
    /// How many of those have no requester any more (each will be skipped).
    pub abandoned: usize,
    /// Most jobs that ever waited at once.
    pub max_queued: usize,
    /// Jobs refused because the queue was full.
    pub rejected: u64,
    /// Jobs never run because their requester was gone.
    pub skipped: u64,
    /// Argon2 computations run (each hash or verification is one).
    pub hashes: u64,
    /// Their cost: the sum of memory (KiB) times passes of each.
    pub cost: u64,
    /// The bytes of passwords they were given, in all.
    pub password_bytes: u64,
}

impl Passwords {
    /// A pool of `workers` threads (at most that many hashes, and that many blocks of Argon2
    /// memory, at a time), with [`DEFAULT_QUEUE_PER_WORKER`] jobs per worker allowed to wait.
    pub fn new(workers: usize) -> Passwords {
        let workers = workers.max(1);
        Passwords::with_queue_max(workers, workers * DEFAULT_QUEUE_PER_WORKER)
    }

    /// A pool of `workers` threads with at most `queue_max` jobs waiting for them.
    pub fn with_queue_max(workers: usize, queue_max: usize) -> Passwords {
        let workers = workers.max(1);
        let queue = Arc::new(Queue {
            queue_max: queue_max.max(1),
            waiting: Mutex::new(Waiting::default()),
            ready: Condvar::new(),
            counters: Arc::new(Counters::default()),
        });
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || work(&queue))
                .expect("the operating system refused to start a password-hashing thread");
        }
        Passwords {
            pool: Arc::new(Pool { queue, workers }),
        }
    }

    /// A pool sized to the machine: one worker per available core, and `queue_max` jobs
    /// waiting (by default [`DEFAULT_QUEUE_PER_WORKER`] per worker).
    pub fn per_core(queue_max: Option<usize>) -> Passwords {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Passwords::with_queue_max(
            workers,
            queue_max.unwrap_or(workers * DEFAULT_QUEUE_PER_WORKER),
        )
    }

    /// The PHC string of an Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move |memory| {
            let salt = Salt::generate();
            let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params());
            let mut output = [0; Params::DEFAULT_OUTPUT_LEN];
            memory.hash(&hasher, password.as_bytes(), &salt, &mut output)?;
            let hash = PasswordHash {
                algorithm: Algorithm::Argon2id.ident(),
                version: Some(Version::V0x13.into()),
                params: ParamsString::try_from(hasher.params())?,
                salt: Some(salt),
                hash: Some(Output::new(&output)?),
            };
            Ok(hash.to_string())
        })
        .await
    }

    /// Whether `password` matches the PHC string `hash`, compared in constant time.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        let hash = hash.to_owned();
        self.run(move |memory| {
            let parsed = PasswordHash::new(&hash)?;
            let expected = parsed
                .hash
                .ok_or(argon2::password_hash::Error::EncodingInvalid)?;
            let salt = parsed
                .salt
                .ok_or(argon2::password_hash::Error::EncodingInvalid)?;
            let algorithm = Algorithm::try_from(parsed.algorithm.as_str())?;
            let version = parsed
                .version
                .map(Version::try_from)
                .transpose()?
                .unwrap_or_default();
            let hasher = Argon2::new(algorithm, version, Params::try_from(&parsed)?);
            let mut output = vec![0; expected.len()];
            memory.hash(&hasher, password.as_bytes(), &salt, &mut output)?;
            Ok(Output::new(&output)? == expected)
        })
        .await
    }

    /// Spends the time of one verification and answers false: for unknown usernames.
    pub async fn verify_decoy(&self, password: &str) -> Result<bool, PasswordError> {
        self.verify(password, DECOY_HASH).await.map(|_| false)
    }

    /// Whether `password` is the one `stored` (a PHC string) hashes, at the cost of exactly
    /// one verification whatever the case: no stored hash (no such user) or a password longer
    /// than register accepts ([`MAX_PASSWORD_CHARS`], so no account's) is never right, and is
    /// verified against the decoy instead. An overlong password is never hashed, nor copied
    /// into the queue: a stand-in is verified in its place.
    pub async fn check(&self, password: &str, stored: Option<&str>) -> Result<bool, PasswordError> {
        let acceptable = password.len() <= MAX_PASSWORD_CHARS * 4
            && password.chars().count() <= MAX_PASSWORD_CHARS;
        match (stored, acceptable) {
            (Some(hash), true) => self.verify(password, hash).await,
            (None, true) => self.verify_decoy(password).await,
            (_, false) => self.verify_decoy(STAND_IN_PASSWORD).await,
        }
    }

    /// Whether a job would be let into the queue now (abandoned jobs aside): a cheap test
    /// before work that only makes sense if a hash follows. The queue may fill in between, so
    /// the job itself may still be refused.
    pub fn has_room(&self) -> bool {
        let queue = &self.pool.queue;
        let mut waiting = queue.lock();
        waiting.jobs.len() < queue.queue_max || queue.drop_abandoned(&mut waiting)
    }

    /// What the pool has done, and what waits now.
    pub fn stats(&self) -> PasswordStats {
        let queue = &self.pool.queue;
        let (queued, abandoned) = {
            let waiting = queue.lock();
            let abandoned = waiting.jobs.iter().filter(|job| job.abandoned()).count();
            (waiting.jobs.len(), abandoned)
        };
        let counters = &queue.counters;
        PasswordStats {
            workers: self.pool.workers,
            queue_max: queue.queue_max,
            queued,
            abandoned,
            max_queued: counters.max_queued.load(Ordering::Relaxed),
            rejected: counters.rejected.load(Ordering::Relaxed),
            skipped: counters.skipped.load(Ordering::Relaxed),
            hashes: counters.hashes.load(Ordering::Relaxed),
            cost: counters.cost.load(Ordering::Relaxed),
            password_bytes: counters.password_bytes.load(Ordering::Relaxed),
        }
    }

    /// Keeps the workers from starting any job until the returned guard is dropped (jobs
    /// running go on): jobs queue meanwhile, up to the bound. For tests, which need a queue
    /// that stays full, or requesters that leave while their jobs wait.
    pub fn hold_workers(&self) -> HeldWorkers {
        self.pool.queue.lock().holds += 1;
        HeldWorkers {
            queue: Arc::clone(&self.pool.queue),
        }
    }

    /// Runs `work` on a worker thread, after the jobs queued before it; [`PasswordError::Busy`]
    /// at once when the queue is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = oneshot::channel();
        self.pool.queue.push(Box::new(Request { reply, work }))?;
        answer.await.map_err(|_| PasswordError::Closed)?
    }
}

/// Workers held by [`Passwords::hold_workers`]; dropping it lets them go on.
#[derive(Debug)]
#[must_use = "the workers go on as soon as this is dropped"]
pub struct HeldWorkers {
    queue: Arc<Queue>,
}

impl Drop for HeldWorkers {
    fn drop(&mut self) {
        self.queue.lock().holds -= 1;
        self.queue.ready.notify_all();
    }
}

/// A unit of work for a worker, given that worker's Argon2 memory.
trait Job: Send {
    /// Whether whoever asked for it is gone, so that running it would help no one.
    fn abandoned(&self) -> bool;
    fn run(self: Box<Self>, memory: &mut Memory);
}

/// A job whose result goes back to an awaiting caller.
struct Request<T, F> {
    reply: oneshot::Sender<Result<T, PasswordError>>,
    work: F,
}

impl<T, F> Job for Request<T, F>
where
    T: Send,
    F: FnOnce(&mut Memory) -> Result<T, PasswordError> + Send,
{
    fn abandoned(&self) -> bool {
        // The receiver lives in the caller's future, dropped when its client goes away.
        self.reply.is_closed()
    }

    fn run(self: Box<Self>, memory: &mut Memory) {
        // The caller may have gone meanwhile: nobody to tell.
        let _ = self.reply.send((self.work)(memory));
    }
}

/// The jobs waiting for a worker, at most `queue_max` of them.
struct Queue {
    queue_max: usize,
    waiting: Mutex<Waiting>,
    /// Signalled when a job arrives, a hold ends or the pool closes.
    ready: Condvar,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("queue_max", &self.queue_max)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Waiting {
    jobs: VecDeque<Box<dyn Job>>,
    /// Live [`HeldWorkers`] guards: while any, no job starts.
    holds: usize,
    /// Every [`Passwords`] is gone: the workers end.
    closed: bool,
}

#[derive(Debug, Default)]
struct Counters {
    max_queued: AtomicUsize,
    rejected: AtomicU64,
    skipped: AtomicU64,
    hashes: AtomicU64,
    cost: AtomicU64,
    password_bytes: AtomicU64,
}

impl Queue {
    /// The waiting jobs. A job that panics does so outside the lock, so the lock is never
    /// poisoned by one; if it were, its contents are still sound.
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job`, first dropping abandoned jobs if the queue is full; refuses it if the
    /// queue is still full.
    fn push(&self, job: Box<dyn Job>) -> Result<(), PasswordError> {
        let mut waiting = self.lock();
        if waiting.closed {
            return Err(PasswordError::Closed);
        }
        if waiting.jobs.len() >= self.queue_max && !self.drop_abandoned(&mut waiting) {
            self.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(PasswordError::Busy);
        }
        waiting.jobs.push_back(job);
        let queued = waiting.jobs.len();
        drop(waiting);
        self.counters
            .max_queued
            .fetch_max(queued, Ordering::Relaxed);
        self.ready.notify_one();
        Ok(())
    }

    /// Drops the waiting jobs whose requesters are gone; whether that made room.
    fn drop_abandoned(&self, waiting: &mut Waiting) -> bool {
        let before = waiting.jobs.len();
        waiting.jobs.retain(|job| !job.abandoned());
        let dropped = before - waiting.jobs.len();
        self.counters
            .skipped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        waiting.jobs.len() < self.queue_max
    }

    /// The next job worth running, waiting for one; `None` once the pool is closed. Jobs whose
    /// requesters are gone are skipped.
    fn next(&self) -> Option<Box<dyn Job>> {
        let mut waiting = self.lock();
        loop {
            if waiting.closed {
                return None;
            }
            if waiting.holds == 0
                && let Some(job) = waiting.jobs.pop_front()
            {
                if !job.abandoned() {
                    return Some(job);
                }
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            waiting = self
                .ready
                .wait(waiting)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The Argon2 memory of one worker: allocated at its first hash, reused by every later one.
/// Argon2 overwrites every block it uses before reading it, so nothing of one hash leaks into
/// the next.
struct Memory {
    blocks: Vec<Block>,
    counters: Arc<Counters>,
}

impl Memory {
    /// Hashes `password` with `salt` into `output`, in this memory, grown first if
    /// `hasher`'s parameters (a stored hash's) ask for more than it has.
    fn hash(
        &mut self,
        hasher: &Argon2,
        password: &[u8],
        salt: &[u8],
        output: &mut [u8],
    ) -> Result<(), PasswordError> {
        let params = hasher.params();
        let needed = params.block_count();
        if self.blocks.len() < needed {
            self.blocks.resize(needed, Block::default());
        }
        let counters = &self.counters;
        counters.hashes.fetch_add(1, Ordering::Relaxed);
        counters.cost.fetch_add(
            u64::from(params.m_cost()) * u64::from(params.t_cost()),
            Ordering::Relaxed,
        );
        counters
            .password_bytes
            .fetch_add(password.len() as u64, Ordering::Relaxed);
        hasher.hash_password_into_with_memory(
            password,
            salt,
            output,
            &mut self.blocks[..needed],
        )?;
        Ok(())
    }
}

/// A worker's life: run jobs until every [`Passwords`] is gone. A job that panics loses its
/// answer, not the worker.
fn work(queue: &Queue) {
    let mut memory = Memory {
        blocks: Vec::new(),
        counters: Arc::clone(&queue.counters),
    };
    while let Some(job) = queue.next() {
        let _ = catch_unwind(AssertUnwindSafe(|| job.run(&mut memory)));
    }
}

fn owasp_params() -> Params {
    Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .expect("the Argon2 parameters are constants within argon2's bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_with_owasp_parameters() {
        let passwords = Passwords::new(1);
        let hash = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(passwords.verify("Str0ng!Passw0rd", &hash).await.unwrap());
        assert!(!passwords.verify("str0ng!Passw0rd", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn the_same_password_gets_a_new_salt_each_time() {
        let passwords = Passwords::new(1);
        let first = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        let second = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn more_requests_than_workers_all_get_answers() {
        let passwords = Passwords::new(2);
        let hash = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        let checks = (0..6).map(|attempt| {
            let (passwords, hash) = (passwords.clone(), hash.clone());
            tokio::spawn(async move {
                let password = if attempt % 2 == 0 {
                    "Str0ng!Passw0rd"
                } else {
                    "wrong"
                };
                passwords.verify(password, &hash).await.unwrap()
            })
        });
        let mut results = Vec::new();
        for check in checks {
            results.push(check.await.unwrap());
        }
        assert_eq!(results, [true, false, true, false, true, false]);
    }

    #[tokio::test]
    async fn hashes_agree_with_argon2s_own_hasher_and_verifier() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};

        let passwords = Passwords::new(1);
        let ours = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, owasp_params());
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            reference
                .verify_password(b"Str0ng!Passw0rd", &parsed)
                .is_ok()
        );
        assert!(reference.verify_password(b"wrong", &parsed).is_err());

        let theirs = reference
            .hash_password(b"Str0ng!Passw0rd")
            .unwrap()
            .to_string();
        assert!(passwords.verify("Str0ng!Passw0rd", &theirs).await.unwrap());
        assert!(!passwords.verify("wrong", &theirs).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_stored_with_other_parameters_still_verify() {
        use argon2::password_hash::PasswordHasher;

        let passwords = Passwords::new(1);
        // Prime the worker's memory at 19 MiB, then verify hashes needing less and more.
        passwords.hash("Str0ng!Passw0rd").await.unwrap();
        for (memory_kib, iterations, lanes) in [(4096, 3, 1), (32 * 1024, 1, 2)] {
            let params = Params::new(memory_kib, iterations, lanes, None).unwrap();
            let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"Str0ng!Passw0rd")
                .unwrap()
                .to_string();
            assert!(passwords.verify("Str0ng!Passw0rd", &hash).await.unwrap());
            assert!(!passwords.verify("Str0ng!Passw0rd!", &hash).await.unwrap());
        }
        // And the worker's own hashes still verify after its memory grew.
        let hash = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        assert!(passwords.verify("Str0ng!Passw0rd", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_by_argon2_0_5_still_verify() {
        // Made by this module with argon2 0.5.3 (password-hash 0.5.0), before the move to 0.6:
        // the stored hashes of existing accounts must keep verifying.
        const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$PuhJGfhg1AGKTPo7i3S/RA$3FwUS6yoAcArspp8QVTnUOaP6rMTMElK8jsQ9/s3gcM";
        let passwords = Passwords::new(1);
        assert!(passwords.verify("Str0ng!Passw0rd", HASH).await.unwrap());
        assert!(!passwords.verify("str0ng!Passw0rd", HASH).await.unwrap());
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_an_error_not_a_match() {
        let passwords = Passwords::new(1);
        for hash in [
            "",
            "not a hash",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0",
            "$bcrypt$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(
                matches!(
                    passwords.verify("Str0ng!Passw0rd", hash).await,
                    Err(PasswordError::Hash(_))
                ),
                "{hash:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_decoy_never_matches() {
        let passwords = Passwords::new(1);
        assert!(
            !passwords
                .verify_decoy("decoy password of no account")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn the_decoy_costs_what_a_real_hash_costs() {
        // Same algorithm, version, parameters and output length as the hashes made here, so
        // verifying against it is the same work as verifying against a user's hash.
        let passwords = Passwords::new(1);
        let real = passwords.hash("Str0ng!Passw0rd").await.unwrap();
        let real = PasswordHash::new(&real).unwrap();
        let decoy = PasswordHash::new(DECOY_HASH).unwrap();
        assert_eq!(decoy.algorithm, real.algorithm);
        assert_eq!(decoy.version, real.version);
        assert_eq!(decoy.params, real.params);
        let params = Params::try_from(&decoy).unwrap();
        let owasp = owasp_params();
        assert_eq!(
            (params.m_cost(), params.t_cost(), params.p_cost()),
            (owasp.m_cost(), owasp.t_cost(), owasp.p_cost())
        );
        assert_eq!(decoy.hash.unwrap().len(), real.hash.unwrap().len());
        assert_eq!(decoy.salt.unwrap().len(), real.salt.unwrap().len());

        // And it is a constant: its first use is one verification, no hash made first.
        let fresh = Passwords::new(1);
        assert!(!fresh.verify_decoy("anything").await.unwrap());
        let stats = fresh.stats();
        assert_eq!(stats.hashes, 1);
        assert_eq!(stats.cost, u64::from(MEMORY_KIB * ITERATIONS));
    }

    /// Waits until `passwords` has `queued` jobs waiting.
    async fn until_queued(passwords: &Passwords, queued: usize) {
        for _ in 0..10_000 {
            if passwords.stats().queued == queued {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("never {queued} queued: {:?}", passwords.stats());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_and_counts_the_refusal() {
        let passwords = Passwords::with_queue_max(1, 2);
        let held = passwords.hold_workers();
        let waiting: Vec<_> = (0..2)
            .map(|_| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash("Str0ng!Passw0rd").await })
            })
            .collect();
        until_queued(&passwords, 2).await;
        assert!(!passwords.has_room());
        assert!(matches!(
            passwords.verify_decoy("Str0ng!Passw0rd").await,
            Err(PasswordError::Busy)
        ));
        let stats = passwords.stats();
        assert_eq!((stats.queued, stats.max_queued, stats.rejected), (2, 2, 1));
        assert_eq!(stats.hashes, 0);

        drop(held);
        for job in waiting {
            assert!(job.await.unwrap().is_ok());
        }
        let stats = passwords.stats();
        assert_eq!((stats.queued, stats.hashes, stats.skipped), (0, 2, 0));
        assert!(passwords.has_room());
    }

    #[tokio::test]
    async fn jobs_whose_requester_left_are_never_run() {
        let passwords = Passwords::with_queue_max(1, 8);
        let held = passwords.hold_workers();
        let abandoned: Vec<_> = (0..3)
            .map(|_| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash("Str0ng!Passw0rd").await })
            })
            .collect();
        until_queued(&passwords, 3).await;
        assert_eq!(passwords.stats().abandoned, 0);
        // As when a client disconnects: its handler's future, awaiting the job, is dropped.
        for job in abandoned {
            job.abort();
            assert!(job.await.unwrap_err().is_cancelled());
        }
        assert_eq!(passwords.stats().abandoned, 3);
        drop(held);
        // A live job behind them is answered; the three are skipped, not hashed.
        assert!(passwords.hash("Str0ng!Passw0rd").await.is_ok());
        let stats = passwords.stats();
        assert_eq!((stats.hashes, stats.skipped, stats.queued), (1, 3, 0));
    }

    #[tokio::test]
    async fn a_full_queue_makes_room_by_dropping_jobs_whose_requester_left() {
        let passwords = Passwords::with_queue_max(1, 2);
        let held = passwords.hold_workers();
        let abandoned: Vec<_> = (0..2)
            .map(|_| {
                let passwords = passwords.clone();
                tokio::spawn(async move { passwords.hash("Str0ng!Passw0rd").await })
            })
            .collect();
        until_queued(&passwords, 2).await;
        for job in abandoned {
            job.abort();
            let _ = job.await;
        }
        assert!(passwords.has_room());
        let live = {
            let passwords = passwords.clone();
            tokio::spawn(async move { passwords.verify_decoy("Str0ng!Passw0rd").await })
        };
        until_queued(&passwords, 1).await;
        drop(held);
        assert!(!live.await.unwrap().unwrap());
        let stats = passwords.stats();
        assert_eq!((stats.hashes, stats.skipped, stats.rejected), (1, 2, 0));
    }

    #[tokio::test]
    async fn check_costs_one_verification_and_never_hashes_an_overlong_password() {
        let passwords = Passwords::new(1);
        let longest = format!("a1!{}", "\u{130}".repeat(MAX_PASSWORD_CHARS - 3));
        let hash = passwords.hash(&longest).await.unwrap();
        let overlong = format!("{longest}x");
        let huge = "A".repeat(1 << 20);
        let cases: [(&str, Option<&str>, bool); 5] = [
            (&longest, Some(&hash), true),
            ("Wr0ng!Password", Some(&hash), false),
            ("Wr0ng!Password", None, false),
            (&overlong, Some(&hash), false),
            (&huge, None, false),
        ];
        for (password, stored, right) in cases {
            let before = passwords.stats();
            assert_eq!(passwords.check(password, stored).await.unwrap(), right);
            let after = passwords.stats();
            assert_eq!(after.hashes - before.hashes, 1, "{}", password.len());
            assert_eq!(
                after.cost - before.cost,
                u64::from(MEMORY_KIB * ITERATIONS),
                "{}",
                password.len()
            );
            let hashed = after.password_bytes - before.password_bytes;
            if password.chars().count() > MAX_PASSWORD_CHARS {
                assert_eq!(hashed, STAND_IN_PASSWORD.len() as u64);
            } else {
                assert_eq!(hashed, password.len() as u64);
            }
        }
    }
}
