//! How many tasks one answer lists. An MCP client reads a message as one line, and drops a line
//! over its limit (16 MiB in rmcp, the Python SDK's is similar): an answer listing every task of
//! a 100,000-task orchestration (about 100 bytes a task, twice: as structured content and as
//! text) would never arrive, and the call would wait for ever. Nor does a model read a list that
//! long. So an answer lists at most [`MAX_LISTED_TASKS`], the ones that most need looking at
//! first, and says how many it left out; the counters are always whole.

/// The most tasks an answer lists.
pub const MAX_LISTED_TASKS: usize = 1000;

/// `items` cut to [`MAX_LISTED_TASKS`]: those of the lowest `rank` first (ties by their order),
/// kept in their order; and how many were left out.
pub fn listed<T>(items: Vec<T>, rank: impl Fn(&T) -> u8) -> (Vec<T>, usize) {
    listed_at_most(items, MAX_LISTED_TASKS, rank)
}

fn listed_at_most<T>(items: Vec<T>, max: usize, rank: impl Fn(&T) -> u8) -> (Vec<T>, usize) {
    if items.len() <= max {
        return (items, 0);
    }
    let omitted = items.len() - max;
    let mut order: Vec<(u8, usize)> = items.iter().enumerate().map(|(i, item)| (rank(item), i)).collect();
    order.sort_unstable();
    let mut keep = vec![false; items.len()];
    for &(_, i) in order.iter().take(max) {
        keep[i] = true;
    }
    let kept = items.into_iter().zip(keep).filter_map(|(item, keep)| keep.then_some(item)).collect();
    (kept, omitted)
}

/// The order in which an orchestration's tasks are worth a look: what failed, what runs, what
/// is about to, what was stopped, what waits, and last what completed.
pub fn status_rank(status: crate::model::TaskStatus) -> u8 {
    use crate::model::TaskStatus;
    match status {
        TaskStatus::Failed => 0,
        TaskStatus::Running => 1,
        TaskStatus::Pending => 2,
        TaskStatus::Cancelled | TaskStatus::Skipped => 3,
        TaskStatus::Waiting => 4,
        TaskStatus::Completed => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_lists_are_whole_and_long_ones_keep_the_lowest_ranks_in_order() {
        let (all, omitted) = listed_at_most(vec![3, 1, 2], 3, |_| 0);
        assert_eq!((all, omitted), (vec![3, 1, 2], 0));
        // Ranks: the items themselves; ties keep the earlier ones.
        let (kept, omitted) = listed_at_most(vec![5, 0, 5, 1, 0, 5], 3, |n| *n);
        assert_eq!((kept, omitted), (vec![0, 1, 0], 3));
        let (kept, omitted) = listed_at_most(vec![2, 2, 2, 2], 2, |n| *n);
        assert_eq!((kept, omitted), (vec![2, 2], 2));
    }

    #[test]
    fn failures_come_before_completed_work() {
        use crate::model::TaskStatus;
        assert!(status_rank(TaskStatus::Failed) < status_rank(TaskStatus::Running));
        assert!(status_rank(TaskStatus::Running) < status_rank(TaskStatus::Waiting));
        assert!(TaskStatus::ALL.iter().all(|s| status_rank(*s) <= status_rank(TaskStatus::Completed)));
    }
}
