"""Run by the contract venv's python (tests/contract/test_api_key_auth.py): the REAL sglang 0.5.23 auth decision
(srt/utils/auth.py decide_request_auth), the real auth level of each route (read from the decorators of the
installed srt/entrypoints/http_server.py: the module itself needs uvicorn, which the venv lacks) and the real
middleware's refusal bodies, next to the stand-in server's answers for the same requests. Prints one RESULT line."""

import ast
import importlib.util
import inspect
import json
import sys

import orjson
from sglang.srt.utils import auth

STANDIN_HTTP = sys.argv[1]
PATHS = ["/generate", "/server_info", "/get_server_info", "/model_info", "/get_model_info", "/v1/models",
         "/flush_cache", "/health", "/health_generate", "/ready", "/metrics", "/metrics/extra", "/no_such_path"]
HEADERS = [None, "", "Bearer K", "bearer K", "BEARER K", "Bearer  K", "Bearer K ", "Bearer wrong", "K", "Basic K",
           "Bearer A", "Bearer"]
KEYS = [(None, None), ("K", None), (None, "A"), ("K", "A")]


def route_levels():
    """{path: AuthLevel name} for every route of the real http_server.py with an @auth_level decorator."""
    source = open(importlib.util.find_spec("sglang.srt.entrypoints.http_server").origin).read()
    levels = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        paths, level = [], None
        for dec in node.decorator_list:
            if not isinstance(dec, ast.Call):
                continue
            name = ast.unparse(dec.func)
            if name == "auth_level":
                level = ast.unparse(dec.args[0]).rsplit(".", 1)[-1]
            elif name.startswith("app.") and dec.args and isinstance(dec.args[0], ast.Constant):
                paths.append(dec.args[0].value)
        for path in paths:
            levels[path] = level or "NORMAL"
    return levels


spec = importlib.util.spec_from_file_location("standin_http", STANDIN_HTTP)
standin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(standin)
levels = route_levels()
mismatches = []
for path in PATHS:
    level = auth.AuthLevel[levels.get(path, "NORMAL")]
    for method in ("GET", "POST", "OPTIONS"):
        for header in HEADERS:
            for api_key, admin_key in KEYS:
                real = auth.decide_request_auth(method=method, path=path, authorization_header=header,
                                                api_key=api_key, admin_api_key=admin_key, auth_level=level)
                want = None if real.allowed else real.error_status_code
                got = standin.auth_status(method, path, header, api_key, admin_key)
                if got != want:
                    mismatches.append([method, path, header, api_key, admin_key, want, got])
middleware = inspect.getsource(auth.add_api_key_middleware)
bodies = {str(code): [orjson.dumps({"error": word}).decode(), standin.DENIED_BODY[code].decode(),
                      '"%s"' % word in middleware] for code, word in ((401, "Unauthorized"), (403, "Forbidden"))}
print("AUTH-PROBE-RESULT " + json.dumps({"levels": {p: levels.get(p) for p in PATHS}, "mismatches": mismatches,
                                          "bodies": bodies, "open_prefixes": list(standin.AUTH_OPEN_PREFIXES)}))
