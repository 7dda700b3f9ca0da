//! Kafka's rule for how many batches a read returns: whole batches while they fit the byte
//! budget, and the first one even if it alone is larger when the caller allows it (so a
//! consumer always progresses past a batch bigger than its limit). One place for the rule,
//! used by the tail cache and by reads from bookies.

#[derive(Debug, Clone, Copy)]
pub struct ReadBudget {
    max_bytes: usize,
    used: usize,
    taken: usize,
    first_may_exceed: bool,
}

impl ReadBudget {
    pub fn new(max_bytes: usize, first_may_exceed: bool) -> ReadBudget {
        ReadBudget {
            max_bytes,
            used: 0,
            taken: 0,
            first_may_exceed,
        }
    }

    /// Takes a batch of `len` bytes if it fits; `false` means stop here.
    pub fn take(&mut self, len: usize) -> bool {
        let fits = self.used.saturating_add(len) <= self.max_bytes
            || (self.taken == 0 && self.first_may_exceed);
        if fits {
            self.used += len;
            self.taken += 1;
        }
        fits
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    pub fn first_may_exceed(&self) -> bool {
        self.first_may_exceed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_batches_within_the_budget_and_an_oversized_first_only_if_allowed() {
        let mut b = ReadBudget::new(10, true);
        assert!(b.take(15), "an oversized first batch");
        assert!(!b.take(1));
        let mut b = ReadBudget::new(10, false);
        assert!(!b.take(15));
        let mut b = ReadBudget::new(10, false);
        assert!(b.take(6) && b.take(4) && !b.take(1));
    }
}
