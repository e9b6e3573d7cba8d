//! Orchestration budgets, as pure rules with no IO: what a budget may be, when one is spent,
//! the `--max-budget-usd` an attempt gets, and the sentences that tell of it.
//!
//! An orchestration may carry a budget in dollars; its spend is the sum of its tasks' recorded
//! costs. The store asks these functions inside the transactions that record a cost (the finish
//! of an attempt) and that start one (the claim), so that no two processes can both start work
//! past the budget.

use crate::model::{OrchestrationId, OrchestrationSummary, round_usd};

/// The largest budget accepted, for an orchestration or a task: a larger one is most likely a
/// typo (cents for dollars, a stray digit), and a budget that never stops anything is better
/// given as none at all.
pub const MAX_BUDGET_USD: f64 = 10_000.0;

/// Less than this left counts as spent: an attempt given a fraction of a cent could not finish
/// one turn, and a budget shown as `$5.00 of $5.00` should read as reached.
pub const MIN_ATTEMPT_USD: f64 = 0.01;

/// Checks a budget a caller gave (`field` names it in the message): a positive, finite number
/// of dollars, at most [`MAX_BUDGET_USD`].
pub fn check(field: &str, usd: f64) -> Result<f64, String> {
    if !usd.is_finite() || usd <= 0.0 {
        return Err(format!(
            "{field} {usd} is not a budget: give a positive number of dollars, at most {MAX_BUDGET_USD} (for example 5 \
             or 2.50)"
        ));
    }
    if usd > MAX_BUDGET_USD {
        return Err(format!(
            "{field} {usd} is over the largest budget accepted, ${MAX_BUDGET_USD}: give at most {MAX_BUDGET_USD} \
             dollars, or leave the budget out"
        ));
    }
    Ok(usd)
}

/// What is left of `budget` after `spent`, rounded as costs are at the edges (never below 0).
pub fn left(budget: f64, spent: f64) -> f64 {
    round_usd(budget - spent).max(0.0)
}

/// Whether a budget is spent: less than [`MIN_ATTEMPT_USD`] is left.
pub fn is_spent(budget: f64, spent: f64) -> bool {
    left(budget, spent) < MIN_ATTEMPT_USD
}

/// The `--max-budget-usd` an attempt starts with: the task's own `max_budget_usd`, lowered to
/// what is left of its orchestration's budget. `None` when neither limits it.
pub fn attempt_cap(task_max: Option<f64>, budget: Option<f64>, spent: f64) -> Option<f64> {
    match budget {
        None => task_max,
        Some(budget) => {
            let left = left(budget, spent);
            Some(task_max.map_or(left, |own| own.min(left)))
        }
    }
}

/// Whether an attempt given `cap` was limited by its orchestration's budget rather than by the
/// task's own `max_budget_usd`: the CLI stopping at that cap means the budget ran out.
pub fn capped_by_orchestration(task_max: Option<f64>, cap: Option<f64>) -> bool {
    cap.is_some_and(|cap| task_max.is_none_or(|own| cap < own))
}

/// Dollars for people: `$5.00`, `$1.20`, and four decimals below a cent (`$0.0008`), so that a
/// small spend does not read as nothing.
pub fn usd(amount: f64) -> String {
    if amount != 0.0 && amount.abs() < 0.01 { format!("${amount:.4}") } else { format!("${amount:.2}") }
}

/// `$1.20 of $5.00`: the spend of a budget, as every interface shows it.
pub fn spend_of(spent: f64, budget: f64) -> String {
    format!("{} of {}", usd(spent), usd(budget))
}

/// The error of a task the budget kept from starting.
pub fn skipped_message(orchestration_id: OrchestrationId, spent: f64, budget: f64) -> String {
    format!(
        "not started: orchestration {orchestration_id} had spent {} of its budget when this task could start",
        spend_of(spent, budget)
    )
}

/// The error of a task the CLI stopped at the cap its orchestration's budget gave it.
pub fn stopped_message(orchestration_id: OrchestrationId, cap: f64, cli_said: &str) -> String {
    format!(
        "stopped at --max-budget-usd {}, what was left of orchestration {orchestration_id}'s budget ({cli_said})",
        usd(cap)
    )
}

/// How to raise a budget, in the MCP tools' words ([`crate::text::in_cli_words`] turns it into
/// the inspect CLI's command).
pub fn how_to_raise(orchestration_id: OrchestrationId) -> String {
    format!("retry(orchestration_id={orchestration_id}, max_budget_usd=<dollars>)")
}

/// The sentence of an orchestration whose budget stopped some of its tasks; `None` when it has
/// no budget or the budget stopped nothing.
pub fn exhausted_message(summary: &OrchestrationSummary) -> Option<String> {
    let budget = summary.budget_usd?;
    if summary.budget_stopped == 0 {
        return None;
    }
    let id = summary.orchestration_id;
    Some(format!(
        "Budget exhausted: orchestration {id} spent {}, so {} did not run to the end. Raise the budget to run {}: {}.",
        spend_of(summary.cost_usd, budget),
        crate::text::count(u64::from(summary.budget_stopped), "task"),
        if summary.budget_stopped == 1 { "it" } else { "them" },
        how_to_raise(id),
    ))
}

/// Why a retry in an orchestration whose budget is spent is refused: it would stop again at once.
pub fn retry_refused(orchestration_id: OrchestrationId, spent: f64, budget: f64) -> String {
    format!(
        "orchestration {orchestration_id} has spent {} of its budget, so what a retry puts back in line would be \
         stopped again at once. Raise the budget instead, which also runs again what it stopped: {}",
        spend_of(spent, budget),
        how_to_raise(orchestration_id)
    )
}

/// Why a task is not added to an orchestration whose budget is spent: it would never start.
pub fn join_refused(orchestration_id: OrchestrationId, spent: f64, budget: f64) -> String {
    format!(
        "orchestration {orchestration_id} has spent {} of its budget, so a task added to it would never start: \
         give a higher orchestration_max_budget_usd with it, raise the budget first ({}), or queue the task in \
         another orchestration",
        spend_of(spent, budget),
        how_to_raise(orchestration_id)
    )
}

/// Checks a new budget for an orchestration that has spent `spent`: one that would be spent at
/// once is refused, saying how much it must exceed.
pub fn check_raise(orchestration_id: OrchestrationId, budget: f64, spent: f64) -> Result<(), String> {
    if is_spent(budget, spent) {
        return Err(format!(
            "a budget of {} for orchestration {orchestration_id} would be spent at once: it has spent {} already. \
             Give at least {}",
            usd(budget),
            usd(spent),
            usd(round_usd(spent + MIN_ATTEMPT_USD))
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Counters, OrchestrationStatus, Project};

    #[test]
    fn a_budget_is_a_positive_finite_number_of_dollars_up_to_the_bound() {
        assert_eq!(check("max_budget_usd", 5.0), Ok(5.0));
        assert_eq!(check("max_budget_usd", MAX_BUDGET_USD), Ok(MAX_BUDGET_USD));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let message = check("max_budget_usd", bad).expect_err("refused");
            assert!(message.starts_with("max_budget_usd "), "{message}");
            assert!(message.contains("positive number of dollars"), "{message}");
        }
        let absurd = check("orchestration_max_budget_usd", 1e9).expect_err("refused");
        assert!(absurd.contains("at most 10000"), "{absurd}");
    }

    #[test]
    fn a_budget_is_spent_when_less_than_a_cent_is_left() {
        assert!(!is_spent(1.0, 0.0));
        assert!(!is_spent(1.0, 0.98));
        assert!(is_spent(1.0, 0.995));
        assert!(is_spent(1.0, 1.0));
        assert!(is_spent(1.0, 1.7));
        // Float noise of a sum does not leave a phantom remainder.
        assert!(is_spent(1.2, 0.4 + 0.4 + 0.4));
        assert_eq!(left(1.0, 0.4 + 0.4), 0.2);
        assert_eq!(left(1.0, 3.0), 0.0);
    }

    #[test]
    fn an_attempt_gets_at_most_what_is_left() {
        assert_eq!(attempt_cap(None, None, 3.0), None);
        assert_eq!(attempt_cap(Some(0.5), None, 3.0), Some(0.5));
        assert_eq!(attempt_cap(None, Some(1.0), 0.4 + 0.4), Some(0.2));
        assert_eq!(attempt_cap(Some(0.5), Some(1.0), 0.2), Some(0.5), "the task's own is lower");
        assert_eq!(attempt_cap(Some(0.5), Some(1.0), 0.8), Some(0.2), "the budget's remainder is lower");
        assert_eq!(attempt_cap(None, Some(1.0), 2.0), Some(0.0));
    }

    #[test]
    fn a_stop_at_the_cap_is_the_budget_s_only_when_the_budget_set_it() {
        assert!(capped_by_orchestration(None, Some(0.2)));
        assert!(capped_by_orchestration(Some(0.5), Some(0.2)));
        assert!(!capped_by_orchestration(Some(0.5), Some(0.5)), "the task's own limit");
        assert!(!capped_by_orchestration(Some(0.5), None));
        assert!(!capped_by_orchestration(None, None));
    }

    #[test]
    fn amounts_read_as_dollars() {
        assert_eq!(usd(5.0), "$5.00");
        assert_eq!(usd(1.2), "$1.20");
        assert_eq!(usd(0.0008), "$0.0008");
        assert_eq!(usd(0.0), "$0.00");
        assert_eq!(spend_of(1.2, 5.0), "$1.20 of $5.00");
    }

    fn summary(budget_usd: Option<f64>, budget_stopped: u32) -> OrchestrationSummary {
        OrchestrationSummary {
            orchestration_id: 3,
            name: None,
            project: Project::from_stored("/".to_owned()),
            status: OrchestrationStatus::Failed,
            created_at: 0,
            started_at: None,
            ended_at: None,
            counters: Counters::default(),
            cost_usd: 0.8,
            budget_usd,
            budget_stopped,
        }
    }

    #[test]
    fn an_exhausted_orchestration_says_its_spend_its_budget_and_how_to_raise_it() {
        assert_eq!(exhausted_message(&summary(None, 2)), None);
        assert_eq!(exhausted_message(&summary(Some(1.0), 0)), None);
        assert_eq!(
            exhausted_message(&summary(Some(0.75), 2)).as_deref(),
            Some(
                "Budget exhausted: orchestration 3 spent $0.80 of $0.75, so 2 tasks did not run to the end. Raise \
                 the budget to run them: retry(orchestration_id=3, max_budget_usd=<dollars>)."
            )
        );
        assert!(skipped_message(3, 0.8, 0.75).contains("$0.80 of $0.75"));
    }

    #[test]
    fn a_raise_must_leave_something_to_spend() {
        assert!(check_raise(3, 2.0, 0.8).is_ok());
        let refused = check_raise(3, 0.8, 0.8).expect_err("spent at once");
        assert!(refused.contains("has spent $0.80"), "{refused}");
        assert!(refused.contains("at least $0.81"), "{refused}");
    }
}
