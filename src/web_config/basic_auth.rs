//! `basic_auth_users`: bcrypt hashes, checked in constant time per user name, with the
//! successful checks remembered.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use base64::Engine as _;
use hyper::header::HeaderValue;

/// `WWW-Authenticate` of a 401.
pub const AUTHENTICATE: &str = "Basic realm=\"entra-authmethods-exporter\"";

/// Successful basic-auth checks remembered per loaded configuration.
pub(super) const AUTH_CACHE_ENTRIES: usize = 256;

/// `basic_auth_users`: user names and bcrypt hashes, and the checks that already succeeded.
pub struct BasicAuth {
    pub(super) users: HashMap<String, String>,
    /// Checked for unknown users, at the cost of the costliest configured hash, so that the
    /// time of an answer does not tell which user names exist.
    pub(super) decoy: String,
    /// Keys the remembered checks; random per loaded configuration, so a remembered check
    /// never outlives the file it was made against.
    cache_key: hmac::Key,
    verified: Mutex<HashSet<Vec<u8>>>,
}

impl BasicAuth {
    pub(super) fn new(users: BTreeMap<String, String>) -> Result<Self, String> {
        let mut cost = 0;
        for (user, hash) in &users {
            let parts: bcrypt::HashParts = hash.parse().map_err(|_| {
                format!("basic_auth_users: the password of user {user:?} is not a bcrypt hash")
            })?;
            cost = cost.max(parts.get_cost());
        }
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        let decoy = bcrypt::hash(secret, cost)
            .map_err(|err| format!("basic_auth_users: making the decoy hash: {err}"))?;
        rand::fill(&mut secret);
        Ok(Self {
            users: users.into_iter().collect(),
            decoy,
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &secret),
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// User name and password of a `Basic` Authorization header.
    pub fn credentials(header: &HeaderValue) -> Option<(String, String)> {
        let encoded = header.to_str().ok()?;
        let (scheme, encoded) = encoded.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    fn tag(&self, user: &str, password: &str) -> Vec<u8> {
        let mut context = hmac::Context::with_key(&self.cache_key);
        context.update(&(user.len() as u64).to_le_bytes());
        context.update(user.as_bytes());
        context.update(password.as_bytes());
        context.sign().as_ref().to_vec()
    }

    /// True if this pair already passed a full check against this configuration.
    pub fn remembered(&self, user: &str, password: &str) -> bool {
        let tag = self.tag(user, password);
        self.verified
            .lock()
            .map(|set| set.contains(&tag))
            .unwrap_or(false)
    }

    /// The full bcrypt check; CPU-heavy, so call it off the async runtime.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok && let Ok(mut set) = self.verified.lock() {
            if set.len() >= AUTH_CACHE_ENTRIES {
                set.clear();
            }
            set.insert(self.tag(user, password));
        }
        ok
    }
}
