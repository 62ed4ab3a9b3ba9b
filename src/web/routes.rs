//! The URLs the dashboard answers, each a thin handler: read the store
//! (`fetch.rs`), render (`pages/`, `svg.rs`, `report`), answer.
//!
//! | path | what |
//! |---|---|
//! | `/` | goals and agents |
//! | `/goals/{goal}` | a goal: waits, the DAG, tasks, agents |
//! | `/goals/{goal}/tasks/{task}` | a task: context, notes, outputs |
//! | `…?fragment=1` | the live part of any page above, for its script |
//! | `/goals/{goal}/graph.svg` | the DAG alone |
//! | `/events[?goal=G]` | server-sent `change` events |
//! | `/api/status`, `/api/goals/{goal}/graph` | the JSON of `porki status --json` and `porki graph --format json` |
//! | `/metrics` | Prometheus text format |
//! | `/healthz`, `/readyz` | process up; store reachable (else 503) |
//! | `/assets/…` | the embedded CSS and script |

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{HttpRequest, HttpResponse, web};

use super::fetch::{self, FetchError};
use super::html::{Page, document, goal_href, problem, segment};
use super::pages;
use super::server::AppState;
use super::svg::dag_svg;
use crate::report::{self, AgentReport};
use crate::store::Store;

const STYLE: &str = include_str!("assets/style.css");
const SCRIPT: &str = include_str!("assets/app.js");

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Pages load their CSS and script from here only, and nothing else runs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Registers every route.
pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/goals/{goal}", web::get().to(goal))
        .route("/goals/{goal}/graph.svg", web::get().to(graph_svg))
        .route("/goals/{goal}/tasks/{task}", web::get().to(task))
        .route("/events", web::get().to(events))
        .route("/api/status", web::get().to(status_json))
        .route("/api/goals/{goal}/graph", web::get().to(graph_json))
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/assets/style.css", web::get().to(style))
        .route("/assets/app.js", web::get().to(script))
        .default_service(web::to(not_found));
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether the request asks for the live part only.
fn wants_fragment(request: &HttpRequest) -> bool {
    request
        .query_string()
        .split('&')
        .any(|p| p == "fragment=1" || p == "fragment")
}

/// An HTML answer with the headers every page gets.
fn html(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(body)
}

/// Answers a page: its live part alone, or inside the document.
fn page(
    request: &HttpRequest,
    state: &AppState,
    title: &str,
    events: String,
    rendered: Result<String, FetchError>,
    now_ms: u64,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let (status, live) = match rendered {
        Ok(live) => (StatusCode::OK, live),
        Err(e @ (FetchError::UnknownGoal { .. } | FetchError::UnknownTask { .. })) => {
            (StatusCode::NOT_FOUND, problem(&e.to_string()))
        }
        Err(e @ (FetchError::Store(_) | FetchError::NotOpen(_))) => {
            (StatusCode::SERVICE_UNAVAILABLE, problem(&e.to_string()))
        }
    };
    if wants_fragment(request) {
        return html(status, live);
    }
    html(
        status,
        document(&Page {
            title,
            events,
            now_ms,
            live,
            store_label: &state.store_label,
        }),
    )
}

/// The store, or why it cannot be read yet.
fn store(state: &AppState) -> Result<Arc<dyn Store>, FetchError> {
    state
        .store
        .get()
        .ok_or_else(|| FetchError::NotOpen(state.store_label.clone()))
}

async fn overview(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let now = now_ms();
    let rendered = match store(&state) {
        Ok(store) => fetch::overview(&*store, state.metrics.as_deref(), false)
            .await
            .map(|view| pages::overview(&view, now)),
        Err(e) => Err(e),
    };
    page(&request, &state, "goals", "/events".into(), rendered, now)
}

async fn goal(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> HttpResponse {
    let goal = path.into_inner();
    let now = now_ms();
    let rendered = match store(&state) {
        Ok(store) => fetch::goal(&*store, &goal, state.metrics.as_deref())
            .await
            .map(|view| pages::goal(&view, now)),
        Err(e) => Err(e),
    };
    let events = format!("/events?goal={}", segment(&goal));
    page(&request, &state, &goal, events, rendered, now)
}

async fn task(
    request: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (goal, id) = path.into_inner();
    let now = now_ms();
    let rendered = match store(&state) {
        Ok(store) => fetch::task(&*store, &goal, &id)
            .await
            .map(|view| pages::task(&view, now)),
        Err(e) => Err(e),
    };
    let events = format!("/events?goal={}", segment(&goal));
    page(
        &request,
        &state,
        &format!("{id} · {goal}"),
        events,
        rendered,
        now,
    )
}

/// A goal's plan and tasks, or the answer to give instead: 503 while the
/// store cannot be read, 404 for a goal it does not have.
async fn read_plan(
    state: &AppState,
    goal: &str,
) -> Result<(crate::domain::Dag, Vec<crate::domain::TaskState>), HttpResponse> {
    let Some(store) = state.store.get() else {
        return Err(unavailable(
            "the store is not reachable yet; try again shortly",
        ));
    };
    let read = async {
        let dag = store.dag(goal).await?;
        let tasks = store.tasks(goal).await?;
        Ok::<_, crate::store::StoreError>((dag, tasks))
    };
    match read.await {
        Ok((Some(dag), tasks)) => Ok((dag, tasks)),
        Ok((None, _)) => Err(text_not_found(&format!(
            "goal {goal:?} is not in the store: check the name on the front page"
        ))),
        Err(e) => Err(unavailable(&format!("cannot read the store: {e}"))),
    }
}

async fn graph_svg(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let goal = path.into_inner();
    match read_plan(&state, &goal).await {
        Ok((dag, tasks)) => match dag_svg(&dag, &tasks) {
            Some(svg) => HttpResponse::Ok()
                .content_type("image/svg+xml")
                .insert_header((header::CONTENT_SECURITY_POLICY, "default-src 'none'"))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                .body(svg),
            None => HttpResponse::UnprocessableEntity()
                .content_type("text/plain; charset=utf-8")
                .body(format!(
                    "the plan of {goal} is too large to draw: see its task table at {}\n",
                    goal_href(&goal)
                )),
        },
        Err(response) => response,
    }
}

async fn events(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let goal = request
        .query_string()
        .split('&')
        .find_map(|p| p.strip_prefix("goal="))
        .map(percent_decode);
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(state.feed.stream(goal))
}

/// Decodes `%XX` escapes (ids are plain, but links encode what they must).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn status_json(state: web::Data<AppState>) -> HttpResponse {
    let Some(store) = state.store.get() else {
        return unavailable("the store is not reachable yet; try again shortly");
    };
    match fetch::overview(&*store, None, true).await {
        Ok(view) => {
            let agents: Vec<AgentReport> = view
                .agents
                .into_iter()
                .map(|a| AgentReport {
                    last_error: a.errors.into_iter().next(),
                    record: a.record,
                    alive: a.alive,
                })
                .collect();
            HttpResponse::Ok()
                .insert_header(CacheControl(vec![CacheDirective::NoStore]))
                .json(report::status_json(&view.goals, &agents, now_ms()))
        }
        Err(e) => unavailable(&e.to_string()),
    }
}

async fn graph_json(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let goal = path.into_inner();
    match read_plan(&state, &goal).await {
        Ok((dag, tasks)) => HttpResponse::Ok()
            .insert_header(CacheControl(vec![CacheDirective::NoStore]))
            .json(report::graph_json(&dag, &tasks)),
        Err(response) => response,
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let store = state.store.get();
    let snapshot = fetch::snapshot(store.as_deref(), now_ms()).await;
    let text = match &state.metrics {
        Some(metrics) => metrics.render(&snapshot),
        None => crate::metrics::Metrics::new().render(&snapshot),
    };
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .body(text)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok\n")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let Some(store) = state.store.get() else {
        return unavailable(&format!(
            "not ready: the store at {} has not answered yet (check that Redis runs)",
            state.store_label
        ));
    };
    match tokio::time::timeout(READY_TIMEOUT, store.goals()).await {
        Ok(Ok(_)) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready\n"),
        Ok(Err(e)) => unavailable(&format!(
            "not ready: the store at {} fails: {e}",
            state.store_label
        )),
        Err(_) => unavailable(&format!(
            "not ready: the store at {} did not answer within {READY_TIMEOUT:?}",
            state.store_label
        )),
    }
}

async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(STYLE)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(SCRIPT)
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    text_not_found(&format!(
        "nothing at {}: the dashboard starts at /",
        request.path()
    ))
}

fn text_not_found(message: &str) -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(format!("{message}\n"))
}

fn unavailable(message: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .content_type("text/plain; charset=utf-8")
        .body(format!("{message}\n"))
}
