use super::*;
use crate::llm::{FailureKind, LlmProvider, Phase};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "sk-test-SECRET-0123456789";

/// A canned HTTP response.
fn reply(status: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut text = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text
}

/// Serves `replies` in order, one per connection; records each request's text.
async fn serve(replies: Vec<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        for reply in replies {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let request = read_request(&mut socket).await;
            log.lock().unwrap().push(request);
            let _ = socket.write_all(reply.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    (base, seen)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).to_string()
}

fn settings(base: &str) -> HttpSettings {
    HttpSettings {
        model: Some("test-model".into()),
        base_url: Some(base.to_string()),
        api_key_env: None,
    }
}

fn request(timeout: Duration) -> LlmRequest {
    LlmRequest::new(
        Phase::Execute,
        "porki-phase: execute\nanswer in JSON".into(),
        timeout,
    )
}

const OPENAI_OK: &str = r#"{"choices":[{"message":{"role":"assistant","content":"{\"status\":\"done\"}"}}],"usage":{"prompt_tokens":11,"completion_tokens":4}}"#;

#[tokio::test]
async fn openai_success_sends_model_messages_and_json_mode() {
    let (base, seen) = serve(vec![reply("200 OK", &[], OPENAI_OK)]).await;
    let provider = OpenAiProvider::with_key(settings(&base), Some(KEY.into())).unwrap();
    let answer = provider
        .call(&request(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(answer.text, r#"{"status":"done"}"#);
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (11, 4)
    );
    let sent = seen.lock().unwrap()[0].clone();
    assert!(sent.starts_with("POST /v1/chat/completions "), "{sent}");
    assert!(sent.to_ascii_lowercase().contains(&format!(
        "authorization: bearer {}",
        KEY.to_ascii_lowercase()
    )));
    let body: Value = serde_json::from_str(&sent[sent.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["response_format"]["type"], "json_object");
}

#[tokio::test]
async fn openai_retries_without_response_format_when_the_server_rejects_it() {
    let rejected = r#"{"error":{"message":"Unknown parameter: response_format"}}"#;
    let (base, seen) = serve(vec![
        reply("400 Bad Request", &[], rejected),
        reply("200 OK", &[], OPENAI_OK),
    ])
    .await;
    let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
    provider
        .call(&request(Duration::from_secs(10)))
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert!(seen[0].contains("response_format"));
    assert!(!seen[1].contains("response_format"));
}

#[tokio::test]
async fn http_429_with_retry_after_is_retried_then_succeeds() {
    let (base, seen) = serve(vec![
        reply(
            "429 Too Many Requests",
            &[("retry-after", "1")],
            r#"{"error":{"message":"slow down"}}"#,
        ),
        reply("503 Service Unavailable", &[("retry-after", "0")], ""),
        reply(
            "200 OK",
            &[],
            r#"{"content":[{"type":"text","text":"hello "},{"type":"text","text":"world"}],"usage":{"input_tokens":7,"output_tokens":2}}"#,
        ),
    ])
    .await;
    let provider = AnthropicProvider::with_key(settings(&base), KEY.into()).unwrap();
    let started = std::time::Instant::now();
    let answer = provider
        .call(&request(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After was ignored"
    );
    assert_eq!(answer.text, "hello world");
    assert_eq!(
        (answer.usage.input_tokens, answer.usage.output_tokens),
        (7, 2)
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    let first = seen[0].to_ascii_lowercase();
    assert!(first.starts_with("post /v1/messages "), "{first}");
    assert!(first.contains("anthropic-version: 2023-06-01"));
    assert!(first.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())));
    assert!(first.contains("\"max_tokens\""));
}

#[tokio::test]
async fn http_400_fails_at_once_with_the_server_message_and_no_key() {
    let body = format!(
        r#"{{"error":{{"type":"invalid_request_error","message":"bad model; key {KEY} is fine"}}}}"#
    );
    let (base, seen) = serve(vec![
        reply("400 Bad Request", &[], &body),
        reply("200 OK", &[], OPENAI_OK),
    ])
    .await;
    let provider = AnthropicProvider::with_key(settings(&base), KEY.into()).unwrap();
    let err = provider
        .call(&request(Duration::from_secs(10)))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("HTTP 400") && text.contains("bad model"),
        "{text}"
    );
    assert!(!text.contains(KEY), "{text}");
    assert!(!format!("{err:?}").contains(KEY));
    assert!(!format!("{provider:?}").contains(KEY));
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt() {
    let busy = || {
        reply(
            "500 Internal Server Error",
            &[("retry-after", "0")],
            "overloaded",
        )
    };
    let (base, seen) = serve((0..MAX_ATTEMPTS + 1).map(|_| busy()).collect()).await;
    let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
    let err = provider
        .call(&request(Duration::from_secs(10)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("overloaded"), "{err}");
    assert_eq!(err.kind(), FailureKind::Transient);
    assert_eq!(seen.lock().unwrap().len(), MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn a_retry_after_past_the_timeout_returns_the_server_error() {
    let (base, seen) = serve(vec![reply(
        "429 Too Many Requests",
        &[("retry-after", "120")],
        r#"{"error":{"message":"rate limited"}}"#,
    )])
    .await;
    let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
    let err = provider
        .call(&request(Duration::from_secs(5)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("HTTP 429: rate limited"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hold = tokio::spawn(async move {
        let (_socket, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let provider = OpenAiProvider::with_key(settings(&base), None).unwrap();
    let err = provider
        .call(&request(Duration::from_millis(300)))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Timeout { .. }), "{err}");
    hold.abort();
}

#[test]
fn a_missing_key_names_the_variable() {
    let err = AnthropicProvider::new(HttpSettings {
        api_key_env: Some("PORKI_TEST_SURELY_UNSET_KEY".into()),
        ..HttpSettings::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("PORKI_TEST_SURELY_UNSET_KEY"),
        "{err}"
    );
}
