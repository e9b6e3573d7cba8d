//! Small helpers for the words people read: counts with the right plural, and messages of the
//! service (written for a model using the MCP tools) in the terminal commands' words.

/// `1 task`, `2 tasks`, `0 tasks`: `noun` with an `s` unless `n` is one.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// As [`count`], for nouns whose plural is not just an `s` (`1 dependency`, `2 dependencies`).
pub fn count_as(n: u64, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// What a cancel did and what will follow, in sentences: what is cancelled and skipped now,
/// what is still stopping (and what will be skipped when it has), what was left alone.
pub fn cancel_summary(o: &crate::store::CancelOutcome) -> String {
    let ids = |ids: &mut dyn Iterator<Item = i64>| ids.map(|id| format!("#{id}")).collect::<Vec<_>>().join(", ");
    let mut sentences = Vec::new();
    if !o.cancelled.is_empty() {
        sentences.push(format!(
            "Cancelled {}: {}.",
            count(o.cancelled.len() as u64, "task"),
            ids(&mut o.cancelled.iter().copied())
        ));
    }
    if !o.skipped.is_empty() {
        sentences.push(format!(
            "Skipped {} that can no longer run: {}.",
            count_as(o.skipped.len() as u64, "dependent", "dependents"),
            ids(&mut o.skipped.iter().copied())
        ));
    }
    let stopping: Vec<i64> = o.stopping.iter().map(|(id, _)| *id).filter(|id| !o.cancelled.contains(id)).collect();
    if !stopping.is_empty() {
        let later: Vec<i64> = o.skipped_when_stopped.iter().copied().filter(|id| !o.skipped.contains(id)).collect();
        let then = if later.is_empty() {
            String::new()
        } else {
            format!(", and then {} will be skipped", ids(&mut later.iter().copied()))
        };
        sentences.push(format!(
            "Still stopping {}: {} (the claude-worker running {} stops {}; {} will end cancelled{then}).",
            count(stopping.len() as u64, "running task"),
            ids(&mut stopping.iter().copied()),
            if stopping.len() == 1 { "it" } else { "them" },
            if stopping.len() == 1 { "it" } else { "them" },
            if stopping.len() == 1 { "it" } else { "they" },
        ));
    }
    if !o.already_finished.is_empty() {
        sentences.push(format!(
            "Left alone {} that had already finished: {}.",
            count(o.already_finished.len() as u64, "task"),
            o.already_finished.iter().map(|(id, s)| format!("#{id} {s}")).collect::<Vec<_>>().join(", ")
        ));
    }
    if sentences.is_empty() {
        sentences.push("Nothing was left to cancel.".to_owned());
    }
    sentences.join(" ")
}

/// "Retried 2 tasks of orchestration 3: b (#2) now pending, d (#4) now waiting. Reopened 1
/// skipped task, now waiting: c (#3)."
pub fn retry_summary(orchestration_id: Option<i64>, tasks: &[crate::store::RetriedTask]) -> String {
    let (reopened, retried): (Vec<&crate::store::RetriedTask>, Vec<&crate::store::RetriedTask>) =
        tasks.iter().partition(|t| t.was == crate::model::TaskStatus::Skipped);
    let tasks = |n: usize| count(n as u64, "task");
    let of = orchestration_id.map(|id| format!(" of orchestration {id}")).unwrap_or_default();
    let mut sentences = Vec::new();
    if !retried.is_empty() {
        let names: Vec<String> =
            retried.iter().map(|t| format!("{} (#{}) now {}", t.task_identifier, t.task_id, t.status)).collect();
        sentences.push(format!("Retried {}{of}: {}.", tasks(names.len()), names.join(", ")));
    }
    if !reopened.is_empty() {
        let names: Vec<String> = reopened.iter().map(|t| format!("{} (#{})", t.task_identifier, t.task_id)).collect();
        sentences.push(format!(
            "Reopened {}{} that had been skipped, now waiting: {}.",
            tasks(names.len()),
            if retried.is_empty() { of.as_str() } else { "" },
            names.join(", ")
        ));
    }
    sentences.join(" ")
}

/// "The budget of orchestration 3 is now $2.00 ($0.80 spent). Retried 1 task of ...": what a
/// raise of a budget did.
pub fn raise_summary(o: &crate::store::BudgetRaise) -> String {
    let head = format!(
        "The budget of orchestration {} is now {} ({} spent).",
        o.orchestration_id,
        crate::budget::usd(o.budget_usd),
        crate::budget::usd(o.spent_usd)
    );
    if o.tasks.is_empty() {
        format!("{head} Nothing was waiting for it.")
    } else {
        format!("{head} {}", retry_summary(Some(o.orchestration_id), &o.tasks))
    }
}

/// A message from the service in the words of the terminal commands: the MCP tools it names
/// become the commands that do the same.
pub fn in_cli_words(message: &str) -> String {
    const WORDS: [(&str, &str); 5] = [
        ("list_tasks shows", "`claude-worker-inspect list` shows"),
        ("list_orchestrations shows", "`claude-worker-inspect list-orchestrations` shows"),
        ("get_status shows", "`claude-worker-inspect status` shows"),
        (
            "add tasks to it with create_task and orchestration=",
            "add a task to it with `claude-worker run --orchestration` ",
        ),
        ("drop orchestration, or use orchestration=", "drop --orchestration, or use --orchestration "),
    ];
    let mut message = raise_in_cli_words(message);
    for (tool, command) in WORDS {
        message = message.replace(tool, command);
    }
    message
}

/// `retry(orchestration_id=N, max_budget_usd=<dollars>)` ([`crate::budget::how_to_raise`]) in
/// the inspect CLI's words: `` `claude-worker-inspect budget N <dollars>` ``.
fn raise_in_cli_words(message: &str) -> String {
    const START: &str = "retry(orchestration_id=";
    const END: &str = ", max_budget_usd=<dollars>)";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(START) {
        let after = &rest[at + START.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(END) {
            out.push_str(&rest[..at]);
            out.push_str(&format!("`claude-worker-inspect budget {} <dollars>`", &after[..digits]));
            rest = &after[digits + END.len()..];
        } else {
            out.push_str(&rest[..at + START.len()]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_everything_else_plural() {
        assert_eq!(count(0, "task"), "0 tasks");
        assert_eq!(count(1, "task"), "1 task");
        assert_eq!(count(2, "task"), "2 tasks");
        assert_eq!(count_as(1, "dependency edge", "dependency edges"), "1 dependency edge");
        assert_eq!(count_as(3, "dependency", "dependencies"), "3 dependencies");
    }

    #[test]
    fn retry_summaries_count_in_words() {
        use crate::model::TaskStatus::{Cancelled, Failed, Pending, Skipped, Waiting};
        let retried = |task_id: i64, name: &str, was, status| crate::store::RetriedTask {
            task_id,
            task_identifier: name.to_owned(),
            was,
            status,
        };
        assert_eq!(
            retry_summary(None, &[retried(6, "setup_db", Failed, Pending)]),
            "Retried 1 task: setup_db (#6) now pending."
        );
        let tasks =
            [retried(2, "b", Failed, Pending), retried(3, "c", Skipped, Waiting), retried(4, "d", Cancelled, Waiting)];
        assert_eq!(
            retry_summary(Some(3), &tasks),
            "Retried 2 tasks of orchestration 3: b (#2) now pending, d (#4) now waiting. Reopened 1 task that had \
             been skipped, now waiting: c (#3)."
        );
    }

    #[test]
    fn messages_name_commands_instead_of_tools() {
        assert_eq!(
            in_cli_words("no task handoff: give a task identifier or #<task_id> (list_tasks shows the stored ones)"),
            "no task handoff: give a task identifier or #<task_id> (`claude-worker-inspect list` shows the stored ones)"
        );
        assert!(!in_cli_words("x (list_orchestrations shows the stored ones)").contains("list_orchestrations"));
    }

    #[test]
    fn the_way_to_raise_a_budget_names_the_inspect_command() {
        let how = crate::budget::how_to_raise(12);
        assert_eq!(
            in_cli_words(&format!("Raise the budget to run them: {how}. Or {how}.")),
            "Raise the budget to run them: `claude-worker-inspect budget 12 <dollars>`. Or `claude-worker-inspect \
             budget 12 <dollars>`."
        );
        // Something that only starts the same way is left as it is.
        assert_eq!(in_cli_words("retry(orchestration_id=x)"), "retry(orchestration_id=x)");
    }
}
