# A stand-in for the Claude Code CLI, written into each test's temporary directory by the harness.
# It prints the stream-json shapes of the real CLI (the fixtures in tests/fixtures/) and reacts to
# directives in the prompt it reads from stdin:
#   @sleep=S        work for S seconds (printing tool use lines) before answering
#   @tool           answer with the Bash tool-use fixture
#   @auth           fail with the 401 authentication fixture
#   @api-retry=STATUS,COUNT,DELAY  retry a failing API request as the CLI does: COUNT system/api_retry
#                   events (max_retries COUNT, error_status STATUS) DELAY seconds apart, then the
#                   result of the fixture for STATUS (401, 429 or 529) and exit 1
#   @529            fail with the 529 overloaded fixture, every time
#   @529-once=KEY   fail with 529 the first time KEY is seen, then succeed
#   @max-turns      fail with error_max_turns
#   @cost=USD       report USD as the run's total_cost_usd; when that is over the --max-budget-usd it
#                   was given, stop as the CLI does at its budget (the error_max_budget_usd fixture,
#                   with the cost spent so far, exit 1)
#   @usage-limit=SECONDS[,KEY]  refused by the subscription's 5-hour usage limit, as the real CLI is
#                   (usage-limit-rejected.jsonl, exit 1), with `resetsAt` SECONDS from now (negative: in
#                   the past; `none`: the event without resetsAt and rateLimitType, the message kept);
#                   with KEY only the first time KEY is seen, then it goes on
#   @api-key-429    the same 429 as an API-key user gets it (api-429-usage-limit-with-api-key.jsonl, exit 1)
#   @usage-warning=SECONDS  print the `allowed_warning` event (usage-limit-warning.jsonl, resetsAt SECONDS
#                   from now) before answering as usual
#   @hang           ignore SIGINT and SIGTERM and never answer
#   @escapee        start a `sleep` in a session of its own (setsid, out of the CLI's process group;
#                   its pid goes to $FAKE_CLAUDE_STATE/escapee-<pid>), then go on with the other directives
#   @grandchild     start a `sleep` grandchild (its pid goes to $FAKE_CLAUDE_STATE/grandchild-<pid>), then work forever
#   @flood=MB       print MB mebibytes of lines of 1 KiB in large writes: tool output (`user` events),
#                   and every 16th line an assistant step (a different one each time)
#   @junk=MB        print MB mebibytes of lines of 1 KiB that are not JSON, in large writes
#   @longline=MB    print one line of MB mebibytes (no newline until its end)
#   @badutf8        print invalid UTF-8: a line that is not JSON, an assistant line, and the result's text
#   @close-stdout=S close stdout (stderr stays open), go on for S seconds, then exit 0 without a result
#   @close-output=S the same, closing stderr too
#   @lots=MB        print MB mebibytes of assistant lines before answering
#   @result=TEXT    answer with TEXT (up to the end of the line)
#   @die=SIG        after its init event, kill itself with signal SIG (KILL, PIPE, SEGV, ...) without a result
#   @exit=CODE      after its init event, exit with CODE without a result
#   @stderr-lines=N before @die or @exit, write N numbered lines to stderr ("stderr line 1" ...)
#   @usage-error    refuse to start as the CLI does for a bad flag: one stderr line, exit 1, no JSON at all
#   @resume-fails   a `--resume` of this session fails before it starts: one stderr line, exit 1, no JSON
#   @mcp-queue=ID   start $FAKE_CLAUDE_WORKER_BIN as Claude Code starts an MCP server (piped stdio, this
#                   process's environment, tag included), initialize, queue the task ID (prompt
#                   `@result=follow-up done`) with create_task, call `wait` twice on its own task and exit
#                   without waiting for the answers (closing the server's stdin and stdout), then answer as usual. What it saw goes
#                   to $FAKE_CLAUDE_STATE/nested-<pid>.json, the server's stderr to nested-<pid>.stderr
#   @mcp-chain=K    the same, queuing chain-K whose prompt is `@mcp-chain=K+1`: tasks that queue tasks
#   @hold=PATH      first of all (after its start line), wait until the file PATH exists (absolute;
#                   checked every 10 ms, for at most 60 s): a test holds a task running while it looks
#                   at what happens meanwhile
#   @append=PATH:TEXT  append the line TEXT to PATH (relative to the directory it runs in; the
#                   directive may repeat), after the other directives, before answering
#   @write=PATH:TEXT   the same, replacing the file's content
#   @resolve-conflicts  drop the conflict marker lines (<<<<<<< ======= >>>>>>>) of every file
#                   under its directory, keeping both sides; done unasked too when the prompt asks
#                   to "resolve the conflict markers" (claude-worker's words for a conflicted start)
#   @keep-conflicts  leave conflict markers where they are, even when the prompt asks to resolve them
#   @commit=MESSAGE make its own commit of everything (git add -A) after the edits
#   @fix-creates=FILE  (checked completion) a `--resume` run whose prompt (on stdin) asks to fix what a
#                   task's `verify` check found creates FILE (relative to its directory), so that a check
#                   such as `test -f FILE` fails after the first run and passes after the fix
# Results that reach the dependents (issue 11):
#   @structured=JSON  answer as the real CLI does with `--json-schema` (success-structured-output.jsonl):
#                   the result event carries JSON (compact, no spaces) as `structured_output`, and as text
#                   in `result`; whether or not a `--json-schema` was given (the start line records the
#                   argv, and `json_schema`: the schema it was given, parsed)
# `--version` prints a version line and exits.
# `--resume=<id>` continues the session <id> a run of the same test started (its prompt's directives
# apply again, as the conversation goes on, except @sleep: the work was done before the interruption);
# an unknown id fails as the real CLI does.
# SIGINT makes it print the interrupted-by-sigint fixture and exit 0, as the real CLI does;
# SIGTERM makes it exit 143 without a result.
# `--system-prompt-file=PATH` and `--append-system-prompt-file=PATH` (or with the path as the next
# argument) are read as the real CLI reads them: their text, path and mode, and their directory's
# mode, are recorded in the start line.
# Every run appends one JSON line to $FAKE_CLAUDE_STATE/invocations.jsonl when it starts and one
# when it ends, with its pid, argv, cwd, the prompt's length and sha256, and how many fake CLIs
# were running at that moment (and at the end, how many api_retry events it printed); a `--resume`
# run also records the prompt it was given on stdin (`stdin_prompt`, its first 16 KiB). The whole
# prompt it read on stdin goes to $FAKE_CLAUDE_STATE/prompt-<pid>.txt (named in the start line as
# `prompt_path`).
import hashlib, json, os, re, signal, subprocess, sys, time, uuid

# `claude --version`, as the real CLI answers it (doctor asks), before anything needs the test's state.
if sys.argv[1:] == ["--version"]:
    print("2.1.331 (Claude Code)")
    sys.exit(0)

STATE = os.environ["FAKE_CLAUDE_STATE"]
FIXTURES = os.environ["FAKE_CLAUDE_FIXTURES"]
PID = os.getpid()
SESSION = str(uuid.uuid4())
RUNNING = os.path.join(STATE, "running")
RETRIES = 0


def record(event, **fields):
    fields.update(event=event, pid=PID, at=time.time())
    with open(os.path.join(STATE, "invocations.jsonl"), "a") as log:
        log.write(json.dumps(fields) + "\n")


def emit(line):
    # A reader that went away (its server was killed) does not stop the work, as with the real CLI.
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")


def fixture(name, result=None, retries=True, cost=None, errors=None):
    with open(os.path.join(FIXTURES, name)) as f:
        for raw in f:
            event = json.loads(raw)
            if not retries and event.get("subtype") == "api_retry":
                continue
            if "session_id" in event:
                event["session_id"] = SESSION
            if result is not None and event.get("type") == "result":
                event["result"] = result
            if cost is not None and event.get("type") == "result":
                event["total_cost_usd"] = cost
            if errors is not None and event.get("type") == "result":
                event["errors"] = errors
            emit(json.dumps(event, separators=(",", ":"), ensure_ascii=False))


def finish(code):
    try:
        os.unlink(os.path.join(RUNNING, str(PID)))
    except FileNotFoundError:
        pass
    record("end", code=code, retries=RETRIES)
    sys.exit(code)


def on_sigint(signum, frame):
    fixture("interrupted-by-sigint.jsonl")
    finish(0)


def on_sigterm(signum, frame):
    finish(143)


# Installed first, so that a signal that comes as soon as the run is recorded is handled.
signal.signal(signal.SIGINT, on_sigint)
signal.signal(signal.SIGTERM, on_sigterm)

def option(name):
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def prompt_file(flag):
    path = option(flag)
    if path is None:
        return None
    with open(path) as f:
        text = f.read()
    return {"path": path, "text": text, "mode": oct(os.stat(path).st_mode & 0o777), "dir_mode": oct(os.stat(os.path.dirname(path)).st_mode & 0o777)}


SYSTEM_PROMPT_FILES = {"system_prompt_file": prompt_file("--system-prompt-file"), "append_system_prompt_file": prompt_file("--append-system-prompt-file")}

prompt = sys.stdin.buffer.read()
text = prompt.decode("utf-8", "replace")
SESSIONS = os.path.join(STATE, "sessions")
os.makedirs(SESSIONS, exist_ok=True)
resume = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--resume=")), None)
if resume is not None:
    try:
        with open(os.path.join(SESSIONS, resume)) as f:
            text = f.read()
        SESSION = resume
        if re.search(r"@resume-fails(?![\w-])", text):
            record("start", argv=sys.argv[1:], resume=resume, concurrent=0)
            sys.stderr.write("Error: the session's transcript ends in the middle of a line\n")
            record("end", code=1)
            sys.exit(1)
    except FileNotFoundError:
        record("start", argv=sys.argv[1:], resume=resume, concurrent=0)
        sys.stderr.write("No conversation found with session ID: %s\n" % resume)
        record("end", code=1)
        sys.exit(1)
else:
    with open(os.path.join(SESSIONS, SESSION), "w") as f:
        f.write(text)
PROMPT_PATH = os.path.join(STATE, "prompt-%d.txt" % PID)
with open(PROMPT_PATH, "wb") as f:
    f.write(prompt)
os.makedirs(RUNNING, exist_ok=True)
open(os.path.join(RUNNING, str(PID)), "w").close()
concurrent = len(os.listdir(RUNNING))
record(
    "start",
    argv=sys.argv[1:],
    cwd=os.getcwd(),
    prompt_len=len(prompt),
    prompt_sha256=hashlib.sha256(prompt).hexdigest(),
    prompt_head=text[:200],
    concurrent=concurrent,
    claudecode=os.environ.get("CLAUDECODE"),
    resume=resume,
    session=SESSION,
    run_tag=os.environ.get("CLAUDE_WORKER_RUN"),
    stdin_prompt=prompt.decode("utf-8", "replace")[:16384] if resume is not None else None,
    prompt_path=PROMPT_PATH,
    json_schema=json.loads(option("--json-schema")) if option("--json-schema") is not None else None,
    **SYSTEM_PROMPT_FILES,
)

def directive(name):
    m = re.search(r"@" + re.escape(name) + r"(?:=(\S+))?(?![\w-])", text)
    if not m:
        return None
    return m.group(1) or ""

m = re.search(r"@hold=(\S+)", text)
if m:
    held_until = time.time() + 60
    while not os.path.exists(m.group(1)) and time.time() < held_until:
        time.sleep(0.01)


# Checked completion: the fix a resumed run is asked for.
fix_creates = directive("fix-creates")
if fix_creates and resume is not None and "its check failed" in prompt.decode("utf-8", "replace"):
    with open(fix_creates, "w") as f:
        f.write("fixed by session %s\n" % SESSION)

if directive("usage-error") is not None:
    sys.stderr.write("error: unknown option '--bogus'\n")
    record("end", code=1)
    sys.exit(1)

init = json.dumps({"type": "system", "subtype": "init", "cwd": os.getcwd(), "session_id": SESSION, "tools": ["Bash"]})
emit(init)

def mcp_queue(identifier, prompt):
    # As Claude Code runs a registered stdio server: its own environment, pipes for stdin and stdout.
    err_path = os.path.join(STATE, "nested-%d.stderr" % PID)
    with open(err_path, "wb") as err:
        server = subprocess.Popen([os.environ["FAKE_CLAUDE_WORKER_BIN"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)

    def send(message):
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()

    def answer(request_id):
        while True:
            line = server.stdout.readline()
            if not line:
                return None
            message = json.loads(line)
            if message.get("method") == "roots/list":
                # As Claude Code does: the session's directory is its root.
                send({"jsonrpc": "2.0", "id": message["id"], "result": {"roots": [{"uri": "file://" + os.getcwd(), "name": "project"}]}})
                continue
            if message.get("id") == request_id:
                return message

    send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {"roots": {}}, "clientInfo": {"name": "fake-claude-code", "version": "2.1.331"}}})
    initialized = answer(0)
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "create_task", "arguments": {"task_identifier": identifier, "execution_prompt": prompt}}})
    created = answer(1)
    # The CLI is done and exits with calls still in flight (they are answered a moment later):
    # both pipes close at once.
    tag = os.environ.get("CLAUDE_WORKER_RUN", "")
    own = tag.split("/")[-2] if tag.count("/") >= 2 else "0"
    for request_id, seconds in ((2, 0.1), (3, 0.15)):
        send({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": "wait", "arguments": {"task": "#" + own, "timeout_seconds": seconds}}})
    server.stdin.close()
    server.stdout.close()
    try:
        code = server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        code = "timeout"
    with open(os.path.join(STATE, "nested-%d.json" % PID), "w") as f:
        json.dump({"run_tag": tag, "server_pid": server.pid, "initialized": initialized, "created": created, "exit_code": code}, f)


queue = directive("mcp-queue")
if queue:
    mcp_queue(queue, "@result=follow-up done")
chain = directive("mcp-chain")
if chain:
    mcp_queue("chain-" + chain, "@mcp-chain=%d" % (int(chain) + 1))

stderr_lines = directive("stderr-lines")
die = directive("die")
exit_code = directive("exit")
if (die or exit_code) and stderr_lines:
    for i in range(1, int(stderr_lines) + 1):
        sys.stderr.write("stderr line %d\n" % i)
    sys.stderr.flush()
if die:
    try:
        os.unlink(os.path.join(RUNNING, str(PID)))
    except FileNotFoundError:
        pass
    record("end", signal=die)
    sig = getattr(signal, "SIG" + die)
    if sig != signal.SIGKILL:
        signal.signal(sig, signal.SIG_DFL)
    os.kill(PID, sig)
    time.sleep(10)
if exit_code:
    finish(int(exit_code))

if directive("hang") is not None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)

if directive("escapee") is not None:
    escapee = subprocess.Popen(["sleep", "1000"], start_new_session=True, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(STATE, "escapee-%d" % PID), "w") as f:
        f.write(str(escapee.pid))

if directive("grandchild") is not None:
    child = subprocess.Popen(["sleep", "1000"])
    with open(os.path.join(STATE, "grandchild-%d" % PID), "w") as f:
        f.write(str(child.pid))
    while True:
        time.sleep(60)

def write_raw(data):
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def write_mib(mib, chunk_of):
    # 4 MiB per write: a chunk of 4096 lines of 1 KiB.
    written = 0
    step = 0
    while written < mib * 1024 * 1024:
        chunk = chunk_of(step)
        write_raw(chunk)
        written += len(chunk)
        step += 4096


flood = directive("flood")
if flood:
    sid = SESSION.encode()

    def line_of(head, tail):
        return head + b"x" * (1024 - len(head % (0, 0)) - len(tail)) + tail

    tool = line_of(
        b'{"type":"assistant","message":{"content":[{"type":"tool_use","id":"toolu_%09d","name":"Bash","input":{"command":"step %09d ',
        b'"}}]},"session_id":"' + sid + b'"}\n',
    )
    output = line_of(
        b'{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_%09d","type":"tool_result","content":"output %09d ',
        b'","is_error":false}]},"parent_tool_use_id":null,"session_id":"' + sid + b'"}\n',
    )
    write_mib(float(flood), lambda step: b"".join((tool if i % 16 == 0 else output) % (step + i, step + i) for i in range(4096)))

junk = directive("junk")
if junk:
    lines = (b"not json: " + b"j" * 1013 + b"\n") * 4096
    write_mib(float(junk), lambda step: lines)

longline = directive("longline")
if longline:
    block = b"L" * (1024 * 1024)
    for _ in range(int(float(longline))):
        write_raw(block)
    write_raw(b"\n")

if directive("badutf8") is not None:
    write_raw(b"\xff\xfe not UTF-8 at all \xc3\x28\n")
    write_raw(b'{"type":"assistant","message":{"content":[{"type":"text","text":"caf\xe9 in Latin-1"}]},"session_id":"' + SESSION.encode() + b'"}\n')
    with open(os.path.join(FIXTURES, "success-text.jsonl")) as f:
        events = [json.loads(raw) for raw in f]
    for event in events:
        if "session_id" in event:
            event["session_id"] = SESSION
        if event.get("type") == "result":
            event["result"] = "RESULT-MARK"
        write_raw(json.dumps(event, separators=(",", ":")).encode().replace(b"RESULT-MARK", b"bad \xff byte, then fine") + b"\n")
    finish(0)

for name, fds in (("close-stdout", (1,)), ("close-output", (1, 2))):
    closing = directive(name)
    if closing is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in fds:
            os.dup2(devnull, fd)
        time.sleep(float(closing or 0))
        finish(0)

lots = directive("lots")
if lots:
    line = json.dumps({"type": "assistant", "message": {"content": [{"type": "text", "text": "x" * 1000}]}, "session_id": SESSION})
    for _ in range(int(float(lots) * 1024)):
        emit(line)

sleep = directive("sleep")
if sleep and resume is None:
    end = time.time() + float(sleep)
    step = 0
    while time.time() < end:
        step += 1
        emit(json.dumps({"type": "assistant", "message": {"content": [{"type": "tool_use", "id": "t%d" % step, "name": "Bash", "input": {"command": "step %d" % step}}]}, "session_id": SESSION}))
        time.sleep(min(0.05, max(0.0, end - time.time())))

api_retry = directive("api-retry")
if api_retry:
    status, count, delay = api_retry.split(",")
    errors = {"401": ("authentication_failed", "api-401-auth-failed.jsonl"), "429": ("rate_limit", "api-429-rate-limit.jsonl"), "529": ("overloaded", "api-529-overloaded.jsonl")}
    error, name = errors[status]
    for attempt in range(1, int(count) + 1):
        # Counted before it is printed: a SIGINT that answers this line may come before the next
        # statement.
        RETRIES += 1
        emit(json.dumps({"type": "system", "subtype": "api_retry", "attempt": attempt, "max_retries": int(count), "retry_delay_ms": int(float(delay) * 1000), "error_status": int(status), "error": error, "session_id": SESSION, "uuid": str(uuid.uuid4())}, separators=(",", ":")))
        time.sleep(float(delay))
    fixture(name, retries=False)
    finish(1)

if directive("auth") is not None:
    fixture("api-401-auth-failed.jsonl")
    finish(1)

if directive("529") is not None:
    fixture("api-529-overloaded.jsonl")
    finish(1)

def first_time(marker_name):
    # True the first time a run of this test sees marker_name (a marker file in the state dir).
    marker = os.path.join(STATE, marker_name)
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True

once = directive("529-once")
if once and first_time("once-" + once):
    fixture("api-529-overloaded.jsonl")
    finish(1)

def usage_limit_fixture(name, seconds):
    # The fixture's time, moved: resetsAt in the event, and in the refusal's copy of it.
    with open(os.path.join(FIXTURES, name)) as f:
        events = [json.loads(raw) for raw in f]
    for event in events:
        if "session_id" in event:
            event["session_id"] = SESSION
        infos = [event.get("rate_limit_info"), (event.get("api_error_params") or {}).get("rate_limit_info")]
        infos += list(((event.get("rate_limit_info") or {}).get("unifiedWindows") or {}).values())
        for info in filter(None, infos):
            if seconds == "none":
                info.pop("resetsAt", None)
                info.pop("rateLimitType", None)
            else:
                info["resetsAt"] = int(time.time() + float(seconds))
        if name == "usage-limit-warning.jsonl" and event.get("type") in ("result", "system"):
            continue  # the warning alone: the run answers as usual below
        emit(json.dumps(event, separators=(",", ":"), ensure_ascii=False))


usage = directive("usage-limit")
if usage:
    seconds, _, key = usage.partition(",")
    if not key or first_time("usage-limit-" + key):
        usage_limit_fixture("usage-limit-rejected.jsonl", seconds)
        finish(1)

if directive("api-key-429") is not None:
    fixture("api-429-usage-limit-with-api-key.jsonl")
    finish(1)

warning = directive("usage-warning")
if warning:
    usage_limit_fixture("usage-limit-warning.jsonl", warning)

if directive("max-turns") is not None:
    fixture("error-max-turns.jsonl")
    finish(1)

cost = directive("cost")
cost = float(cost) if cost else None
cap = option("--max-budget-usd")
if cost is not None and cap is not None and cost > float(cap):
    fixture("error-max-budget.jsonl", cost=cost, errors=["Reached maximum budget ($%s)" % cap])
    finish(1)

# Edits, as Claude's tools make them, in the directory it runs in (isolation tests).
for m in re.finditer(r"@(append|write)=([^:\s]+):(.*)", text):
    path = os.path.join(os.getcwd(), m.group(2))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "a" if m.group(1) == "append" else "w") as f:
        f.write(m.group(3).strip() + "\n")
# As Claude does when its prompt lists files with conflict markers to resolve first.
if directive("resolve-conflicts") is not None or (
        "resolve the conflict markers" in text.lower() and directive("keep-conflicts") is None):
    for root, dirs, files in os.walk(os.getcwd()):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in files:
            path = os.path.join(root, name)
            try:
                with open(path) as f:
                    lines = f.readlines()
            except (UnicodeDecodeError, OSError):
                continue
            if any(l.startswith("<<<<<<<") for l in lines):
                kept = [l for l in lines if not l.startswith(("<<<<<<<", "=======", ">>>>>>>", "|||||||"))]
                with open(path, "w") as f:
                    f.writelines(kept)
m = re.search(r"@commit=(.*)", text)
if m:
    env = dict(os.environ, GIT_AUTHOR_NAME="Claude", GIT_AUTHOR_EMAIL="claude@example.com",
               GIT_COMMITTER_NAME="Claude", GIT_COMMITTER_EMAIL="claude@example.com")
    subprocess.run(["git", "add", "-A"], check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", m.group(1).strip()], check=True, env=env)
structured = directive("structured")
if structured:
    value = json.loads(structured)
    with open(os.path.join(FIXTURES, "success-structured-output.jsonl")) as f:
        for raw in f:
            event = json.loads(raw)
            if "session_id" in event:
                event["session_id"] = SESSION
            if event.get("type") == "assistant":
                event["message"]["content"][0]["input"] = value
            if event.get("type") == "result":
                event["structured_output"] = value
                event["result"] = json.dumps(value, separators=(",", ":"))
                if cost is not None:
                    event["total_cost_usd"] = cost
            emit(json.dumps(event, separators=(",", ":"), ensure_ascii=False))
    finish(0)

m = re.search(r"@result=(.*)", text)
result = m.group(1).strip() if m else None
fixture("success-bash-tool.jsonl" if directive("tool") is not None else "success-text.jsonl", result, cost=cost)
finish(0)
