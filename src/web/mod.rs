//! The web dashboard: `porki serve`, and the same server inside the orchestrator
//! (`porki run --http`, `porki demo --http`). Read-only; everything it serves is
//! compiled into the binary.
//!
//! ```text
//! browser ── GET /goals/G ──▶ routes ──▶ fetch (store reads) ──▶ pages / svg (pure HTML, SVG)
//!    ▲                                                                   │
//!    └── EventSource /events ◀── feed ◀── store.events() + a 1 s look ───┘ (the page re-fetches
//!                                                                            its live part)
//! ```
//!
//! - `server.rs`: [`WebServer`]: the safety rule (non-loopback only with a token),
//!   binding, the store (opened on the server's own runtime, retried), actix-web.
//! - `auth.rs`: the token (header, cookie or `?token=`), and without one the
//!   check that a request comes straight from this machine (peer, `Host`, no proxy).
//! - `routes.rs`: the URLs, one thin handler each (its module doc lists them).
//! - `fetch.rs`: reading a page's data from the store (the only I/O of the pages).
//! - `pages/`: the front page, a goal, a task, rendered from fetched data.
//! - `html.rs`: escaping, links, badges, the page shell; `svg.rs`: the DAG as SVG;
//!   `layout.rs`: the layered layout it is drawn with.
//! - `feed.rs`: turning store events into throttled server-sent events.
//! - `assets/`: the stylesheet and the small script that keeps pages live.
//!
//! Every text from the store is untrusted (titles, notes and errors come from an
//! LLM): it is escaped wherever it is written, and pages forbid inline script
//! (`Content-Security-Policy`). `/metrics` renders [`crate::metrics`].

mod auth;
mod feed;
mod fetch;
mod html;
mod layout;
mod pages;
mod routes;
mod server;
mod svg;

pub use auth::TokenError;
pub use server::{StoreSource, WebError, WebHandle, WebOptions, WebServer};
