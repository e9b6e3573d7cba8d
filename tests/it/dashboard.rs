//! The dashboard in a real headless Chromium (Debian's `chromium`, driven through its
//! `chromedriver` over WebDriver), against the real binary: the graph of a running orchestration
//! with its boxes and edges, a state change appearing without a reload, a task's panel with its
//! log following, cancel and retry from the page, and a page elsewhere or a visitor without the
//! token refused. With `CLAUDE_WORKER_SCREENSHOTS=DIR` the tests also save the main views there
//! (how `docs/dashboard-*.png` are made).

use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::{Env, HttpServer};

/// A Chromium of one test, and its chromedriver.
struct Browser {
    client: Client,
    _driver: tokio::process::Child,
}

impl Browser {
    async fn start(env: &Env) -> Browser {
        use tokio::io::AsyncBufReadExt as _;
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let mut driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(env.stderr_log())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver, which .ci/run installs with chromium)");
        let mut lines = tokio::io::BufReader::new(driver.stdout.take().expect("stdout")).lines();
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read chromedriver") {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited");
        })
        .await
        .expect("chromedriver started in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let mut options = json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,860", "--hide-scrollbars", "--force-device-scale-factor=1",
        ]});
        if std::path::Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".to_owned(), options);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Browser { client, _driver: driver }
    }

    /// The attribute `name` of the first element matching `css`, if there is one.
    async fn attr(&self, css: &str, name: &str) -> Option<String> {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.attr(name).await.ok().flatten(),
            Err(_) => None,
        }
    }

    /// Waits until `css` matches an element whose `name` attribute `check` accepts.
    async fn until(&self, css: &str, name: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(value) = self.attr(css, name).await
                && check(&value)
            {
                return value;
            }
            if tokio::time::Instant::now() >= deadline {
                let page = self.text("body").await;
                panic!("timed out waiting for {what} ({css} [{name}]); the page shows: {page}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `script` returns true in the page.
    async fn until_true(&self, script: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while self.client.execute(script, vec![]).await.ok() != Some(json!(true)) {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn count(&self, css: &str) -> usize {
        self.client.find_all(Locator::Css(css)).await.map(|all| all.len()).unwrap_or(0)
    }

    /// Clicks the element `css` matches, as a person does. The page draws itself again after
    /// every change, so an element found a moment ago may be gone: it is looked for again.
    async fn click(&self, css: &str) {
        let mut tries = 0;
        loop {
            let found = self.client.find(Locator::Css(css)).await;
            match found {
                Ok(element) => match element.click().await {
                    Ok(()) => return,
                    Err(_) if tries < 20 => {}
                    Err(e) => panic!("click {css}: {e}"),
                },
                Err(e) if tries >= 20 => panic!("{css}: {e}"),
                Err(_) => {}
            }
            tries += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Saves a screenshot as `docs/dashboard-NAME.png` when asked to (see the module's doc).
    async fn keep(&self, name: &str) {
        if let Ok(dir) = std::env::var("CLAUDE_WORKER_SCREENSHOTS") {
            let png = self.client.screenshot().await.expect("screenshot");
            std::fs::write(std::path::Path::new(&dir).join(format!("dashboard-{name}.png")), png)
                .expect("save screenshot");
        }
    }

    async fn close(self) {
        let _ = self.client.close().await;
    }
}

async fn post(server: &HttpServer, path: &str, body: Value) -> Value {
    let response = reqwest::Client::new().post(server.url(path)).json(&body).send().await.expect("post");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.expect("json")
}

fn id_of(env: &Env, identifier: &str) -> i64 {
    env.sql_count(&format!("SELECT task_id FROM tasks WHERE task_identifier = '{identifier}'"))
}

/// The graph of a running orchestration, drawn with a box per task and an edge per dependency;
/// a held task's end shows without a reload; its panel follows its log; cancel and retry work
/// from the page.
#[tokio::test]
async fn the_dashboard_draws_a_running_graph_and_follows_it_live() {
    let env = Env::new();
    let gate = env.state.join("gate");
    let server = env.http_server("127.0.0.1:0").await;
    let held = format!("@hold={} refactor the API", gate.display());
    let docker_gate = env.state.join("docker-gate");
    let docker = format!("@hold={} the Docker setup", docker_gate.display());
    let created = post(
        &server,
        "/api/v1/orchestrations",
        json!({"name": "refactor", "tasks": [
            {"identifier": "api", "execution_prompt": held},
            {"identifier": "db", "execution_prompt": "refactor the database layer"},
            {"identifier": "ui", "execution_prompt": "refactor the UI @auth", "max_attempts": 1},
            {"identifier": "tests", "execution_prompt": "write the tests", "depends_on": ["api", "db"]},
            {"identifier": "docs", "execution_prompt": "document it", "depends_on": ["ui"]},
            {"identifier": "docker", "execution_prompt": docker, "depends_on": ["tests"]}
        ]}),
    )
    .await;
    let orchestration = created["orchestration_id"].as_i64().expect("id");
    let browser = Browser::start(&env).await;
    browser.client.goto(&server.url("/")).await.expect("open the dashboard");
    let row = format!("li[data-orchestration-id=\"{orchestration}\"] a");
    browser
        .until(&row, "href", "the orchestration in the list", |h| h.ends_with(&format!("#/o/{orchestration}")))
        .await;
    browser.keep("list").await;
    browser.click(&row).await;
    let api = id_of(&env, "api");
    let box_of = |id: i64| format!("g.node[data-task-id=\"{id}\"]");
    browser.until(&box_of(api), "data-status", "api running", |s| s == "running").await;
    browser.until(&box_of(id_of(&env, "ui")), "data-status", "ui failed", |s| s == "failed").await;
    assert_eq!(browser.count("g.node").await, 6, "a box per task");
    assert_eq!(browser.count("path.edge").await, 4, "an edge per dependency");
    for (from, to) in [("api", "tests"), ("db", "tests"), ("ui", "docs"), ("tests", "docker")] {
        let edge = format!("path.edge[data-from=\"{}\"][data-to=\"{}\"]", id_of(&env, from), id_of(&env, to));
        assert_eq!(browser.count(&edge).await, 1, "{from} -> {to}");
    }
    assert_eq!(browser.attr(&box_of(id_of(&env, "docs")), "data-status").await.as_deref(), Some("skipped"));
    browser.keep("graph").await;
    // On a phone-width screen the graph scrolls inside its frame; the page does not overflow.
    browser.client.set_window_size(390, 844).await.expect("phone width");
    let overflow =
        browser.client.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await;
    assert_eq!(overflow.expect("width"), json!(true), "nothing wider than the screen but the graph's frame");
    browser.keep("phone").await;
    browser.client.set_window_size(1280, 860).await.expect("desktop width");

    // Open the held task's panel: its log is there, and follows.
    browser.click(&box_of(api)).await;
    browser.until_true("return !document.getElementById('panel').hidden", "the task's panel").await;
    let url = browser.client.current_url().await.expect("url");
    assert!(url.as_str().ends_with(&format!("#/o/{orchestration}/t/{api}")), "{url}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !browser.text("#task-log").await.contains("of api started") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log shows the attempt: {:?} in {:?} / {:?}",
            browser.text("#task-log").await,
            browser.text("#panel").await,
            browser.client.execute("return document.getElementById('task-log').textContent", vec![]).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser.keep("task").await;
    let marker = browser.client.execute("window.__not_reloaded = true; return true;", vec![]).await.expect("mark");
    assert_eq!(marker, json!(true));
    // The task ends: the page shows it without a reload, and the log shows its end.
    std::fs::write(&gate, "").expect("open the gate");
    browser.until(&box_of(api), "data-status", "api completed, live", |s| s == "completed").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !browser.text("#task-log").await.contains("completed in") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log follows to the end: {}",
            browser.text("#task-log").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let same_page = browser.client.execute("return window.__not_reloaded === true;", vec![]).await.expect("check");
    assert_eq!(same_page, json!(true), "the change arrived without a reload");

    // Retry the failed task from its panel; then cancel the orchestration (docker is held
    // running) from the page.
    browser.until(&box_of(id_of(&env, "docker")), "data-status", "docker running", |s| s == "running").await;
    let ui = id_of(&env, "ui");
    browser.client.goto(&server.url(&format!("/#/o/{orchestration}/t/{ui}"))).await.expect("open ui");
    browser.until("[data-action=\"retry-task\"]", "data-action", "the retry button", |_| true).await;
    browser.click("[data-action=\"retry-task\"]").await;
    crate::harness::eventually(15.0, "ui retried", || {
        (env.sql_count(&format!("SELECT attempt FROM tasks WHERE task_id = {ui}")) >= 2
            || env.sql_count(&format!("SELECT COUNT(*) FROM task_events WHERE task_id = {ui} AND kind = 'retried'"))
                > 0)
        .then_some(())
    })
    .await;
    browser.client.goto(&server.url(&format!("/#/o/{orchestration}"))).await.expect("open the graph");
    browser.until("[data-action=\"cancel-orchestration\"]", "data-action", "the cancel button", |_| true).await;
    browser.click("[data-action=\"cancel-orchestration\"]").await;
    browser.client.accept_alert().await.expect("confirm the cancel");
    let docker = id_of(&env, "docker");
    browser.until(&box_of(docker), "data-status", "docker cancelled, live", |s| s == "cancelled").await;
    assert_eq!(
        env.sql_count(&format!("SELECT COUNT(*) FROM tasks WHERE task_id = {docker} AND status = 'cancelled'")),
        1
    );
    browser.close().await;
    assert!(server.stop().await.success());
}

/// With a token the page asks for it once and keeps it in an HttpOnly cookie; a page of
/// another origin cannot use the API even from the same browser.
#[tokio::test]
async fn the_dashboard_asks_for_the_token_and_refuses_other_origins() {
    let env = Env::new().set("CLAUDE_WORKER_HTTP_TOKEN", "open-sesame");
    let server = env.http_server("127.0.0.1:0").await;
    let browser = Browser::start(&env).await;
    browser.client.goto(&server.url("/")).await.expect("open the dashboard");
    browser.until("#login", "open", "the sign-in dialog", |_| true).await;
    browser.keep("sign-in").await;
    let field = browser.client.find(Locator::Css("#login-token")).await.expect("the token field");
    field.send_keys("wrong").await.expect("type");
    browser.click("#login-form button").await;
    browser.until("#login-error", "class", "the wrong-token message", |_| true).await;
    assert!(browser.text("#login-error").await.contains("wrong token"));
    field.clear().await.expect("clear");
    field.send_keys("open-sesame").await.expect("type");
    browser.click("#login-form button").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !browser.text("#main").await.contains("No orchestrations yet") {
        assert!(tokio::time::Instant::now() < deadline, "signed in: {}", browser.text("#main").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The cookie is HttpOnly: the page's scripts cannot read the token.
    let cookies = browser.client.execute("return document.cookie;", vec![]).await.expect("cookie");
    assert_eq!(cookies, json!(""));
    // The same browser on another origin (localhost is not 127.0.0.1 to it): its request carries
    // the cookie on a simple POST, and is refused by the Origin check before anything is stored.
    browser.client.goto(&format!("http://localhost:{}/health", server.port)).await.expect("other origin");
    let script = format!(
        "const done = arguments[0];
         fetch('http://127.0.0.1:{}/api/v1/tasks', {{method: 'POST', mode: 'no-cors', credentials: 'include',
           headers: {{'content-type': 'text/plain'}}, body: JSON.stringify({{task_identifier: 'csrf', execution_prompt: 'x'}})}})
           .then(() => done('sent'), (e) => done('failed: ' + e));",
        server.port
    );
    let sent = browser.client.execute_async(&script, vec![]).await.expect("cross-origin fetch");
    assert!(sent.as_str().is_some_and(|s| s == "sent" || s.starts_with("failed")), "{sent}");
    assert_eq!(env.sql_count("SELECT COUNT(*) FROM tasks"), 0, "nothing was created from another origin");
    browser.close().await;
    assert!(server.stop().await.success());
}

/// A budget that stopped a graph shows as a banner, and a new budget set on the page finishes
/// it; a usage-limit pause shows as a banner whose "Resume now" starts the work at once.
#[tokio::test]
async fn budget_and_usage_limit_banners_and_their_actions() {
    let env = Env::new();
    let server = env.http_server("127.0.0.1:0").await;
    let created = post(
        &server,
        "/api/v1/orchestrations",
        json!({"name": "capped", "max_budget_usd": 1.0, "tasks": [
            {"identifier": "a", "execution_prompt": "a @cost=0.60"},
            {"identifier": "b", "execution_prompt": "b @cost=0.50", "depends_on": ["a"]},
            {"identifier": "c", "execution_prompt": "c @cost=0.10", "depends_on": ["b"]}
        ]}),
    )
    .await;
    let capped = created["orchestration_id"].as_i64().expect("id");
    let browser = Browser::start(&env).await;
    browser.client.goto(&server.url(&format!("/#/o/{capped}"))).await.expect("open");
    browser.until("#banner.budget", "class", "the budget banner", |_| true).await;
    assert!(browser.text("#banner").await.contains("budget"), "{}", browser.text("#banner").await);
    browser.keep("budget").await;
    let field = browser.client.find(Locator::Css("input[aria-label='new budget in dollars']")).await.expect("field");
    field.send_keys("3").await.expect("type");
    browser.click("[data-action=\"raise-budget\"]").await;
    let c = id_of(&env, "c");
    browser.until(&format!("g.node[data-task-id=\"{c}\"]"), "data-status", "c completed", |s| s == "completed").await;
    browser.until_true("return document.getElementById('banner').hidden", "the banner gone").await;

    let paused = post(
        &server,
        "/api/v1/tasks",
        json!({"task_identifier": "long", "execution_prompt": "long @usage-limit=3600,long @result=after the pause"}),
    )
    .await;
    browser.client.goto(&server.url(&format!("/#/o/{}", paused["orchestration_id"]))).await.expect("open");
    browser.until("[data-action=\"resume\"]", "data-action", "the resume button", |_| true).await;
    assert!(browser.text("#banner").await.to_lowercase().contains("usage limit"), "{}", browser.text("#banner").await);
    browser.keep("usage-limit").await;
    browser.click("[data-action=\"resume\"]").await;
    let long = id_of(&env, "long");
    browser
        .until(&format!("g.node[data-task-id=\"{long}\"]"), "data-status", "long completed", |s| s == "completed")
        .await;
    browser.close().await;
    assert!(server.stop().await.success());
}
