//! The console's logins: a random session id in an `HttpOnly`, `SameSite=Strict` cookie names a
//! session held in master's memory (its identity, its CSRF token, a one-shot notice), which ends
//! after `session_idle_secs` without a request or at log-out. Never stored: a restart logs
//! everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_runtime::auth::Identity;

/// The cookie's name.
pub const COOKIE: &str = "mcp_console";

/// Sessions held at most; the least recently used goes first beyond it.
const MAX_SESSIONS: usize = 10_000;

/// One logged-in visitor.
#[derive(Debug, Clone)]
pub struct Session {
    pub identity: Identity,
    /// Sent back in every form; a state-changing request without it is refused.
    pub csrf: String,
    /// Logged in with a token (so logging out means something); else the open local console.
    pub with_token: bool,
    /// What the last action did, shown once on the next page: (is a problem, text).
    pub notice: Option<(bool, String)>,
    last: Instant,
}

/// The sessions of one master.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

/// 256 random bits, hex.
fn random_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Compares two strings in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    pub fn new(idle: Duration) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new session for `identity`; hands back its id (the cookie's value) and the session.
    pub fn create(&self, identity: Identity, with_token: bool) -> (String, Session) {
        let session = Session {
            identity,
            csrf: random_id(),
            with_token,
            notice: None,
            last: Instant::now(),
        };
        let id = random_id();
        let mut map = self.map();
        let idle = self.idle;
        map.retain(|_, s| s.last.elapsed() < idle);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session `id`; an idle one is ended. With `take_notice` (a page, not a fragment
    /// or an export) its notice is handed over once.
    pub fn get(&self, id: &str, take_notice: bool) -> Option<Session> {
        let mut map = self.map();
        let s = map.get_mut(id)?;
        if s.last.elapsed() >= self.idle {
            map.remove(id);
            return None;
        }
        s.last = Instant::now();
        let mut out = s.clone();
        if take_notice {
            s.notice = None;
        } else {
            out.notice = None;
        }
        Some(out)
    }

    /// Leaves a notice for the session's next page.
    pub fn notify(&self, id: &str, problem: bool, text: String) {
        if let Some(s) = self.map().get_mut(id) {
            s.notice = Some((problem, text));
        }
    }

    pub fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_and_notices_show_once() {
        let s = Sessions::new(Duration::from_millis(50));
        let (id, first) = s.create(Identity::new("alice", &["approver"]), true);
        assert_eq!(id.len(), 64);
        assert_ne!(first.csrf, id);
        s.notify(&id, false, "approved".into());
        assert_eq!(
            s.get(&id, false).unwrap().notice,
            None,
            "a fragment leaves it"
        );
        assert_eq!(
            s.get(&id, true).unwrap().notice,
            Some((false, "approved".to_owned()))
        );
        assert_eq!(s.get(&id, true).unwrap().notice, None);
        assert!(s.get("not-a-session", true).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.get(&id, true).is_none(), "an idle session ends");
        assert!(s.is_empty());
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(!same_secret("", "a"));
    }
}
