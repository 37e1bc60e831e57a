//! `GET /v1/stream?ticket=...`: the workspace's live WebSocket on the local runner (on AWS the API Gateway
//! WebSocket API stands here). The ticket (`POST /v1/stream/tickets`) is redeemed before the upgrade; then
//! every event of the in-process bus that the viewer may see (`usecases::live`) goes out as one text frame.
//! A page that falls behind the bus gets `{"type": "resync"}` and reads the API again.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use omnichat::adapters::embedded::InProcessBus;
use omnichat::ports::DomainEvent;
use omnichat::usecases::Context;
use omnichat::usecases::auth::Principal;
use omnichat::usecases::live::{self, Outgoing};
use serde::Deserialize;
use tokio::sync::{broadcast, watch};

/// How often an idle connection is pinged (and a dead one found).
const PING_EVERY: Duration = Duration::from_secs(25);

#[derive(Clone)]
struct Live {
    ctx: Arc<Context>,
    bus: InProcessBus,
    /// Turns true when the runner stops: every open socket closes (they hold the store).
    stopping: watch::Receiver<bool>,
}

pub fn routes(ctx: Arc<Context>, bus: InProcessBus, stopping: watch::Receiver<bool>) -> Router {
    Router::new().route("/v1/stream", get(stream)).with_state(Live { ctx, bus, stopping })
}

#[derive(Deserialize)]
struct TicketQuery {
    ticket: Option<String>,
}

fn unauthorized() -> Response {
    let body = serde_json::json!({"error": {"code": "unauthorized", "message": "no valid live ticket"}});
    (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

async fn stream(
    State(live): State<Live>,
    Query(query): Query<TicketQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Subscribed before the ticket is redeemed: nothing that happens from here on is missed.
    let events = live.bus.subscribe();
    let Ok(principal) = live::redeem_ticket(&live.ctx, query.ticket.as_deref().unwrap_or_default()).await
    else {
        return unauthorized();
    };
    let Ok(upgrade) = upgrade else {
        let body =
            serde_json::json!({"error": {"code": "upgrade_required", "message": "open a WebSocket here"}});
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    };
    upgrade.on_upgrade(move |socket| run(socket, live.ctx, principal, events, live.stopping))
}

async fn run(
    socket: WebSocket,
    ctx: Arc<Context>,
    viewer: Principal,
    mut events: broadcast::Receiver<DomainEvent>,
    mut stopping: watch::Receiver<bool>,
) {
    if *stopping.borrow_and_update() {
        return;
    }
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        let frame = tokio::select! {
            received = events.recv() => match received {
                Ok(event) => match push_for(&ctx, &viewer, &event).await {
                    Some(push) => Message::Text(push.into()),
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(_)) => Message::Text(r#"{"type":"resync"}"#.into()),
                Err(broadcast::error::RecvError::Closed) => break,
            },
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
            _ = stopping.changed() => break,
        };
        if sink.send(frame).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}

async fn push_for(ctx: &Context, viewer: &Principal, event: &DomainEvent) -> Option<String> {
    let outgoing = match Outgoing::prepare(ctx, event).await {
        Ok(outgoing) => outgoing,
        Err(error) => {
            tracing::warn!(%error, "live push not prepared");
            return None;
        }
    };
    match outgoing.push_for(ctx, viewer).await {
        Ok(push) => push.map(|push| push.to_json()),
        Err(error) => {
            tracing::warn!(%error, "live push not decided");
            None
        }
    }
}
