//! The mutable part of one route: weights, sticky assignments (made so that the callers' split
//! follows the weights, moved as little as possible when they change) and the rollback windows.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::Rng;

/// Sticky assignments kept per route; past this the least recently seen half is forgotten.
pub(super) const MAX_ASSIGNED: usize = 100_000;

/// Outcomes kept per version for the rollback window.
const MAX_WINDOW: usize = 10_000;

/// Outcomes of one version's recent calls.
#[derive(Debug, Default)]
pub(super) struct Window {
    pub(super) calls: VecDeque<(Instant, bool, f32)>,
    pub(super) errors: usize,
}

impl Window {
    pub(super) fn push(&mut self, at: Instant, error: bool, ms: f32, span: Duration) {
        self.calls.push_back((at, error, ms));
        self.errors += usize::from(error);
        while self.calls.len() > MAX_WINDOW {
            self.pop();
        }
        self.prune(at, span);
    }

    fn pop(&mut self) {
        if let Some((_, e, _)) = self.calls.pop_front() {
            self.errors -= usize::from(e);
        }
    }

    pub(super) fn prune(&mut self, now: Instant, span: Duration) {
        while self
            .calls
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > span)
        {
            self.pop();
        }
    }

    pub(super) fn p95(&self) -> Option<f32> {
        let mut ms: Vec<f32> = self.calls.iter().map(|(_, _, ms)| *ms).collect();
        if ms.is_empty() {
            return None;
        }
        let k = (ms.len() * 95).div_ceil(100).saturating_sub(1);
        let (_, v, _) = ms.select_nth_unstable_by(k, f32::total_cmp);
        Some(*v)
    }
}

/// The mutable part of a route.
#[derive(Debug)]
pub(super) struct State {
    pub(super) weights: Vec<u32>,
    /// The weights the config file gave last (a reload applies only changes).
    pub(super) configured: Vec<u32>,
    /// Sticky key → (version position, last seen).
    pub(super) assigned: HashMap<String, (usize, u64)>,
    pub(super) counts: Vec<usize>,
    pub(super) seq: u64,
    /// Assignments remembered at most ([`MAX_ASSIGNED`]).
    pub(super) max_assigned: usize,
    /// Why each version was rolled back, while it is.
    pub(super) rolled_back: Vec<Option<String>>,
    pub(super) windows: Vec<Window>,
}

impl State {
    /// The version with the largest shortfall against its share, counting one more caller.
    pub(super) fn best(&self) -> usize {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return 0;
        }
        let n = self.assigned.len() as f64 + 1.0;
        let mut best = (0, f64::NEG_INFINITY);
        for (pos, w) in self.weights.iter().enumerate() {
            if *w == 0 {
                continue;
            }
            let shortfall = f64::from(*w) / total as f64 * n - self.counts[pos] as f64;
            if shortfall > best.1 {
                best = (pos, shortfall);
            }
        }
        best.0
    }

    /// The sticky caller's version, assigned now if it has none or its version's weight is 0.
    pub(super) fn assign(&mut self, key: &str) -> usize {
        self.seq += 1;
        let seq = self.seq;
        if let Some((pos, seen)) = self.assigned.get_mut(key)
            && self.weights[*pos] > 0
        {
            *seen = seq;
            return *pos;
        }
        if let Some((old, _)) = self.assigned.remove(key) {
            self.counts[old] -= 1;
        }
        let pos = self.best();
        self.assigned.insert(key.to_owned(), (pos, seq));
        self.counts[pos] += 1;
        if self.assigned.len() > self.max_assigned {
            let mut seen: Vec<u64> = self.assigned.values().map(|(_, s)| *s).collect();
            let mid = seen.len() / 2;
            let (_, cut, _) = seen.select_nth_unstable(mid);
            let cut = *cut;
            self.assigned.retain(|_, (_, s)| *s >= cut);
            self.recount();
        }
        pos
    }

    /// A weighted random version, for callers without a sticky key.
    pub(super) fn random(&self) -> usize {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        if total == 0 {
            return 0;
        }
        let mut x = rand::rng().random_range(0..total);
        for (pos, w) in self.weights.iter().enumerate() {
            if x < u64::from(*w) {
                return pos;
            }
            x -= u64::from(*w);
        }
        0
    }

    pub(super) fn recount(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        for (pos, _) in self.assigned.values() {
            self.counts[*pos] += 1;
        }
    }

    /// After a weight change: moves the fewest assigned callers so that each version's share of
    /// them follows the new weights (largest remainder).
    pub(super) fn rebalance(&mut self) {
        let total: u64 = self.weights.iter().map(|w| u64::from(*w)).sum();
        let n = self.assigned.len();
        if total == 0 || n == 0 {
            return;
        }
        let exact: Vec<f64> = self
            .weights
            .iter()
            .map(|w| f64::from(*w) / total as f64 * n as f64)
            .collect();
        let mut target: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
        let mut order: Vec<usize> = (0..exact.len()).collect();
        order.sort_by(|a, b| {
            (exact[*b] - exact[*b].floor()).total_cmp(&(exact[*a] - exact[*a].floor()))
        });
        let mut left = n - target.iter().sum::<usize>();
        for pos in order {
            if left == 0 {
                break;
            }
            if self.weights[pos] > 0 {
                target[pos] += 1;
                left -= 1;
            }
        }
        let mut over: Vec<usize> = self
            .counts
            .iter()
            .zip(&target)
            .map(|(c, t)| c.saturating_sub(*t))
            .collect();
        let mut movers: Vec<String> = Vec::new();
        for (k, (pos, _)) in &self.assigned {
            if over[*pos] > 0 {
                over[*pos] -= 1;
                movers.push(k.clone());
            }
        }
        for k in movers {
            let Some(to) = (0..target.len()).find(|q| self.counts[*q] < target[*q]) else {
                break;
            };
            if let Some((pos, _)) = self.assigned.get_mut(&k) {
                self.counts[*pos] -= 1;
                *pos = to;
                self.counts[to] += 1;
            }
        }
    }
}
