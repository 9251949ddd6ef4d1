"""A recorded snapshot with stacks as deep as a real FastAPI server's: a 26-frame await chain,
a stall sampled deep in a library, a logged traceback through middleware. The user's line is
near the bottom of each, under the server's, the framework's and the inspector's own frames."""

from __future__ import annotations

import dataclasses

from inspector.model import ExceptionEvent, ExceptionInfo, Frame, Snapshot, StackSample, Stall

SITE = "/srv/shop/.venv/lib/python3.11/site-packages"
STDLIB = "/usr/lib64/python3.11"


def lib(path: str, line: int, function: str, code: str) -> Frame:
    return Frame(f"{SITE}/{path}", line, function, code)


SERVER = (
    lib("uvicorn/protocols/http/httptools_impl.py", 409, "run_asgi", "result = await app("),
    lib("uvicorn/middleware/proxy_headers.py", 60, "__call__", "return await self.app(scope, r…"),
    lib("inspector/agent/instrumented.py", 71, "__call__", "await self._app(scope, receive, send)"),
    lib("fastapi/applications.py", 1134, "__call__", "await super().__call__(scope, receive, …"),
    lib("starlette/applications.py", 113, "__call__", "await self.middleware_stack(scope, …"),
    lib("starlette/middleware/errors.py", 165, "__call__", "await self.app(scope, receive, _send)"),
    lib("inspector/agent/probes/requests.py", 212, "middleware", "await app(scope, receive, send)"),
    lib("starlette/middleware/exceptions.py", 62, "__call__", "await wrap_app_handling_exceptio…"),
    lib("starlette/_exception_handler.py", 53, "wrapped_app", "await app(scope, receive, sender)"),
    lib("starlette/routing.py", 715, "__call__", "await self.middleware_stack(scope, rec…"),
    lib("starlette/routing.py", 735, "app", "await route.handle(scope, receive, send)"),
    lib("starlette/routing.py", 288, "handle", "await self.app(scope, receive, send)"),
    lib("starlette/routing.py", 76, "app", "await wrap_app_handling_exceptions(app, r…"),
    lib("starlette/_exception_handler.py", 53, "wrapped_app", "await app(scope, receive, sender)"),
    lib("starlette/routing.py", 73, "app", "response = await f(request)"),
    lib("fastapi/routing.py", 301, "app", "raw_response = await run_endpoint_function("),
    lib("fastapi/routing.py", 212, "run_endpoint_function", "return await dependant.call(**…"),
)
CHAIN = (
    *SERVER,
    Frame("/srv/shop/orders.py", 88, "checkout", "receipt = await charge_card(order)"),
    Frame("/srv/shop/payments.py", 41, "charge_card", "reply = await gateway.post(url, json=body)"),
    lib("httpx/_client.py", 1859, "post", "return await self.request("),
    lib("httpx/_client.py", 1540, "request", "return await self.send(request, auth=auth, …"),
    lib("httpx/_client.py", 1629, "send", "response = await self._send_handling_auth("),
    lib("httpcore/_async/connection_pool.py", 256, "handle_async_request", "raise exc from None"),
    lib("httpcore/_synchronization.py", 76, "__aenter__", "await self._anyio_lock.acquire()"),
    lib("anyio/_core/_synchronization.py", 168, "acquire", "await self._waiters[0].wait()"),
    Frame(f"{STDLIB}/asyncio/locks.py", 213, "wait", "await fut"),
)
STALL_STACK = (
    *SERVER,
    Frame("/srv/shop/reports.py", 57, "daily_report", "pdf = render_pdf(rows)"),
    Frame("/srv/shop/pdf.py", 23, "render_pdf", "return weasyprint.HTML(string=page).write_pdf()"),
    lib("weasyprint/__init__.py", 252, "write_pdf", "self.render(font_config, counter_s…"),
    lib("weasyprint/document.py", 374, "render", "return cls._render(html, …)"),
    lib("weasyprint/layout/__init__.py", 127, "layout_document", "pages = list(make_all_page…"),
    lib("weasyprint/layout/page.py", 855, "make_all_pages", "page, resume_at = remake_page(…"),
    lib("weasyprint/text/line_break.py", 402, "split_first_line", "layout = create_layout(…"),
)
TRACEBACK = (
    *SERVER[3:],
    Frame("/srv/shop/webhooks.py", 31, "payment_webhook", "await apply_payment(event)"),
    Frame("/srv/shop/payments.py", 77, "apply_payment", "order = orders[event['order_id']]"),
)


def deep(blocked: Snapshot) -> Snapshot:
    """`blocked` with Task-1057 awaiting a payment gateway, one stall, one logged error."""
    tasks = tuple(
        dataclasses.replace(task, stack=CHAIN) if task.id == 1057 else task
        for task in blocked.tasks
    )
    stall = Stall(
        id=9,
        started_at=blocked.taken_at - 3.0,
        duration=2.6,
        ongoing=False,
        samples=(StackSample(offset=0.1, frames=STALL_STACK, count=24),),
        request_label="GET /reports/daily",
    )
    error = ExceptionEvent(
        id=9,
        kind="logged-error",
        at=blocked.taken_at - 2.0,
        error=ExceptionInfo(type="KeyError", message="'ord_4411'", traceback=TRACEBACK),
        location=TRACEBACK[-1],
        request_label="POST /webhooks/payment",
        task_name="Task-2207",
    )
    return dataclasses.replace(blocked, tasks=tasks, stalls=(stall,), exceptions=(error,))
