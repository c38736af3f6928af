//! What admission ([`crate::admission`]) reads of the sessions: whether an id has one, and how many
//! sandboxes this proxy holds.

use super::SessionManager;

impl SessionManager {
    /// Whether a session for `id` exists (admission lets its requests through without a new slot).
    pub fn contains(&self, id: &str) -> bool {
        self.0.current(id).is_some()
    }

    /// Sandboxes this proxy holds: live sessions, deletes still running (a backend such as the local
    /// one frees its capacity only when the delete is done), and the ids of `pending` (admitted,
    /// session not created yet) that are neither, counted under one lock: what admission compares
    /// with MAX_SANDBOXES.
    pub fn occupancy<'a>(&self, pending: impl IntoIterator<Item = &'a str>) -> usize {
        let inner = self.0.inner.lock().expect("session lock");
        let deleting = inner
            .deleting
            .keys()
            .filter(|id| !inner.sessions.contains_key(*id))
            .count();
        let pending = pending
            .into_iter()
            .filter(|id| !inner.sessions.contains_key(*id) && !inner.deleting.contains_key(*id))
            .count();
        inner.sessions.len() + deleting + pending
    }
}
