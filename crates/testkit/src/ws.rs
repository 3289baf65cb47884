//! A minimal graphql-ws client (the `graphql-transport-ws` subprotocol) over
//! `ws://…/graphql/ws`: connection_init with the bearer token in its payload, subscribe, and
//! read `next` messages, answering pings. Enough for the tests; no reconnects, no batching.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestApp;

/// How long a test waits for any one message.
const WAIT: Duration = Duration::from_secs(10);

pub struct GraphQlWs {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl TestApp {
    /// Opens `/graphql/ws` and sends `connection_init` with `{"Authorization": "Bearer
    /// <token>"}` (no payload without a token). `Err` holds what came instead of
    /// `connection_ack`.
    pub async fn subscriptions(&self, token: Option<&str>) -> Result<GraphQlWs, String> {
        let mut request = format!("ws://{}/graphql/ws", self.address)
            .into_client_request()
            .expect("a WebSocket request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
        let mut ws = GraphQlWs { socket };
        let init = match token {
            Some(t) => json!({
                "type": "connection_init",
                "payload": { "Authorization": format!("Bearer {t}") },
            }),
            None => json!({ "type": "connection_init" }),
        };
        ws.send(init).await;
        match ws.next_message().await {
            Some(m) if m["type"] == "connection_ack" => Ok(ws),
            Some(m) => Err(format!("instead of connection_ack: {m}")),
            None => Err("the server closed the connection instead of acknowledging it".into()),
        }
    }
}

impl GraphQlWs {
    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .expect("send over the WebSocket");
    }

    /// Starts subscription `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables },
        }))
        .await;
    }

    /// The next protocol message (pings answered and skipped); `None` once the server closes
    /// the connection, with a close frame's code and reason as `{"type": "close", ...}` first.
    pub async fn next_message(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no WebSocket message within {WAIT:?}"));
            match frame {
                None | Some(Err(_)) => return None,
                Some(Ok(Message::Text(text))) => {
                    let message: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("a message that is not JSON ({e}): {text}"));
                    if message["type"] == "ping" {
                        self.send(json!({ "type": "pong" })).await;
                        continue;
                    }
                    return Some(message);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Some(json!({
                        "type": "close",
                        "code": frame.as_ref().map(|f| u16::from(f.code)),
                        "reason": frame.as_ref().map(|f| f.reason.to_string()),
                    }))
                }
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The `payload` of the next `next` message of subscription `id`; panics on anything else.
    pub async fn next_payload(&mut self, id: &str) -> Value {
        match self.next_message().await {
            Some(m) if m["type"] == "next" && m["id"] == id => m["payload"].clone(),
            other => panic!("expected the next result of subscription {id}, got {other:?}"),
        }
    }
}
