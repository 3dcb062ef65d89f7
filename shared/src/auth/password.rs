//! Argon2id password hashing on a bounded pool of blocking threads.
//!
//! Each hash takes 19 MiB and tens of milliseconds of one core, so hashes run under a semaphore
//! of one permit per core on tokio's blocking threads: a burst of logins queues for a permit
//! instead of starving the executor or allocating 19 MiB for every waiting request.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::{OnceCell, Semaphore};

/// OWASP's minimum for Argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// Hashing failed, or its blocking task did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    #[error("password hashing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("password hashing pool closed")]
    Closed,
}

/// Hashes and verifies passwords; cheap to clone, all clones share one pool.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of no one's password, verified against when a username is unknown so that the
    /// answer takes as long as for a wrong password.
    decoy_hash: Arc<OnceCell<String>>,
}

impl Passwords {
    /// A pool that hashes at most `concurrency` passwords at a time.
    pub fn new(concurrency: usize) -> Passwords {
        Passwords {
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            decoy_hash: Arc::new(OnceCell::new()),
        }
    }

    /// A pool sized to the machine: one hash per available core.
    pub fn per_core() -> Passwords {
        Passwords::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// The PHC string of an Argon2id hash of `password` with a fresh random salt.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let password = password.to_owned();
        self.run_blocking(move || {
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
        self.run_blocking(move || {
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

    async fn run_blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Closed)?;
        tokio::task::spawn_blocking(work).await?
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
