//! `cost`: what tasks spent, by task, orchestration, model and day (UTC), with tokens and
//! totals. The store hands over one row per task; the grouping is done here.

use std::collections::BTreeMap;

use comfy_table::Cell;
use serde_json::{Value, json};

use super::color;
use super::render::table;
use crate::model::{Millis, OrchestrationId, Usage, round_usd};
use crate::store::CostRow;
use crate::time::rfc3339;

/// How many tasks the table shows (the costliest); `--json` lists them all.
const TASKS_SHOWN: usize = 20;

/// The sums of one group.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sum {
    pub tasks: u64,
    pub cost_usd: f64,
    pub usage: Usage,
}

impl Sum {
    fn add(&mut self, row: &CostRow) {
        self.tasks += 1;
        self.cost_usd += row.cost_usd;
        self.usage.input_tokens += row.usage.input_tokens;
        self.usage.output_tokens += row.usage.output_tokens;
        self.usage.cache_creation_input_tokens += row.usage.cache_creation_input_tokens;
        self.usage.cache_read_input_tokens += row.usage.cache_read_input_tokens;
    }
}

/// The report: totals and the groups, each ordered by its key.
#[derive(Clone, Debug, Default)]
pub struct CostReport {
    pub since: Option<Millis>,
    pub orchestration: Option<OrchestrationId>,
    pub total: Sum,
    pub tasks: Vec<CostRow>,
    pub by_orchestration: BTreeMap<OrchestrationId, (Option<String>, Sum)>,
    pub by_model: BTreeMap<String, Sum>,
    pub by_day: BTreeMap<String, Sum>,
}

/// The UTC day of a stored time, `2026-11-25`.
fn day(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().format("%Y-%m-%d").to_string()
}

pub fn report(rows: Vec<CostRow>, since: Option<Millis>, orchestration: Option<OrchestrationId>) -> CostReport {
    let mut report = CostReport { since, orchestration, ..CostReport::default() };
    for row in &rows {
        report.total.add(row);
        report
            .by_orchestration
            .entry(row.orchestration_id)
            .or_insert_with(|| (row.orchestration_name.clone(), Sum::default()))
            .1
            .add(row);
        report.by_model.entry(row.model.clone()).or_default().add(row);
        report.by_day.entry(day(row.at)).or_default().add(row);
    }
    let mut tasks = rows;
    // Costliest first; the order of creation among equals.
    tasks.sort_by(|a, b| b.cost_usd.total_cmp(&a.cost_usd).then(a.task_id.cmp(&b.task_id)));
    report.tasks = tasks;
    report
}

fn sum_json(sum: &Sum) -> Value {
    json!({
        "tasks": sum.tasks,
        "cost_usd": round_usd(sum.cost_usd),
        "input_tokens": sum.usage.input_tokens,
        "output_tokens": sum.usage.output_tokens,
        "cache_creation_input_tokens": sum.usage.cache_creation_input_tokens,
        "cache_read_input_tokens": sum.usage.cache_read_input_tokens,
    })
}

fn with(mut value: Value, extra: Value) -> Value {
    if let (Value::Object(map), Value::Object(extra)) = (&mut value, extra) {
        map.extend(extra);
    }
    value
}

pub fn report_json(r: &CostReport) -> Value {
    let tasks: Vec<Value> = r
        .tasks
        .iter()
        .map(|t| {
            json!({
                "task_id": t.task_id,
                "task_identifier": t.task_identifier,
                "orchestration_id": t.orchestration_id,
                "model": t.model,
                "status": t.status.as_str(),
                "at": rfc3339(t.at),
                "day": day(t.at),
                "cost_usd": round_usd(t.cost_usd),
                "input_tokens": t.usage.input_tokens,
                "output_tokens": t.usage.output_tokens,
                "cache_creation_input_tokens": t.usage.cache_creation_input_tokens,
                "cache_read_input_tokens": t.usage.cache_read_input_tokens,
            })
        })
        .collect();
    json!({
        "since": r.since.map(rfc3339),
        "orchestration_id": r.orchestration,
        "total": sum_json(&r.total),
        "by_task": tasks,
        "by_orchestration": r.by_orchestration.iter()
            .map(|(id, (name, sum))| with(json!({ "orchestration_id": id, "name": name }), sum_json(sum)))
            .collect::<Vec<_>>(),
        "by_model": r.by_model.iter().map(|(model, sum)| with(json!({ "model": model }), sum_json(sum))).collect::<Vec<_>>(),
        "by_day": r.by_day.iter().map(|(day, sum)| with(json!({ "day": day }), sum_json(sum))).collect::<Vec<_>>(),
    })
}

fn usd(v: f64) -> String {
    format!("${v:.4}")
}

/// The token columns of a group.
fn token_cells(u: &Usage) -> [Cell; 4] {
    [
        Cell::new(u.input_tokens),
        Cell::new(u.output_tokens),
        Cell::new(u.cache_creation_input_tokens),
        Cell::new(u.cache_read_input_tokens),
    ]
}

const TOKEN_HEADERS: [&str; 4] = ["in", "out", "cache write", "cache read"];

fn group_table<'a>(key: &str, groups: impl Iterator<Item = (String, &'a Sum)>) -> String {
    let mut header = vec![key, "tasks", "cost"];
    header.extend(TOKEN_HEADERS);
    let mut t = table(&header);
    for (name, sum) in groups {
        let mut row = vec![Cell::new(name), Cell::new(sum.tasks), Cell::new(usd(sum.cost_usd))];
        row.extend(token_cells(&sum.usage));
        t.add_row(row);
    }
    t.to_string()
}

pub fn report_text(r: &CostReport) -> String {
    let mut scope = Vec::new();
    if let Some(id) = r.orchestration {
        scope.push(format!("orchestration {id}"));
    }
    if let Some(since) = r.since {
        scope.push(format!("since {}", rfc3339(since)));
    }
    let scope = if scope.is_empty() { "all time".to_owned() } else { scope.join(", ") };
    let u = &r.total.usage;
    let mut out = format!(
        "{} {} over {} task{} ({scope}); tokens: {} in, {} out, {} cache write, {} cache read\n",
        color::bold("Total"),
        color::bold(&usd(r.total.cost_usd)),
        r.total.tasks,
        if r.total.tasks == 1 { "" } else { "s" },
        u.input_tokens,
        u.output_tokens,
        u.cache_creation_input_tokens,
        u.cache_read_input_tokens,
    );
    if r.tasks.is_empty() {
        out.push_str("no task spent anything in this range\n");
        return out;
    }
    out.push_str(&format!("\n{}\n", color::bold("By day (UTC)")));
    out.push_str(&group_table("day", r.by_day.iter().map(|(d, s)| (d.clone(), s))));
    out.push_str(&format!("\n\n{}\n", color::bold("By model")));
    out.push_str(&group_table("model", r.by_model.iter().map(|(m, s)| (m.clone(), s))));
    out.push_str(&format!("\n\n{}\n", color::bold("By orchestration")));
    out.push_str(&group_table(
        "orchestration",
        r.by_orchestration
            .iter()
            .map(|(id, (name, s))| (name.as_deref().map_or_else(|| id.to_string(), |n| format!("{id} {n}")), s)),
    ));
    let shown = r.tasks.len().min(TASKS_SHOWN);
    let title = if shown < r.tasks.len() {
        format!("By task (the {shown} costliest of {}; --json lists all)", r.tasks.len())
    } else {
        "By task".to_owned()
    };
    out.push_str(&format!("\n\n{}\n", color::bold(&title)));
    let mut header = vec!["id", "task", "orch", "model", "status", "cost"];
    header.extend(TOKEN_HEADERS);
    let mut t = table(&header);
    for task in &r.tasks[..shown] {
        let mut row = vec![
            Cell::new(format!("#{}", task.task_id)),
            Cell::new(&task.task_identifier),
            Cell::new(task.orchestration_id),
            Cell::new(&task.model),
            color::status_cell(task.status.as_str()),
            Cell::new(usd(task.cost_usd)),
        ];
        row.extend(token_cells(&task.usage));
        t.add_row(row);
    }
    out.push_str(&t.to_string());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TaskStatus;

    fn row(task_id: i64, orchestration_id: i64, model: &str, at: Millis, cost_usd: f64, input: u64) -> CostRow {
        CostRow {
            task_id,
            task_identifier: format!("t{task_id}"),
            orchestration_id,
            orchestration_name: None,
            model: model.to_owned(),
            status: TaskStatus::Completed,
            at,
            cost_usd,
            usage: Usage { input_tokens: input, output_tokens: 1, ..Usage::default() },
        }
    }

    #[test]
    fn groups_sum_to_the_total() {
        let day1 = 1_795_576_365_123; // 2026-11-25
        let day2 = day1 + 86_400_000;
        let r = report(
            vec![
                row(1, 1, "sonnet", day1, 0.5, 10),
                row(2, 1, "opus", day1, 1.0, 20),
                row(3, 2, "sonnet", day2, 0.25, 5),
            ],
            None,
            None,
        );
        assert_eq!(r.total.tasks, 3);
        assert!((r.total.cost_usd - 1.75).abs() < 1e-9);
        assert_eq!(r.total.usage.input_tokens, 35);
        assert_eq!(r.by_model["sonnet"].tasks, 2);
        assert!((r.by_model["sonnet"].cost_usd - 0.75).abs() < 1e-9);
        assert_eq!(r.by_day.keys().collect::<Vec<_>>(), ["2026-11-25", "2026-11-26"]);
        assert_eq!(r.by_orchestration[&1].1.usage.input_tokens, 30);
        assert_eq!(r.tasks.iter().map(|t| t.task_id).collect::<Vec<_>>(), [2, 1, 3], "costliest first");
        let text = report_text(&r);
        assert!(text.starts_with("Total $1.7500 over 3 tasks (all time)"), "{text}");
    }
}
