//! Argon2id password hashing on a fixed pool of worker threads.
//!
//! Each hash takes 19 MiB and tens of milliseconds of one core, so hashes run on one worker
//! thread per core, outside the async executor: a burst of logins queues for a worker instead
//! of starving the executor. Each worker allocates its 19 MiB of Argon2 memory once and reuses
//! it for every hash it runs, so memory is bounded by the number of workers: allocating it per
//! hash let glibc keep every freed block in the arena of the thread that ran it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, oneshot};

/// OWASP's minimum for Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// A unit of work for a hashing thread, given that thread's Argon2 memory.
type Job = Box<dyn FnOnce(&mut Memory) + Send>;

/// Hashing failed, or no worker could run it.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(#[from] argon2::password_hash::Error),
    #[error("the password hashing workers are gone")]
    Closed,
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
    /// A pool of `workers` threads: at most that many hashes, and that many blocks of Argon2
    /// memory, at a time.
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
        let decoy = self
            .decoy_hash
            .get_or_try_init(|| self.hash("decoy password of no account"))
            .await?;
        self.verify(password, decoy).await.map(|_| false)
    }

    /// Runs `work` on a worker thread, after the jobs queued before it.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Memory) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |memory| {
            // The caller may have gone (a closed connection): nobody to tell.
            let _ = reply.send(work(memory));
        });
        self.jobs.send(job).map_err(|_| PasswordError::Closed)?;
        answer.await.map_err(|_| PasswordError::Closed)?
    }
}

/// The Argon2 memory of one worker: allocated at its first hash, reused by every later one.
/// Argon2 overwrites every block it uses before reading it, so nothing of one hash leaks into
/// the next.
#[derive(Default)]
struct Memory(Vec<Block>);

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
        let needed = hasher.params().block_count();
        if self.0.len() < needed {
            self.0.resize(needed, Block::default());
        }
        hasher.hash_password_into_with_memory(password, salt, output, &mut self.0[..needed])?;
        Ok(())
    }
}

/// A worker's life: run jobs until every sender is gone. The queue's lock is held only while
/// waiting for the next job; a job that panics loses its answer, not the worker.
fn work(queue: &Mutex<Receiver<Job>>) {
    let mut memory = Memory::default();
    loop {
        let next = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        match next {
            Ok(job) => {
                let _ = catch_unwind(AssertUnwindSafe(|| job(&mut memory)));
            }
            Err(_) => return,
        }
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
}
