# STAND-IN for testing without a GPU; mimics SGLang 0.5.23 per sglang-facts.md
"""The HTTP surface of the server (sglang-facts.md 4 and 5), on a stdlib ThreadingHTTPServer.

  GET  /health, /health_generate   503 while starting (warmup not done) or shutting down, else 200
  GET  /ready                      200 when up, else 503
  GET  /v1/models                  200 as soon as HTTP is up (before the warmup ends)
  GET  /model_info, /get_model_info (the latter logs a deprecation warning on every call)
  GET  /server_info, /get_server_info
  POST|PUT /generate               schema-checked body; unknown sampling_params keys -> 400
  GET  /metrics                    only with --enable-metrics (404 otherwise)

With --api-key (and/or --admin-api-key) every request passes SGLang's auth middleware first
(srt/utils/auth.py decide_request_auth): /health*, /ready*, /metrics* and OPTIONS are always open; any
other path needs `Authorization: Bearer <api-key>` (/flush_cache, ADMIN_OPTIONAL: the admin key when one
is set), else 401 {"error":"Unauthorized"}. tests/contract checks the decisions against the real function.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import socketserver
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sglang.version import __version__

logger = logging.getLogger("sglang.srt.entrypoints.http_server")
access_logger = logging.getLogger("uvicorn.access")
scheduler_logger = logging.getLogger("sglang.srt.managers.scheduler")

SAMPLING_PARAMS_FIELDS = (
    "max_new_tokens", "stop", "stop_token_ids", "stop_regex", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n", "json_schema",
    "regex", "ebnf", "structural_tag", "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens",
    "no_stop_trim", "stream_interval", "logit_bias", "sampling_seed", "custom_params", "beam_width",
    "watermark", "choice",
)
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INT_SAMPLING_FIELDS = ("max_new_tokens", "top_k", "min_new_tokens", "n", "stream_interval", "sampling_seed")


class ContractError(ValueError):
    """A /generate body that breaks the request schema (api_contract.generate_contract_error)."""


def _json_type(value) -> str:
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, bool):
        return f"boolean `{str(value).lower()}`"
    if isinstance(value, (list, tuple)):
        return "sequence"
    if isinstance(value, dict):
        return "map"
    if isinstance(value, float):
        return f"floating point `{value}`"
    return f"integer `{value}`" if isinstance(value, int) else "null"


def check_sampling_params(params) -> None:
    if params is None:
        return
    if isinstance(params, list):
        for item in params:
            check_sampling_params(item)
        return
    if not isinstance(params, dict):
        raise ContractError(f"invalid type: {_json_type(params)}, expected struct SamplingParams")
    for key, value in params.items():
        if key not in SAMPLING_PARAMS_FIELDS:
            listed = ", ".join(f"`{f}`" for f in SAMPLING_PARAMS_FIELDS)
            raise ContractError(f"unknown field `{key}`, expected one of {listed}")
        if key in INT_SAMPLING_FIELDS and value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ContractError(f"invalid type: {_json_type(value)}, expected i64")


def check_generate_body(body) -> None:
    if not isinstance(body, dict):
        raise ContractError(f"invalid type: {_json_type(body)}, expected struct GenerateRequest")
    ids = body.get("input_ids")
    if ids is not None and not isinstance(ids, list):
        raise ContractError(f"invalid type: {_json_type(ids)}, expected a value or an array of values for TokenIdsOrList")
    check_sampling_params(body.get("sampling_params"))


class Metrics:
    """Counters and gauges with SGLang's metric names and labels, rendered in Prometheus text format."""

    def __init__(self, model_name: str, max_total_num_tokens: int, context_len: int, cuda_graph: bool):
        self.lock = threading.Lock()
        self.tok_labels = {"engine_type": "unified", "model_name": model_name}
        self.sched_labels = {"engine_type": "unified", "model_name": model_name, "moe_ep_rank": "0",
                             "pp_rank": "0", "tp_rank": "0"}
        self.prompt_tokens = self.generation_tokens = self.requests = 0
        self.e2e_sum = 0.0
        self.e2e_buckets = [0] * len(LATENCY_BUCKETS)
        self.static_gauges = {"max_total_num_tokens": max_total_num_tokens, "context_len": context_len,
                              "page_size": 1, "is_cuda_graph": 1 if cuda_graph else 0}
        self.started = time.time()

    def observe(self, prompt_tokens: int, generation_tokens: int, latency: float) -> None:
        with self.lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generation_tokens
            self.requests += 1
            self.e2e_sum += latency
            for i, bound in enumerate(LATENCY_BUCKETS):
                self.e2e_buckets[i] += latency <= bound

    @staticmethod
    def _line(name, labels, value):
        text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"{name}{{{text}}} {float(value)}"

    def render(self) -> str:
        with self.lock:
            streaming = dict(self.tok_labels, is_streaming="false")
            out = []

            def metric(name, kind, help_text, labels, value):
                out.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", self._line(name, labels, value)])

            metric("sglang:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                   streaming, self.prompt_tokens)
            metric("sglang:generation_tokens_total", "counter", "Number of generation tokens processed.",
                   streaming, self.generation_tokens)
            metric("sglang:num_requests_total", "counter", "The number of requests.", streaming, self.requests)
            name = "sglang:e2e_request_latency_seconds"
            out += [f"# HELP {name} Histogram of End-to-end request latency in seconds",
                    f"# TYPE {name} histogram"]
            for bound, count in zip(LATENCY_BUCKETS, self.e2e_buckets):
                out.append(self._line(name + "_bucket", dict(streaming, le=str(bound)), count))
            out += [self._line(name + "_bucket", dict(streaming, le="+Inf"), self.requests),
                    self._line(name + "_sum", streaming, self.e2e_sum),
                    self._line(name + "_count", streaming, self.requests)]
            metric("sglang:num_running_reqs", "gauge", "The number of running requests.", self.sched_labels, 0)
            metric("sglang:num_queue_reqs", "gauge", "The number of requests in the waiting queue.",
                   self.sched_labels, 0)
            metric("sglang:num_used_tokens", "gauge", "The number of used tokens.", self.sched_labels, 0)
            metric("sglang:token_usage", "gauge", "The token usage.", self.sched_labels, 0.0)
            metric("sglang:gen_throughput", "gauge", "The generation throughput (token/s).", self.sched_labels, 0.0)
            metric("sglang:cache_hit_rate", "gauge", "The prefix cache hit rate.", self.sched_labels, 0.0)
            for name, value in self.static_gauges.items():
                metric(f"sglang:{name}", "gauge", f"The {name.replace('_', ' ')}.", self.sched_labels, value)
            metric("sglang:startup_time_seconds", "gauge", "Server startup time in seconds.",
                   dict(self.tok_labels, phase="total"), round(time.time() - self.started, 3))
            return "\n".join(out) + "\n"


class ServerState:
    """What the endpoints answer from: status, model, resolved args, metrics, faults."""

    def __init__(self, args, model, server_info: dict, metrics: Metrics, faults=(), kernels=None):
        self.args = args
        self.kernels = kernels  # caches.ShapeKernels: shapes outside the captured graphs compile here
        self.running = 0  # sequences being decoded right now, over every request in flight
        self.running_lock = threading.Lock()
        self.model = model
        self.server_info = server_info
        self.metrics = metrics
        self.faults = set(faults)
        self.status = "Starting"  # -> "Up" after warmup, -> "Shutdown" on exit
        self.served_model_name = args.served_model_name or args.model_path
        self.context_len = server_info["context_length"]

    def generate(self, body: dict):
        """Run one (or a batch of) generation(s); the reply mirrors SGLang's /generate JSON."""
        check_generate_body(body)
        ids, text = body.get("input_ids"), body.get("text")
        if ids is None and text is None:
            raise ValueError("Either text, input_ids or input_embeds should be provided.")
        if ids is None and self.args.skip_tokenizer_init:
            raise ValueError("text input needs a tokenizer, but the server runs with --skip-tokenizer-init; "
                             "send input_ids instead.")
        batch = ids if ids is not None and ids and isinstance(ids[0], list) else (
            text if isinstance(text, list) else None)
        prompts = batch if batch is not None else [ids if ids is not None else text]
        params = body.get("sampling_params") or {}
        with self.running_lock:
            self.running += len(prompts)
        try:
            if self.kernels is not None:
                for prompt in prompts:  # prefill, one sequence after the other
                    self.kernels.prefill(len(prompt) if isinstance(prompt, list) else max(1, len(str(prompt).split())))
                with self.running_lock:
                    decoding = self.running
                self.kernels.decode(decoding)  # the decode batch: every sequence in flight
            results = [self._one(p, params[i] if isinstance(params, list) else params) for i, p in enumerate(prompts)]
        finally:
            with self.running_lock:
                self.running -= len(prompts)
        return results if batch is not None else results[0]

    def _one(self, prompt, params: dict) -> dict:
        start = time.time()
        prompt_tokens = len(prompt) if isinstance(prompt, list) else max(1, len(str(prompt).split()))
        max_new = params.get("max_new_tokens", 128)
        max_new = 128 if max_new is None else max_new
        seed = hashlib.sha256(repr(prompt).encode()).digest()
        vocab = int(self.model.hf.get("vocab_size", 32000))
        output_ids = [int.from_bytes(seed[(i * 2) % 30:(i * 2) % 30 + 2], "big") % vocab for i in range(max_new)]
        scheduler_logger.info(
            f"Prefill batch, #new-seq: 1, #new-token: {prompt_tokens}, #cached-token: 0, token usage: 0.00, "
            "#running-req: 0, #queue-req: 0"
        )
        latency = time.time() - start
        self.metrics.observe(prompt_tokens, max_new, latency)
        reply = {
            "output_ids": output_ids,
            "meta_info": {
                "id": uuid.uuid4().hex,
                "finish_reason": {"type": "length", "length": max_new},
                "prompt_tokens": prompt_tokens,
                "weight_version": "default",
                "total_retractions": 0,
                "completion_tokens": max_new,
                "cached_tokens": 0,
                "e2e_latency": round(latency, 6),
            },
        }
        if not self.args.skip_tokenizer_init:
            reply = {"text": " ".join(f"tok{t}" for t in output_ids), **reply}
        return reply

    def model_info(self) -> dict:
        return {
            "model_path": self.args.model_path,
            "served_model_name": self.served_model_name,
            "tokenizer_path": self.args.tokenizer_path or self.args.model_path,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "load_format": self.args.load_format,
            "reasoning_parser": None,
            "tool_call_parser": None,
            "disaggregation_mode": "null",
            "has_image_understanding": False,
            "has_audio_understanding": False,
            "model_type": self.model.hf.get("model_type"),
            "architectures": self.model.hf.get("architectures"),
        }


# srt/utils/auth.py: paths open without a key (matched by prefix), and this stand-in's ADMIN_OPTIONAL endpoints
AUTH_OPEN_PREFIXES = ("/health", "/ready", "/metrics")
ADMIN_OPTIONAL_PATHS = ("/flush_cache",)
# the middleware's ORJSONResponse bodies
DENIED_BODY = {401: b'{"error":"Unauthorized"}', 403: b'{"error":"Forbidden"}'}


def auth_status(method, path, authorization, api_key, admin_api_key):
    """None when SGLang's auth middleware lets the request through, else the HTTP status it answers (401, 403)."""
    if method == "OPTIONS" or path.startswith(AUTH_OPEN_PREFIXES):
        return None

    def bearer_is(expected):
        if not authorization:
            return False
        parts = authorization.split(" ", 1)
        return len(parts) == 2 and parts[0].lower() == "bearer" and hmac.compare_digest(parts[1], expected)

    if path in ADMIN_OPTIONAL_PATHS:
        key = admin_api_key or api_key
    else:
        key = api_key
    if key and not bearer_is(key):
        return 401
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"
    sys_version = ""
    state: ServerState = None  # set per server by make_server()

    # ------------------------------------------------------------------ plumbing
    def log_message(self, fmt, *args):  # BaseHTTPRequestHandler's own stderr lines: not SGLang's
        pass

    def _send(self, code: int, body=b"", content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        host, port = self.client_address[:2]
        access_logger.info(f'INFO:     {host}:{port} - "{self.command} {self.path} HTTP/1.1" '
                           f"{code} {HTTPStatus(code).phrase}")

    def _read_json(self):
        length = int(self.headers.get("content-length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def _route(self, method):
        path = self.path.split("?", 1)[0]
        args = self.state.args
        denied = auth_status(method, path, self.headers.get("Authorization"), getattr(args, "api_key", None),
                             getattr(args, "admin_api_key", None))
        if denied is not None:  # ORJSONResponse's compact body
            return self._send(denied, DENIED_BODY[denied])
        routes = {
            "GET": {"/health": self.health, "/health_generate": self.health, "/ready": self.ready,
                    "/v1/models": self.models, "/model_info": self.model_info,
                    "/get_model_info": self.get_model_info, "/server_info": self.server_info,
                    "/get_server_info": self.get_server_info, "/metrics": self.metrics},
            "POST": {"/generate": self.generate, "/flush_cache": self.flush_cache},
            "PUT": {"/generate": self.generate},
        }
        handler = routes.get(method, {}).get(path)
        if handler is not None:
            return handler()
        if any(path in table for table in routes.values()):
            return self._send(405, {"detail": "Method Not Allowed"})
        return self._send(404, {"detail": "Not Found"})

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    # ------------------------------------------------------------------ endpoints
    def health(self):
        status = self.state.status
        if status == "Shutdown":
            logger.info("Health check request received during shutdown. Returning 503.")
        self._send(200 if status == "Up" else 503, b"")

    def ready(self):
        self._send(200 if self.state.status == "Up" else 503, b"")

    def models(self):
        card = {"id": self.state.served_model_name, "object": "model", "created": int(time.time()),
                "owned_by": "sglang", "root": self.state.args.model_path, "parent": None,
                "max_model_len": self.state.context_len}
        self._send(200, {"object": "list", "data": [card]})

    def model_info(self):
        self._send(200, self.state.model_info())

    def get_model_info(self):
        logger.warning("Endpoint '/get_model_info' is deprecated and will be removed in a future version. "
                       "Please use '/model_info' instead.")
        self.model_info()

    def server_info(self):
        info = dict(self.state.server_info, version=__version__, frontend="python",
                    internal_states=[{"status": self.state.status}])
        self._send(200, info)

    def get_server_info(self):
        logger.warning("Endpoint '/get_server_info' is deprecated and will be removed in a future version. "
                       "Please use '/server_info' instead.")
        self.server_info()

    def metrics(self):
        if not self.state.args.enable_metrics:
            return self._send(404, {"detail": "Not Found"})
        self._send(200, self.state.metrics.render().encode(), "text/plain; version=0.0.4; charset=utf-8")

    def flush_cache(self):
        self._send(200, b"Cache flushed.\nPlease check backend logs for more details. "
                        b"(When there are running or waiting requests, the operation will not be performed.)\n",
                   "text/plain; charset=utf-8")

    def generate(self):
        try:
            body = self._read_json()
        except ValueError as e:
            return self._send(400, {"error": f"invalid JSON body: {e}"})
        if "generate_500" in self.state.faults:
            logger.error("[http_server] Error: CUDA error: an illegal memory access was encountered")
            return self._send(500, {"error": {"message": "CUDA error: an illegal memory access was encountered"}})
        try:
            reply = self.state.generate(body)
        except ContractError as e:
            return self._send(400, {"error": str(e)})
        except ValueError as e:
            logger.error(f"[http_server] Error: {e}")
            return self._send(400, {"error": {"message": str(e)}})
        self._send(200, reply)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        # HTTPServer.server_bind resolves the host name (getfqdn), which can stall without DNS.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def make_server(host: str, port: int, state: ServerState) -> ThreadingHTTPServer:
    """Bind (raises OSError, e.g. errno 98, when the port is taken) and return the server."""
    handler = type("SGLangHandler", (Handler,), {"state": state})
    return _Server((host, port), handler)
