//! The stdio transport under rmcp. rmcp's own drops a line that is not JSON without a word; this
//! one reads stdin itself, line by line with a bound ([`MAX_LINE_BYTES`]), and answers what
//! cannot be handed to rmcp as JSON-RPC asks: `-32700 Parse error` for a line that is not JSON,
//! `-32600 Invalid Request` for JSON that is not a JSON-RPC 2.0 message (or a line over the
//! bound), `-32602 Invalid params` for a method served here whose params do not fit (rmcp would
//! call it an unknown method), with the request's id when it has a usable one and `null`
//! otherwise; the session goes on. Every line written to stdout, rmcp's and these answers alike,
//! goes through one writer task, so lines never interleave. The session ends when stdin ends or
//! when stdout can no longer be written (the client went away: Rust ignores SIGPIPE, so that is a
//! `BrokenPipe` error); either way rmcp sees its input end, the same path as a client that
//! closes stdin.
//!
//! A request whose id is that of a request still in flight (read and not yet answered) is
//! answered at once with `-32600` instead of being handed to rmcp, which keeps one entry per id
//! and would lose one of the two answers; MCP forbids the reuse, and a client waiting on it must
//! not hang.

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Sink, Stream};
use rmcp::RoleServer;
use rmcp::model::{
    CallToolRequestParams, ClientNotification, ClientRequest, CustomRequest, GetPromptRequestParams,
    InitializeRequestParams, JsonRpcMessage, ReadResourceRequestParams, RequestId, SubscribeRequestParams,
    SubscriptionsListenRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, PollSender};

/// The longest line accepted on stdin: a longer one is discarded as it arrives and answered with
/// an Invalid Request error. Prompts are far smaller (`CLAUDE_WORKER_MAX_PROMPT_BYTES`); this
/// only keeps a client that never sends a newline from growing the server's memory without end.
pub const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// JSON-RPC error codes this transport answers with.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const INVALID_PARAMS: i64 = -32602;

/// What is given to rmcp's `serve`: the messages read from stdin, and the way to stdout.
pub type Transport = (LineSink, MessageStream);

/// Serves on the process's stdin and stdout (non-blocking when they are pipes).
pub fn stdio() -> (Transport, Session) {
    let (stdin, stdout) = rmcp::transport::stdio_pipes();
    spawn(stdin, stdout, MAX_LINE_BYTES)
}

/// Starts the reader and writer tasks over any byte streams.
pub fn spawn<R, W>(reader: R, writer: W, max_line: usize) -> (Transport, Session)
where
    R: AsyncRead + Send + Unpin + 'static,
    W: AsyncWrite + Send + Unpin + 'static,
{
    let (lines_tx, lines_rx) = mpsc::channel::<Vec<u8>>(64);
    let (messages_tx, messages_rx) = mpsc::channel(16);
    let ended = CancellationToken::new();
    let closing = CancellationToken::new();
    let in_flight = InFlight::default();
    let writer = tokio::spawn(write_lines(writer, lines_rx, closing.clone(), ended.clone()));
    let reader =
        tokio::spawn(read_lines(reader, max_line, messages_tx, lines_tx.clone(), in_flight.clone(), ended.clone()));
    let transport = (
        LineSink { lines: PollSender::new(lines_tx), in_flight, gone: false },
        MessageStream { messages: messages_rx },
    );
    (transport, Session { ended, closing, writer, reader })
}

/// The two tasks behind a transport, for whoever runs the session.
pub struct Session {
    ended: CancellationToken,
    closing: CancellationToken,
    writer: JoinHandle<()>,
    reader: JoinHandle<()>,
}

impl Session {
    /// Resolves once stdin reached its end (or could not be read) or stdout could not be written.
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }

    /// Stops reading and writes out what is already queued, waiting at most `grace` for a stdout
    /// nobody reads.
    pub async fn finish(self, grace: Duration) {
        self.ended.cancel();
        self.closing.cancel();
        let mut writer = self.writer;
        if tokio::time::timeout(grace, &mut writer).await.is_err() {
            tracing::warn!("stdout is not being read: {grace:?} passed, the last messages are dropped");
            writer.abort();
        }
        // A read from a stdin that is not a pipe cannot be cancelled; the runtime's shutdown
        // timeout takes care of it.
        drop(self.reader);
    }
}

/// rmcp's messages to the client, serialized and queued for the writer task. Once the writer is
/// gone (the client closed stdout, or the session is finishing) a message is dropped without an
/// error: nobody can read it any more, the writer said why it stopped, and rmcp would log every
/// failed send as an error (`failed to send pending response during drain` when a client exits
/// with a request in flight, as Claude Code does at the end of every `claude -p`).
pub struct LineSink {
    lines: PollSender<Vec<u8>>,
    in_flight: InFlight,
    /// The writer is gone: what is sent is dropped.
    gone: bool,
}

/// The ids of the requests handed to rmcp and not yet answered (nor cancelled by the client).
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<HashSet<RequestId>>>);

impl InFlight {
    /// Records a request's id; false when a request with that id is still in flight.
    fn begin(&self, id: &RequestId) -> bool {
        // No await while the lock is held: a plain mutex is right.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id.clone())
    }

    /// The request with this id was answered, or cancelled.
    fn end(&self, id: &RequestId) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(id);
    }
}

impl Sink<TxJsonRpcMessage<RoleServer>> for LineSink {
    type Error = std::io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.gone {
            return Poll::Ready(Ok(()));
        }
        match self.lines.poll_reserve(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(_)) => {
                self.gone = true;
                Poll::Ready(Ok(()))
            }
        }
    }

    fn start_send(mut self: Pin<&mut Self>, item: TxJsonRpcMessage<RoleServer>) -> Result<(), Self::Error> {
        match &item {
            JsonRpcMessage::Response(response) => self.in_flight.end(&response.id),
            JsonRpcMessage::Error(error) => {
                if let Some(id) = &error.id {
                    self.in_flight.end(id);
                }
            }
            JsonRpcMessage::Request(_) | JsonRpcMessage::Notification(_) => {}
        }
        if self.gone {
            tracing::debug!("the client is gone: a message to it is dropped");
            return Ok(());
        }
        let mut line = serde_json::to_vec(&item)?;
        line.push(b'\n');
        if self.lines.send_item(line).is_err() {
            self.gone = true;
            tracing::debug!("the client is gone: a message to it is dropped");
        }
        Ok(())
    }

    /// Queued is as far as a send goes: the writer task writes in order, and
    /// [`Session::finish`] writes out the queue at the end.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.lines.close();
        Poll::Ready(Ok(()))
    }
}

/// The messages read from stdin; ends when the session does.
pub struct MessageStream {
    messages: mpsc::Receiver<RxJsonRpcMessage<RoleServer>>,
}

impl Stream for MessageStream {
    type Item = RxJsonRpcMessage<RoleServer>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.messages.poll_recv(cx)
    }
}

/// The writer task: the only code that writes to stdout. It stops when every sender is gone,
/// when `closing` asks it to (after writing what is queued), or at the first failed write, which
/// ends the session.
async fn write_lines<W: AsyncWrite + Unpin>(
    mut out: W,
    mut lines: mpsc::Receiver<Vec<u8>>,
    closing: CancellationToken,
    ended: CancellationToken,
) {
    let mut closed = false;
    loop {
        let line = tokio::select! {
            line = lines.recv() => line,
            () = closing.cancelled(), if !closed => {
                // No new lines; the queued ones are still received.
                lines.close();
                closed = true;
                continue;
            }
        };
        let Some(line) = line else { break };
        let written = async {
            out.write_all(&line).await?;
            out.flush().await
        };
        if let Err(e) = written.await {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                tracing::info!("stdout is closed (the client went away): ending the MCP session");
            } else {
                tracing::error!("cannot write to stdout ({e}): ending the MCP session");
            }
            ended.cancel();
            return;
        }
    }
}

/// The reader task: hands each JSON-RPC message to rmcp and queues an error response for each
/// line that is not one. Ends the session at the end of stdin.
async fn read_lines<R: AsyncRead + Unpin>(
    reader: R,
    max_line: usize,
    messages: mpsc::Sender<RxJsonRpcMessage<RoleServer>>,
    replies: mpsc::Sender<Vec<u8>>,
    in_flight: InFlight,
    ended: CancellationToken,
) {
    let mut lines = LineReader::new(reader, max_line);
    // rmcp ends the session on a notification or response before the lifecycle began (the
    // first request other than ping or server/discover): such a message is dropped instead.
    let mut lifecycle_started = false;
    loop {
        let read = tokio::select! {
            biased;
            () = ended.cancelled() => break,
            read = lines.next() => read,
        };
        let handled = match read {
            Ok(Read::Line(line)) => match parse_line(&line) {
                Parsed::Message(message) => {
                    match &*message {
                        JsonRpcMessage::Request(request) => {
                            if !in_flight.begin(&request.id) {
                                tracing::warn!(id = ?request.id, "a request reuses the id of one still in flight: refused");
                                let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
                                let reply = error_line(
                                    id,
                                    INVALID_REQUEST,
                                    "Invalid Request: a request with this id is still in flight; give every request \
                                     its own id",
                                );
                                if replies.send(reply).await.is_err() {
                                    break;
                                }
                                continue;
                            }
                            lifecycle_started |= !matches!(
                                request.request,
                                ClientRequest::PingRequest(_) | ClientRequest::DiscoverRequest(_)
                            );
                        }
                        JsonRpcMessage::Notification(notification) if lifecycle_started => {
                            // A cancelled request is not answered: its id is free again.
                            if let ClientNotification::CancelledNotification(cancelled) = &notification.notification
                                && let Some(id) = &cancelled.params.request_id
                            {
                                in_flight.end(id);
                            }
                        }
                        _ if !lifecycle_started => {
                            tracing::warn!("a notification or response before initialize: ignored");
                            continue;
                        }
                        _ => {}
                    }
                    messages.send(*message).await.is_ok()
                }
                Parsed::Reply(reply) => replies.send(reply).await.is_ok(),
                Parsed::Ignore => true,
            },
            Ok(Read::TooLong) => {
                tracing::warn!("a message on stdin is over {max_line} bytes: discarded");
                let message = format!("Invalid Request: the message is over the limit of {max_line} bytes");
                replies.send(error_line(Value::Null, INVALID_REQUEST, &message)).await.is_ok()
            }
            Ok(Read::Eof) => {
                tracing::info!("stdin closed: ending the MCP session");
                false
            }
            Err(e) => {
                tracing::error!("cannot read stdin ({e}): ending the MCP session");
                false
            }
        };
        if !handled {
            break;
        }
    }
    ended.cancel();
}

enum Read {
    Line(Vec<u8>),
    /// A line over the limit; the rest of it is discarded as it arrives.
    TooLong,
    Eof,
}

/// Reads `\n`-terminated lines of at most `max_line` bytes; the last line may lack its newline.
struct LineReader<R> {
    reader: BufReader<R>,
    max_line: usize,
    line: Vec<u8>,
    /// Dropping the tail of a line already reported as too long.
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(reader: R, max_line: usize) -> Self {
        LineReader {
            reader: BufReader::with_capacity(64 * 1024, reader),
            max_line,
            line: Vec::new(),
            discarding: false,
        }
    }

    async fn next(&mut self) -> std::io::Result<Read> {
        // Each line returned takes its buffer along: one grown by a huge line is not kept.
        self.line.clear();
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                self.discarding = false;
                return Ok(if self.line.is_empty() { Read::Eof } else { Read::Line(std::mem::take(&mut self.line)) });
            }
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            let content = newline.unwrap_or(available.len());
            if self.discarding {
                self.reader.consume(take);
                if newline.is_some() {
                    self.discarding = false;
                }
                continue;
            }
            if self.line.len() + content > self.max_line {
                self.reader.consume(take);
                self.line.clear();
                self.discarding = newline.is_none();
                return Ok(Read::TooLong);
            }
            self.line.extend_from_slice(&available[..content]);
            self.reader.consume(take);
            if newline.is_some() {
                return Ok(Read::Line(std::mem::take(&mut self.line)));
            }
        }
    }
}

/// What a line from stdin becomes.
enum Parsed {
    Message(Box<RxJsonRpcMessage<RoleServer>>),
    /// An error response to write back.
    Reply(Vec<u8>),
    /// Nothing to do: a blank line, or something JSON-RPC does not answer.
    Ignore,
}

fn parse_line(line: &[u8]) -> Parsed {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // RFC 8259 lets a parser ignore a byte order mark.
    let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Ignore;
    }
    if let Some(message) = tool_call_with_raw_arguments(line) {
        return Parsed::Message(Box::new(message));
    }
    let error = match serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(line) {
        Ok(JsonRpcMessage::Request(request)) => {
            if let ClientRequest::CustomRequest(custom) = &request.request
                && let Some(reason) = invalid_params(custom)
            {
                // rmcp takes a served method whose params do not fit for an unknown method.
                tracing::warn!(
                    "{} with invalid params ({reason}): answered with an invalid params error",
                    custom.method
                );
                let id = serde_json::to_value(&request.id).unwrap_or(Value::Null);
                let message = format!("Invalid params for {}: {reason}", custom.method);
                return Parsed::Reply(error_line(id, INVALID_PARAMS, &message));
            }
            return Parsed::Message(Box::new(JsonRpcMessage::Request(request)));
        }
        Ok(message) => return Parsed::Message(Box::new(message)),
        Err(e) => e,
    };
    // Only the failure path parses the line a second time, to see what it was.
    let value = match error.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => None,
        serde_json::error::Category::Data | serde_json::error::Category::Io => {
            serde_json::from_slice::<Value>(line).ok()
        }
    };
    let Some(value) = value else {
        tracing::warn!("a line on stdin is not JSON ({error}): answered with a parse error");
        return Parsed::Reply(error_line(Value::Null, PARSE_ERROR, &format!("Parse error: {error}")));
    };
    let object = value.as_object();
    let member = |name: &str| object.and_then(|o| o.get(name));
    let is_2_0 = member("jsonrpc").and_then(Value::as_str) == Some("2.0");
    if is_2_0 && member("id").is_none() && member("method").is_some_and(Value::is_string) {
        // A notification is never answered, even one rmcp does not know (say, another
        // protocol's, or a newer MCP's).
        tracing::debug!("ignoring a notification rmcp cannot read: {error}");
        return Parsed::Ignore;
    }
    if is_2_0 && member("method").is_none() && (member("result").is_some() || member("error").is_some()) {
        // A response is never answered either.
        tracing::warn!("ignoring a response that cannot be read: {error}");
        return Parsed::Ignore;
    }
    let id = match member("id") {
        Some(id @ Value::String(_)) => id.clone(),
        Some(Value::Number(n)) if n.is_i64() => Value::Number(n.clone()),
        _ => Value::Null,
    };
    let reason = match &value {
        Value::Array(_) => "a batch (JSON array) is not supported by MCP; send one message per line".to_owned(),
        Value::Object(_) if !is_2_0 => "not a JSON-RPC 2.0 message (\"jsonrpc\": \"2.0\" is missing)".to_owned(),
        Value::Object(_) => error.to_string(),
        _ => "a JSON-RPC message is a JSON object".to_owned(),
    };
    tracing::warn!("a line on stdin is not a JSON-RPC message ({reason}): answered with an invalid request error");
    Parsed::Reply(error_line(id, INVALID_REQUEST, &format!("Invalid Request: {reason}")))
}

/// The arguments of a `tools/call` as their JSON text, handed to the tool beside the message
/// (in its extensions) while the message itself carries `{}`. rmcp reads a message through
/// untagged and flattened shapes, so serde would buffer the arguments into a tree of its own and
/// copy them again into a `serde_json::Value` map: about 3 KiB a task of a 100,000-task
/// `create_orchestration`. The tool parses this text straight into its typed arguments instead.
#[derive(Clone, Debug)]
pub struct RawArguments(Arc<Mutex<Option<String>>>);

impl RawArguments {
    /// The text, once: the first taker frees it when done.
    pub fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

/// A `tools/call` whose arguments are a JSON object: the message rmcp reads from the line with
/// the arguments left out (`{}` in their place, so that everything else about the message is
/// rmcp's own decision), and the arguments' text in its extensions. None for every other line,
/// and for a `tools/call` rmcp would not read as one: those take the usual path and its errors.
fn tool_call_with_raw_arguments(line: &[u8]) -> Option<RxJsonRpcMessage<RoleServer>> {
    use serde_json::value::RawValue;
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow)]
        params: Option<&'a RawValue>,
    }
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        arguments: Option<&'a RawValue>,
    }
    let envelope: Envelope = serde_json::from_slice(line).ok()?;
    if envelope.method.as_deref() != Some("tools/call") {
        return None;
    }
    let params: Params = serde_json::from_str(envelope.params?.get()).ok()?;
    let arguments = params.arguments?.get();
    if !arguments.starts_with('{') {
        return None;
    }
    // The arguments are a slice of the line: cut them out by their place in it.
    let start = (arguments.as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    let end = start + arguments.len();
    let mut rest = Vec::with_capacity(line.len() - arguments.len() + 2);
    rest.extend_from_slice(line.get(..start)?);
    rest.extend_from_slice(b"{}");
    rest.extend_from_slice(line.get(end..)?);
    let mut message = serde_json::from_slice::<RxJsonRpcMessage<RoleServer>>(&rest).ok()?;
    let JsonRpcMessage::Request(request) = &mut message else { return None };
    let ClientRequest::CallToolRequest(call) = &mut request.request else { return None };
    call.extensions.insert(RawArguments(Arc::new(Mutex::new(Some(arguments.to_owned())))));
    Some(message)
}

/// Why the params of a request rmcp could not type are invalid, if its method is one this server
/// serves (rmcp answers the others with Method not found).
fn invalid_params(request: &CustomRequest) -> Option<String> {
    const WITH_PARAMS: [&str; 6] = [
        "tools/call",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/get",
        "subscriptions/listen",
    ];
    if request.params.is_none() && WITH_PARAMS.contains(&request.method.as_str()) {
        return Some("params are missing".to_owned());
    }
    let reason = match request.method.as_str() {
        "tools/call" => request.params_as::<CallToolRequestParams>().err(),
        "initialize" => request.params_as::<InitializeRequestParams>().err(),
        "resources/read" => request.params_as::<ReadResourceRequestParams>().err(),
        "resources/subscribe" => request.params_as::<SubscribeRequestParams>().err(),
        "resources/unsubscribe" => request.params_as::<UnsubscribeRequestParams>().err(),
        "prompts/get" => request.params_as::<GetPromptRequestParams>().err(),
        "subscriptions/listen" => request.params_as::<SubscriptionsListenRequestParams>().err(),
        "tools/list" | "ping" | "server/discover" | "resources/list" | "resources/templates/list" | "prompts/list" => {
            None
        }
        _ => return None,
    };
    Some(reason.map_or_else(|| "they do not match the MCP schema".to_owned(), |e| e.to_string()))
}

/// A JSON-RPC error response, as one line.
fn error_line(id: Value, code: i64, message: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Response<'a> {
        jsonrpc: &'static str,
        id: Value,
        error: Error<'a>,
    }
    #[derive(serde::Serialize)]
    struct Error<'a> {
        code: i64,
        message: &'a str,
    }
    let response = Response { jsonrpc: "2.0", id, error: Error { code, message } };
    // Serializing strings and numbers cannot fail; the fallback keeps the line JSON-RPC anyway.
    let mut line = serde_json::to_vec(&response).unwrap_or_else(|_| {
        format!(r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{code},"message":"error"}}}}"#).into_bytes()
    });
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use rmcp::model::JsonObject;
    use serde_json::json;

    fn reply(parsed: Parsed) -> Value {
        match parsed {
            Parsed::Reply(line) => serde_json::from_slice(&line).expect("a reply is JSON"),
            Parsed::Message(m) => panic!("expected a reply, got a message: {m:?}"),
            Parsed::Ignore => panic!("expected a reply, got nothing"),
        }
    }

    #[test]
    fn not_json_is_a_parse_error_with_a_null_id() {
        for line in [&b"{not json"[..], b"{\"jsonrpc\":\"2.0\",\"id\":1,", b"\xff\xfe", b"[1,"] {
            let reply = reply(parse_line(line));
            assert_eq!(reply["jsonrpc"], "2.0");
            assert_eq!(reply["id"], Value::Null);
            assert_eq!(reply["error"]["code"], PARSE_ERROR, "{reply}");
            assert!(reply["error"]["message"].as_str().is_some_and(|m| m.starts_with("Parse error: ")), "{reply}");
        }
    }

    #[test]
    fn json_that_is_not_json_rpc_is_an_invalid_request() {
        for (line, id) in [
            (&b"{\"foo\":1}"[..], Value::Null),
            (b"[]", Value::Null),
            (b"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", Value::Null),
            (b"42", Value::Null),
            (b"\"text\"", Value::Null),
            (b"null", Value::Null),
            (b"{\"id\":7,\"method\":\"tools/list\"}", json!(7)),
            (b"{\"jsonrpc\":\"1.0\",\"id\":\"a\",\"method\":\"tools/list\"}", json!("a")),
            (b"{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"tools/list\"}", Value::Null),
            (b"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"tools/list\"}", Value::Null),
            (b"{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":5}", json!(3)),
        ] {
            let reply = reply(parse_line(line));
            assert_eq!(reply["error"]["code"], INVALID_REQUEST, "{}: {reply}", String::from_utf8_lossy(line));
            assert_eq!(reply["id"], id, "{}: {reply}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn served_methods_with_params_that_do_not_fit_are_invalid_params() {
        let reply = reply(parse_line(br#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"foo":1}}"#));
        assert_eq!(reply["id"], 4);
        assert_eq!(reply["error"]["code"], INVALID_PARAMS);
        assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("name")), "{reply}");
        for line in [
            &br#"{"jsonrpc":"2.0","id":6,"method":"resources/read","params":{"url":"x"}}"#[..],
            br#"{"jsonrpc":"2.0","id":6,"method":"resources/read"}"#,
            br#"{"jsonrpc":"2.0","id":6,"method":"prompts/get","params":{"goal":"x"}}"#,
            br#"{"jsonrpc":"2.0","id":6,"method":"resources/subscribe","params":{"uri":5}}"#,
        ] {
            let answer = super::tests::reply(parse_line(line));
            assert_eq!((answer["id"].clone(), answer["error"]["code"].clone()), (json!(6), json!(INVALID_PARAMS)));
        }
        let unknown = br#"{"jsonrpc":"2.0","id":5,"method":"no/such","params":{"foo":1}}"#;
        assert!(matches!(parse_line(unknown), Parsed::Message(_)), "rmcp answers Method not found");
    }

    #[test]
    fn messages_pass_and_notifications_and_blank_lines_are_not_answered() {
        let request = b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}\r";
        assert!(matches!(parse_line(request), Parsed::Message(_)));
        for line in [&b""[..], b"  \t"] {
            assert!(matches!(parse_line(line), Parsed::Ignore), "{}", String::from_utf8_lossy(line));
        }
        // rmcp may take a notification or not; either way it is not answered.
        for line in [
            &b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/unknown\"}"[..],
            b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"x\":[]}}",
            b"{\"jsonrpc\":\"2.0\",\"method\":\"$/cancelRequest\",\"params\":7}",
            b"{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":7,\"error\":{}}",
        ] {
            assert!(!matches!(parse_line(line), Parsed::Reply(_)), "{}", String::from_utf8_lossy(line));
        }
    }

    /// The `tools/call` a line becomes, the text of its arguments kept aside, and its progress
    /// token as the handler sees it.
    fn tool_call(line: &[u8]) -> (CallToolRequestParams, Option<String>, Option<rmcp::model::ProgressToken>) {
        let Parsed::Message(message) = parse_line(line) else {
            panic!("not a message: {}", String::from_utf8_lossy(line))
        };
        let JsonRpcMessage::Request(request) = *message else { panic!("not a request") };
        let ClientRequest::CallToolRequest(call) = request.request else { panic!("not a tools/call") };
        let text = call.extensions.get::<RawArguments>().and_then(RawArguments::take);
        let token = call.extensions.get::<rmcp::model::RequestMetaObject>().and_then(|m| m.get_progress_token());
        (call.params, text, token)
    }

    #[test]
    fn a_tool_call_hands_its_arguments_over_as_text_and_the_rest_as_rmcp_reads_it() {
        let line = "\u{FEFF}{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools\\/call\",\"params\":{\"name\":\"create_task\",\
                    \"arguments\": {\"a\": [1, {\"b\": \"}\"}], \"c\": \"\\u00e9\"} ,\"_meta\":{\"progressToken\":\"p\"}}}\r";
        let (params, text, token) = tool_call(line.as_bytes());
        assert_eq!(params.name, "create_task");
        assert_eq!(params.arguments, Some(JsonObject::new()), "the message carries no copy of them");
        assert_eq!(token, Some(rmcp::model::ProgressToken(RequestId::String("p".into()))));
        assert_eq!(text.as_deref(), Some(r#"{"a": [1, {"b": "}"}], "c": "\u00e9"}"#));
    }

    #[test]
    fn a_tool_call_without_an_arguments_object_takes_the_usual_path() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tasks"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tasks","arguments":null}}"#,
        ] {
            let (params, text, _) = tool_call(line);
            assert_eq!((params.name.as_ref(), text), ("list_tasks", None));
        }
        // Arguments that are not an object are refused as before, with the request's id.
        let answer = reply(parse_line(
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
        ));
        assert_eq!((answer["id"].clone(), answer["error"]["code"].clone()), (json!(2), json!(INVALID_PARAMS)));
        // So is a call without a name, even with an arguments object.
        let answer = reply(parse_line(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}"#));
        assert_eq!((answer["id"].clone(), answer["error"]["code"].clone()), (json!(3), json!(INVALID_PARAMS)));
    }

    async fn read_all(input: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
        let mut reader = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            match reader.next().await.expect("read") {
                Read::Line(line) => out.push(Some(line)),
                Read::TooLong => out.push(None),
                Read::Eof => return out,
            }
        }
    }

    #[tokio::test]
    async fn lines_over_the_limit_are_refused_and_reading_goes_on() {
        let mut input = b"ab\n".to_vec();
        input.extend(vec![b'x'; 200_000]);
        input.extend_from_slice(b"\n0123456789\n01234567890\nlast");
        let lines = read_all(&input, 10).await;
        assert_eq!(lines, vec![Some(b"ab".to_vec()), None, Some(b"0123456789".to_vec()), None, Some(b"last".to_vec())]);
    }

    #[tokio::test]
    async fn one_writer_answers_bad_lines_and_passes_messages_in_order() {
        let (client_in, server_in) = tokio::io::duplex(1024);
        let (server_out, client_out) = tokio::io::duplex(1024);
        let ((sink, mut stream), session) = spawn(server_in, server_out, 1000);
        let mut client_in = client_in;
        client_in.write_all(b"{oops\n{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ping\"}\n").await.expect("write");
        let message = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.expect("in time");
        assert!(matches!(message, Some(rmcp::model::JsonRpcMessage::Request(_))), "{message:?}");
        let mut sink = sink;
        futures::SinkExt::send(
            &mut sink,
            TxJsonRpcMessage::<RoleServer>::response(
                rmcp::model::ServerResult::empty(()),
                rmcp::model::RequestId::Number(9),
            ),
        )
        .await
        .expect("send");
        drop(client_in);
        tokio::time::timeout(Duration::from_secs(5), session.ended()).await.expect("ends at EOF");
        assert!(stream.next().await.is_none(), "the stream ends with stdin");
        drop(sink);
        session.finish(Duration::from_secs(5)).await;
        let mut lines = BufReader::new(client_out).lines();
        let first: Value = serde_json::from_str(&lines.next_line().await.expect("read").expect("line")).expect("json");
        assert_eq!(first["error"]["code"], PARSE_ERROR);
        let second: Value = serde_json::from_str(&lines.next_line().await.expect("read").expect("line")).expect("json");
        assert_eq!(second["id"], 9, "{second}");
        assert!(lines.next_line().await.expect("read").is_none());
    }

    #[tokio::test]
    async fn a_closed_output_ends_the_session() {
        let (client_in, server_in) = tokio::io::duplex(1024);
        let (server_out, client_out) = tokio::io::duplex(1024);
        let ((sink, mut stream), session) = spawn(server_in, server_out, 1000);
        drop(client_out);
        let mut client_in = client_in;
        client_in.write_all(b"not json\n").await.expect("write");
        tokio::time::timeout(Duration::from_secs(5), session.ended()).await.expect("ends when stdout is closed");
        assert!(stream.next().await.is_none(), "rmcp sees its input end");
        let mut sink = sink;
        let sent = futures::SinkExt::send(
            &mut sink,
            TxJsonRpcMessage::<RoleServer>::response(
                rmcp::model::ServerResult::empty(()),
                rmcp::model::RequestId::Number(1),
            ),
        )
        .await;
        // Nobody can read it: dropped, not an error that rmcp would log (a client that exits with
        // a request in flight is a normal end).
        sent.expect("a message to a client that is gone is dropped quietly");
        session.finish(Duration::from_secs(5)).await;
        let late = futures::SinkExt::send(
            &mut sink,
            TxJsonRpcMessage::<RoleServer>::response(
                rmcp::model::ServerResult::empty(()),
                rmcp::model::RequestId::Number(2),
            ),
        )
        .await;
        late.expect("and so is one sent after the session finished");
    }
}
