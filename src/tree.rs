//! The layout of an orchestration's dependency tree, shared by `claude-worker-inspect
//! orchestration-status` and the live view: in which order the tasks are drawn and the branch
//! drawing (`│  ├─ `) before each. Roots come first; each task is drawn under the task it depends
//! on, so that a task with several dependencies is reached several times: it is drawn in full the
//! first time, and afterwards either referred to ([`Repeats::Refer`], for a static picture) or left
//! out ([`Repeats::Omit`], for the live view, which keeps exactly one line per task).
//!
//! Pure: no IO, no styling. The callers write the rest of each line.

use std::collections::{HashMap, HashSet};

use crate::model::TaskId;

/// One line of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeLine {
    /// The task's index in the slice given to [`layout`].
    pub index: usize,
    /// The branch drawing before the task, e.g. `│  └─ `.
    pub prefix: String,
    /// The task was drawn in full higher up; this line only refers to it.
    pub repeat: bool,
}

/// What to do when a task is reached again under another of its dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repeats {
    /// A line that refers to the task drawn above.
    Refer,
    /// No line: every task appears exactly once.
    Omit,
}

/// Lays out `tasks` (each its id and the ids it depends on; dependencies outside the slice are
/// ignored) as a tree, in task order among siblings. Every task appears in full exactly once,
/// even in a graph that is not a DAG.
pub fn layout(tasks: &[(TaskId, &[TaskId])], repeats: Repeats) -> Vec<TreeLine> {
    let index_of: HashMap<TaskId, usize> = tasks.iter().enumerate().map(|(i, (id, _))| (*id, i)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tasks.len()];
    let mut roots = Vec::new();
    for (i, (_, depends_on)) in tasks.iter().enumerate() {
        let mut inside = depends_on.iter().filter_map(|d| index_of.get(d)).peekable();
        if inside.peek().is_none() {
            roots.push(i);
        }
        for &dep in inside {
            if !children[dep].contains(&i) {
                children[dep].push(i);
            }
        }
    }
    let mut shown = HashSet::new();
    let mut forest: Vec<Node> = Vec::new();
    for root in roots {
        if shown.insert(root) {
            forest.push(build(root, &children, &mut shown));
        }
    }
    // Only a cycle leaves tasks unreached: they still get their line.
    for i in 0..tasks.len() {
        if shown.insert(i) {
            forest.push(build(i, &children, &mut shown));
        }
    }
    let mut lines = Vec::with_capacity(tasks.len());
    draw_level(&forest, "", repeats, &mut lines);
    lines
}

/// A task placed in the tree, with the tasks under it.
struct Node {
    index: usize,
    repeat: bool,
    kids: Vec<Node>,
}

/// Depth first, in the order the lines are drawn, so that "drawn above" is true.
fn build(index: usize, children: &[Vec<usize>], shown: &mut HashSet<usize>) -> Node {
    let kids = children[index]
        .iter()
        .map(|&kid| {
            if shown.insert(kid) {
                build(kid, children, shown)
            } else {
                Node { index: kid, repeat: true, kids: Vec::new() }
            }
        })
        .collect();
    Node { index, repeat: false, kids }
}

fn draw_level(nodes: &[Node], prefix: &str, repeats: Repeats, lines: &mut Vec<TreeLine>) {
    // Which sibling is last depends on what is drawn: an omitted repeat must not leave a `├─`.
    let drawn: Vec<&Node> = nodes.iter().filter(|n| !(n.repeat && repeats == Repeats::Omit)).collect();
    for (n, node) in drawn.iter().enumerate() {
        let last = n + 1 == drawn.len();
        lines.push(TreeLine {
            index: node.index,
            prefix: format!("{prefix}{}", if last { "└─ " } else { "├─ " }),
            repeat: node.repeat,
        });
        draw_level(&node.kids, &format!("{prefix}{}", if last { "   " } else { "│  " }), repeats, lines);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lines as `prefix name` (with `*` for a reference), for the seed's full-stack graph.
    fn picture(tasks: &[(TaskId, &[TaskId])], names: &[&str], repeats: Repeats) -> Vec<String> {
        layout(tasks, repeats)
            .into_iter()
            .map(|l| format!("{}{}{}", l.prefix, names[l.index], if l.repeat { "*" } else { "" }))
            .collect()
    }

    const NAMES: [&str; 5] = ["design", "backend", "frontend", "tests", "docker"];

    fn full_stack() -> Vec<(TaskId, &'static [TaskId])> {
        vec![(1, &[]), (2, &[1]), (3, &[1]), (4, &[2, 3]), (5, &[4])]
    }

    #[test]
    fn a_task_with_two_dependencies_is_drawn_once_then_referred_to() {
        assert_eq!(
            picture(&full_stack(), &NAMES, Repeats::Refer),
            ["└─ design", "   ├─ backend", "   │  └─ tests", "   │     └─ docker", "   └─ frontend", "      └─ tests*",]
        );
    }

    #[test]
    fn omitting_repeats_keeps_one_line_per_task_with_no_dangling_branch() {
        let lines = picture(&full_stack(), &NAMES, Repeats::Omit);
        assert_eq!(lines, ["└─ design", "   ├─ backend", "   │  └─ tests", "   │     └─ docker", "   └─ frontend"]);
        // The repeat came first among siblings: the sibling after it is the last one drawn.
        let tasks: Vec<(TaskId, &[TaskId])> = vec![(1, &[]), (2, &[1]), (3, &[1, 2]), (4, &[3])];
        assert_eq!(
            picture(&tasks, &["a", "b", "c", "d"], Repeats::Omit),
            ["└─ a", "   └─ b", "      └─ c", "         └─ d"]
        );
    }

    #[test]
    fn every_task_has_a_line_even_with_outside_dependencies_or_a_cycle() {
        // #7 depends on a task of another orchestration only: it is a root here.
        let tasks: Vec<(TaskId, &[TaskId])> = vec![(1, &[]), (7, &[99])];
        assert_eq!(picture(&tasks, &["a", "b"], Repeats::Omit), ["├─ a", "└─ b"]);
        let cycle: Vec<(TaskId, &[TaskId])> = vec![(1, &[2]), (2, &[1])];
        let lines = layout(&cycle, Repeats::Omit);
        let mut indexes: Vec<usize> = lines.iter().map(|l| l.index).collect();
        indexes.sort_unstable();
        assert_eq!(indexes, [0, 1]);
    }
}
