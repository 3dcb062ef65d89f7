//! Argon2id password hashing on a fixed pool of worker threads.
//!
//! Each hash takes 19 MiB and tens of milliseconds of one core, so hashes run on one worker
//! thread per core, outside the async executor: a burst of logins queues for a worker instead
//! of starving the executor. Fixed threads also bound memory: the allocator keeps the 19 MiB of
//! a finished hash in the arena of the thread that ran it, so hashing on whichever of tokio's
//! (up to 512) blocking threads was free would leave that much behind on each of them.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, oneshot};

/// OWASP's minimum for Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// A unit of work for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Hashing failed, or no worker could run it.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("the password hashing workers are gone")]
    Closed,
}

/// Hashes and verifies passwords; cheap to clone, all clones share one pool of workers, which
/// stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Passwords {
    jobs: Sender<Job>,
    /// A hash of no one's password, verified against when a username is unknown so that the
    /// answer takes as long as for a wrong password.
    decoy_hash: Arc<OnceCell<String>>,
}

impl Passwords {
    /// A pool of `workers` threads: at most that many hashes at a time.
    pub fn new(workers: usize) -> Passwords {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..workers.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("password-{index}"))
                .spawn(move || work(&queue))
                .expect("the operating system refused to start a password-hashing thread");
        }
        Passwords {
            jobs,
            decoy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// A pool sized to the machine: one worker per available core.
    pub fn per_core() -> Passwords {
        Passwords::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The PHC string of an Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(PasswordError::Hash)
        })
        .await
    }

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: &str, hash: &str) -> Result<bool, PasswordError> {
        let password = password.to_owned();
        let hash = hash.to_owned();
        self.run(move || {
            let parsed = PasswordHash::new(&hash).map_err(PasswordError::Hash)?;
            Ok(argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok())
        })
        .await
    }

    /// Spends the time of one verification and answers false: for unknown usernames.
    pub async fn verify_decoy(&self, password: &str) -> Result<bool, PasswordError> {
        let decoy = self
            .decoy_hash
            .get_or_try_init(|| self.hash("decoy password of no account"))
            .await?;
        self.verify(password, decoy).await.map(|_| false)
    }

    /// Runs `work` on a worker thread, after the jobs queued before it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone (a closed connection): nobody to tell.
            let _ = reply.send(work());
        });
        self.jobs.send(job).map_err(|_| PasswordError::Closed)?;
        answer.await.map_err(|_| PasswordError::Closed)?
    }
}

/// A worker's life: run jobs until every sender is gone. The queue's lock is held only while
/// waiting for the next job; a job that panics loses its answer, not the worker.
fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => {
                let _ = catch_unwind(AssertUnwindSafe(job));
            }
            Err(_) => return,
        }
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
        .expect("the Argon2 parameters are constants within argon2's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
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
    async fn the_decoy_never_matches() {
        let passwords = Passwords::new(1);
        assert!(
            !passwords
                .verify_decoy("decoy password of no account")
                .await
                .unwrap()
        );
    }
}
