//! The dashboard's targets (issue 13): `GET /api/v1/orchestrations/{id}` with 10,000 tasks
//! stored, the first paint of a 100-task orchestration's graph in a real headless Chromium, and
//! how long after a change its event reaches a client.

use super::*;

/// `claude-worker serve --http 127.0.0.1:0` on `home`; its port, from its serving line.
async fn http_server(env: &Env, home: &Path) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt as _;
    let mut command = env.command(home, 100);
    command.args(["serve", "--http", "127.0.0.1:0"]).stdin(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn().expect("serve --http");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    while let Some(line) = lines.next_line().await.expect("stderr") {
        if let Some(rest) = line.split("serving http://").nth(1) {
            let port = rest.split('/').next().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok());
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, port.expect("port"));
        }
    }
    panic!("serve --http did not start");
}

/// A Chromium through chromedriver, or why not.
async fn browser() -> Result<(fantoccini::Client, tokio::process::Child), String> {
    use tokio::io::AsyncBufReadExt as _;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let mut driver = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("no chromedriver ({e})"))?;
    let mut lines = tokio::io::BufReader::new(driver.stdout.take().expect("stdout")).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.contains("started successfully") {
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,860"]}),
    );
    let client = fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .map_err(|e| format!("no Chromium session ({e})"))?;
    Ok((client, driver))
}

pub async fn rows(env: &Env) -> Vec<Row> {
    let mut rows = Vec::new();
    eprintln!("dashboard: storing 10,000 tasks and running a 100-task graph");
    let server = env.start("dashboard", 100).await;
    for batch in 0..10 {
        let tasks: Vec<Value> = (0..1000)
            .map(|i| json!({ "identifier": format!("s{batch}-{i}"), "execution_prompt": "x", "wait_after_dependencies": 86400 }))
            .collect();
        let created =
            call(&server.client, "create_orchestration", json!({ "name": format!("stored{batch}"), "tasks": tasks }))
                .await;
        call(&server.client, "cancel", json!({ "orchestration_id": created["orchestration_id"] })).await;
    }
    let graph = full_layers(10, 10);
    let hundred = run_graph(env, &server, &graph, "hundred").await.orchestration_id;
    let _ = server.client.cancel().await;

    let (_child, port) = http_server(env, &server.home).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for _ in 0..300 {
        let start = Instant::now();
        let response = http.get(format!("{base}/api/v1/orchestrations/{hundred}")).send().await.expect("get");
        let _ = response.bytes().await.expect("body");
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    rows.push(row(
        "GET /api/v1/orchestrations/{id} (100 tasks), 10,000 stored (p50)",
        format!("{:.2} ms", median(&times)),
        "<= 5 ms",
        "",
        "",
    ));

    // An event's delay: from the change's commit (the created task's event time) to its arrival.
    let mut events = http.get(format!("{base}/api/v1/events")).send().await.expect("events");
    let _ = events.chunk().await.expect("the first event");
    let conn =
        rusqlite::Connection::open_with_flags(server.home.join("tasks.db"), rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db");
    let mut delays = Vec::new();
    for i in 0..30 {
        let body =
            json!({ "task_identifier": format!("e{i}"), "execution_prompt": "x", "wait_after_dependencies": 86400 });
        let created: Value = http
            .post(format!("{base}/api/v1/tasks"))
            .json(&body)
            .send()
            .await
            .expect("post")
            .json()
            .await
            .expect("json");
        loop {
            let chunk = events.chunk().await.expect("event").expect("the stream goes on");
            if String::from_utf8_lossy(&chunk).contains("event: change") {
                break;
            }
        }
        let arrived = epoch_ms();
        let committed: i64 = conn
            .query_row(
                "SELECT min(at) FROM task_events WHERE task_id = ?1",
                [created["task_id"].as_i64().expect("id")],
                |r| r.get(0),
            )
            .expect("created event");
        delays.push((arrived - committed) as f64);
        // The next change must not arrive in the same chunk as this one's.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    rows.push(row(
        "event after a change, to a client of /api/v1/events (p50)",
        format!("{:.1} ms", median(&delays)),
        "<= 50 ms",
        "",
        "",
    ));
    rows.push(row("  the same, p99", format!("{:.1} ms", percentile(&delays, 0.99)), "", "", ""));

    match browser().await {
        Ok((client, _driver)) => {
            let mut paints = Vec::new();
            for _ in 0..RUNS * 2 {
                client.goto("about:blank").await.expect("blank");
                client.goto(&format!("{base}/#/o/{hundred}")).await.expect("open");
                let mut drawn = None;
                for _ in 0..200 {
                    let mark = client
                        .execute("const m = performance.getEntriesByName('graph-drawn'); return m.length ? m[0].startTime : null;", vec![])
                        .await
                        .expect("mark");
                    if let Some(ms) = mark.as_f64() {
                        drawn = Some(ms);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                paints.push(drawn.expect("the graph was drawn"));
            }
            let boxes = client.find_all(fantoccini::Locator::Css("g.node")).await.map(|n| n.len()).unwrap_or(0);
            rows.push(row(
                format!(
                    "dashboard: the graph of a 100-task orchestration in the page, from navigation ({boxes} boxes, p50)"
                ),
                format!("{:.0} ms", median(&paints)),
                "<= 200 ms",
                "",
                "",
            ));
            let _ = client.close().await;
        }
        Err(why) => rows.push(row("dashboard: first paint", format!("not measured: {why}"), "<= 200 ms", "", "")),
    }
    rows
}
